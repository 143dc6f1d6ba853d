// sim/strategy.h's Strategy and draw_source, directly: the pieces the
// strategy measurements of docs/exploration.md rest on.
//  - pct runs the h highest-priority sources fast, h > 1 in some runs, and
//    every source but one in a third of the runs;
//  - in half the runs the non-default values come from the upper half;
//  - a ChainScope makes a draw's source its chain (pctcp, urw) while pct
//    keeps the drawing task.
#include <cstdint>
#include <map>
#include <set>

#include "gtest/gtest.h"
#include "twinloop/sim/choice.h"
#include "twinloop/sim/strategy.h"

namespace twinloop::sim {
namespace {

constexpr uint64_t kN = 1000;

StrategyOptions pct_over(int sources, uint64_t draws_each, StrategyKind kind = StrategyKind::kPct) {
  Pilot pilot;
  for (int s = 1; s <= sources; ++s) {
    pilot.source_draws[static_cast<uint64_t>(s)] = draws_each;
    pilot.task_draws[static_cast<uint64_t>(s)] = draws_each;
    pilot.draws += draws_each;
  }
  return strategy_options(kind, pilot);
}

// The portfolio rotates uniform, pct, pctcp, urw by seed; a networked test
// (chains named in the pilot run) gets pctcp in pct's place.
TEST(StrategyUnit, ThePortfolioPutsPctcpInPctsPlaceWhenThereAreChains) {
  for (uint64_t seed = 0; seed < 8; ++seed) {
    const StrategyKind plain = portfolio_strategy(seed, false);
    const StrategyKind chains = portfolio_strategy(seed, true);
    EXPECT_EQ(plain, static_cast<StrategyKind>(seed % 4)) << "seed " << seed;
    EXPECT_EQ(chains, seed % 4 == 1 ? StrategyKind::kPctcp : plain) << "seed " << seed;
  }
}

// How many of `sources` pct sources answer 0 (run fast) in the run of
// `seed`: the first draw of each, before any change point can fall (k is
// large).
int fast_sources(int sources, uint64_t seed) {
  Strategy s(pct_over(sources, 1'000'000), seed);
  const ChoiceSource choices(seed);
  int zeros = 0;
  for (uint64_t src = 1; src <= static_cast<uint64_t>(sources); ++src) {
    zeros += s.value(choices, mix64(src), src, kN, src - 1) == 0;
  }
  return zeros;
}

TEST(StrategyUnit, PctRunsMoreThanOneSourceFastInSomeRuns) {
  // Three sources. With only the highest source fast (h = 1), no run has
  // two sources answering 0.
  int two_fast = 0;
  constexpr int kRuns = 400;
  for (uint64_t seed = 0; seed < kRuns; ++seed) two_fast += fast_sources(3, seed) == 2;
  // h = 2 in about two thirds of the runs (n = 3: h is 1, or 2 both as
  // "2 .. n - 1" and as "all but one").
  EXPECT_GT(two_fast, kRuns / 2) << two_fast;
  EXPECT_LT(two_fast, 5 * kRuns / 6) << two_fast;
}

TEST(StrategyUnit, PctRunsEverySourceButOneFastInAThirdOfTheRuns) {
  // Six sources: "all but one" is h = 5, a third of the runs, plus the
  // quarter of the "2 .. 5" third that draws 5: 5/12 of the runs. Without
  // the all-but-one shape it would be 1/8.
  int one_slow = 0;
  constexpr int kRuns = 600;
  for (uint64_t seed = 0; seed < kRuns; ++seed) one_slow += fast_sources(6, seed) == 5;
  EXPECT_GT(one_slow, kRuns / 3) << one_slow;
  EXPECT_LT(one_slow, kRuns / 2) << one_slow;
}

TEST(StrategyUnit, InHalfTheRunsNonDefaultValuesAreFromTheUpperHalf) {
  int upper_runs = 0;
  constexpr int kRuns = 400;
  for (uint64_t seed = 0; seed < kRuns; ++seed) {
    Strategy s(pct_over(3, 1'000'000), seed);
    const ChoiceSource choices(seed);
    int non_default = 0;
    bool all_upper = true;
    for (uint64_t i = 0; i < 30; ++i) {
      const uint64_t src = 1 + i % 3;
      const uint64_t v = s.value(choices, mix64(i + 77), src, kN, i);
      if (v == 0) continue;
      ++non_default;
      all_upper = all_upper && v >= kN / 2;
    }
    ASSERT_GE(non_default, 10) << "seed " << seed;
    upper_runs += all_upper;
  }
  // Without the upper half, 10+ uniform values over [1, n) all >= n/2 would
  // happen in about 1 run in 1,000.
  EXPECT_GT(upper_runs, kRuns / 4) << upper_runs;
  EXPECT_LT(upper_runs, 3 * kRuns / 4) << upper_runs;
}

TEST(StrategyUnit, AChainScopeNamesTheChainAndPctKeepsTheTask) {
  constexpr uint64_t kTask = 12345;
  bool named = true;
  EXPECT_EQ(draw_source("net.latency_us", kTask, &named), kTask);
  EXPECT_FALSE(named);
  uint64_t chain1 = 0;
  uint64_t chain2 = 0;
  {
    const ChainScope scope("net.connection", 1);
    chain1 = draw_source("net.latency_us", kTask, &named);
    EXPECT_TRUE(named);
    {
      const ChainScope inner("net.connection", 2);
      chain2 = draw_source("net.latency_us", kTask, &named);
    }
    EXPECT_EQ(draw_source("net.latency_us", kTask, &named), chain1);  // the outer scope again
  }
  EXPECT_NE(chain1, kTask);
  EXPECT_NE(chain1, chain2);
  EXPECT_EQ(draw_source("net.latency_us", kTask, &named), kTask);  // no scope left
  EXPECT_FALSE(named);

  // One task drawing for two chains: pct decides by the task (the two
  // chains share its fate in every run), pctcp by the chain (some run makes
  // one fast and the other slow).
  Pilot pilot;
  pilot.draws = 1'000'000;
  pilot.task_draws[kTask] = 2;
  pilot.task_draws[kTask + 1] = 2;
  pilot.source_draws[chain1] = 1;
  pilot.source_draws[chain2] = 1;
  pilot.source_draws[kTask + 1] = 2;
  pilot.chains_named = true;
  int pct_split = 0;
  int pctcp_split = 0;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    for (StrategyKind kind : {StrategyKind::kPct, StrategyKind::kPctcp}) {
      Strategy s(strategy_options(kind, pilot), seed);
      const ChoiceSource choices(seed);
      uint64_t v1 = 0;
      uint64_t v2 = 0;
      {
        const ChainScope scope("net.connection", 1);
        v1 = s.value(choices, 1, draw_source("net.latency_us", kTask), kN, 0);
      }
      {
        const ChainScope scope("net.connection", 2);
        v2 = s.value(choices, 2, draw_source("net.latency_us", kTask), kN, 1);
      }
      const bool split = (v1 == 0) != (v2 == 0);
      (kind == StrategyKind::kPct ? pct_split : pctcp_split) += split;
    }
  }
  EXPECT_EQ(pct_split, 0);
  EXPECT_GT(pctcp_split, 20);
}

}  // namespace
}  // namespace twinloop::sim
