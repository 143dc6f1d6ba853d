// twinloop/sim/harness/explore.h: exploring a simulated test's decisions
// beyond independent seeds, by prefix replay (docs/exploration.md).
//
// A run is its decision list (sim/recording.h), so "go back to the moment
// something new happened and try again from there" is "replay the run's
// first N decisions, then draw fresh ones": no fork(), no snapshot.
//
//  - explore_branches: coverage-guided branching (after moonpool's
//    explorer and Antithesis). A run that reaches something new (a probe
//    first hit, a draw site answering in a value bucket not seen before)
//    keeps its decision prefix up to that point; later runs replay a kept
//    prefix, newest first, and continue from a seed derived from the root
//    seed, the prefix and the child's index; each prefix has bounded energy.
//  - explore_exhaustive: every run with at most K non-default draws (delay
//    bounding, Emmi et al. POPL 2011), depth first by prefix replay with every
//    unforced draw at its default 0 (as loom and snappea's PEx enumerate).
//
// Both are pure functions of their options and of `run` (which must be a
// deterministic function of its arguments, as a simulated test is), and use
// no wall clock, so the same root seed gives the same exploration.
#ifndef TWINLOOP_SIM_HARNESS_EXPLORE_H_
#define TWINLOOP_SIM_HARNESS_EXPLORE_H_

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "twinloop/sim/harness/sweep.h"
#include "twinloop/sim/recording.h"

namespace twinloop::sim {

// What one run did, as exploration sees it.
struct ExploreRun {
  bool failed = false;
  // The run's own decisions, in draw order.
  std::vector<Decision> decisions;
  // Probes first hit in the run ("sometimes 'x' = true") and how many
  // decisions had been drawn when each was hit.
  std::vector<std::pair<std::string, size_t>> hits;
};

// Runs the test once under `seed`, replaying `forced` (matched by key);
// unforced draws answer from the seed, or 0 with `default_fallback`.
using ExploreRunner =
    std::function<ExploreRun(uint64_t seed, const std::vector<Decision>& forced, bool default_fallback)>;

// ---- Coverage-guided branching

struct BranchOptions {
  // Fresh runs use seeds first_seed, first_seed + 1, ... (a plain sweep's
  // seeds, in its order); branch runs use branch_seed(first_seed, prefix, child).
  uint64_t first_seed = 0;
  // Runs in all (fresh and branches).
  uint64_t runs = 100;
  // Runs a prefix kept for a probe that held (a sometimes first true, a
  // reachable reached) may start; a prefix kept for anything else (a new
  // draw bucket, a probe first reached false) gets energy / 50 (at least 1).
  uint64_t energy = 1000;
  // Called after each run (runs done, prefixes kept so far).
  std::function<void(uint64_t, size_t)> progress = nullptr;
};

// One run of an exploration: its seed and the prefix it replayed (-1: none,
// a fresh run), with that prefix's length in decisions.
struct BranchStep {
  uint64_t seed = 0;
  int64_t prefix = -1;
  size_t prefix_decisions = 0;
  friend bool operator==(const BranchStep&, const BranchStep&) = default;
};

struct BranchResult {
  std::vector<BranchStep> runs;
  // The first failing run (an index into runs), its seed and its decisions:
  // replaying them (unforced draws from the seed) reproduces it.
  bool failed = false;
  uint64_t failed_run = 0;
  uint64_t failing_seed = 0;
  std::vector<Decision> failing_decisions;
  uint64_t fresh_runs = 0;
  size_t prefixes = 0;
  size_t features = 0;
  // Branch runs whose first decisions did not repeat their prefix (the test
  // is not a function of its decisions: nondeterminism).
  uint64_t diverged = 0;
  // A hash of the runs list (seeds and prefixes), printed so two
  // explorations can be compared.
  uint64_t digest = 0;
};

// The seed of the `child`-th run from prefix `prefix` (FNV-1a over the root
// seed, the prefix id and the child index, as moonpool's child seeds).
uint64_t branch_seed(uint64_t root, uint64_t prefix, uint64_t child);
// The bucket of a non-default value: 1 + floor(log2(value)) (1, 2-3, 4-7...).
int value_bucket(uint64_t value);

// Stops at the first failing run.
BranchResult explore_branches(const BranchOptions& options, const ExploreRunner& run);

// ---- Bounded exhaustive runs

struct ExhaustiveOptions {
  // K: at most this many non-default draws per run.
  int bound = 2;
  // A draw with more than values_per_draw + 1 possible answers is tried at
  // values_per_draw non-default values only (spread evenly over [1, n-1],
  // both ends included), and the verdict says "capped".
  uint64_t values_per_draw = 8;
  // This shard's part of the tree: the first-level branches (runs with one
  // non-default draw, in order) are dealt round robin, and each shard runs
  // the whole subtree of its own; the all-default run counts in shard 0.
  Shard shard{};
  // 0: no limit; else stop after this many runs (the verdict says "stopped").
  uint64_t max_runs = 0;
  // The seed every run is given (unforced draws answer 0; it only names
  // the runs in replay files).
  uint64_t seed = 0;
  // Called after each run (runs done).
  std::function<void(uint64_t)> progress = nullptr;
};

struct ExhaustiveResult {
  uint64_t runs = 0;
  // Some draw was tried at values_per_draw values only: "site (n=10001)", sorted.
  std::vector<std::string> capped;
  bool stopped = false;  // max_runs reached
  // The all-default run failed and this is not shard 0 (which reports it).
  bool root_failed_elsewhere = false;
  bool failed = false;
  std::vector<Decision> failing_decisions;
  uint64_t diverged = 0;
  uint64_t digest = 0;
  // "exhausted: 19 runs, no failure within bound 2" (see explore.cc).
  std::string verdict(int bound, uint64_t values_per_draw) const;
};

ExhaustiveResult explore_exhaustive(const ExhaustiveOptions& options, const ExploreRunner& run);

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_HARNESS_EXPLORE_H_
