// The harness's side of faults: the "did not converge" failure kind and the
// fault list of a failing run (sim/faults.h, sim/world.h).
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/harness/testing.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/world.h"

namespace twinloop::sim {
namespace {

using ::testing::HasSubstr;

World& world() { return World::of(get_running_loop()); }

Coro<void> idle_main() { co_await sleep(absl::Hours(1)); }

Coro<void> liveness_body() {
  Network::of(get_running_loop()).add_host("a", "10.0.0.1");
  world().start("a", idle_main);
  FaultProfile p;
  p.crashes_per_s = 1;
  p.restart_max = absl::Milliseconds(500);
  p.duration = absl::Seconds(3);
  world().inject(p);
  co_await sleep(absl::Seconds(3));
  co_await world().converge([] { return false; }, absl::Seconds(1), "never");
}

TEST(Converge, TheHarnessReportsItAsItsOwnKindWithTheFaults) {
  const harness::SeedOutcome o = harness::run_once(liveness_body, Options{.seed = 2});
  ASSERT_TRUE(o.failed);
  EXPECT_EQ(o.kind, harness::SeedOutcome::Kind::kDidNotConverge);
  EXPECT_STREQ(o.kind_name(), "did not converge");
  EXPECT_THAT(o.faults, HasSubstr("crash host 'a'"));
  EXPECT_THAT(o.faults, HasSubstr("restart host 'a'"));
}

}  // namespace
}  // namespace twinloop::sim
