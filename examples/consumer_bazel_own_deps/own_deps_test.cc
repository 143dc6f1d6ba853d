// twinloop's //third_party targets resolve to this project's own Abseil and
// GoogleTest repositories (twinloop_dependencies(absl_repo = ...,
// googletest_repo = ...) in WORKSPACE). The stand-ins under own/ add a
// define to everything that depends on them; this test depends on twinloop's
// targets only, so it sees the defines only if twinloop's targets are built
// against the project's repositories.
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/harness/testing.h"

#ifndef OWN_ABSL_STANDIN
#error "twinloop's //third_party:absl is not this project's @com_google_absl"
#endif
#ifndef OWN_GOOGLETEST_STANDIN
#error "twinloop's //third_party:gtest is not this project's @com_google_googletest"
#endif

TWINLOOP_SIM_TEST(OwnDeps, TwinloopRunsOnTheProjectsAbseilAndGoogleTest) {
  const absl::Time start = twinloop::get_running_loop().time();
  co_await twinloop::sleep(absl::Milliseconds(3));
  EXPECT_EQ(twinloop::get_running_loop().time() - start, absl::Milliseconds(3));
}
