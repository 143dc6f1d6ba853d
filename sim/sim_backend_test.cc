// The simulated backend's draws: the sites' names (sim/draw_sites.h), the
// ranges of the choice source and of every draw (death tests of their
// checks, docs/design.md "Invariants"), the options that set a range, and
// the event trace against the recorded events.
#include "twinloop/sim/sim_backend.h"

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "twinloop/api/twinloop.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/sim/choice.h"
#include "twinloop/sim/draw_sites.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::sim {
namespace {

using ::testing::HasSubstr;

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

TEST(ChoiceSourceDeathTest, ADecisionWithoutAnswersStops) {
  const ChoiceSource choices(1);
  EXPECT_EQ(choices.value(draw_key(0, "one", 0), 1), 0u);
  EXPECT_DEATH(static_cast<void>(choices.value(draw_key(0, "none", 0), 0)),
               "^twinloop: invariant violated: a decision has at least one possible answer \\(n != 0\\) at "
               "[^ ]*sim/choice.h:[0-9]+\n");
}

Coro<uint64_t> choose_among(uint64_t n) { co_return get_running_loop().backend().choose("test.range", n); }

TEST(SimBackendDeathTest, AskingForADecisionWithoutAnswersStops) {
  EXPECT_EQ(run(choose_among(1)), 0u);
  EXPECT_DEATH(run(choose_among(0)),
               "^twinloop: invariant violated: a decision has at least one possible answer \\(n != 0\\) at "
               "[^ ]*sim/sim_backend.cc:[0-9]+: site test.range\n");
}

TEST(SimBackend, ChooserAndReplayAnswersStayInRange) {
  // A chooser's answer past the range is clamped to n - 1 (and so passes the
  // range check of every draw).
  Options o{.record = true};
  o.chooser = [](std::string_view, uint64_t n) { return n + 5; };
  Simulation chosen(o);
  EXPECT_EQ(chosen.run(choose_among(10)), 9u);
  // A replayed decision recorded with a larger n is clamped too.
  Recording r = chosen.recording();
  ASSERT_EQ(r.decisions.size(), 1u);
  r.decisions[0].n = 1000;
  r.decisions[0].value = 500;
  Options replay;
  replay.replay = std::make_shared<Recording>(r);
  Simulation replayed(replay);
  EXPECT_EQ(replayed.run(choose_among(10)), 9u);
  for (const Decision& d : replayed.recording().decisions) EXPECT_LT(d.value, d.n);
}

TEST(SimBackend, ANegativeExecutorLatencyIsRefused) {
  // It would leave executor.latency_us no answer in [0, max + 1).
  try {
    Simulation sim({.executor_latency_max = absl::Microseconds(-1)});
    FAIL() << "a negative executor_latency_max was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("executor_latency_max must not be negative (got -1us)"));
  }
  Simulation zero({.executor_latency_max = absl::ZeroDuration()});
  zero.run([]() -> Coro<void> { co_await to_thread([] {}); }());
  EXPECT_EQ(zero.elapsed(), absl::ZeroDuration());
}

// Tasks that step, sleep (timers fall due) and schedule callbacks: events of
// several kinds, more of them than the trace keeps.
Coro<void> many_events() {
  std::vector<Task<void>> tasks;
  for (int t = 0; t < 4; ++t) {
    tasks.push_back(create_task([](int t) -> Coro<void> {
      for (int i = 0; i < 40; ++i) {
        get_running_loop().call_soon([] {});
        co_await sleep(absl::Microseconds(1 + (t + i) % 3));
      }
    }(t)));
  }
  for (Task<void>& t : tasks) co_await t;
}

TEST(SimBackend, TheTraceIsTheTailOfTheRecordedEvents) {
  // on_event writes each event into the trace and, when recording, into
  // the recording, field by field in both (sim_backend.cc says why): the
  // two agree on every field, the last hash is the run's event hash, and
  // the trace does not depend on recording.
  Simulation recorded({.seed = 7, .step_jitter_max = absl::Microseconds(2), .record = true});
  recorded.run(many_events());
  const std::vector<EventRecord>& all = recorded.backend().events();
  ASSERT_GT(all.size(), SimBackend::kTraceSize);
  EXPECT_EQ(all.size(), recorded.event_count());
  EXPECT_EQ(all.back().hash, recorded.event_hash());
  std::set<internal::EventKind> kinds;
  for (const EventRecord& e : all) kinds.insert(e.kind);
  EXPECT_TRUE(kinds.count(internal::EventKind::kTaskStep));
  EXPECT_TRUE(kinds.count(internal::EventKind::kCallback));
  const std::vector<EventRecord> tail(all.end() - SimBackend::kTraceSize, all.end());
  EXPECT_EQ(recorded.last_events(), tail);

  Simulation plain({.seed = 7, .step_jitter_max = absl::Microseconds(2)});
  plain.run(many_events());
  EXPECT_TRUE(plain.backend().events().empty());
  EXPECT_EQ(plain.last_events(), tail);
  EXPECT_EQ(plain.event_hash(), recorded.event_hash());
}

}  // namespace
}  // namespace twinloop::sim
