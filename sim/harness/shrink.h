// twinloop/sim/harness/shrink.h: shrinking a failing simulated run to a small one.
//
// A failing seed usually fails among thousands of irrelevant decisions: timer
// tie-breaks, executor latencies, buggify sites. The shrinker searches for a
// smaller set of decisions that still fails, so that the replay file a
// developer reads names only the decisions that matter ("the 2nd
// loop.timer_tie draw was 1", "buggify site db.drop_write fired once").
//
//   const Recording failing = sim.recording();   // a run that failed
//   ShrinkResult r = shrink(failing, candidate_runner([] { return my_test_main(); }));
//   write_recording_file("minimal.replay", r.minimal);
//   // r.before / r.after: describe(r.after) == "1 non-default choice, 57 events, virtual time 5ms"
//
// Size. A run is measured by RunSize, compared lexicographically: the number
// of non-default decisions (value != 0), then the sum of their values
// (smaller draws are shorter delays and natural orders), then the number of
// events, then the virtual time of its last event. Decision 0 is by
// convention the default behaviour, so the ideal run draws 0 everywhere.
//
// Candidates. A candidate is a Recording holding only decisions (the seed,
// options and metadata of the failing run are kept; events are dropped as
// they do not matter for replaying). It is run with Fallback::kDefault: a
// draw the candidate lacks answers 0, so a decision set to 0 and a decision
// left out are the same candidate. Each candidate is run at most once:
// candidates already run (identified by a hash of their set of non-default
// decisions) are skipped.
//
// Adoption. When a candidate fails, the shrinker adopts the run's OWN
// recording (what it actually drew, which may differ from the candidate:
// zeroing a decision can change the shape of the run, so later draws may
// not happen at all) as the new current run if it is smaller() than the
// current one. Under kDefault a run's non-default decisions are a subset of
// the candidate's (values clamped to the draw's range), so every failing
// candidate that removes or lowers a value is adopted, and the search always
// makes progress.
//
// Passes, over the current run's non-default decisions in draw order,
// repeated until a round changes nothing (a fixpoint) or the budget is spent:
//   1. zero everything: all decisions set to 0;
//   2. truncation: binary search for the shortest prefix of the non-default
//      decisions that still fails (everything after it set to 0, i.e. the
//      trailing decisions dropped);
//   3. delta debugging (ddmin-style chunk removal): with chunk size k from
//      n/2 halving down to 1, set each run of k consecutive non-default
//      decisions to 0 in turn; a chunk whose removal still fails stays
//      removed (and the next chunk moves into its place);
//   4. value minimisation: for each remaining non-default decision try 0,
//      then binary search between 0 (passes) and its value (fails) for the
//      smallest value that still fails (exact if failure is monotone in the
//      value, as "latency above a threshold" or "tie-break after another").
// After pass 3 with k = 1 every remaining non-default decision is necessary
// on its own: setting any single one to 0 makes the run pass (1-minimal),
// unless the budget stopped the search first.
//
// Determinism: the shrinker uses no randomness and visits candidates in an
// order that depends only on the recordings, so with a deterministic `fails`
// it returns the same minimal recording every time. The wall-clock budget is
// the only nondeterministic input and can only stop it early (the simulated
// runs themselves never read the wall clock).
#ifndef TWINLOOP_SIM_SHRINK_H_
#define TWINLOOP_SIM_SHRINK_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/sim/recording.h"
#include "twinloop/sim/sim_backend.h"

namespace twinloop::sim {

struct ShrinkOptions {
  // Wall-clock bound (the shrinker may read the wall clock; the simulated
  // runs never do). Checked before each candidate run.
  absl::Duration time_budget = absl::Seconds(20);
  // Bound on candidate runs.
  int max_runs = 5000;
};

// Size of a failing run, the quantities the shrinker minimises (in this order
// of priority).
struct RunSize {
  size_t non_default = 0;   // decisions whose value != 0
  uint64_t value_sum = 0;   // sum of min(value, 2^32) over decisions, saturating
  size_t events = 0;
  int64_t virtual_time_ns = 0;
  friend bool operator==(const RunSize&, const RunSize&) = default;
};

// Virtual time = the last event's time_ns (0 if there is none).
RunSize run_size(const Recording& r);
// Lexicographic on (non_default, value_sum, events, virtual_time_ns).
bool smaller(const RunSize& a, const RunSize& b);
// "3 non-default choices, 412 events, virtual time 1.5s".
std::string describe(const RunSize& s);

struct ShrinkResult {
  // The smallest failing run found: its own recording (the decisions it
  // actually made, and its events), with the failing run's test, command and
  // failure metadata where the run's own recording has none.
  Recording minimal;
  RunSize before, after;
  // Candidate runs executed (cached candidates are not run twice).
  int runs = 0;
  // Stopped by time_budget or max_runs rather than by reaching a fixpoint.
  bool budget_exhausted = false;
};

// `fails(candidate)` must run the program replaying candidate.decisions with
// Options::Fallback::kDefault (draws the candidate lacks answer 0) and return
// that run's own Recording (Simulation::recording()) if it failed the same
// way, std::nullopt if it passed (candidate_runner below builds one). Set
// the returned recording's `failure` to that run's own failure text: a
// shrunk run often fails with another message ("leaked 1", not "leaked 2"),
// and the minimal replay file must record what the minimal run does. The
// failing run's test, command and failure are copied only where the adopted
// run's recording has none.
// `failing` is the recording of the original failing run; it is assumed to
// fail when replayed and is not run again. Exceptions thrown by `fails`
// propagate.
ShrinkResult shrink(const Recording& failing, const std::function<std::optional<Recording>(const Recording& candidate)>& fails,
                    const ShrinkOptions& options = {});

// ---- Running candidates under the simulator

// Whether a run that returned normally failed anyway (e.g. the test body set
// a flag, or recorded a failed expectation). It sees the run's own recording.
using StillFails = std::function<bool(const Recording& run)>;

// Runs `make_main()` (called once per run, so per-run state belongs in the
// coroutine it makes, or is reset by it) under a fresh Simulation with
// options_for_replay(candidate, base) + replay = candidate + fallback kDefault
// + record. The run failed if any exception escaped Simulation::run
// (including DeadlockError and TimeLimitError) or if `still_fails` (when
// set) returns true for its recording. Returns the run's own recording if
// it failed, with `failure` set to the exception's message (or "still_fails"
// when the run returned normally) and `test` / `command` copied from the
// candidate; std::nullopt if it passed.
std::optional<Recording> run_candidate(const Recording& candidate, const std::function<Coro<void>()>& make_main,
                                       const StillFails& still_fails = nullptr, const Options& base = {});

// run_candidate bound to a program, in the form shrink() takes:
//   shrink(failing, candidate_runner([] { return body(); }, [&] (const Recording&) { return flag; }));
std::function<std::optional<Recording>(const Recording& candidate)> candidate_runner(
    std::function<Coro<void>()> make_main, StillFails still_fails = nullptr, Options base = {});

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_SHRINK_H_
