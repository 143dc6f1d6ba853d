// Simulated tests whose probes hold, never hold or fail, for
// probes_driver_test (tagged "manual": some fail on purpose).
#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/harness/testing.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/world.h"

namespace twinloop::probe_subject {
namespace {

// How long the executor took (a draw: 0..10 ms).
Coro<absl::Duration> executor_latency() {
  EventLoop& loop = get_running_loop();
  const absl::Time t0 = loop.time();
  co_await to_thread([] {});
  co_return loop.time() - t0;
}

// Holds in about half of the seeds.
TWINLOOP_SIM_TEST(Probes, SometimesHolds) {
  const absl::Duration d = co_await executor_latency();
  TWINLOOP_SOMETIMES(d > absl::Milliseconds(5), "subject: the executor is slow");
}

// Never holds: the executor never takes 11 ms.
TWINLOOP_SIM_TEST(Probes, SometimesNeverHolds) {
  const absl::Duration d = co_await executor_latency();
  TWINLOOP_SOMETIMES(d > absl::Milliseconds(11), "subject: the executor takes 11 ms");
}

// Fails in the seeds where the executor takes more than 9 ms.
TWINLOOP_SIM_TEST(Probes, AlwaysFails) {
  const absl::Duration d = co_await executor_latency();
  try {
    TWINLOOP_ALWAYS(d <= absl::Milliseconds(9), "subject: the executor answers within 9 ms");
  } catch (const AssertionError&) {
    // Caught: the run fails all the same.
  }
}

TWINLOOP_SIM_TEST(Probes, UnreachableReached) {
  const absl::Duration d = co_await executor_latency();
  if (d > absl::Milliseconds(9)) TWINLOOP_UNREACHABLE("subject: a 9 ms executor");
}

// Every draw answers 0 (a chooser): the site's built-in probe is listed as
// "drawn, always 0" but is no must-hit.
TWINLOOP_SIM_TEST_WITH_OPTIONS(Probes, DrawAlwaysZero,
                               (sim::Options{.chooser = [](std::string_view, uint64_t) -> uint64_t { return 0; }})) {
  EXPECT_EQ(get_running_loop().backend().choose("subject.always_zero", 4), 0u);
  co_return;
}

Coro<void> idle_main() { co_await sleep(absl::Hours(1)); }

// Crashes at a rate too low to fire in 10 s: "fault fired: crashes" is
// never hit.
TWINLOOP_SIM_TEST(Probes, FaultsNeverFire) {
  sim::Network::of(get_running_loop()).add_host("a", "10.0.0.1");
  sim::World& world = sim::World::of(get_running_loop());
  world.start("a", idle_main);
  sim::FaultProfile p;
  p.crashes_per_s = 1e-6;
  p.duration = absl::Seconds(10);
  world.inject(p);
  co_await sleep(absl::Seconds(11));
  world.stop_injecting();
}

}  // namespace
}  // namespace twinloop::probe_subject
