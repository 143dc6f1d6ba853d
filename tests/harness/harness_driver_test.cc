// The harness's process-level behaviour: Bazel/GoogleTest sharding of
// simulated tests (disjoint, complete), worker processes with a progress
// line, the single-seed flag, the flag rules (both forms, booleans, unknown
// flags and variables, conflicts: errors before any test runs), replay
// files (only their test replays, the verdict), the report's paths and the
// seed properties in GoogleTest's XML.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/sim/harness/replay_file.h"
#include "twinloop/tests/subprocess.h"

namespace twinloop::harness {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

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

// The helper binaries, from the BUILD target's env (tests/subprocess.h).
const std::string kProbe = test_util::runfile_from_env("SHARD_PROBE_TEST");

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

TEST(Workers, AParallelSweepWithoutFailuresRunsEverySeedAndPasses) {
  const std::string log = tmp("probe-jobs.log");
  std::filesystem::remove(log);
  Result r = run(absl::StrCat("TWINLOOP_PROBE_LOG=", log), kProbe + " --twinloop_seeds=40 --twinloop_jobs=2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(lines(log).size(), 40u);
  EXPECT_THAT(r.output, HasSubstr("40 seeds in"));
}

TEST(Workers, ParallelSweepFindsTheSameFirstFailureWithProgress) {
  const std::string bugs =
      test_util::runfile_from_env("PLANTED_BUGS_TEST") + " --gtest_filter=Planted.TimeoutLeaksAHeldLock";
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

// ---------------------------------------------------------------- helpers for the tests below

const std::string kSubject = test_util::runfile_from_env("REPLAY_SUBJECT_TEST");
const std::string kBugs = test_util::runfile_from_env("PLANTED_BUGS_TEST");

// How many times `needle` occurs in `haystack`.
size_t count(const std::string& haystack, const std::string& needle) {
  size_t n = 0;
  for (size_t at = haystack.find(needle); at != std::string::npos; at = haystack.find(needle, at + needle.size())) ++n;
  return n;
}

// The value after "<label>: " at the start of a line.
std::string field(const std::string& output, const std::string& label) {
  std::smatch m;
  if (std::regex_search(output, m, std::regex("\n" + label + R"(: (\S+))"))) return m[1];
  return "";
}

std::string failed_seed(const std::string& output) {
  std::smatch m;
  if (std::regex_search(output, m, std::regex(R"(FAILED at seed (\d+))"))) return m[1];
  return "";
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// The shard probe run with `args`: its result and the seeds it ran (one
// line per seed: the seed's probe draw).
struct Probe {
  Result r;
  std::vector<std::string> seeds;
};

Probe probe(const std::string& args, const std::string& env = "") {
  static int runs = 0;
  const std::string log = tmp(absl::StrCat("probe-flags-", runs++, ".log"));
  std::filesystem::remove(log);
  Probe p;
  p.r = run(absl::StrCat("TWINLOOP_PROBE_LOG=", log, " ", env), absl::StrCat(kProbe, " ", args));
  p.seeds = lines(log);
  return p;
}

// No test body ran (after a failure in the global set-up, GoogleTest 1.12
// lists every test as "[ RUN ]" then "[ SKIPPED ]" without running it).
void expect_no_test_ran(const std::string& output) {
  EXPECT_THAT(output, Not(HasSubstr("[       OK ]")));
  EXPECT_THAT(output, Not(HasSubstr("[  FAILED  ] Subject.")));
  EXPECT_THAT(output, Not(HasSubstr("[  FAILED  ] ShardProbe.")));
}

// The run reported an error before any test ran.
void expect_error_before_any_test(const Probe& p, const std::string& message) {
  EXPECT_NE(p.r.exit_code, 0) << p.r.output;
  EXPECT_THAT(p.r.output, HasSubstr(message));
  EXPECT_TRUE(p.seeds.empty()) << "a test ran:\n" << p.r.output;
  expect_no_test_ran(p.r.output);
}

// ---------------------------------------------------------------- flag rules

TEST(Flags, AcceptTheValueAfterAnEqualsSignOrASpaceAndASingleDash) {
  Probe seeds = probe("--twinloop_seeds 7");
  ASSERT_EQ(seeds.r.exit_code, 0) << seeds.r.output;
  EXPECT_EQ(seeds.seeds.size(), 7u) << seeds.r.output;

  Probe equals = probe("--twinloop_seed=17");
  ASSERT_EQ(equals.r.exit_code, 0) << equals.r.output;
  ASSERT_EQ(equals.seeds.size(), 1u);
  Probe seed_one = probe("--twinloop_seed=1");
  ASSERT_EQ(seed_one.seeds.size(), 1u);
  ASSERT_NE(seed_one.seeds, equals.seeds) << "seeds 1 and 17 draw the same probe: the test cannot tell them apart";
  for (const char* args : {"--twinloop_seed 17", "-twinloop_seed=17", "-twinloop_seed 17"}) {
    Probe p = probe(args);
    EXPECT_EQ(p.r.exit_code, 0) << args << "\n" << p.r.output;
    EXPECT_EQ(p.seeds, equals.seeds) << args << " did not run seed 17 alone";
  }
}

TEST(Flags, AFlagWithoutItsValueIsAnError) {
  for (const char* args : {"--twinloop_seed", "--twinloop_seed=", "--twinloop_seed --twinloop_seeds=3",
                           "--twinloop_seeds --gtest_filter=ShardProbe.*", "--twinloop_replay", "-twinloop_seed"}) {
    SCOPED_TRACE(args);
    expect_error_before_any_test(probe(args), "needs a value");
  }
}

TEST(Flags, TheReplayFileMayFollowASpace) {
  // A replay file for the probe at seed 17 with no decisions: every draw
  // falls back to seed 17, so the replay logs seed 17's probe.
  sim::Recording rec;
  rec.seed = 17;
  rec.test = "ShardProbe.LogsItsSeed";
  const std::string path = tmp("probe-seed17.replay");
  sim::write_recording_file(path, rec);
  Probe seed17 = probe("--twinloop_seed=17");
  ASSERT_EQ(seed17.seeds.size(), 1u) << seed17.r.output;
  Probe p = probe("--twinloop_replay " + path);
  EXPECT_EQ(p.r.exit_code, 0) << p.r.output;
  EXPECT_EQ(p.seeds, seed17.seeds) << p.r.output;
}

TEST(Flags, BooleanFlags) {
  for (const char* args : {"--twinloop_progress", "--twinloop_progress=1", "--twinloop_progress=0",
                           "--twinloop_progress=true", "--twinloop_progress=false"}) {
    Probe p = probe(absl::StrCat("--twinloop_seeds=2 ", args));
    EXPECT_EQ(p.r.exit_code, 0) << args << "\n" << p.r.output;
    EXPECT_EQ(p.seeds.size(), 2u) << args;
  }
  {
    SCOPED_TRACE("a separate value");
    expect_error_before_any_test(probe("--twinloop_seeds=2 --twinloop_progress 0"), "write --twinloop_progress=0");
    expect_error_before_any_test(probe("--twinloop_seeds=2 --twinloop_shrink false"), "write --twinloop_shrink=false");
  }
  {
    SCOPED_TRACE("a bad value");
    expect_error_before_any_test(probe("--twinloop_seeds=2 --twinloop_progress=maybe"), "'maybe'");
    expect_error_before_any_test(probe("--twinloop_seeds=2 --twinloop_shrink="), "--twinloop_shrink");
  }
}

TEST(Flags, MisspelledFlagsAreErrorsNamingTheClosest) {
  for (const char* args : {"--twinloop_sed=4", "--twinloop-seed=4", "-twinloop_sed=4", "--twinloop-seed 4"}) {
    SCOPED_TRACE(args);
    expect_error_before_any_test(probe(args), "did you mean --twinloop_seed?");
  }
  expect_error_before_any_test(probe("--twinloop_sedes=4"), "did you mean --twinloop_seeds?");
}

TEST(Flags, UnknownEnvironmentVariablesAreErrorsNamingTheClosest) {
  Probe p = probe("--twinloop_seeds=2", "TWINLOOP_SEDS=5");
  expect_error_before_any_test(p, "TWINLOOP_SEDS");
  EXPECT_THAT(p.r.output, HasSubstr("did you mean TWINLOOP_SEEDS?"));
  // Every variable the project uses is known (TWINLOOP_PROBE_LOG too).
  Probe known = probe("--twinloop_seeds=2",
                      "TWINLOOP_RC_REPLAY=x TWINLOOP_SKIP_TSAN=1 TWINLOOP_SKIP_ASAN=1 TWINLOOP_SKIP_CROSS=1 TWINLOOP_ANCHORS=x "
                      "TWINLOOP_DEBUG=1");
  EXPECT_EQ(known.r.exit_code, 0) << known.r.output;
  EXPECT_EQ(known.seeds.size(), 2u);
}

TEST(Flags, AnErrorIsReportedOnceWhateverTheNumberOfTests) {
  // The subject binary has three simulated tests.
  Result all = run("", kSubject + " --twinloop_sed=4");
  Result one = run("", kSubject + " --gtest_filter=Subject.Passes --twinloop_sed=4");
  EXPECT_NE(all.exit_code, 0);
  EXPECT_NE(one.exit_code, 0);
  const std::string message = "did you mean --twinloop_seed?";
  EXPECT_GE(count(all.output, message), 1u) << all.output;
  EXPECT_LE(count(all.output, message), 2u) << all.output;  // on stderr, and as GoogleTest's failure
  EXPECT_EQ(count(all.output, message), count(one.output, message)) << all.output;
  expect_no_test_ran(all.output);
}

TEST(Flags, ContradictoryFlagsAreErrorsAndASeedWithARangeSaysSo) {
  sim::Recording rec;
  rec.seed = 17;
  rec.test = "ShardProbe.LogsItsSeed";
  const std::string path = tmp("probe-conflict.replay");
  sim::write_recording_file(path, rec);
  Probe p = probe("--twinloop_seed=3 --twinloop_replay=" + path);
  expect_error_before_any_test(p, "--twinloop_seed");
  EXPECT_THAT(p.r.output, HasSubstr("--twinloop_replay"));
  expect_error_before_any_test(probe("--twinloop_seed=3", "TWINLOOP_REPLAY=" + path), "TWINLOOP_REPLAY");

  Probe note = probe("--twinloop_seed=3 --twinloop_seeds=50");
  EXPECT_EQ(note.r.exit_code, 0) << note.r.output;
  EXPECT_EQ(note.seeds.size(), 1u);
  EXPECT_THAT(note.r.output, HasSubstr("only seed 3 runs"));
}

// ---------------------------------------------------------------- replay files

// A failing run of Subject.Leaks, recorded, that leaked at least 2 (so that
// shrinking or editing it can change its failure).
struct Recorded {
  Result found;
  std::string path;
  sim::Recording rec;
};

size_t leaks(const sim::Recording& r) {
  size_t n = 0;
  for (const sim::Decision& d : r.decisions) n += d.site == "test.leak" && d.value != 0;
  return n;
}

Recorded record_leak(const std::string& name, const std::string& extra = "") {
  const std::string dir = tmp(name);
  std::filesystem::create_directories(dir);
  Recorded out;
  uint64_t first = 0;
  for (int attempt = 0; attempt < 20; ++attempt) {
    out.found = run("", absl::StrCat(kSubject, " --gtest_filter=Subject.Leaks --twinloop_first_seed=", first,
                                     " --twinloop_replay_dir=", dir, extra));
    out.path = field(out.found.output, "replay file");
    const std::string seed = failed_seed(out.found.output);
    if (out.path.empty() || seed.empty()) break;
    out.rec = sim::read_recording_file(out.path);
    if (leaks(out.rec) >= 2) return out;
    first = std::stoull(seed) + 1;
  }
  ADD_FAILURE() << "no failing seed of Subject.Leaks leaked 2 or more:\n" << out.found.output;
  return out;
}

std::string write_edited(const sim::Recording& r, const std::string& name) {
  const std::string path = tmp(name);
  sim::write_recording_file(path, r);
  return path;
}

TEST(Replay, OnlyTheRecordedTestReplaysTheOthersAreSkipped) {
  const Recorded leak = record_leak("replay-only");
  ASSERT_FALSE(leak.path.empty());
  Result r = run("", kSubject + " --twinloop_replay=" + leak.path);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("[  FAILED  ] Subject.Leaks"));
  EXPECT_THAT(r.output, HasSubstr("[  SKIPPED ] Subject.Passes"));
  EXPECT_THAT(r.output, HasSubstr("[  SKIPPED ] Subject.AlsoPasses"));
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("replaying ", leak.path, ", recorded for Subject.Leaks")));
}

TEST(Replay, AFileForAnotherTestOrNoTestIsAnError) {
  const Recorded leak = record_leak("replay-other");
  ASSERT_FALSE(leak.path.empty());
  sim::Recording other = leak.rec;
  other.test = "Subject.Gone";
  const std::string gone = write_edited(other, "gone.replay");
  Result r = run("", kSubject + " --twinloop_replay=" + gone);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr(gone));
  EXPECT_THAT(r.output, HasSubstr("Subject.Gone"));
  for (const char* t : {"Subject.Leaks", "Subject.Passes", "Subject.AlsoPasses"}) EXPECT_THAT(r.output, HasSubstr(t));
  expect_no_test_ran(r.output);

  other.test = "";
  const std::string anonymous = write_edited(other, "anonymous.replay");
  Result a = run("", kSubject + " --twinloop_replay=" + anonymous);
  EXPECT_NE(a.exit_code, 0) << a.output;
  EXPECT_THAT(a.output, HasSubstr("names no test"));
  EXPECT_THAT(a.output, HasSubstr(anonymous));
  expect_no_test_ran(a.output);
}

TEST(Replay, AFilterThatExcludesTheRecordedTestIsAnErrorUnlessSharded) {
  const Recorded leak = record_leak("replay-filter");
  ASSERT_FALSE(leak.path.empty());
  Result r = run("", kSubject + " --gtest_filter='Subject.Passes*' --twinloop_replay=" + leak.path);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("excludes"));
  EXPECT_THAT(r.output, HasSubstr("Subject.Leaks"));
  expect_no_test_ran(r.output);
  // Sharded, another shard may hold the test: no error, the part is skipped.
  Result shard = run("GTEST_TOTAL_SHARDS=3 GTEST_SHARD_INDEX=1",
                     kSubject + " --gtest_filter='Subject.Passes*' --twinloop_replay=" + leak.path);
  EXPECT_EQ(shard.exit_code, 0) << shard.output;
  EXPECT_THAT(shard.output, Not(HasSubstr("excludes")));
}

TEST(Replay, VerdictWhenTheRecordedFailureReproduces) {
  const Recorded leak = record_leak("verdict-same");
  ASSERT_FALSE(leak.path.empty());
  const std::string xml = tmp("verdict-same.xml");
  Result r = run("", absl::StrCat(kSubject, " --gtest_filter=Subject.Leaks --gtest_output=xml:", xml,
                                  " --twinloop_replay=", leak.path));
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("recorded failure reproduced (assertion)"));
  EXPECT_THAT(r.output, HasSubstr("the run matches the recording"));
  EXPECT_THAT(slurp(xml), HasSubstr("twinloop_replay_verdict"));
  EXPECT_THAT(slurp(xml), HasSubstr("recorded failure reproduced (assertion)"));
}

TEST(Replay, VerdictWhenTheRunPasses) {
  const Recorded leak = record_leak("verdict-pass");
  ASSERT_FALSE(leak.path.empty());
  sim::Recording fixed = leak.rec;
  for (sim::Decision& d : fixed.decisions) {
    if (d.site == "test.leak") d.value = 0;
  }
  const std::string path = write_edited(fixed, "fixed.replay");
  const std::string xml = tmp("verdict-pass.xml");
  Result r = run("", absl::StrCat(kSubject, " --gtest_filter=Subject.Leaks --gtest_output=xml:", xml,
                                  " --twinloop_replay=", path));
  EXPECT_EQ(r.exit_code, 0) << r.output;  // passing is right after a fix...
  // ... but unmistakable.
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("replay of ", path,
                                               ": recorded failure did not reproduce: the run passed")));
  EXPECT_THAT(r.output, HasSubstr("diverged from the recording at event"));
  EXPECT_THAT(slurp(xml), HasSubstr("recorded failure did not reproduce"));
}

TEST(Replay, VerdictWhenTheRunFailsDifferently) {
  const Recorded leak = record_leak("verdict-different");
  ASSERT_FALSE(leak.path.empty());
  sim::Recording edited = leak.rec;
  for (sim::Decision& d : edited.decisions) {
    if (d.site == "test.leak" && d.value != 0) {
      d.value = 0;  // one leak fewer
      break;
    }
  }
  const std::string path = write_edited(edited, "different.replay");
  Result r = run("", kSubject + " --gtest_filter=Subject.Leaks --twinloop_replay=" + path);
  EXPECT_NE(r.exit_code, 0) << r.output;
  const size_t n = leaks(leak.rec);
  EXPECT_THAT(r.output, HasSubstr("the run failed differently: recorded assertion: "));
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("leaked ", n, ", now assertion: ")));
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("leaked ", n - 1)));
}

// ---------------------------------------------------------------- shrinking

TEST(Shrink, TheMinimalFileRecordsTheMinimalRunsOwnFailure) {
  const Recorded leak = record_leak("shrink-own", " --twinloop_shrink");
  ASSERT_FALSE(leak.path.empty());
  EXPECT_THAT(leak.rec.failure, HasSubstr(absl::StrCat("leaked ", leaks(leak.rec))));
  const std::string min_path = field(leak.found.output, "minimal replay file");
  ASSERT_FALSE(min_path.empty()) << leak.found.output;
  const sim::Recording minimal = sim::read_recording_file(min_path);
  ASSERT_EQ(leaks(minimal), 1u);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(minimal.failure, m, std::regex(R"(leaked (\d+))"))) << minimal.failure;
  EXPECT_EQ(m[1], "1") << minimal.failure;
  Result r = run("", kSubject + " --gtest_filter=Subject.Leaks --twinloop_replay=" + min_path);
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("recorded failure reproduced (assertion)"));
}

// ---------------------------------------------------------------- where the replay file is

TEST(Report, UnderBazelItNamesTheOutputsZipAndHowToGetTheFileOut) {
  const std::string outputs = tmp("undeclared-outputs");
  std::filesystem::create_directories(outputs);
  const std::string env = "TEST_TARGET=//tests/planted:planted_bugs_test TEST_UNDECLARED_OUTPUTS_DIR=" + outputs;
  Result r = run(env, kBugs + " --gtest_filter=Planted.TimeoutLeaksAHeldLock");
  ASSERT_NE(r.exit_code, 0) << r.output;
  const std::string seed = failed_seed(r.output);
  ASSERT_FALSE(seed.empty()) << r.output;
  const std::string file =
      absl::StrCat("twinloop-tests_planted_planted_bugs_test-Planted.TimeoutLeaksAHeldLock-seed", seed, ".replay");
  EXPECT_TRUE(std::filesystem::exists(outputs + "/" + file)) << r.output;
  const std::string zip = "bazel-testlogs/tests/planted/planted_bugs_test/test.outputs/outputs.zip";
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("unzip -o ", zip, " ", file, " -d /tmp/twinloop")));
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("--twinloop_replay=/tmp/twinloop/", file)));
  EXPECT_THAT(field(r.output, "replay file"), Not(HasSubstr(outputs))) << r.output;
  // The binary, too, is named where it is after the run.
  EXPECT_THAT(r.output, HasSubstr("\n  bazel-bin/tests/planted/planted_bugs_test --gtest_filter="));

  Result shard = run(env + " GTEST_TOTAL_SHARDS=2 GTEST_SHARD_INDEX=1",
                     kBugs + " --gtest_filter='Planted.TimeoutLeaksAHeldLock*'");
  ASSERT_NE(shard.exit_code, 0) << shard.output;
  EXPECT_THAT(
      shard.output,
      HasSubstr("unzip -o bazel-testlogs/tests/planted/planted_bugs_test/shard_2_of_2/test.outputs/outputs.zip"));

  // A directory the user chose is printed as it is.
  const std::string dir = tmp("chosen-dir");
  std::filesystem::create_directories(dir);
  Result chosen = run(env, kBugs + " --gtest_filter=Planted.TimeoutLeaksAHeldLock --twinloop_replay_dir=" + dir);
  EXPECT_EQ(field(chosen.output, "replay file"), absl::StrCat(dir, "/", file)) << chosen.output;
  EXPECT_THAT(chosen.output, Not(HasSubstr("outputs.zip")));
}

TEST(Report, ReplayFileNamesAreUniquePerTarget) {
  // Two targets with the same test and a shared replay directory.
  const std::string dir = tmp("shared-replay-dir");
  std::filesystem::create_directories(dir);
  const std::string bugs = kBugs + " --gtest_filter=Planted.TimeoutLeaksAHeldLock --twinloop_replay_dir=" + dir;
  Result a = run("TEST_TARGET=//a:same_test", bugs);
  Result b = run("TEST_TARGET=//b:same_test", bugs);
  Result plain = run("", bugs);  // outside Bazel: the binary's name
  const std::string pa = field(a.output, "replay file");
  const std::string pb = field(b.output, "replay file");
  const std::string pp = field(plain.output, "replay file");
  ASSERT_FALSE(pa.empty()) << a.output;
  EXPECT_NE(pa, pb);
  EXPECT_THAT(pa, HasSubstr("twinloop-a_same_test-Planted.TimeoutLeaksAHeldLock-seed"));
  EXPECT_THAT(pb, HasSubstr("twinloop-b_same_test-Planted.TimeoutLeaksAHeldLock-seed"));
  EXPECT_THAT(pp, HasSubstr("twinloop-planted_bugs_test-Planted.TimeoutLeaksAHeldLock-seed"));
  EXPECT_TRUE(std::filesystem::exists(pa));
  EXPECT_TRUE(std::filesystem::exists(pb));
}

// ---------------------------------------------------------------- JUnit XML

// The value of the property `name` that the test case `test` recorded in
// GoogleTest's XML output (`<property name="..." value="..."/>` inside its
// <testcase>), or nullopt if it has none.
std::optional<std::string> xml_property(const std::string& xml, const std::string& test, const std::string& name) {
  const size_t start = xml.find(absl::StrCat("<testcase name=\"", test, "\""));
  if (start == std::string::npos) return std::nullopt;
  const size_t end = xml.find("</testcase>", start);
  const std::string testcase = xml.substr(start, end == std::string::npos ? std::string::npos : end - start);
  std::smatch m;
  if (!std::regex_search(testcase, m, std::regex(absl::StrCat("<property name=\"", name, R"(" value="([^"]*)\")"))))
    return std::nullopt;
  return std::string(m[1]);
}

// Every "FAILED at seed N" of a run's reports, in order, comma-separated.
std::string reported_seeds(const std::string& output, size_t max, size_t* count) {
  std::string out;
  *count = 0;
  const std::regex re(R"(FAILED at seed (\d+))");
  for (auto it = std::sregex_iterator(output.begin(), output.end(), re); it != std::sregex_iterator(); ++it) {
    if ((*count)++ < max) absl::StrAppend(&out, out.empty() ? "" : ",", (*it)[1].str());
  }
  return out;
}

TEST(JUnitXml, APassingSweepRecordsItsSeedsAndNoFailure) {
  const std::string xml = tmp("junit-pass.xml");
  Probe p = probe("--twinloop_first_seed=5 --twinloop_seeds=7 --gtest_output=xml:" + xml);
  ASSERT_EQ(p.r.exit_code, 0) << p.r.output;
  ASSERT_EQ(p.seeds.size(), 7u);
  const std::string doc = slurp(xml);
  EXPECT_EQ(xml_property(doc, "LogsItsSeed", "twinloop_first_seed"), "5") << doc;
  EXPECT_EQ(xml_property(doc, "LogsItsSeed", "twinloop_seeds"), "7") << doc;
  EXPECT_EQ(xml_property(doc, "LogsItsSeed", "twinloop_seeds_run"), "7") << doc;
  EXPECT_EQ(xml_property(doc, "LogsItsSeed", "twinloop_seeds_failed"), "0") << doc;
  EXPECT_EQ(xml_property(doc, "LogsItsSeed", "twinloop_failed_seeds"), "") << doc;
}

TEST(JUnitXml, AFailingSweepRecordsHowManyFailedAndTheFirstTen) {
  const std::string xml = tmp("junit-fail.xml");
  // Subject.Leaks fails for almost every seed; --twinloop_max_failures=0
  // reports every failing seed.
  Result r = run("", absl::StrCat(kSubject, " --gtest_filter=Subject.Leaks --twinloop_seeds=15",
                                  " --twinloop_max_failures=0 --twinloop_replay_dir=", tmp(""), " --gtest_output=xml:", xml));
  ASSERT_NE(r.exit_code, 0) << r.output;
  size_t failed = 0;
  const std::string first_ten = reported_seeds(r.output, 10, &failed);
  ASSERT_GT(failed, 10u) << "too few failures to check that the list stops at ten:\n" << r.output;
  const std::string doc = slurp(xml);
  EXPECT_EQ(xml_property(doc, "Leaks", "twinloop_first_seed"), "0") << doc;
  EXPECT_EQ(xml_property(doc, "Leaks", "twinloop_seeds_run"), "15") << doc;
  EXPECT_EQ(xml_property(doc, "Leaks", "twinloop_seeds_failed"), absl::StrCat(failed)) << doc;
  EXPECT_EQ(xml_property(doc, "Leaks", "twinloop_failed_seeds"), first_ten) << doc;
}

TEST(JUnitXml, TheSweepStopsAtTheFirstFailureByDefaultAndSaysHowManySeedsRan) {
  const std::string xml = tmp("junit-first.xml");
  Result r = run("", absl::StrCat(kSubject, " --gtest_filter=Subject.Leaks --twinloop_first_seed=100",
                                  " --twinloop_seeds=50 --twinloop_replay_dir=", tmp(""), " --gtest_output=xml:", xml));
  ASSERT_NE(r.exit_code, 0) << r.output;
  const std::string seed = failed_seed(r.output);
  ASSERT_FALSE(seed.empty()) << r.output;
  const std::string doc = slurp(xml);
  EXPECT_EQ(xml_property(doc, "Leaks", "twinloop_first_seed"), "100") << doc;
  EXPECT_EQ(xml_property(doc, "Leaks", "twinloop_seeds"), "50") << doc;
  // One worker: every seed up to the first failing one ran, none after it.
  EXPECT_EQ(xml_property(doc, "Leaks", "twinloop_seeds_run"), absl::StrCat(std::stoull(seed) - 100 + 1)) << doc;
  EXPECT_EQ(xml_property(doc, "Leaks", "twinloop_seeds_failed"), "1") << doc;
  EXPECT_EQ(xml_property(doc, "Leaks", "twinloop_failed_seeds"), seed) << doc;
}

TEST(JUnitXml, ASingleSeedRecordsItself) {
  const std::string xml = tmp("junit-single.xml");
  Probe p = probe("--twinloop_seed=17 --gtest_output=xml:" + xml);
  ASSERT_EQ(p.r.exit_code, 0) << p.r.output;
  const std::string doc = slurp(xml);
  EXPECT_EQ(xml_property(doc, "LogsItsSeed", "twinloop_first_seed"), "17") << doc;
  EXPECT_EQ(xml_property(doc, "LogsItsSeed", "twinloop_seeds_run"), "1") << doc;
  EXPECT_EQ(xml_property(doc, "LogsItsSeed", "twinloop_seeds_failed"), "0") << doc;

  Result f = run("", absl::StrCat(kSubject, " --gtest_filter=Subject.Leaks --twinloop_seed=", 3,
                                  " --twinloop_replay_dir=", tmp(""), " --gtest_output=xml:", xml));
  const std::string fdoc = slurp(xml);
  const bool failed = f.exit_code != 0;
  EXPECT_EQ(xml_property(fdoc, "Leaks", "twinloop_seeds_failed"), failed ? "1" : "0") << fdoc;
  EXPECT_EQ(xml_property(fdoc, "Leaks", "twinloop_failed_seeds"), failed ? "3" : "") << fdoc;
}

}  // namespace
}  // namespace twinloop::harness
