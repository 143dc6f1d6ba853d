// RcSimulation (sim/harness/rc_simulation.h) itself: its decisions are drawn
// at full size, a failing property reports the minimal run's schedule once,
// and replay files are named after the test target.
#include "twinloop/sim/harness/rc_simulation.h"

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidcheck.h"
#include "twinloop/sim/harness/replay_file.h"

namespace twinloop::sim {
namespace {

using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;

// Two tasks whose timers fall due at the same instant: which runs first is
// one two-way decision (loop.timer_tie), 0 keeping creation order.
Coro<std::vector<int>> tied_pair() {
  std::vector<int> order;
  auto sleeper = [](std::vector<int>* out, int id) -> Coro<void> {
    co_await sleep(absl::Milliseconds(1));
    out->push_back(id);
  };
  Task<void> a = create_task(sleeper(&order, 0), {.name = "a"});
  Task<void> b = create_task(sleeper(&order, 1), {.name = "b"});
  co_await a;
  co_await b;
  co_return order;
}

// Listens to nothing: RapidCheck's global listener would end the test
// binary's output with a "reproduce" line for the failures these tests
// expect.
class Quiet : public rc::detail::TestListener {
 public:
  void onTestCaseFinished(const rc::detail::CaseDescription&) override {}
  void onShrinkTried(const rc::detail::CaseDescription&, bool) override {}
  void onTestFinished(const rc::detail::TestMetadata&, const rc::detail::TestResult&) override {}
};

// Runs `property` as RapidCheck would, with fixed parameters (whatever
// RC_PARAMS says), and returns the result.
template <class Property>
rc::detail::TestResult check(const std::string& name, Property property, int cases) {
  rc::detail::TestMetadata metadata;
  metadata.id = name;
  metadata.description = name;
  rc::detail::TestParams params;
  params.seed = 20261126;
  params.maxSuccess = cases;
  params.maxSize = 100;
  Quiet quiet;
  return rc::detail::checkProperty(rc::detail::toProperty(property), metadata, params, quiet);
}

// Sets an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnv() {
    if (old_) {
      setenv(name_, old_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> old_;
};

std::string temp_dir(const std::string& leaf) {
  const char* base = std::getenv("TEST_TMPDIR");
  const std::string dir = absl::StrCat(base ? base : "/tmp", "/", leaf);
  std::filesystem::create_directories(dir);
  return dir;
}

// RapidCheck's inRange scales its range with the test case's size: below
// size 50 it would answer 0 to every two-way decision, so the first half of
// a property's test cases would all run the default schedule. RcSimulation
// draws at full size: the tie goes either way at every size.
TEST(RcSimulation, TwoWayDecisionsGoBothWaysAtEverySize) {
  int swapped_small = 0;  // among the test cases of size < 50
  int swapped = 0;
  int runs = 0;
  const auto result = check(
      "tie",
      [&] {
        const int size = *rc::gen::withSize([](int s) { return rc::gen::just(s); });
        RcSimulation sim("RcSimulationTest.Tie");
        const std::vector<int> order = sim.run(tied_pair());
        ++runs;
        if (order == std::vector<int>{1, 0}) {
          ++swapped;
          if (size < 50) ++swapped_small;
        }
      },
      /*cases=*/100);  // sizes 0 to 99
  ASSERT_TRUE(result.template is<rc::detail::SuccessResult>());
  ASSERT_EQ(runs, 100);
  // Binomial(50, 1/2) and (100, 1/2): the bounds are over four standard
  // deviations from the mean (and the RapidCheck seed is fixed).
  EXPECT_GT(swapped_small, 10);
  EXPECT_GT(swapped, 30);
  EXPECT_LT(swapped, 70);
}

// A property that fails only when the tie goes the non-default way: the
// report names that decision once (the minimal run's, in RapidCheck's log),
// the replay file holds it, and the counterexample names each pick.
TEST(RcSimulation, AFailingPropertyReportsTheMinimalSchedule) {
  const std::string dir = temp_dir("rc_report");
  ScopedEnv replay_dir("TWINLOOP_REPLAY_DIR", dir.c_str());
  const std::string name = "RcSimulationTest.TieGoesTheOtherWay";
  std::filesystem::remove(RcSimulation::replay_path(name));
  std::filesystem::remove(RcSimulation::replay_path(name, /*first=*/true));

  const auto result = check(
      name,
      [&] {
        RcSimulation sim(name);
        const std::vector<int> order = sim.run(tied_pair());
        RC_ASSERT(order == (std::vector<int>{0, 1}));
      },
      /*cases=*/100);
  ASSERT_TRUE(result.template is<rc::detail::FailureResult>());
  const auto& failure = result.template get<rc::detail::FailureResult>();
  const std::string& text = failure.description;

  // Once: RapidCheck keeps the minimal test case's log only.
  const std::string header = absl::StrCat("twinloop: the schedule of this failing run (RcSimulation '", name, "'):");
  ASSERT_THAT(text, HasSubstr(header));
  EXPECT_EQ(text.find(header), text.rfind(header)) << text;
  EXPECT_THAT(text, HasSubstr("  1 decision, 1 not the default (task: site occurrence: value of n):\n"
                              "    /tied_pair#0/a#0: loop.timer_tie 0: 1 of 2\n"))
      << text;
  EXPECT_THAT(text, HasSubstr(absl::StrCat("  replay file: ", RcSimulation::replay_path(name), " (the first failing run: ",
                                           RcSimulation::replay_path(name, true), ")\n")))
      << text;

  // The counterexample: the one pick, by site and value.
  ASSERT_EQ(failure.counterExample.size(), 1u);
  EXPECT_EQ(failure.counterExample[0].first, "twinloop decision");
  EXPECT_EQ(failure.counterExample[0].second, "loop.timer_tie: 1 of 2");

  const Recording minimal = read_recording_file(RcSimulation::replay_path(name));
  EXPECT_EQ(minimal.test, name);
  ASSERT_EQ(minimal.decisions.size(), 1u);
  EXPECT_EQ(minimal.decisions[0].task, "/tied_pair#0/a#0");
  EXPECT_EQ(minimal.decisions[0].site, "loop.timer_tie");
  EXPECT_EQ(minimal.decisions[0].value, 1u);
  EXPECT_TRUE(std::filesystem::exists(RcSimulation::replay_path(name, /*first=*/true)));
}

// rc_report (TWINLOOP_RC_GTEST_PROP's failure message) folds each run of
// consecutive decision picks into one entry and leaves the others.
TEST(RcSimulation, TheReportFoldsTheDecisionPicks) {
  rc::detail::FailureResult failure;
  failure.numSuccess = 6;
  failure.description = "the failure";
  failure.counterExample = {
      {"Scenario", "three workers"},
      {"twinloop decision", "loop.timer_tie: 0 of 2"},
      {"twinloop decision", "loop.step_jitter_us: 37 of 301"},
      {"twinloop decision", "buggify.fire:db.cc:12: 0 of 4"},
      {"bool", "true"},
      {"twinloop decision", "executor.latency_us: 10 of 10001"},
  };
  EXPECT_EQ(rc_report(failure),
            "Falsifiable after 7 tests\n\n"
            "Scenario:\nthree workers\n\n"
            "twinloop decisions:\n3 in draw order, 1 not the default (by key under Log: below)\n\n"
            "bool:\ntrue\n\n"
            "twinloop decisions:\n1 in draw order, 1 not the default (by key under Log: below)\n\n"
            "the failure");

  // A real failure: the tie's one pick.
  const auto result = check(
      "fold",
      [] {
        RcSimulation sim("RcSimulationTest.Fold");
        RC_ASSERT(sim.run(tied_pair()) == (std::vector<int>{0, 1}));
      },
      /*cases=*/100);
  const std::string report = rc_report(result);
  EXPECT_THAT(report, HasSubstr("\ntwinloop decisions:\n1 in draw order, 1 not the default (by key under Log: below)\n"));
  EXPECT_THAT(report, Not(HasSubstr("twinloop decision:")));
  EXPECT_THAT(report, HasSubstr("    /tied_pair#0/a#0: loop.timer_tie 0: 1 of 2\n"));
}

// A run that passes reports nothing and writes nothing.
TEST(RcSimulation, APassingPropertyWritesNoReplayFile) {
  const std::string dir = temp_dir("rc_pass");
  ScopedEnv replay_dir("TWINLOOP_REPLAY_DIR", dir.c_str());
  const std::string name = "RcSimulationTest.Passes";
  const auto result = check(
      name,
      [&] {
        RcSimulation sim(name);
        RC_ASSERT(sim.run(tied_pair()).size() == 2u);
      },
      /*cases=*/20);
  ASSERT_TRUE(result.template is<rc::detail::SuccessResult>());
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

// Two targets with a property of the same name do not share a file.
TEST(RcSimulation, ReplayFilesAreNamedAfterTheTestTarget) {
  ScopedEnv replay_dir("TWINLOOP_REPLAY_DIR", "/replays");
  {
    ScopedEnv target("TEST_TARGET", "//tests/properties:sync_test");
    EXPECT_EQ(target_slug(), "tests_properties_sync_test");
    EXPECT_EQ(RcSimulation::replay_path("Suite.Name"),
              "/replays/twinloop-rc-tests_properties_sync_test-Suite.Name.replay");
    EXPECT_EQ(RcSimulation::replay_path("Suite.Name", /*first=*/true),
              "/replays/twinloop-rc-tests_properties_sync_test-Suite.Name.first.replay");
  }
  {
    ScopedEnv target("TEST_TARGET", "@other//a/b:c+d");
    EXPECT_EQ(target_slug(), "other__a_b_c_d");
  }
  {
    // Outside Bazel: the binary's name.
    ScopedEnv target("TEST_TARGET", nullptr);
    EXPECT_EQ(target_slug(), "rc_simulation_test");
    EXPECT_THAT(RcSimulation::replay_path("Suite.Name"), EndsWith("/twinloop-rc-rc_simulation_test-Suite.Name.replay"));
  }
}

// Outside a RapidCheck property (a plain test replaying a schedule with
// TWINLOOP_RC_REPLAY, say) the report goes to stderr.
TEST(RcSimulation, OutsideAPropertyTheReportGoesToStderr) {
  const std::string dir = temp_dir("rc_plain");
  ScopedEnv replay_dir("TWINLOOP_REPLAY_DIR", dir.c_str());
  Recording schedule;
  schedule.decisions.push_back(Decision{.task = "/tied_pair#0/a#0", .site = "loop.timer_tie", .occurrence = 0, .n = 2, .value = 1});
  const std::string schedule_file = absl::StrCat(dir, "/schedule.replay");
  write_recording_file(schedule_file, schedule);
  ScopedEnv replay("TWINLOOP_RC_REPLAY", schedule_file.c_str());

  const std::string name = "RcSimulationTest.Plain";
  ::testing::internal::CaptureStderr();
  try {
    RcSimulation sim(name);
    EXPECT_EQ(sim.run(tied_pair()), (std::vector<int>{1, 0}));
    throw std::runtime_error("the test fails");
  } catch (const std::runtime_error&) {
  }
  const std::string err = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr(absl::StrCat("twinloop: the schedule of this failing run (RcSimulation '", name, "'):\n",
                                          "  1 decision, 1 not the default (task: site occurrence: value of n):\n",
                                          "    /tied_pair#0/a#0: loop.timer_tie 0: 1 of 2\n")));
  EXPECT_TRUE(std::filesystem::exists(RcSimulation::replay_path(name)));
}

}  // namespace
}  // namespace twinloop::sim
