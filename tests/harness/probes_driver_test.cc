// Probes under the harness, end to end (api/probes.h, docs/exploration.md):
// runs probe_subject_test as a subprocess and checks that a sweep lists the
// must-hit probes never hit and fails on them when required (by the flag,
// the variable, or by default in a CI-style run), that a failed always and a
// reached unreachable fail their run with the probe's name and replay, and
// that a fault profile whose faults never fire is named.
#include <regex>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/tests/subprocess.h"

namespace twinloop::harness {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Result = ::twinloop::test_util::CommandResult;

const std::string kSubject = test_util::runfile_from_env("PROBE_SUBJECT_TEST");

Result run(const std::string& args, const std::string& env = "") {
  return test_util::run_command(absl::StrCat(kSubject, " ", args), env);
}

std::string tmp_dir() {
  const char* d = std::getenv("TEST_TMPDIR");
  return d ? d : "/tmp";
}

TEST(RequireProbes, ASometimesThatNeverHoldsFailsTheSweepAndIsNamed) {
  Result r = run("--gtest_filter=Probes.SometimesNeverHolds --twinloop_seeds=50 --twinloop_require_probes");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("must-hit probe was never hit in 50 seeds"));
  EXPECT_THAT(r.output, HasSubstr("never hit: sometimes 'subject: the executor takes 11 ms'"));
}

TEST(RequireProbes, WithoutTheFlagItIsOnlyListed) {
  Result r = run("--gtest_filter=Probes.SometimesNeverHolds --twinloop_seeds=50");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("Probes.SometimesNeverHolds: probes: "));
  EXPECT_THAT(r.output, HasSubstr("never hit: sometimes 'subject: the executor takes 11 ms'"));
}

TEST(RequireProbes, OnByDefaultInACiStyleRunAndTheVariableTurnsItOff) {
  // Under Bazel (TEST_TARGET set) with at least 100 seeds.
  Result ci = run("--gtest_filter=Probes.SometimesNeverHolds", "TEST_TARGET=//tests/harness:probe_subject_test");
  EXPECT_NE(ci.exit_code, 0) << ci.output;
  EXPECT_THAT(ci.output, HasSubstr("must-hit probe was never hit in 100 seeds"));
  Result few = run("--gtest_filter=Probes.SometimesNeverHolds --twinloop_seeds=99",
                   "TEST_TARGET=//tests/harness:probe_subject_test");
  EXPECT_EQ(few.exit_code, 0) << few.output;
  Result off = run("--gtest_filter=Probes.SometimesNeverHolds",
                   "TEST_TARGET=//tests/harness:probe_subject_test TWINLOOP_REQUIRE_PROBES=0");
  EXPECT_EQ(off.exit_code, 0) << off.output;
}

TEST(RequireProbes, ADrawSiteAlwaysAtItsDefaultIsListedButNotRequired) {
  // Probes.DrawAlwaysZero draws a site whose answer is always 0.
  Result r = run("--gtest_filter=Probes.DrawAlwaysZero --twinloop_seeds=30 --twinloop_require_probes");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("drawn, always 0: subject.always_zero"));
  EXPECT_THAT(r.output, Not(HasSubstr("never hit")));
}

TEST(RequireProbes, PassesWhenTheSometimesHolds) {
  Result r = run("--gtest_filter=Probes.SometimesHolds --twinloop_seeds=50 --twinloop_require_probes");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, Not(HasSubstr("never hit")));
}

TEST(RequireProbes, TheWorkersReportTheirProbes) {
  // jobs > 1: the runs happen in worker processes; their first hits reach
  // the parent (else the sometimes that holds would be "never hit").
  Result holds = run("--gtest_filter=Probes.SometimesHolds --twinloop_seeds=200 --twinloop_jobs=2 "
                     "--twinloop_require_probes");
  EXPECT_EQ(holds.exit_code, 0) << holds.output;
  EXPECT_THAT(holds.output, HasSubstr("Probes.SometimesHolds: 200 seeds"));
  Result never = run("--gtest_filter=Probes.SometimesNeverHolds --twinloop_seeds=200 --twinloop_jobs=2 "
                     "--twinloop_require_probes");
  EXPECT_NE(never.exit_code, 0) << never.output;
  EXPECT_THAT(never.output, HasSubstr("never hit: sometimes 'subject: the executor takes 11 ms'"));
}

TEST(RequireProbes, AFaultKindThatNeverFiresIsNamed) {
  Result r = run("--gtest_filter=Probes.FaultsNeverFire --twinloop_seeds=20 --twinloop_require_probes");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("sometimes 'fault fired: crashes'"));
}

TEST(RequireProbes, TheFlagIsKnownToTheParser) {
  Result r = run("--twinloop_require_probe=1");
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("did you mean --twinloop_require_probes?"));
  Result bad = run("--twinloop_require_probes=maybe");
  EXPECT_NE(bad.exit_code, 0) << bad.output;
  EXPECT_THAT(bad.output, HasSubstr("bad value 'maybe' for --twinloop_require_probes"));
}

std::string replay_file(const std::string& output) {
  std::regex re(R"(replay file: (\S+))");
  std::smatch m;
  return std::regex_search(output, m, re) ? std::string(m[1]) : "";
}

TEST(ProbeFailures, AFailedAlwaysFailsItsRunWithTheNameAndReplays) {
  Result r = run("--gtest_filter=Probes.AlwaysFails --twinloop_replay_dir=" + tmp_dir());
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("what failed (probe):"));
  EXPECT_THAT(r.output, HasSubstr("always probe 'subject: the executor answers within 9 ms' failed at"));
  const std::string file = replay_file(r.output);
  ASSERT_FALSE(file.empty()) << r.output;
  Result replay = run("--twinloop_replay=" + file);
  EXPECT_NE(replay.exit_code, 0) << replay.output;
  EXPECT_THAT(replay.output, HasSubstr("recorded failure reproduced (probe)"));
}

TEST(ProbeFailures, AReachedUnreachableFailsItsRun) {
  Result r = run("--gtest_filter=Probes.UnreachableReached --twinloop_replay_dir=" + tmp_dir());
  EXPECT_NE(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("what failed (probe):"));
  EXPECT_THAT(r.output, HasSubstr("unreachable probe 'subject: a 9 ms executor' was reached at"));
}

}  // namespace
}  // namespace twinloop::harness
