// twinloop/sim/strategy.h: how a run answers its named draws when neither a
// replay nor a chooser does (issue 14, "A portfolio of strategies";
// docs/exploration.md, "Strategies").
//
// twinloop keeps asyncio's FIFO ready order, so a strategy never reorders
// the ready queue: it decides only the values of named draws (value 0 = the
// default: no delay, natural order, no fault). Each draw has a *source*: the
// drawing task (its key, sim/choice.h), or, for pctcp and urw, the chain the
// draw belongs to: the connection whose segment it times (sim/network.cc
// opens a ChainScope around its draws) or the one a site names
// ("<site>@<chain>"). The chain is metadata: draw names, keys and values of a
// uniform run are unchanged.
//
//   uniform  every draw is the seed's value (ChoiceSource::value): today's runs.
//   pct      PCT (Burckhardt et al., ASPLOS 2010) adapted to draws: each task
//            (every task of the pilot run, and any new one when it first draws)
//            gets a seeded random priority; the h highest-priority tasks draw
//            the default 0 (run at once), every other a non-default value
//            (uniform over [1, n), or over [n/2, n) in half the runs: slow
//            is then slow, as a timeout needs); at d-1 change points on the draw counter
//            (drawn uniformly over [0, k)) the drawing task drops below every
//            other priority. h is, a third of the runs each: 1 (PCT's one
//            running thread); sources - 1 (every source fast but one: a
//            message that must be overtaken needs its one connection slow);
//            uniform over [2, sources - 1] (a bug that needs two parties fast
//            and a third slow needs h = 2). Bound printed:
//            1/(3 * n * k^(d-1)) (the h = 1 third of PCT's 1/(n * k^(d-1))).
//   pctcp    PCTCP (Ozkan et al., OOPSLA 2018): as pct over chains: a
//            network draw's chain is its connection (both directions: a
//            request and its reply are one chain), any other draw's is its
//            task; when no draw names a chain it runs as pct over tasks and
//            says so. Bound printed: 1/(3 * w^2 * k^(d-1)).
//   urw      URW (Zhao et al., ASPLOS 2025) adapted: a draw of a source with r
//            remaining draws (its count in the pilot run minus those made so
//            far, at least 1), when every source together has R remaining,
//            answers the default with probability r/R, else a non-default
//            value: a source with little left is the one held back, as URW
//            schedules a task in proportion to its remaining events. Its
//            non-default values are pct's (the upper half in half the runs).
//   portfolio  per seed: uniform, pct, pctcp, urw, round robin (seed % 4), as
//            Coyote's portfolio rotates its strategies per iteration; when
//            the pilot run saw chains (a networked test), pctcp in pct's
//            place: pctcp's sources are pct's tasks except that a network
//            draw's source is its connection, and over the planted bugs it
//            was as good or better than pct on every networked one
//            (docs/exploration.md). Without chains pctcp runs as pct: the
//            rotation is then the same as before.
//
// The pilot run (k, the sources and their draw counts) is the run in which
// every draw answers 0: it does not depend on the seed range, so a seed runs
// the same in a sweep, alone and in a replay (the harness measures it once
// per test and records what a run used in its replay file as options).
#ifndef TWINLOOP_SIM_STRATEGY_H_
#define TWINLOOP_SIM_STRATEGY_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "twinloop/sim/choice.h"

namespace twinloop::sim {

enum class StrategyKind : uint8_t { kUniform = 0, kPct = 1, kPctcp = 2, kUrw = 3, kPortfolio = 4 };

// "uniform", "pct", "pctcp", "urw", "portfolio".
std::string_view strategy_name(StrategyKind kind);
std::optional<StrategyKind> parse_strategy(std::string_view name);
// The strategy the portfolio gives `seed`: uniform, pct, pctcp, urw by seed
// % 4, pctcp for pct when the pilot run saw chains (`chains_named`).
StrategyKind portfolio_strategy(uint64_t seed, bool chains_named);

// What the pilot run measured (its draws, per source).
struct Pilot {
  uint64_t draws = 0;                           // k
  std::map<uint64_t, uint64_t> source_draws;    // source (chain, else task) -> draws in the pilot
  std::map<uint64_t, uint64_t> task_draws;      // task -> draws (pct's sources), under a PilotScope
  bool chains_named = false;                    // some draw named a host or connection
};

// While it lives, draw_source counts each pilot draw's task in
// pilot->task_draws too (the harness opens one around its pilot run: the
// backend counts only source_draws).
class PilotScope {
 public:
  explicit PilotScope(Pilot* pilot);
  ~PilotScope();
  PilotScope(const PilotScope&) = delete;
  PilotScope& operator=(const PilotScope&) = delete;

 private:
  Pilot* previous_;
};

// While it lives, the draws made on this thread belong to chain `chain` (a
// connection's id, with `kind` telling ids of different tables apart) for
// pctcp and urw. Used by sim/network.cc around the draws that time a
// connection's segments. `kind` must outlive the scope (a constant). Costs
// two thread-local stores (the chain is hashed only when a non-uniform draw
// asks for its source); changes no draw of a uniform run.
class ChainScope {
 public:
  ChainScope(std::string_view kind, uint64_t chain);
  ~ChainScope();
  ChainScope(const ChainScope&) = delete;
  ChainScope& operator=(const ChainScope&) = delete;

 private:
  std::string_view previous_kind_;
  uint64_t previous_id_;
};

struct StrategyOptions {
  // kPortfolio is resolved per seed (portfolio_strategy) before a run.
  StrategyKind kind = StrategyKind::kUniform;
  // PCT's depth d (d - 1 change points); 3, SCTBench's best (Thomson et al. 2016).
  uint32_t depth = 3;
  // The pilot run's measurements (k, the number of sources, URW's counts).
  uint64_t draws = 0;
  uint64_t sources = 0;
  bool chains_named = false;
  // Per source: its draws in the pilot (PCT gives each its priority from the
  // start; URW weighs by them).
  std::map<uint64_t, uint64_t> source_draws;
};

// The options a run under `kind` needs from `pilot`.
StrategyOptions strategy_options(StrategyKind kind, const Pilot& pilot, uint32_t depth = 3);

// The source of a draw: the chain the site names ("net.latency_us@h1:80"),
// else the open ChainScope's chain, else the drawing task's key. Sets *named
// when a chain was named. Also notes `task_key` as the task of the draw
// being decided (pct's source, whatever the chain).
uint64_t draw_source(std::string_view site, uint64_t task_key, bool* named = nullptr);

// "pct d=3 k=40 sources=3: a bug of depth 3 is found with probability >= 1/(3*40^2) = 2.1e-04 per run",
// for reports and the sweep's line.
std::string describe_strategy(const StrategyOptions& s);

// One run's strategy state (not copyable across runs: make one per run).
class Strategy {
 public:
  Strategy(const StrategyOptions& options, uint64_t seed);
  bool uniform() const { return options_.kind == StrategyKind::kUniform; }
  // The value in [0, n) of the draw `key` (n >= 2) from `source`, the
  // `draw_index`-th draw of the run (from 0).
  uint64_t value(const ChoiceSource& choices, uint64_t key, uint64_t source, uint64_t n, uint64_t draw_index);

 private:
  uint64_t priority(uint64_t source);
  uint64_t initial_priority(uint64_t source) const;
  uint64_t non_default(const ChoiceSource& choices, uint64_t key, uint64_t n) const;

  StrategyOptions options_;
  uint64_t salt_;
  std::vector<uint64_t> change_points_;  // sorted draw indices
  size_t next_change_ = 0;
  void update_threshold();

  std::map<uint64_t, uint64_t> priorities_;
  // PCT's fast set: the sources whose priority is at least threshold_ (the
  // fast_-th highest priority) draw the default.
  uint64_t fast_ = 1;
  // Non-default draws from the upper half of [1, n) (half the runs).
  bool upper_ = false;
  uint64_t threshold_ = 0;
  std::map<uint64_t, uint64_t> made_;  // URW: draws made per source
  uint64_t remaining_total_ = 0;
};

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_STRATEGY_H_
