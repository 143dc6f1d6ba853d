// The simulated backend's draws: the sites' names (sim/draw_sites.h).
#include "twinloop/sim/sim_backend.h"

#include <set>
#include <string>

#include "twinloop/api/twinloop.h"
#include "gtest/gtest.h"
#include "twinloop/sim/draw_sites.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::sim {
namespace {

// Ties three timers (loop.timer_tie), runs executor work
// (executor.latency_us), evaluates a buggify site until it fires, under step
// jitter (loop.step_jitter_us).
Coro<void> draws_at_every_site() {
  // Scheduled in one step: equal deadlines, whatever the jitter.
  for (int i = 0; i < 3; ++i) get_running_loop().call_later(absl::Milliseconds(5), [] {});
  co_await sleep(absl::Milliseconds(10));
  co_await to_thread([] {});
  for (int i = 0; i < 50; ++i) {
    if (buggify("sites.test")) break;
    co_await sleep(absl::Milliseconds(1));
  }
}

TEST(DrawSites, TheNamesReplayFilesRecord) {
  // The names are what replay files carry: they never change.
  EXPECT_EQ(draw_sites::kTimerTie, "loop.timer_tie");
  EXPECT_EQ(draw_sites::kExecutorLatencyUs, "executor.latency_us");
  EXPECT_EQ(draw_sites::kStepJitterUs, "loop.step_jitter_us");
  EXPECT_EQ(draw_sites::buggify_enabled("db.cc:12"), "buggify.enabled:db.cc:12");
  EXPECT_EQ(draw_sites::buggify_fire("db.cc:12"), "buggify.fire:db.cc:12");

  // And a run draws at exactly these sites. A seed whose buggify site is
  // enabled (the draw 3 of 4) draws at all five.
  for (uint64_t seed = 0; seed < 64; ++seed) {
    Simulation sim({.seed = seed, .step_jitter_max = absl::Microseconds(3), .record = true});
    sim.run(draws_at_every_site());
    std::set<std::string> sites;
    for (const Decision& d : sim.recording().decisions) sites.insert(d.site);
    if (!sim.backend().buggify_sites().at("sites.test").enabled) continue;
    EXPECT_EQ(sites, (std::set<std::string>{std::string(draw_sites::kTimerTie),
                                             std::string(draw_sites::kExecutorLatencyUs),
                                             std::string(draw_sites::kStepJitterUs),
                                             draw_sites::buggify_enabled("sites.test"),
                                             draw_sites::buggify_fire("sites.test")}));
    return;
  }
  FAIL() << "no seed in [0, 64) enabled the buggify site";
}

}  // namespace
}  // namespace twinloop::sim
