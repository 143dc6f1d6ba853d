// The strategies under the harness, end to end (sim/strategy.h,
// --twinloop_strategy, docs/exploration.md "Strategies"): runs
// strategy_subject_test as a subprocess.
//  - the flag parses (flag and variable) and rejects a typo with "did you mean";
//  - each strategy gives the same run for the same seed, and a non-uniform
//    one another run than uniform;
//  - a failing run's replay file records the strategy, its report prints it,
//    and a replay uses it (even for draws the file does not hold);
//  - the portfolio rotates uniform, pct, pctcp, urw by seed.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/tests/subprocess.h"

namespace twinloop::harness {
namespace {

using ::testing::HasSubstr;
using Result = ::twinloop::test_util::CommandResult;

const std::string kSubject = test_util::runfile_from_env("STRATEGY_SUBJECT_TEST");

std::string tmp_dir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d ? d : "/tmp";
}

Result run(const std::string& args, const std::string& env = "") {
  return test_util::run_command(absl::StrCat(kSubject, " ", args), env);
}

// The schedule hash of seed `seed` under `strategy` (the last line the run
// logs: the pilot run logs first).
std::string schedule(const std::string& strategy, uint64_t seed) {
  const std::string log = tmp_dir() + "/strategy_schedule.log";
  std::remove(log.c_str());
  Result r = run(absl::StrCat("--gtest_filter=Strategies.LogsItsSchedule --twinloop_seed=", seed,
                              " --twinloop_strategy=", strategy),
                 "STRATEGY_LOG=" + log);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  std::ifstream in(log);
  std::string line, last;
  while (std::getline(in, line)) last = line;
  EXPECT_FALSE(last.empty()) << r.output;
  return last;
}

std::string first_match(const std::string& text, const std::string& pattern) {
  std::smatch m;
  const std::regex re(pattern);
  return std::regex_search(text, m, re) ? std::string(m[1]) : "";
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(StrategyFlag, ParsesEveryStrategyAndRejectsATypo) {
  for (const char* s : {"uniform", "pct", "pctcp", "urw", "portfolio"}) {
    Result r = run(absl::StrCat("--gtest_filter=Strategies.LogsItsSchedule --twinloop_seeds=3 --twinloop_strategy=", s));
    EXPECT_EQ(r.exit_code, 0) << s << ": " << r.output;
  }
  Result env = run("--gtest_filter=Strategies.LogsItsSchedule --twinloop_seeds=3", "TWINLOOP_STRATEGY=urw");
  EXPECT_EQ(env.exit_code, 0) << env.output;
  EXPECT_THAT(env.output, HasSubstr("strategy urw"));
  Result typo = run("--gtest_filter=Strategies.LogsItsSchedule --twinloop_strategy=pcct");
  EXPECT_NE(typo.exit_code, 0) << typo.output;
  EXPECT_THAT(typo.output, HasSubstr("bad value 'pcct' for --twinloop_strategy"));
  EXPECT_THAT(typo.output, HasSubstr("did you mean pct?"));
  Result with_replay = run("--gtest_filter=Strategies.LogsItsSchedule --twinloop_strategy=pct --twinloop_replay=/nonexistent");
  EXPECT_NE(with_replay.exit_code, 0);
  EXPECT_THAT(with_replay.output, HasSubstr("a replay runs under the strategy its file records"));
  Result exhaustive = run("--gtest_filter=Strategies.LogsItsSchedule --twinloop_strategy=pct --twinloop_exhaustive=1");
  EXPECT_NE(exhaustive.exit_code, 0);
  EXPECT_THAT(exhaustive.output, HasSubstr("--twinloop_exhaustive=1 decides its own draws"));
  // Branching draws under the strategy (planted_order_driver_test).
  Result branch = run("--gtest_filter=Strategies.LogsItsSchedule --twinloop_strategy=pct --twinloop_explore=branch "
                      "--twinloop_seeds=5");
  EXPECT_EQ(branch.exit_code, 0) << branch.output;
  EXPECT_THAT(branch.output, HasSubstr("strategy pct (pilot run: "));
}

TEST(Strategies, EachGivesTheSameRunForTheSameSeedAndPctPrintsItsBound) {
  for (const char* s : {"uniform", "pct", "pctcp", "urw", "portfolio"}) {
    for (uint64_t seed : {1u, 6u}) EXPECT_EQ(schedule(s, seed), schedule(s, seed)) << s << " seed " << seed;
  }
  // Not uniform in disguise: some seed runs differently.
  for (const char* s : {"pct", "urw"}) {
    int differ = 0;
    for (uint64_t seed = 0; seed < 4; ++seed) differ += schedule(s, seed) != schedule("uniform", seed);
    EXPECT_GT(differ, 0) << s;
  }
  Result r = run("--gtest_filter=Strategies.LogsItsSchedule --twinloop_seeds=2 --twinloop_strategy=pct");
  const std::string k = first_match(r.output, "pilot run: ([0-9]+) draws from 3 tasks");
  ASSERT_FALSE(k.empty()) << r.output;
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("pct d=3 k=", k, " sources=3: a bug of depth 3 is found with probability >= 1/(3*3*",
                                               k, "^2)")));
  Result cp = run("--gtest_filter=Strategies.LogsItsSchedule --twinloop_seeds=2 --twinloop_strategy=pctcp");
  EXPECT_THAT(cp.output, HasSubstr("no draw site names a host or connection, so it ran as pct over tasks"));
}

TEST(Strategies, TheReplayFileRecordsTheStrategyAndReplaysUnderIt) {
  const std::string dir = tmp_dir() + "/strategy_replays";
  std::filesystem::create_directories(dir);
  Result r = run("--gtest_filter=Strategies.ShortWorkerLast --twinloop_seeds=500 --twinloop_strategy=urw",
                 "TWINLOOP_REPLAY_DIR=" + dir);
  ASSERT_NE(r.exit_code, 0) << r.output;
  const std::string k = first_match(r.output, "pilot run: ([0-9]+) draws from 3 tasks");
  ASSERT_FALSE(k.empty()) << r.output;
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("strategy: urw k=", k, " sources=3")));
  EXPECT_THAT(r.output, HasSubstr("--twinloop_strategy=urw"));
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("(\\S+seed[0-9]+\\.replay)"))) << r.output;
  const std::string file = m[1];
  const std::string text = read_file(file);
  EXPECT_THAT(text, HasSubstr("option strategy 3\n"));
  EXPECT_THAT(text, HasSubstr(absl::StrCat("option strategy_draws ", k, "\n")));
  // The file without its decisions: every draw falls back to the seed, and
  // so to the recorded strategy; the failure must still reproduce.
  std::istringstream in(text);
  std::string stripped, line;
  while (std::getline(in, line)) {
    if (line.rfind("decision ", 0) != 0) stripped += line + "\n";
  }
  const std::string bare = tmp_dir() + "/strategy_no_decisions.replay";
  std::ofstream(bare) << stripped;
  Result replay = run("--twinloop_replay=" + bare);
  EXPECT_THAT(replay.output, HasSubstr("recorded failure reproduced")) << replay.output;
}

TEST(Strategies, ThePortfolioRotatesBySeed) {
  const char* rotation[] = {"uniform", "pct", "pctcp", "urw"};
  for (uint64_t seed = 0; seed < 8; ++seed) {
    EXPECT_EQ(schedule("portfolio", seed), schedule(rotation[seed % 4], seed)) << "seed " << seed;
  }
  Result r = run("--gtest_filter=Strategies.ShortWorkerLast --twinloop_seed=13 --twinloop_strategy=portfolio");
  // Seed 13 is 1 mod 4: pct's; a failure report (if it fails) or the line names it.
  EXPECT_THAT(r.output, HasSubstr("seed % 4 = 0 uniform, 1 pct, 2 pctcp, 3 urw"));
}

}  // namespace
}  // namespace twinloop::harness
