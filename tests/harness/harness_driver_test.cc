// The harness's process-level behaviour: Bazel/GoogleTest sharding of
// simulated tests (disjoint, complete), worker processes with a progress
// line, and the single-seed flag.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/subprocess.h"

namespace twinloop::harness {
namespace {

using ::testing::HasSubstr;

using Result = ::twinloop::test_util::CommandResult;

Result run(const std::string& env, const std::string& command) {
  return ::twinloop::test_util::run_command(command, env);
}

std::string tmp(const std::string& name) {
  const char* d = std::getenv("TEST_TMPDIR");
  return absl::StrCat(d ? d : "/tmp", "/", name);
}

std::vector<std::string> lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

const std::string kProbe = "tests/harness/shard_probe_test";

TEST(Sharding, ShardsRunDisjointPartsThatCoverTheRange) {
  const std::string all_log = tmp("probe-all.log");
  std::filesystem::remove(all_log);
  Result all = run(absl::StrCat("TWINLOOP_PROBE_LOG=", all_log), kProbe + " --twinloop_seeds=60");
  ASSERT_EQ(all.exit_code, 0) << all.output;
  std::vector<std::string> expected = lines(all_log);
  ASSERT_EQ(expected.size(), 60u);
  ASSERT_EQ(std::set<std::string>(expected.begin(), expected.end()).size(), 60u);

  constexpr int kShards = 4;
  std::vector<std::string> union_of_shards;
  for (int i = 0; i < kShards; ++i) {
    const std::string log = tmp(absl::StrCat("probe-shard", i, ".log"));
    std::filesystem::remove(log);
    Result shard = run(absl::StrCat("TWINLOOP_PROBE_LOG=", log, " GTEST_TOTAL_SHARDS=", kShards,
                                    " GTEST_SHARD_INDEX=", i),
                       kProbe + " --twinloop_seeds=60");
    ASSERT_EQ(shard.exit_code, 0) << shard.output;
    // Each shard runs exactly one part of the test.
    EXPECT_THAT(shard.output, HasSubstr("of_4"));
    std::vector<std::string> part = lines(log);
    EXPECT_EQ(part.size(), 15u) << "shard " << i;
    union_of_shards.insert(union_of_shards.end(), part.begin(), part.end());
  }
  std::sort(expected.begin(), expected.end());
  std::sort(union_of_shards.begin(), union_of_shards.end());
  EXPECT_EQ(union_of_shards, expected) << "the shards are not a partition of the range";
}

TEST(Sharding, SingleSeedRunsOnce) {
  const std::string log = tmp("probe-single.log");
  std::filesystem::remove(log);
  Result r = run(absl::StrCat("TWINLOOP_PROBE_LOG=", log), kProbe + " --twinloop_seed=17");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(lines(log).size(), 1u);
}

TEST(Workers, ParallelSweepFindsTheSameFirstFailureWithProgress) {
  const std::string bugs = "tests/planted/planted_bugs_test --gtest_filter=Planted.TimeoutLeaksAHeldLock";
  Result one = run("", bugs + " --twinloop_replay_dir=" + tmp(""));
  Result two = run("", bugs + " --twinloop_jobs=2 --twinloop_progress --twinloop_replay_dir=" + tmp(""));
  ASSERT_NE(one.exit_code, 0);
  ASSERT_NE(two.exit_code, 0);
  auto seed_of = [](const std::string& out) {
    const size_t at = out.find("FAILED at seed ");
    return at == std::string::npos ? std::string() : out.substr(at, out.find(',', at) - at);
  };
  EXPECT_EQ(seed_of(one.output), seed_of(two.output)) << two.output;
  EXPECT_THAT(two.output, HasSubstr("seeds/s"));
}

}  // namespace
}  // namespace twinloop::harness
