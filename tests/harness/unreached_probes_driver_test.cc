// The end-of-binary probe report (sim/harness/testing.cc,
// report_unreached_probes; docs/exploration.md, "Probes no test reached"):
// runs unreached_probes_subject_test as a subprocess and checks that the
// declared probes no test reached are listed by name with file:line, that
// the binary fails only with --twinloop_require_probes on and the whole
// binary run, and that it says why it did not fail otherwise.
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

const std::string kSubject = test_util::runfile_from_env("UNREACHED_PROBES_SUBJECT_TEST");
constexpr char kFile[] = "tests/harness/unreached_probes_subject_test.cc";

Result run(const std::string& args, const std::string& env = "") {
  return test_util::run_command(absl::StrCat(kSubject, " --twinloop_seeds=20 ", args), env);
}

void expect_listed(const Result& r) {
  EXPECT_THAT(r.output, HasSubstr("twinloop: probes no test of this binary reached (3 of 7 declared):"));
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("  sometimes 'unreached: a sometimes in dead code' at ", kFile, ":14\n")));
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("  reachable 'unreached: a reachable in dead code' at ", kFile, ":15\n")));
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("  always 'unreached: an always in dead code' at ", kFile, ":16\n")));
  EXPECT_THAT(r.output, HasSubstr(absl::StrCat("unreachable probes never reached (as they should be; listed so that a dead "
                                               "one shows):\n  unreachable 'unreached: an unreachable in dead code' at ",
                                               kFile, ":17\n")));
  EXPECT_THAT(r.output, Not(HasSubstr("'reached: ")));
}

TEST(UnreachedProbes, ListedWithoutFailingWhenNotRequired) {
  Result r = run("");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  expect_listed(r);
  EXPECT_THAT(r.output, HasSubstr("not failing the binary for them: --twinloop_require_probes is not on"));
}

TEST(UnreachedProbes, FailTheWholeBinaryWhenRequired) {
  Result r = run("--twinloop_require_probes");
  EXPECT_NE(r.exit_code, 0) << r.output;
  expect_listed(r);
  EXPECT_THAT(r.output, HasSubstr("FAILING the binary: --twinloop_require_probes is on and the whole binary ran"));
  // Also with worker processes: a probe only a worker reached counts as reached.
  Result jobs = run("--twinloop_require_probes --twinloop_jobs=2");
  EXPECT_NE(jobs.exit_code, 0) << jobs.output;
  expect_listed(jobs);
}

TEST(UnreachedProbes, AFilteredRunDoesNotFailAndSaysWhy) {
  Result r = run("--twinloop_require_probes --gtest_filter=Unreached.*");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  expect_listed(r);
  EXPECT_THAT(r.output, HasSubstr("not failing the binary for them: --gtest_filter=Unreached.* selected part of the "
                                  "binary, and a partial run legitimately misses probes"));
}

TEST(UnreachedProbes, AShardDoesNotFailAndSaysWhy) {
  Result r = run("--twinloop_require_probes", "GTEST_SHARD_INDEX=0 GTEST_TOTAL_SHARDS=2");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("not failing the binary for them: this is shard 1 of 2"));
}

TEST(UnreachedProbes, AFilteredRunListsWhatTheOtherTestsReach) {
  // Filtered to one test: the other test's probe is listed (and the run
  // does not fail, above), the probes this test reaches are not.
  Result r = run("--gtest_filter=Unreached.ReachesSome");
  EXPECT_THAT(r.output, HasSubstr("  reachable 'reached: in slow seeds only' at "));
  EXPECT_THAT(r.output, Not(HasSubstr("'reached: by ReachesSome'")));
}

}  // namespace
}  // namespace twinloop::harness
