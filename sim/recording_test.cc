// Recordings: what a simulated run decided and did, replaying it (exactly,
// across program changes, with the default fallback used by shrinking, with
// an external chooser), divergence reports, and buggify's decisions.
#include "twinloop/sim/recording.h"

#include <map>
#include <memory>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "twinloop/api/twinloop.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/real/run.h"
#include "twinloop/sim/draw_sites.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::sim {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

// Three tasks whose sleeps tie (the timer tie-break is drawn) plus executor
// work (its latency is drawn). `extra` adds an unrelated draw site and task
// (a program change that keeps every original site).
Coro<std::vector<int>> workload(bool extra) {
  auto order = std::make_shared<std::vector<int>>();
  std::vector<Task<void>> tasks;
  for (int i = 0; i < 3; ++i) {
    tasks.push_back(create_task([](std::shared_ptr<std::vector<int>> order, int i) -> Coro<void> {
      co_await sleep(absl::Milliseconds(5));
      order->push_back(i);
      co_await to_thread([] {});
      co_await sleep(absl::Milliseconds(5));
      order->push_back(10 + i);
    }(order, i)));
  }
  if (extra) {
    EventLoop& loop = get_running_loop();
    static_cast<void>(loop.backend().choose("test.unrelated_site", 100));
  }
  for (Task<void>& t : tasks) co_await t;
  co_return *order;
}

Recording record_run(uint64_t seed, bool extra, std::vector<int>* result = nullptr) {
  Simulation sim({.seed = seed, .record = true});
  std::vector<int> r = sim.run(workload(extra));
  if (result) *result = r;
  return sim.recording();
}

TEST(Recording, RecordingDoesNotChangeTheRun) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    Simulation plain({.seed = seed});
    std::vector<int> a = plain.run(workload(false));
    Simulation recorded({.seed = seed, .record = true});
    std::vector<int> b = recorded.run(workload(false));
    EXPECT_EQ(a, b);
    EXPECT_EQ(plain.event_hash(), recorded.event_hash());
    const Recording r = recorded.recording();
    EXPECT_EQ(r.events.size(), recorded.event_count());
    EXPECT_EQ(r.events.back().hash, recorded.event_hash());
    EXPECT_EQ(r.decisions.size(), recorded.choices_made());
  }
}

TEST(Recording, DecisionsAreKeyedByTaskSiteAndOccurrence) {
  const Recording r = record_run(3, false);
  ASSERT_FALSE(r.decisions.empty());
  std::map<std::pair<std::string, std::string>, uint64_t> next;
  size_t ties = 0;
  std::set<std::string> latency_tasks;
  for (const Decision& d : r.decisions) {
    EXPECT_EQ(d.occurrence, next[std::make_pair(d.task, d.site)]++) << d.task << " " << d.site;
    EXPECT_LT(d.value, d.n);
    if (d.site == draw_sites::kTimerTie) {
      ++ties;
      // A tie's order is decided on behalf of the task that scheduled the
      // first of the tied timers: here one of the three sleeping tasks.
      EXPECT_THAT(d.task, ::testing::StartsWith("/workload#0/operator()#"));
    }
    if (d.site == draw_sites::kExecutorLatencyUs) latency_tasks.insert(d.task);
  }
  EXPECT_GT(ties, 0u);
  // Each of the three tasks draws its own executor latency, under its own
  // path: the lambda's function name, its index among its siblings.
  EXPECT_THAT(latency_tasks, ::testing::ElementsAre("/workload#0/operator()#0", "/workload#0/operator()#1",
                                                    "/workload#0/operator()#2"));
}

TEST(Divergence, TheSameEventWithAnotherHashSaysTheHashDiffers) {
  const EventRecord expected{.time_ns = 3'000'000, .kind = internal::EventKind::kCallback, .id = 7, .hash = 0x1111};
  EventRecord actual = expected;
  actual.hash = 0xabcdef;
  const std::optional<Divergence> d = first_divergence({expected}, {actual});
  ASSERT_TRUE(d.has_value());
  const std::string s = describe_divergence(*d);
  EXPECT_THAT(s, HasSubstr("at event 0"));
  EXPECT_THAT(s, HasSubstr("t=3ms callback #7"));
  EXPECT_THAT(s, HasSubstr("running event hash"));
  EXPECT_THAT(s, HasSubstr("0000000000001111"));
  EXPECT_THAT(s, HasSubstr("0000000000abcdef"));
  EXPECT_THAT(s, HasSubstr("virtual time, kind and id"));
  EXPECT_THAT(s, Not(HasSubstr("expected t=3ms callback #7, got t=3ms callback #7")));
  // Events that differ are still shown side by side.
  actual.id = 8;
  EXPECT_THAT(describe_divergence(*first_divergence({expected}, {actual})),
              HasSubstr("expected t=3ms callback #7, got t=3ms callback #8"));
}

TEST(Replay, ReExecutesExactlyEvenWithAnotherSeed) {
  std::vector<int> original;
  const Recording r = record_run(11, false, &original);
  for (uint64_t other_seed : {0u, 1u, 99u}) {
    Options o = options_for_replay(r);
    o.seed = other_seed;  // the decisions, not the seed, decide
    o.replay = std::make_shared<Recording>(r);
    Simulation sim(o);
    EXPECT_EQ(sim.run(workload(false)), original);
    EXPECT_FALSE(sim.divergence().has_value()) << describe_divergence(*sim.divergence());
    EXPECT_EQ(sim.recording().decisions, r.decisions);
  }
}

TEST(Replay, SurvivesAnUnrelatedProgramChange) {
  // Find a seed whose schedule differs from the default one, so that
  // reproducing it needs the recorded decisions.
  std::vector<int> natural;
  {
    Simulation sim({.seed = 0, .shuffle_equal_timers = false, .record = true});
    natural = sim.run(workload(false));
  }
  uint64_t seed = 1;
  std::vector<int> original;
  Recording r;
  for (; seed < 100; ++seed) {
    r = record_run(seed, false, &original);
    if (original != natural) break;
  }
  ASSERT_NE(original, natural);
  Options o = options_for_replay(r);
  o.replay = std::make_shared<Recording>(r);
  Simulation sim(o);
  EXPECT_EQ(sim.run(workload(/*extra=*/true)), original);
}

TEST(Replay, ASeedSurvivesAnUnrelatedProgramChangeToo) {
  // Decision values are a function of (seed, task, site, occurrence), so the
  // extra draw in the main task leaves every seed's schedule as it was.
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Simulation a({.seed = seed});
    Simulation b({.seed = seed});
    EXPECT_EQ(a.run(workload(false)), b.run(workload(/*extra=*/true))) << "seed " << seed;
  }
}

// A replay file's strategy options out of range are a damaged file: a loud
// error naming the option, never a value clamped into range.
TEST(Replay, AStrategyOptionOutOfRangeIsAnError) {
  const auto error_of = [](const std::string& name, int64_t v) -> std::string {
    Recording r = record_run(5, false);
    r.options["strategy"] = 1;  // pct
    r.options[name] = v;
    try {
      options_for_replay(r);
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "no error";
  };
  EXPECT_THAT(error_of("strategy_depth", 0), HasSubstr("strategy_depth is 0: expected at least 1"));
  EXPECT_THAT(error_of("strategy_draws", -1), HasSubstr("strategy_draws is -1: expected at least 0"));
  EXPECT_THAT(error_of("strategy_sources", -2), HasSubstr("strategy_sources is -2"));
  EXPECT_THAT(error_of("strategy_source_00000000000000ff", -1), HasSubstr("strategy_source_00000000000000ff is -1"));
  EXPECT_EQ(error_of("strategy_depth", 2), "no error");
}

TEST(Replay, ReportsTheFirstDivergentEvent) {
  Recording r = record_run(5, false);
  // A recording whose 4th event is different from what the program does.
  ASSERT_GT(r.events.size(), 4u);
  r.events[3].id += 1000;
  Options o = options_for_replay(r);
  o.replay = std::make_shared<Recording>(r);
  Simulation sim(o);
  sim.run(workload(false));
  ASSERT_TRUE(sim.divergence().has_value());
  EXPECT_EQ(sim.divergence()->index, 3u);
  EXPECT_THAT(describe_divergence(*sim.divergence()), HasSubstr("at event 3"));
}

TEST(Replay, DefaultFallbackAnswersZero) {
  Recording empty;  // no decisions at all
  Options o;
  o.seed = 1234;
  o.replay = std::make_shared<Recording>(empty);
  o.fallback = Options::Fallback::kDefault;
  Simulation sim(o);
  sim.run(workload(false));
  const Recording r = sim.recording();
  ASSERT_FALSE(r.decisions.empty());
  EXPECT_EQ(non_default_choices(r.decisions), 0u);
}

TEST(Replay, ChooserAnswersEveryDrawClamped) {
  std::vector<std::string> sites;
  Options o;
  o.record = true;
  o.chooser = [&](std::string_view site, uint64_t n) {
    sites.emplace_back(site);
    return n + 5;  // out of range: clamped to n - 1
  };
  Simulation sim(o);
  sim.run(workload(false));
  const Recording r = sim.recording();
  ASSERT_EQ(sites.size(), r.decisions.size());
  for (const Decision& d : r.decisions) EXPECT_EQ(d.value, d.n - 1);
}

// ---- buggify

Coro<int> count_faults(int evaluations) {
  int fired = 0;
  for (int i = 0; i < evaluations; ++i) {
    if (buggify("test.site")) ++fired;
    co_await sleep(absl::Milliseconds(1));
  }
  co_return fired;
}

TEST(Buggify, NeverFiresOnTheRealLoopOrOutsideALoop) {
  EXPECT_FALSE(buggify());
  EXPECT_EQ(real::run(count_faults(200)), 0);
}

TEST(Buggify, EnabledPerRunThenFiresWithAProbability) {
  int enabled_runs = 0;
  int total_fired = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    Simulation sim({.seed = seed});
    const int fired = sim.run(count_faults(100));
    const auto& sites = sim.backend().buggify_sites();
    ASSERT_EQ(sites.count("test.site"), 1u);
    const auto& s = sites.find("test.site")->second;
    EXPECT_EQ(s.evaluations, 100u);
    EXPECT_EQ(s.fired, static_cast<uint64_t>(fired));
    if (s.enabled) {
      ++enabled_runs;
      total_fired += fired;
      EXPECT_THAT(sim.buggify_summary(), HasSubstr("test.site (fired "));
    } else {
      EXPECT_EQ(fired, 0);
      EXPECT_EQ(sim.buggify_summary(), "");
    }
  }
  // 1/4 of runs enabled, 1/4 of evaluations fire: wide bounds, fixed seeds.
  EXPECT_GT(enabled_runs, 25);
  EXPECT_LT(enabled_runs, 80);
  EXPECT_GT(total_fired, enabled_runs * 100 / 8);
  EXPECT_LT(total_fired, enabled_runs * 100 / 2);
}

TEST(Buggify, SameSeedSameFaultsAndOffSwitch) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    EXPECT_EQ(run(count_faults(50), {.seed = seed}), run(count_faults(50), {.seed = seed}));
    EXPECT_EQ(run(count_faults(50), {.seed = seed, .buggify = false}), 0);
  }
}

TEST(Buggify, SitesAreKeyedBySourceLocationByDefault) {
  Simulation sim({.seed = 1});
  sim.run([]() -> Coro<void> {
    static_cast<void>(buggify());
    co_return;
  }());
  ASSERT_EQ(sim.backend().buggify_sites().size(), 1u);
  EXPECT_THAT(sim.backend().buggify_sites().begin()->first, HasSubstr("sim/recording_test.cc:"));
}

TEST(Buggify, DecisionsAreRecordedAndShrinkToNoFault) {
  // A seed where the site is enabled and fires.
  uint64_t seed = 0;
  for (; seed < 200; ++seed) {
    if (run(count_faults(20), {.seed = seed}) > 0) break;
  }
  Simulation sim({.seed = seed, .record = true});
  ASSERT_GT(sim.run(count_faults(20)), 0);
  const Recording r = sim.recording();
  EXPECT_GT(non_default_choices(r.decisions), 0u);
  // The same decisions with every non-default one replaced by 0: no fault.
  Recording zero = r;
  for (Decision& d : zero.decisions) d.value = 0;
  Options o = options_for_replay(zero);
  o.replay = std::make_shared<Recording>(zero);
  EXPECT_EQ(Simulation(o).run(count_faults(20)), 0);
}

}  // namespace
}  // namespace twinloop::sim
