// The planted supervisor bug (planted_supervisor_test.cc), end to end, as
// planted_faults_driver_test does for the fault bugs: runs the failing binary
// as a subprocess and checks that
//  - the harness's default seed sweep (no --twinloop_seeds) finds it: the
//    supervisor does not converge back to every worker running, and the
//    report lists the process faults that fired;
//  - the printed command reproduces that seed's failure;
//  - shrinking leaves strictly fewer non-default decisions and strictly
//    fewer non-default draws at fault sites ("fault.*"), at least one;
//  - replaying the minimal file reproduces the recorded failure;
// and that the fixed twin passes every seed of the default sweep.
#include <sstream>
#include <string>

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
using ::twinloop::test_util::first_match;
using Result = ::twinloop::test_util::CommandResult;

Result run(const std::string& command) { return ::twinloop::test_util::run_command(command); }

std::string binary() { return ::twinloop::test_util::runfile_from_env("PLANTED_SUPERVISOR_TEST"); }


constexpr char kCheck[] = "'every worker slot runs a worker again' still false";

TEST(PlantedSupervisor, ACrashDuringTheBackoffIsFoundShrunkAndReplayed) {
  const std::string dir = ::twinloop::test_util::test_dir("planted-supervisor");
  const std::string filter = " --gtest_filter=PlantedProcesses.SupervisorDropsACrashDuringItsBackoff";
  Result found =
      run(absl::StrCat(binary(), filter, " --twinloop_shrink --twinloop_shrink_seconds=10 --twinloop_replay_dir=", dir));
  ASSERT_NE(found.exit_code, 0) << "the default sweep did not find the bug:\n" << found.output;
  const std::string seed = first_match(found.output, R"(FAILED at seed (\d+))");
  ASSERT_FALSE(seed.empty()) << found.output;
  EXPECT_THAT(found.output, HasSubstr("what failed (did not converge)"));
  EXPECT_THAT(found.output, HasSubstr(kCheck));
  EXPECT_THAT(found.output, HasSubstr("\nfaults (virtual time order):\n  t="));
  EXPECT_THAT(found.output, HasSubstr("'worker' on host 'localhost' crashes: SIG"));

  // The printed command reproduces this seed's failure.
  const std::string command = first_match(found.output, R"((\S+ --gtest_filter=\S+ --twinloop_seed=\d+))");
  ASSERT_FALSE(command.empty()) << found.output;
  Result again = run(absl::StrCat(command, " --twinloop_replay_dir=", dir));
  EXPECT_NE(again.exit_code, 0) << again.output;
  EXPECT_EQ(first_match(again.output, R"(FAILED at seed (\d+))"), seed) << again.output;
  EXPECT_THAT(again.output, HasSubstr(kCheck));

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
  EXPECT_GE(fault_draws(minimal), 1u) << "a run without process faults cannot fail";

  // Replaying the minimal file fails as it records.
  Result replayed =
      run(absl::StrCat(binary(), filter, " --twinloop_replay=", minimal_path, " --twinloop_replay_dir=", dir));
  EXPECT_NE(replayed.exit_code, 0) << "the minimal replay does not fail:\n" << replayed.output;
  EXPECT_THAT(replayed.output, HasSubstr("recorded failure reproduced (did not converge)")) << replayed.output;
  EXPECT_THAT(replayed.output, HasSubstr(kCheck)) << replayed.output;
}

TEST(PlantedSupervisor, FixedTwinPassesTheDefaultSweep) {
  Result r = run(absl::StrCat(binary(), " --gtest_filter=PlantedProcesses.SupervisorSerializesItsBackoff",
                              " --twinloop_replay_dir=", ::twinloop::test_util::test_dir("planted-supervisor-fixed")));
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("[  PASSED  ] 1 test"));
}

}  // namespace
}  // namespace twinloop::planted
