// Exploration under the harness, end to end (sim/harness/explore.h,
// docs/exploration.md): runs explore_subject_test as a subprocess.
//  - bounded exhaustive runs: every run with at most K non-default draws,
//    once each, split disjointly and completely over shards; a failure
//    within the bound is reported and replays; a capped enumeration says
//    "capped"; a three-host test at K = 2 within a minute;
//  - coverage-guided branching: a bug needing two 1-in-1,000 events found
//    in a median of at most 3,000 runs; the same root seed gives the same
//    tree; a failing branch replays;
//  - the flags are known to the parser.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/tests/subprocess.h"

namespace twinloop::harness {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Result = ::twinloop::test_util::CommandResult;

const std::string kSubject = test_util::runfile_from_env("EXPLORE_SUBJECT_TEST");

Result run(const std::string& args, const std::string& env = "") {
  return test_util::run_command(absl::StrCat(kSubject, " ", args), env);
}

std::string tmp_dir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d ? d : "/tmp";
}

std::vector<std::string> read_lines(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

std::string first_match(const std::string& text, const std::string& pattern) {
  std::smatch m;
  const std::regex re(pattern);
  return std::regex_search(text, m, re) ? std::string(m[1]) : "";
}

// ---------------------------------------------------------------- bounded exhaustive runs

TEST(Exhaustive, RunsEveryScheduleWithinTheBoundOnceAndTheShardsSplitItDisjointlyAndCompletely) {
  const std::string log = tmp_dir() + "/exhaustive_unsharded.log";
  std::remove(log.c_str());
  Result all = run("--gtest_filter=Explore.LogsItsDraws --twinloop_exhaustive=2", "TWINLOOP_PROBE_LOG=" + log);
  ASSERT_EQ(all.exit_code, 0) << all.output;
  EXPECT_THAT(all.output, HasSubstr("exhausted: 19 runs, no failure within bound 2"));
  std::vector<std::string> unsharded = read_lines(log);
  // Every (x, y, z) in {0,1,2}^3 with at most two non-zero: 1 + 3*2 + 3*4.
  std::set<std::string> expected;
  for (int x = 0; x < 3; ++x)
    for (int y = 0; y < 3; ++y)
      for (int z = 0; z < 3; ++z)
        if ((x != 0) + (y != 0) + (z != 0) <= 2) expected.insert(absl::StrCat(x, " ", y, " ", z));
  EXPECT_EQ(unsharded.size(), 19u);
  EXPECT_EQ(std::set<std::string>(unsharded.begin(), unsharded.end()), expected);

  std::vector<std::string> sharded;
  for (int shard = 0; shard < 3; ++shard) {
    const std::string part = absl::StrCat(tmp_dir(), "/exhaustive_shard", shard, ".log");
    std::remove(part.c_str());
    Result r = run("--gtest_filter='Explore.LogsItsDraws*' --twinloop_exhaustive=2",
                   absl::StrCat("TWINLOOP_PROBE_LOG=", part, " GTEST_TOTAL_SHARDS=3 GTEST_SHARD_INDEX=", shard));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr(absl::StrCat("(part ", shard, " of 3): exhausted: ")));
    for (const std::string& line : read_lines(part)) sharded.push_back(line);
  }
  // Shards other than 0 also run the all-default run (to learn the draw
  // points) without counting it: it appears in each shard's log.
  std::vector<std::string> counted = sharded;
  for (int extra = 0; extra < 2; ++extra) {
    auto it = std::find(counted.begin(), counted.end(), "0 0 0");
    ASSERT_NE(it, counted.end());
    counted.erase(it);
  }
  std::sort(counted.begin(), counted.end());
  std::sort(unsharded.begin(), unsharded.end());
  EXPECT_EQ(counted, unsharded);  // disjoint (no run twice) and complete
}

TEST(Exhaustive, AFailureWithinTheBoundIsFoundAndReplays) {
  Result k1 = run("--gtest_filter=Explore.FailsWithTwoNonDefaultDraws --twinloop_exhaustive=1");
  EXPECT_EQ(k1.exit_code, 0) << k1.output;
  EXPECT_THAT(k1.output, HasSubstr("exhausted: 7 runs, no failure within bound 1"));
  Result k2 = run("--gtest_filter=Explore.FailsWithTwoNonDefaultDraws --twinloop_exhaustive=2 --twinloop_replay_dir=" +
                  tmp_dir());
  EXPECT_NE(k2.exit_code, 0) << k2.output;
  EXPECT_THAT(k2.output, HasSubstr("failure within bound 2 after"));
  EXPECT_THAT(k2.output, HasSubstr("planted: x = 2 and z = 1"));
  const std::string file = first_match(k2.output, R"(replay file: (\S+))");
  ASSERT_FALSE(file.empty()) << k2.output;
  Result replay = run("--twinloop_replay=" + file);
  EXPECT_NE(replay.exit_code, 0) << replay.output;
  EXPECT_THAT(replay.output, HasSubstr("recorded failure reproduced (assertion)"));
}

TEST(Exhaustive, ACappedEnumerationSaysCappedNotExhausted) {
  Result r = run("--gtest_filter=Explore.WideDraw --twinloop_exhaustive=1");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("capped: 9 runs, no failure within bound 1, but only 8 of the non-default values"));
  EXPECT_THAT(r.output, HasSubstr("subject.wide (n=100)"));
  EXPECT_THAT(r.output, Not(HasSubstr("exhausted")));
  // With every value tried, the planted value is found.
  Result all = run("--gtest_filter=Explore.WideDraw --twinloop_exhaustive=1 --twinloop_exhaustive_values=99");
  EXPECT_NE(all.exit_code, 0) << all.output;
  Result stopped = run("--gtest_filter=Explore.LogsItsDraws --twinloop_exhaustive=2 --twinloop_exhaustive_max_runs=5");
  EXPECT_THAT(stopped.output, HasSubstr("stopped: 5 runs, no failure, the run limit was reached"));
}

TEST(Exhaustive, BoundTwoOverAThreeHostTestInUnderAMinute) {
  Result r = run("--gtest_filter=Explore.ThreeHosts --twinloop_exhaustive=2");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("no failure within bound 2"));
  const std::string seconds = first_match(r.output, R"(within bound 2.*\(([0-9.]+) s\))");
  ASSERT_FALSE(seconds.empty()) << r.output;
  EXPECT_LT(std::stod(seconds), 60.0) << r.output;
}

// ---------------------------------------------------------------- branching

uint64_t runs_to_failure(const std::string& output) {
  const std::string n = first_match(output, R"(first failure at run ([0-9]+))");
  return n.empty() ? UINT64_MAX : std::stoull(n);
}

TEST(Branching, TwoRareEventsInAMedianOfAtMost3000Runs) {
  std::vector<uint64_t> runs;
  for (int root = 0; root < 5; ++root) {
    Result r = run(absl::StrCat("--gtest_filter=Explore.TwoRareEvents --twinloop_explore=branch --twinloop_seeds=20000 "
                                "--twinloop_first_seed=",
                                root * 1000000, " --twinloop_replay_dir=", tmp_dir()));
    EXPECT_NE(r.exit_code, 0) << r.output;
    runs.push_back(runs_to_failure(r.output));
  }
  std::sort(runs.begin(), runs.end());
  EXPECT_LE(runs[2], 3000u) << "runs to the first failure: " << runs[0] << " " << runs[1] << " " << runs[2] << " "
                            << runs[3] << " " << runs[4];
  // The plain sweep of the same seeds finds nothing in 5,000 (p = 1e-6 each).
  Result plain = run("--gtest_filter=Explore.TwoRareEvents --twinloop_seeds=5000");
  EXPECT_EQ(plain.exit_code, 0) << plain.output;
}

TEST(Branching, TheSameRootSeedGivesTheSameTree) {
  const std::string args = "--gtest_filter=Explore.TwoRareEvents --twinloop_explore=branch --twinloop_seeds=1500";
  Result a = run(args);
  Result b = run(args);
  Result other = run(args + " --twinloop_first_seed=1");
  const std::string digest_a = first_match(a.output, R"(tree digest ([0-9a-f]+))");
  ASSERT_FALSE(digest_a.empty()) << a.output;
  EXPECT_THAT(a.output, HasSubstr("branching from seed 0: 1500 runs"));
  EXPECT_THAT(a.output, Not(HasSubstr(" 0 from 0 kept prefixes")));  // it did branch
  EXPECT_EQ(digest_a, first_match(b.output, R"(tree digest ([0-9a-f]+))"));
  EXPECT_NE(digest_a, first_match(other.output, R"(tree digest ([0-9a-f]+))"));
}

TEST(Branching, AFailingBranchIsAnOrdinaryReplayFile) {
  Result r = run("--gtest_filter=Explore.TwoRareEvents --twinloop_explore=branch --twinloop_seeds=20000 "
                 "--twinloop_first_seed=4000000 --twinloop_shrink --twinloop_replay_dir=" +
                 tmp_dir());
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("planted: both rare events happened"));
  EXPECT_THAT(r.output, HasSubstr("(prefix "));  // a branch run, not a fresh seed
  const std::string file = first_match(r.output, R"(\nreplay file: (\S+))");
  const std::string minimal = first_match(r.output, R"(minimal replay file: (\S+))");
  ASSERT_FALSE(file.empty()) << r.output;
  ASSERT_FALSE(minimal.empty()) << r.output;
  for (const std::string& f : {file, minimal}) {
    Result replay = run("--twinloop_replay=" + f);
    EXPECT_NE(replay.exit_code, 0) << replay.output;
    EXPECT_THAT(replay.output, HasSubstr("recorded failure reproduced (assertion)"));
  }
}

// ---------------------------------------------------------------- flags

TEST(ExploreFlags, AreKnownToTheParser) {
  Result typo = run("--twinloop_explor=branch");
  EXPECT_NE(typo.exit_code, 0);
  EXPECT_THAT(typo.output, HasSubstr("did you mean --twinloop_explore?"));
  Result typo2 = run("--twinloop_exhaustiv=2");
  EXPECT_THAT(typo2.output, HasSubstr("did you mean --twinloop_exhaustive?"));
  Result bad = run("--twinloop_explore=bfs");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.output, HasSubstr("bad value 'bfs' for --twinloop_explore: expected seeds or branch"));
  Result both = run("--twinloop_explore=branch --twinloop_exhaustive=2");
  EXPECT_NE(both.exit_code, 0);
  EXPECT_THAT(both.output, HasSubstr("contradict each other"));
  Result alone = run("--twinloop_exhaustive_values=4");
  EXPECT_NE(alone.exit_code, 0);
  EXPECT_THAT(alone.output, HasSubstr("applies only to --twinloop_exhaustive=K"));
  Result k = run("--twinloop_exhaustive=two");
  EXPECT_THAT(k.output, HasSubstr("bad value 'two' for --twinloop_exhaustive"));
}

}  // namespace
}  // namespace twinloop::harness
