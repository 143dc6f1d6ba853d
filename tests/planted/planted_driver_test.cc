// Acceptance of the simulation harness, end to end: runs the planted-bug
// tests (which fail on purpose) as subprocesses and checks that
//  - the sweep finds each bug within its default seed count;
//  - the printed command reproduces exactly that failure;
//  - with --twinloop_shrink, the minimal replay file has strictly fewer
//    non-default choices than the original and, replayed, fails exactly as
//    it records;
//  - a replay file (and a seed) recorded before an unrelated edit (an extra
//    task, to_thread call or timer, first in the test body) still
//    reproduces the failure after it (and reports where the runs diverge);
//  - the determinism self-check flags the wall-clock-dependent test and
//    passes on deterministic ones.
#include <cstdio>
#include <cstdlib>
#include <cctype>
#include <filesystem>
#include <regex>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/tests/subprocess.h"
#include "twinloop/sim/harness/replay_file.h"

namespace twinloop::planted {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using Result = ::twinloop::test_util::CommandResult;

Result run(const std::string& command) { return ::twinloop::test_util::run_command(command); }

std::string runfile(const std::string& path) {
  // The BUILD target names each binary in a variable, its file name in upper
  // case ("tests/planted/planted_bugs_test" -> $PLANTED_BUGS_TEST), set to its
  // $(rootpath): found whether twinloop is the main repository or an external
  // one (tests/subprocess.h).
  std::string var = std::filesystem::path(path).filename().string();
  for (char& c : var) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return ::twinloop::test_util::runfile_from_env(var.c_str());
}

std::string out_dir(const std::string& name) {
  const char* tmp = std::getenv("TEST_TMPDIR");
  std::string dir = absl::StrCat(tmp ? tmp : "/tmp", "/planted-", name);
  std::filesystem::create_directories(dir);
  return dir;
}

// The reproduce command that names the seed (the binary form).
std::string seed_command(const std::string& output) {
  std::regex re(R"((\S+ --gtest_filter=\S+ --twinloop_seed=\d+))");
  std::smatch m;
  if (std::regex_search(output, m, re)) return m[1];
  return "";
}

// The value after "<label>: " at the start of a line.
std::string field(const std::string& output, const std::string& label) {
  std::regex re("\n" + label + R"(: (\S+))");
  std::smatch m;
  if (std::regex_search(output, m, re)) return m[1];
  return "";
}

std::string failed_seed(const std::string& output) {
  std::regex re(R"(FAILED at seed (\d+))");
  std::smatch m;
  if (std::regex_search(output, m, re)) return m[1];
  return "";
}

class PlantedBug : public ::testing::TestWithParam<const char*> {};

TEST_P(PlantedBug, FoundReproducedAndShrunk) {
  const std::string name = GetParam();
  const std::string binary = runfile("tests/planted/planted_bugs_test");
  const std::string dir = out_dir(name);
  // Default seed count: no --twinloop_seeds.
  Result found = run(absl::StrCat(binary, " --gtest_filter=Planted.", name, " --twinloop_shrink",
                                  " --twinloop_shrink_seconds=20 --twinloop_replay_dir=", dir));
  ASSERT_NE(found.exit_code, 0) << "the planted bug was not found:\n" << found.output;
  const std::string seed = failed_seed(found.output);
  ASSERT_FALSE(seed.empty()) << found.output;
  EXPECT_THAT(found.output, HasSubstr("what failed"));
  EXPECT_THAT(found.output, HasSubstr("last "));
  EXPECT_THAT(found.output, HasSubstr("reproduce:"));

  // The printed command reproduces exactly this failure.
  const std::string command = seed_command(found.output);
  ASSERT_FALSE(command.empty()) << found.output;
  Result again = run(absl::StrCat(command, " --twinloop_replay_dir=", dir));
  EXPECT_NE(again.exit_code, 0) << again.output;
  EXPECT_EQ(failed_seed(again.output), seed) << again.output;

  // Shrinking: strictly fewer non-default choices, and still failing.
  const std::string original_path = field(found.output, "replay file");
  const std::string minimal_path = field(found.output, "minimal replay file");
  ASSERT_FALSE(original_path.empty()) << found.output;
  ASSERT_FALSE(minimal_path.empty()) << found.output;
  const sim::Recording original = sim::read_recording_file(original_path);
  const sim::Recording minimal = sim::read_recording_file(minimal_path);
  EXPECT_LT(sim::non_default_choices(minimal.decisions), sim::non_default_choices(original.decisions))
      << found.output;
  Result replayed = run(absl::StrCat(binary, " --gtest_filter=Planted.", name, " --twinloop_replay=", minimal_path,
                                     " --twinloop_replay_dir=", dir));
  EXPECT_NE(replayed.exit_code, 0) << "the minimal replay does not fail:\n" << replayed.output;
  EXPECT_THAT(replayed.output, HasSubstr("the run matches the recording")) << replayed.output;
  // The minimal file records the minimal run's own failure, so replaying it
  // fails exactly as recorded.
  EXPECT_THAT(replayed.output, HasSubstr("recorded failure reproduced (")) << replayed.output;
}

INSTANTIATE_TEST_SUITE_P(Bugs, PlantedBug,
                         ::testing::Values("LostUpdateAcrossAnAwait", "CheckThenActUnderTheWrongLock",
                                           "TimeoutLeaksAHeldLock"));

std::string failure_kind(const std::string& output) {
  std::smatch m;
  std::regex re(R"(what failed \(([^)]*)\))");
  return std::regex_search(output, m, re) ? std::string(m[1]) : std::string();
}

// A replay recorded before an unrelated edit (made first in every test body:
// an extra task, an extra to_thread call, an extra timer) still fails after
// it, the same way; so does the seed.
class PlantedBugAfterAnEdit : public ::testing::TestWithParam<std::tuple<const char*, const char*>> {};

TEST_P(PlantedBugAfterAnEdit, ReplayAndSeedStillFail) {
  const std::string name = std::get<0>(GetParam());
  const std::string edit = std::get<1>(GetParam());
  const std::string dir = out_dir(absl::StrCat(name, "-", edit));
  Result found = run(absl::StrCat(runfile("tests/planted/planted_bugs_test"), " --gtest_filter=Planted.", name,
                                  " --twinloop_replay_dir=", dir));
  ASSERT_NE(found.exit_code, 0) << found.output;
  const std::string path = field(found.output, "replay file");
  const std::string seed = failed_seed(found.output);
  const std::string kind = failure_kind(found.output);
  ASSERT_FALSE(path.empty()) << found.output;
  ASSERT_FALSE(kind.empty()) << found.output;
  const std::string edited = runfile(absl::StrCat("tests/planted/planted_bugs_", edit, "_test"));

  Result replayed = run(absl::StrCat(edited, " --gtest_filter=Planted.", name, " --twinloop_replay=", path,
                                     " --twinloop_replay_dir=", dir));
  EXPECT_NE(replayed.exit_code, 0) << "the replay no longer reproduces after the edit:\n" << replayed.output;
  EXPECT_EQ(failure_kind(replayed.output), kind) << replayed.output;
  // The edit changes the event stream: the harness says where.
  EXPECT_THAT(replayed.output, HasSubstr("diverged from the recording at event")) << replayed.output;
  // And gives its verdict: the same kind of failure, whatever its message.
  EXPECT_THAT(replayed.output, HasSubstr(absl::StrCat("twinloop: replay of ", path, ": "))) << replayed.output;
  EXPECT_THAT(replayed.output, Not(HasSubstr("did not reproduce"))) << replayed.output;

  Result by_seed = run(absl::StrCat(edited, " --gtest_filter=Planted.", name, " --twinloop_seed=", seed,
                                    " --twinloop_replay_dir=", dir));
  EXPECT_NE(by_seed.exit_code, 0) << "seed " << seed << " no longer fails after the edit:\n" << by_seed.output;
  EXPECT_EQ(failure_kind(by_seed.output), kind) << by_seed.output;
}

INSTANTIATE_TEST_SUITE_P(
    Edits, PlantedBugAfterAnEdit,
    ::testing::Combine(::testing::Values("LostUpdateAcrossAnAwait", "CheckThenActUnderTheWrongLock",
                                         "TimeoutLeaksAHeldLock"),
                       ::testing::Values("extra_task", "extra_to_thread", "extra_timer")),
    [](const ::testing::TestParamInfo<std::tuple<const char*, const char*>>& info) {
      return absl::StrCat(std::get<0>(info.param), "_", std::get<1>(info.param));
    });

TEST(DeterminismCheck, FlagsTheWallClockDependentTest) {
  const std::string binary = runfile("tests/planted/nondeterministic_test");
  Result plain = run(absl::StrCat(binary, " --twinloop_seeds=20"));
  EXPECT_EQ(plain.exit_code, 0) << "without the check it passes:\n" << plain.output;
  Result checked = run(absl::StrCat(binary, " --twinloop_seeds=20 --twinloop_check_determinism=1 --twinloop_replay_dir=",
                                    out_dir("nondeterministic")));
  EXPECT_NE(checked.exit_code, 0) << checked.output;
  EXPECT_THAT(checked.output, HasSubstr("what failed (nondeterminism)"));
  EXPECT_THAT(checked.output, HasSubstr("differ at event"));
  // The report shows both runs' events side by side, where they ran, the
  // draws before them and the events before them (as loom's does).
  EXPECT_THAT(checked.output, HasSubstr("\n    previous run:  #"));
  EXPECT_THAT(checked.output, HasSubstr("\n    current run:   #"));
  EXPECT_THAT(checked.output, HasSubstr("recent events (the same in both runs):"));
  EXPECT_THAT(checked.output, HasSubstr("[task /guarded#0]"));
  EXPECT_THAT(checked.output, HasSubstr("draws before it: executor.latency_us = "));
}

TEST(DeterminismCheck, PassesOnDeterministicTests) {
  Result r = run(absl::StrCat(runfile("tests/harness/harness_test"),
                              " --gtest_filter='HarnessPasses.*' --twinloop_seeds=50 --twinloop_check_determinism=1"));
  EXPECT_EQ(r.exit_code, 0) << r.output;
}

}  // namespace
}  // namespace twinloop::planted
