// The planted fault bugs (planted_faults_test.cc), end to end, as
// planted_framing_driver_test does for the framing bug: runs the failing
// binary as a subprocess and checks, for each bug, that
//  - the harness's default seed sweep (no --twinloop_seeds) finds it, and the
//    report names the failed check and lists the faults that fired
//    ("faults (virtual time order):");
//  - the printed command reproduces that seed's failure;
//  - shrinking leaves strictly fewer non-default decisions AND strictly fewer
//    faults: fewer lines in the minimal run's fault list than in the
//    original's, and fewer non-default draws at fault sites ("fault.*");
//  - replaying the minimal file reproduces the recorded failure;
// and that each bug's fixed twin passes every seed of the default sweep.
#include <sstream>
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/sim/harness/replay_file.h"
#include "twinloop/sim/recording.h"
#include "twinloop/tests/planted/fault_draws.h"
#include "twinloop/tests/subprocess.h"

namespace twinloop::planted {
namespace {

using ::testing::HasSubstr;

using Result = ::twinloop::test_util::CommandResult;

Result run(const std::string& command) { return ::twinloop::test_util::run_command(command); }

std::string binary() { return ::twinloop::test_util::runfile_from_env("PLANTED_FAULTS_TEST"); }

std::string out_dir(const std::string& name) { return ::twinloop::test_util::test_dir("planted-faults-" + name); }

using ::twinloop::test_util::first_match;

// The lines of the first failure report's fault list ("faults (virtual time
// order):", then one "  t=..." line per fault), or -1 if it has none.
int faults_listed(const std::string& output) {
  std::istringstream in(output);
  std::string line;
  while (std::getline(in, line) && line != "faults (virtual time order):") {
  }
  if (!in) return -1;
  int n = 0;
  while (std::getline(in, line) && line.starts_with("  t=")) ++n;
  return n;
}


struct PlantedBug {
  const char* test;   // in planted_faults_test.cc
  const char* check;  // a piece of its failure message
  const char* fixed;  // its fixed twin
};

void expect_found_shrunk_and_replayed(const PlantedBug& bug, double shrink_seconds) {
  const std::string dir = out_dir(bug.test);
  const std::string filter = absl::StrCat(" --gtest_filter=PlantedFaults.", bug.test);
  // The default seed count: no --twinloop_seeds.
  Result found = run(absl::StrCat(binary(), filter, " --twinloop_shrink --twinloop_shrink_seconds=", shrink_seconds,
                                  " --twinloop_replay_dir=", dir));
  ASSERT_NE(found.exit_code, 0) << bug.test << " was not found by the default sweep:\n" << found.output;
  const std::string seed = first_match(found.output, R"(FAILED at seed (\d+))");
  ASSERT_FALSE(seed.empty()) << found.output;
  EXPECT_THAT(found.output, HasSubstr("what failed (assertion)"));
  EXPECT_THAT(found.output, HasSubstr(bug.check));
  EXPECT_THAT(found.output, HasSubstr("\nfaults (virtual time order):\n  t="));
  const int faults_before = faults_listed(found.output);

  // The printed command reproduces this seed's failure.
  const std::string command = first_match(found.output, R"((\S+ --gtest_filter=\S+ --twinloop_seed=\d+))");
  ASSERT_FALSE(command.empty()) << found.output;
  Result again = run(absl::StrCat(command, " --twinloop_replay_dir=", dir));
  EXPECT_NE(again.exit_code, 0) << again.output;
  EXPECT_EQ(first_match(again.output, R"(FAILED at seed (\d+))"), seed) << again.output;
  EXPECT_THAT(again.output, HasSubstr(bug.check));
  EXPECT_EQ(faults_listed(again.output), faults_before) << again.output;

  // Shrinking: fewer non-default decisions, fewer of them at fault sites.
  const std::string original_path = first_match(found.output, "\nreplay file: (\\S+)");
  const std::string minimal_path = first_match(found.output, "\nminimal replay file: (\\S+)");
  ASSERT_FALSE(original_path.empty()) << found.output;
  ASSERT_FALSE(minimal_path.empty()) << found.output;
  const sim::Recording original = sim::read_recording_file(original_path);
  const sim::Recording minimal = sim::read_recording_file(minimal_path);
  EXPECT_LT(sim::non_default_choices(minimal.decisions), sim::non_default_choices(original.decisions))
      << found.output;
  EXPECT_LT(fault_draws(minimal), fault_draws(original)) << found.output;
  EXPECT_GE(fault_draws(minimal), 1u) << "a run without faults cannot fail";

  // Replaying the minimal file fails as it records, with fewer faults.
  Result replayed =
      run(absl::StrCat(binary(), filter, " --twinloop_replay=", minimal_path, " --twinloop_replay_dir=", dir));
  EXPECT_NE(replayed.exit_code, 0) << "the minimal replay does not fail:\n" << replayed.output;
  EXPECT_THAT(replayed.output, HasSubstr("the run matches the recording")) << replayed.output;
  EXPECT_THAT(replayed.output, HasSubstr("recorded failure reproduced (assertion)")) << replayed.output;
  EXPECT_THAT(replayed.output, HasSubstr(bug.check)) << replayed.output;
  const int faults_after = faults_listed(replayed.output);
  EXPECT_GE(faults_after, 1) << replayed.output;
  EXPECT_LT(faults_after, faults_before) << "the original run's report:\n"
                                         << found.output << "\nthe minimal run's report:\n"
                                         << replayed.output;
}

void expect_fixed_twin_passes(const PlantedBug& bug) {
  Result r = run(absl::StrCat(binary(), " --gtest_filter=PlantedFaults.", bug.fixed, " --twinloop_replay_dir=",
                              out_dir(bug.fixed)));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("[  PASSED  ] 1 test"));
}

constexpr PlantedBug kLease{"LeaseUntilAnotherHostsClock", "holds the lease while another client does",
                            "LeaseForADurationOnOwnClock"};
constexpr PlantedBug kAckBeforeSync{"AckBeforeSyncLosesAcknowledgedWrites",
                                    "acknowledged puts are lost after the crashes",
                                    "SyncThenAckKeepsAcknowledgedWrites"};
constexpr PlantedBug kReconnectLeak{"ReconnectLeaksAConnectionPerPartition", "the client leaks connections",
                                    "ReconnectAbortsTheOldConnection"};

TEST(PlantedFaults, LeaseFromAnotherHostsClockIsFoundShrunkAndReplayed) {
  expect_found_shrunk_and_replayed(kLease, 5);
}

TEST(PlantedFaults, AckBeforeSyncIsFoundShrunkAndReplayed) { expect_found_shrunk_and_replayed(kAckBeforeSync, 5); }

TEST(PlantedFaults, ReconnectLeakIsFoundShrunkAndReplayed) { expect_found_shrunk_and_replayed(kReconnectLeak, 5); }

TEST(PlantedFaults, FixedTwinsPassTheDefaultSweep) {
  expect_fixed_twin_passes(kLease);
  expect_fixed_twin_passes(kAckBeforeSync);
  expect_fixed_twin_passes(kReconnectLeak);
}

}  // namespace
}  // namespace twinloop::planted
