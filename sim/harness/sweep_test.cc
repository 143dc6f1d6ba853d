// The seed-sweep engine: shard partitioning, sharding environment, and
// run_sweep in this process and in forked workers.
#include "twinloop/sim/harness/sweep.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "twinloop/api/twinloop.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/sim/simulation.h"
#include "twinloop/tests/subprocess.h"

extern char** environ;

namespace twinloop::sim {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

// ---------------------------------------------------------------- helpers

// A small simulated test: three tasks sleep and are gathered; the result is
// 10 on every seed.
Coro<int> sleeper(int id, int steps) {
  int sum = 0;
  for (int i = 0; i < steps; ++i) {
    co_await sleep(absl::Milliseconds(id + i));
    sum += id;
  }
  co_return sum;
}

Coro<int> small_test() {
  auto results = co_await gather(sleeper(1, 3), sleeper(2, 2), sleeper(3, 1));
  co_return std::get<0>(results) + std::get<1>(results) + std::get<2>(results);
}

// Runs the small simulated test under `seed`; true if it "failed": the
// simulation went wrong, or `bad(seed)`.
template <class Bad>
bool simulated_seed_fails(uint64_t seed, Bad bad) {
  const int v = run(small_test(), Options{.seed = seed});
  return v != 10 || bad(seed);
}

std::vector<uint64_t> range(uint64_t first, uint64_t count) {
  std::vector<uint64_t> v;
  for (uint64_t i = 0; i < count; ++i) v.push_back(first + i);
  return v;
}

std::vector<uint64_t> matching(uint64_t first, uint64_t count, uint64_t mod, uint64_t rem) {
  std::vector<uint64_t> v;
  for (uint64_t s : range(first, count)) {
    if (s % mod == rem) v.push_back(s);
  }
  return v;
}

// Checks that `parts` (one list per shard) are each ascending, pairwise
// disjoint, and together exactly first .. first+count-1; and that seed s is
// in part (s - first) % K.
void expect_partition(const std::vector<std::vector<uint64_t>>& parts, uint64_t first, uint64_t count) {
  std::map<uint64_t, int> owner;
  for (size_t i = 0; i < parts.size(); ++i) {
    EXPECT_TRUE(std::is_sorted(parts[i].begin(), parts[i].end())) << "shard " << i;
    for (uint64_t s : parts[i]) {
      auto [it, fresh] = owner.emplace(s, static_cast<int>(i));
      EXPECT_TRUE(fresh) << "seed " << s << " is in shard " << it->second << " and shard " << i;
      EXPECT_GE(s, first);
      EXPECT_EQ((s - first) % parts.size(), i) << "seed " << s;
    }
  }
  ASSERT_EQ(owner.size(), count);
  if (count > 0) {
    EXPECT_EQ(owner.begin()->first, first);
    EXPECT_EQ(owner.rbegin()->first, first + (count - 1));
  }
}

// Sets the sharding variables for the scope of the guard, restoring the
// previous environment afterwards. nullopt: unset.
class ShardEnv {
 public:
  static constexpr const char* kNames[] = {"GTEST_SHARD_INDEX", "GTEST_TOTAL_SHARDS", "TEST_SHARD_INDEX",
                                           "TEST_TOTAL_SHARDS", "TEST_SHARD_STATUS_FILE"};
  ShardEnv() {
    for (const char* name : kNames) {
      const char* v = std::getenv(name);
      saved_.emplace_back(name, v ? std::optional<std::string>(v) : std::nullopt);
      ::unsetenv(name);
    }
  }
  ~ShardEnv() {
    for (const auto& [name, v] : saved_) {
      if (v) {
        ::setenv(name.c_str(), v->c_str(), 1);
      } else {
        ::unsetenv(name.c_str());
      }
    }
  }
  void set(const char* name, const char* value) { ::setenv(name, value, 1); }

 private:
  std::vector<std::pair<std::string, std::optional<std::string>>> saved_;
};

std::string tmpdir() {
  const char* t = std::getenv("TEST_TMPDIR");
  return t && *t ? t : "/tmp";
}

// ---------------------------------------------------------------- seeds_for_shard

TEST(SeedsForShard, ShardsAreDisjointAndCoverTheRange) {
  const std::vector<std::tuple<uint64_t, uint64_t, int>> cases = {
      {0, 100, 1},  {0, 100, 3}, {5, 10, 4},  {1000, 7, 10}, {42, 1, 3},
      {7, 0, 2},    {3, 64, 8},  {9, 65, 8}, {UINT64_MAX - 9, 10, 3}};
  for (const auto& [first, count, k] : cases) {
    SCOPED_TRACE(testing::Message() << "first " << first << " count " << count << " shards " << k);
    std::vector<std::vector<uint64_t>> parts;
    for (int i = 0; i < k; ++i) parts.push_back(seeds_for_shard(first, count, Shard{i, k}));
    expect_partition(parts, first, count);
  }
}

TEST(SeedsForShard, OneShardIsTheWholeRange) {
  EXPECT_EQ(seeds_for_shard(17, 5, Shard{}), range(17, 5));
  EXPECT_THAT(seeds_for_shard(10, 10, Shard{1, 4}), ElementsAre(11, 15, 19));
}

TEST(SeedsForShard, RejectsInvalidShardsAndRanges) {
  EXPECT_THROW(seeds_for_shard(0, 10, Shard{0, 0}), std::invalid_argument);
  EXPECT_THROW(seeds_for_shard(0, 10, Shard{3, 3}), std::invalid_argument);
  EXPECT_THROW(seeds_for_shard(0, 10, Shard{-1, 3}), std::invalid_argument);
  EXPECT_THROW(seeds_for_shard(UINT64_MAX - 1, 3, Shard{}), std::invalid_argument);
  EXPECT_NO_THROW(seeds_for_shard(UINT64_MAX - 1, 2, Shard{}));
}

// ---------------------------------------------------------------- shard_from_env

TEST(ShardFromEnv, UnsetMeansOneShard) {
  ShardEnv env;
  const Shard s = shard_from_env();
  EXPECT_EQ(s.index, 0);
  EXPECT_EQ(s.count, 1);
}

TEST(ShardFromEnv, ReadsGtestVariables) {
  ShardEnv env;
  env.set("GTEST_SHARD_INDEX", "2");
  env.set("GTEST_TOTAL_SHARDS", "5");
  const Shard s = shard_from_env();
  EXPECT_EQ(s.index, 2);
  EXPECT_EQ(s.count, 5);
}

TEST(ShardFromEnv, FallsBackToBazelVariables) {
  ShardEnv env;
  env.set("TEST_SHARD_INDEX", "0");
  env.set("TEST_TOTAL_SHARDS", "3");
  Shard s = shard_from_env();
  EXPECT_EQ(s.index, 0);
  EXPECT_EQ(s.count, 3);
  // GTEST_* wins where both are set.
  env.set("GTEST_SHARD_INDEX", "1");
  env.set("GTEST_TOTAL_SHARDS", "4");
  s = shard_from_env();
  EXPECT_EQ(s.index, 1);
  EXPECT_EQ(s.count, 4);
}

TEST(ShardFromEnv, RejectsGarbage) {
  struct Case {
    const char* index;
    const char* total;
    const char* culprit;  // the variable the message names first
    const char* message;
  };
  const Case cases[] = {
      {"3", "3", "GTEST_SHARD_INDEX", "is not below GTEST_TOTAL_SHARDS"},
      {"7", "3", "GTEST_SHARD_INDEX", "is not below GTEST_TOTAL_SHARDS"},
      {"-1", "3", "GTEST_SHARD_INDEX", "negative"},
      {"0", "-2", "GTEST_TOTAL_SHARDS", "negative"},
      {"abc", "3", "GTEST_SHARD_INDEX", "not a decimal integer"},
      {"1", "x4", "GTEST_TOTAL_SHARDS", "not a decimal integer"},
      {"1x", "4", "GTEST_SHARD_INDEX", "not a decimal integer"},
      {" 1", "4", "GTEST_SHARD_INDEX", "not a decimal integer"},
      {"0x1", "4", "GTEST_SHARD_INDEX", "not a decimal integer"},
      {"0", "0", "GTEST_TOTAL_SHARDS", "at least 1"},
      {"0", "99999999999999999999999", "GTEST_TOTAL_SHARDS", "out of range"},
      {"2147483648", "4", "GTEST_SHARD_INDEX", "out of range"},
      {"1", nullptr, "GTEST_SHARD_INDEX", "neither GTEST_TOTAL_SHARDS nor TEST_TOTAL_SHARDS"},
      {nullptr, "4", "GTEST_TOTAL_SHARDS", "neither GTEST_SHARD_INDEX nor TEST_SHARD_INDEX"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "index " << (c.index ? c.index : "(unset)") << " total "
                                    << (c.total ? c.total : "(unset)"));
    ShardEnv env;
    if (c.index) env.set("GTEST_SHARD_INDEX", c.index);
    if (c.total) env.set("GTEST_TOTAL_SHARDS", c.total);
    try {
      shard_from_env();
      ADD_FAILURE() << "no exception";
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(e.what(), HasSubstr(std::string(c.culprit) + "=\""));
      EXPECT_THAT(e.what(), HasSubstr(c.message));
    }
  }
}

TEST(ShardFromEnv, BazelVariablesAreCheckedToo) {
  ShardEnv env;
  env.set("TEST_SHARD_INDEX", "4");
  env.set("TEST_TOTAL_SHARDS", "4");
  try {
    shard_from_env();
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("TEST_SHARD_INDEX=\"4\" is not below TEST_TOTAL_SHARDS=\"4\""));
  }
}

// ---------------------------------------------------------------- acknowledge_sharding

TEST(AcknowledgeSharding, CreatesTheStatusFile) {
  ShardEnv env;
  const std::string path = tmpdir() + "/shard_status_" + std::to_string(::getpid());
  ::unlink(path.c_str());
  env.set("TEST_SHARD_STATUS_FILE", path.c_str());
  acknowledge_sharding();
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path << " was not created";
  acknowledge_sharding();  // again: still fine
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  ::unlink(path.c_str());
}

TEST(AcknowledgeSharding, DoesNothingWithoutTheVariable) {
  ShardEnv env;
  EXPECT_NO_THROW(acknowledge_sharding());
}

TEST(AcknowledgeSharding, ReportsAFileItCannotCreate) {
  ShardEnv env;
  env.set("TEST_SHARD_STATUS_FILE", "/nonexistent-directory/status");
  try {
    acknowledge_sharding();
    ADD_FAILURE() << "no exception";
  } catch (const std::system_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("/nonexistent-directory/status"));
  }
}

// ---------------------------------------------------------------- run_sweep

TEST(RunSweep, InProcessRunsSeedsInAscendingOrder) {
  std::vector<uint64_t> seen;
  SweepOptions o{.first_seed = 5, .seeds = 20, .jobs = 1, .max_failures = 0};
  const SweepResult r = run_sweep(o, [&](uint64_t seed) {
    seen.push_back(seed);
    return false;
  });
  EXPECT_EQ(seen, range(5, 20));
  EXPECT_EQ(r.seeds_run, 20u);
  EXPECT_THAT(r.failed_seeds, IsEmpty());
  EXPECT_FALSE(r.stopped_early);
  EXPECT_GE(r.seconds, 0);
}

TEST(RunSweep, SameFailuresInProcessAndForked) {
  const uint64_t first = 10, count = 300;
  const auto run_seed = [](uint64_t seed) { return simulated_seed_fails(seed, [](uint64_t s) { return s % 7 == 3; }); };
  const std::vector<uint64_t> expected = matching(first, count, 7, 3);
  for (int jobs : {1, 3, 0}) {
    SCOPED_TRACE(testing::Message() << "jobs " << jobs);
    SweepOptions o{.first_seed = first, .seeds = count, .jobs = jobs, .max_failures = 0};
    const SweepResult r = run_sweep(o, run_seed);
    EXPECT_EQ(r.failed_seeds, expected);
    EXPECT_EQ(r.seeds_run, count);
    EXPECT_FALSE(r.stopped_early);
    EXPECT_THAT(r.crashed_seeds, IsEmpty());
  }
}

TEST(RunSweep, ForkedWorkersRunEverySeedExactlyOnce) {
  // Children cannot report into the parent's memory; they append to a file
  // (O_APPEND writes of one short line are atomic).
  const std::string path = tmpdir() + "/sweep_seen_" + std::to_string(::getpid());
  ::unlink(path.c_str());
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  SweepOptions o{.first_seed = 1000, .seeds = 500, .jobs = 3, .max_failures = 0};
  const SweepResult r = run_sweep(o, [fd](uint64_t seed) {
    const std::string line = std::to_string(seed) + "\n";
    if (::write(fd, line.data(), line.size()) != static_cast<ssize_t>(line.size())) return true;
    return simulated_seed_fails(seed, [](uint64_t) { return false; });
  });
  ::close(fd);
  EXPECT_THAT(r.failed_seeds, IsEmpty());
  EXPECT_EQ(r.seeds_run, 500u);
  std::ifstream in(path);
  std::vector<uint64_t> seen;
  for (uint64_t s; in >> s;) seen.push_back(s);
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, range(1000, 500));
  ::unlink(path.c_str());
}

TEST(RunSweep, StopsAtTheFirstFailure) {
  const uint64_t first = 500, count = 1'000'000;
  const auto run_seed = [](uint64_t seed) {
    return simulated_seed_fails(seed, [](uint64_t s) { return s == 502 || s % 1000 == 7; });
  };
  for (int jobs : {1, 3}) {
    SCOPED_TRACE(testing::Message() << "jobs " << jobs);
    SweepOptions o{.first_seed = first, .seeds = count, .jobs = jobs, .max_failures = 1};
    const SweepResult r = run_sweep(o, run_seed);
    EXPECT_THAT(r.failed_seeds, ElementsAre(502));
    EXPECT_TRUE(r.stopped_early);
    EXPECT_GE(r.seeds_run, 3u);
    EXPECT_LT(r.seeds_run, count);
    if (jobs == 1) {
      EXPECT_EQ(r.seeds_run, 3u);
    }
  }
}

TEST(RunSweep, EarlyStopKeepsTheLowestFailuresWhateverFinishesFirst) {
  // Seed 102 fails slowly, seeds 105 and 140 fail at once: a forked sweep
  // sees 105 and 140 first, but must report the two lowest failures.
  const auto run_seed = [](uint64_t seed) {
    if (seed == 102) ::usleep(200'000);
    return simulated_seed_fails(seed, [](uint64_t s) { return s == 102 || s == 105 || s >= 140; });
  };
  for (int jobs : {1, 2, 4}) {
    SCOPED_TRACE(testing::Message() << "jobs " << jobs);
    SweepOptions o{.first_seed = 100, .seeds = 100'000, .jobs = jobs, .max_failures = 2};
    const SweepResult r = run_sweep(o, run_seed);
    EXPECT_THAT(r.failed_seeds, ElementsAre(102, 105));
    EXPECT_TRUE(r.stopped_early);
    EXPECT_LT(r.seeds_run, 100'000u);
  }
}

TEST(RunSweep, StoppedEarlyIsFalseWhenTheLastSeedIsTheLastFailure) {
  for (int jobs : {1, 2}) {
    SweepOptions o{.first_seed = 0, .seeds = 10, .jobs = jobs, .max_failures = 1};
    const SweepResult r = run_sweep(o, [](uint64_t seed) { return seed == 9; });
    EXPECT_THAT(r.failed_seeds, ElementsAre(9));
    EXPECT_FALSE(r.stopped_early);
    EXPECT_EQ(r.seeds_run, 10u);
  }
}

TEST(RunSweep, ACrashingWorkerReportsItsSeedAsFailed) {
  // Two seeds in a row crash their worker; the replacement workers go on.
  const auto run_seed = [](uint64_t seed) {
    if (seed == 23 || seed == 24) std::abort();
    return simulated_seed_fails(seed, [](uint64_t s) { return s == 30; });
  };
  SweepOptions o{.first_seed = 20, .seeds = 40, .jobs = 2, .max_failures = 0};
  const SweepResult r = run_sweep(o, run_seed);
  EXPECT_THAT(r.failed_seeds, ElementsAre(23, 24, 30));
  EXPECT_THAT(r.crashed_seeds, ElementsAre(23, 24));
  EXPECT_EQ(r.seeds_run, 40u);
  EXPECT_FALSE(r.stopped_early);
}

TEST(RunSweep, ACrashStopsTheSweepLikeAFailure) {
  SweepOptions o{.first_seed = 0, .seeds = 100'000, .jobs = 2, .max_failures = 1};
  const SweepResult r = run_sweep(o, [](uint64_t seed) {
    if (seed == 4) std::abort();
    return false;
  });
  EXPECT_THAT(r.failed_seeds, ElementsAre(4));
  EXPECT_THAT(r.crashed_seeds, ElementsAre(4));
  EXPECT_TRUE(r.stopped_early);
}

TEST(RunSweep, AnExceptionIsAFailure) {
  for (int jobs : {1, 2}) {
    SweepOptions o{.first_seed = 0, .seeds = 12, .jobs = jobs, .max_failures = 0};
    const SweepResult r = run_sweep(o, [](uint64_t seed) -> bool {
      if (seed % 5 == 1) throw std::runtime_error("boom");
      return false;
    });
    EXPECT_THAT(r.failed_seeds, ElementsAre(1, 6, 11)) << "jobs " << jobs;
    EXPECT_THAT(r.crashed_seeds, IsEmpty());
  }
}

TEST(RunSweep, ForksWhileAnotherThreadAllocates) {
  // Like a real loop's executor thread still running when a sweep starts:
  // children (which run only simulated code) must not inherit a held malloc
  // lock or otherwise hang.
  std::atomic<bool> stop{false};
  std::thread busy([&stop] {
    while (!stop.load()) {
      std::vector<std::string> v(64, std::string(100, 'x'));
      v.clear();
    }
  });
  SweepOptions o{.first_seed = 0, .seeds = 300, .jobs = 3, .max_failures = 0};
  const SweepResult r =
      run_sweep(o, [](uint64_t seed) { return simulated_seed_fails(seed, [](uint64_t s) { return s == 77; }); });
  stop = true;
  busy.join();
  EXPECT_THAT(r.failed_seeds, ElementsAre(77));
  EXPECT_EQ(r.seeds_run, 300u);
}

TEST(RunSweep, ShardsCoverTheRangeInProcess) {
  const uint64_t first = 77, count = 103;
  const int k = 4;
  std::vector<std::vector<uint64_t>> parts(k);
  for (int i = 0; i < k; ++i) {
    SweepOptions o{.first_seed = first, .seeds = count, .jobs = 1, .max_failures = 0, .shard = Shard{i, k}};
    const SweepResult r = run_sweep(o, [&](uint64_t seed) {
      parts[i].push_back(seed);
      return simulated_seed_fails(seed, [](uint64_t) { return false; });
    });
    EXPECT_EQ(r.seeds_run, parts[i].size());
  }
  expect_partition(parts, first, count);
}

TEST(RunSweep, ShardedForkedSweepFindsTheShardsFailures) {
  const uint64_t first = 0, count = 200;
  std::vector<uint64_t> all;
  for (int i = 0; i < 3; ++i) {
    SweepOptions o{.first_seed = first, .seeds = count, .jobs = 2, .max_failures = 0, .shard = Shard{i, 3}};
    const SweepResult r =
        run_sweep(o, [](uint64_t seed) { return simulated_seed_fails(seed, [](uint64_t s) { return s % 11 == 4; }); });
    for (uint64_t s : r.failed_seeds) EXPECT_EQ(s % 3, static_cast<uint64_t>(i)) << s;
    all.insert(all.end(), r.failed_seeds.begin(), r.failed_seeds.end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, matching(first, count, 11, 4));
}

TEST(RunSweep, EmptyRangeAndInvalidOptions) {
  for (int jobs : {1, 3}) {
    SweepOptions o{.first_seed = 0, .seeds = 0, .jobs = jobs};
    const SweepResult r = run_sweep(o, [](uint64_t) { return true; });
    EXPECT_EQ(r.seeds_run, 0u);
    EXPECT_THAT(r.failed_seeds, IsEmpty());
  }
  const auto pass = [](uint64_t) { return false; };
  EXPECT_THROW(run_sweep(SweepOptions{.jobs = -1}, pass), std::invalid_argument);
  EXPECT_THROW(run_sweep(SweepOptions{.max_failures = -1}, pass), std::invalid_argument);
  EXPECT_THROW(run_sweep(SweepOptions{.shard = Shard{2, 2}}, pass), std::invalid_argument);
  EXPECT_THROW(run_sweep(SweepOptions{.first_seed = UINT64_MAX, .seeds = 2}, pass), std::invalid_argument);
}

TEST(RunSweep, ProgressLineGoesToStderr) {
  testing::internal::CaptureStderr();
  SweepOptions o{.first_seed = 0, .seeds = 50, .jobs = 2, .max_failures = 0, .progress = true};
  run_sweep(o, [](uint64_t seed) { return seed == 3; });
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("\rseeds 50/50  "));
  EXPECT_THAT(err, HasSubstr(" seeds/s  failures 1"));
  EXPECT_EQ(err.back(), '\n');
}

TEST(FormatRate, SaysSeedsTimeRateAndFailures) {
  SweepResult r;
  r.seeds_run = 10000;
  r.seconds = 0.42;
  r.failed_seeds = {5};
  EXPECT_EQ(format_rate(r), "10000 seeds in 0.42 s (23810 seeds/s), 1 failure");
  r.failed_seeds = {};
  r.seconds = 2;
  EXPECT_EQ(format_rate(r), "10000 seeds in 2.00 s (5000 seeds/s), 0 failures");
  r.failed_seeds = {1, 2};
  EXPECT_THAT(format_rate(r), HasSubstr(", 2 failures"));
}

// ---------------------------------------------------------------- across processes

// sweep_shard_probe, from its BUILD target's env (tests/subprocess.h).
std::string probe_path() { return test_util::runfile_from_env("SWEEP_SHARD_PROBE"); }

struct ProbeOutput {
  int exit_status = -1;
  std::string out;
};

// Runs the probe with the environment minus the sharding variables, plus `vars`.
ProbeOutput run_probe(const std::vector<std::string>& vars, uint64_t first, uint64_t count) {
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    const std::string s = *e;
    if (s.rfind("GTEST_SHARD_INDEX=", 0) == 0 || s.rfind("GTEST_TOTAL_SHARDS=", 0) == 0 ||
        s.rfind("TEST_SHARD_INDEX=", 0) == 0 || s.rfind("TEST_TOTAL_SHARDS=", 0) == 0) {
      continue;
    }
    env_strings.push_back(s);
  }
  env_strings.insert(env_strings.end(), vars.begin(), vars.end());
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  const std::string path = probe_path();
  std::string a1 = std::to_string(first), a2 = std::to_string(count);
  std::vector<char*> argv = {const_cast<char*>(path.c_str()), a1.data(), a2.data(), nullptr};

  int pipefd[2];
  if (::pipe(pipefd) != 0) throw std::system_error(errno, std::generic_category(), "pipe");
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipefd[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipefd[0]);
  posix_spawn_file_actions_addclose(&actions, pipefd[1]);
  pid_t pid;
  const int rc = ::posix_spawn(&pid, path.c_str(), &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  ::close(pipefd[1]);
  ProbeOutput result;
  if (rc != 0) {
    ::close(pipefd[0]);
    throw std::system_error(rc, std::generic_category(), "posix_spawn " + path);
  }
  char buf[4096];
  for (ssize_t n; (n = ::read(pipefd[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    result.out.append(buf, static_cast<size_t>(n));
  }
  ::close(pipefd[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  result.exit_status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return result;
}

std::vector<uint64_t> parse_seeds(const std::string& out) {
  std::istringstream in(out);
  std::vector<uint64_t> v;
  for (uint64_t s; in >> s;) v.push_back(s);
  return v;
}

TEST(ShardProcesses, ProbesOfAllShardsCoverTheRangeDisjointly) {
  ASSERT_EQ(::access(probe_path().c_str(), X_OK), 0) << "no probe at " << probe_path();
  for (const auto& [first, count, k] :
       std::vector<std::tuple<uint64_t, uint64_t, int>>{{0, 100, 3}, {1234, 57, 5}, {10, 3, 4}, {0, 40, 1}}) {
    SCOPED_TRACE(testing::Message() << "first " << first << " count " << count << " shards " << k);
    std::vector<std::vector<uint64_t>> parts;
    for (int i = 0; i < k; ++i) {
      // Odd shards get Bazel's variables only, to exercise the fallback.
      const std::string prefix = i % 2 ? "TEST_" : "GTEST_";
      const ProbeOutput p = run_probe(
          {prefix + "SHARD_INDEX=" + std::to_string(i), (i % 2 ? "TEST_" : "GTEST_") + std::string("TOTAL_SHARDS=") +
                                                            std::to_string(k)},
          first, count);
      ASSERT_EQ(p.exit_status, 0) << "shard " << i;
      parts.push_back(parse_seeds(p.out));
    }
    expect_partition(parts, first, count);
  }
}

TEST(ShardProcesses, ProbeRejectsInvalidSharding) {
  ASSERT_EQ(::access(probe_path().c_str(), X_OK), 0) << "no probe at " << probe_path();
  EXPECT_EQ(run_probe({"GTEST_SHARD_INDEX=3", "GTEST_TOTAL_SHARDS=3"}, 0, 10).exit_status, 2);
  EXPECT_EQ(run_probe({"GTEST_SHARD_INDEX=zero", "GTEST_TOTAL_SHARDS=3"}, 0, 10).exit_status, 2);
  const ProbeOutput whole = run_probe({}, 5, 4);
  EXPECT_EQ(whole.exit_status, 0);
  EXPECT_EQ(parse_seeds(whole.out), range(5, 4));
}

}  // namespace
}  // namespace twinloop::sim
