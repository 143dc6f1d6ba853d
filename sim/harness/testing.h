// twinloop/sim/harness/testing.h: simulated tests in GoogleTest.
//
//   #include "twinloop/sim/harness/testing.h"
//
//   TWINLOOP_SIM_TEST(Bank, TransfersConserveMoney) {
//     Bank bank;
//     co_await bank.transfer(a, b, 10);          // the body is a coroutine
//     EXPECT_EQ(bank.total(), 100);              // EXPECT_* and ASSERT_* work
//   }
//
//   // With simulator options (sim::Options; the seed is set per run):
//   TWINLOOP_SIM_TEST_WITH_OPTIONS(Bank, UnderJitter,
//                                  (twinloop::sim::Options{.step_jitter_max = absl::Milliseconds(1)})) { ... }
//
// Each test runs its body under the simulated loop once per seed of a range
// (default: seeds 0..99). A seed fails if the body records a GoogleTest
// failure, lets an exception escape, deadlocks (nothing ready, no timer,
// tasks waiting) or passes the virtual-time limit. The first failing seeds
// (default: the first one) are reported in one block each: the seed, the
// virtual time, what failed, the await graph of every live task at the
// moment of the failure, the simulated network then (if the run used it:
// hosts, open connections, bytes in flight), the buggify sites that were
// enabled, the last events of the trace, the replay file and copy-pasteable
// commands that reproduce exactly this failure. Passing seeds print nothing.
//
// Knobs, as command-line flags of the test binary or environment variables
// (flags win; under Bazel use --test_arg=--twinloop_seeds=1000 or
// --test_env=TWINLOOP_SEEDS=1000). A value follows '=' or comes as the next
// argument (--twinloop_seeds 1000); one dash works too (-twinloop_seed=3).
// A missing value, an unknown --twinloop* flag or TWINLOOP_* variable and
// contradictory flags are errors, reported once before any test runs
// (docs/testing.md, "Flag rules"):
//
//   --twinloop_seeds=N            TWINLOOP_SEEDS            seeds per test (100)
//   --twinloop_first_seed=S       TWINLOOP_FIRST_SEED       first seed of the range (0)
//   --twinloop_seed=S             TWINLOOP_SEED             run exactly this seed
//   --twinloop_replay=FILE        TWINLOOP_REPLAY           replay a recorded run (sim/harness/replay_file.h) in the
//                                                           test it names; the others are skipped
//   --twinloop_shrink[=0|1|true|false] TWINLOOP_SHRINK      shrink each failure (sim/harness/shrink.h)
//   --twinloop_shrink_seconds=T   TWINLOOP_SHRINK_SECONDS   wall-clock bound on shrinking (20)
//   --twinloop_check_determinism=F TWINLOOP_CHECK_DETERMINISM run a fraction F in [0, 1] of the
//                                                           seeds twice and compare their events
//   --twinloop_jobs=J             TWINLOOP_JOBS             worker processes (1; 0 = all cores)
//   --twinloop_max_failures=N     TWINLOOP_MAX_FAILURES     stop after N failing seeds (1; 0 = all)
//   --twinloop_progress[=0|1|true|false] TWINLOOP_PROGRESS  live progress line on stderr
//   --twinloop_replay_dir=DIR     TWINLOOP_REPLAY_DIR       where replay files go (default:
//                                                           $TEST_UNDECLARED_OUTPUTS_DIR, else $TMPDIR)
//   --twinloop_require_probes[=0|1|true|false] TWINLOOP_REQUIRE_PROBES  fail a sweep in which a
//                                                           must-hit probe was never hit (default: on
//                                                           in CI-style runs: under Bazel, a sweep of
//                                                           at least 100 seeds; docs/exploration.md); given,
//                                                           also fail a whole-binary run (no --gtest_filter,
//                                                           not a shard) that left a declared probe unreached
//   --twinloop_explore=seeds|branch TWINLOOP_EXPLORE        seeds: the plain sweep (default); branch:
//                                                           coverage-guided branching over --twinloop_seeds
//                                                           runs from --twinloop_first_seed (docs/exploration.md)
//   --twinloop_branch_energy=E    TWINLOOP_BRANCH_ENERGY    runs a prefix kept for a probe that held may
//                                                           start (1000; other prefixes E/50)
//   --twinloop_exhaustive=K       TWINLOOP_EXHAUSTIVE       run every schedule with at most K non-default
//                                                           draws, depth first (sharded like the seeds)
//   --twinloop_exhaustive_values=V TWINLOOP_EXHAUSTIVE_VALUES values tried per draw with more than V + 1
//                                                           answers (8; the verdict then says "capped")
//   --twinloop_exhaustive_max_runs=N TWINLOOP_EXHAUSTIVE_MAX_RUNS stop after N runs (0: no limit; the
//                                                           verdict then says "stopped")
//   --twinloop_strategy=S         TWINLOOP_STRATEGY         uniform (default), pct, pctcp, urw or portfolio
//                                                           (sim/strategy.h; recorded in replay files; with
//                                                           --twinloop_explore=branch, the runs' own draws)
//
// Probes (api/probes.h). A sweep tallies every probe its runs reached (the
// user's, and the built-in ones: "fault fired: <kind>", "buggify fired:
// <site>"; and "draw <site> took a non-default value", listed but not a
// must-hit) and, when one of them was never hit, prints
//   twinloop: Suite.Name: probes: k/m hit; never hit: sometimes 'x', ...
// A failed always() or a reached unreachable() fails its run (kind "probe").
// When the binary ends, the probes a macro declared that no test of the
// binary reached are listed by name and file:line.
//
// Bazel / GoogleTest sharding: with GTEST_TOTAL_SHARDS = K (Bazel's
// shard_count), each test is registered as K parts ("Name/part_0_of_K", ...)
// and part j runs the seeds s with (s - first) % K == j; GoogleTest deals the
// parts to different shards, so the shards together run every seed once.
//
// In a file that includes this header, ASSERT_* (and FAIL()) throw
// twinloop::sim::harness::FatalFailure after recording the failure, instead
// of `return`ing (a coroutine cannot `return`). The harness catches it; a
// `catch (...)` in the body would too, but the failure stays recorded. In a
// plain TEST in such a file, a failed ASSERT_* also reports an unknown C++
// exception (the test fails either way).
#ifndef TWINLOOP_SIM_TESTING_H_
#define TWINLOOP_SIM_TESTING_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "twinloop/api/coro.h"
#include "twinloop/api/probes.h"
#include "gtest/gtest.h"
#include "twinloop/sim/harness/sweep.h"
#include "twinloop/sim/recording.h"
#include "twinloop/sim/sim_backend.h"

namespace twinloop::sim::harness {

// The harness's knobs (see the table above).
struct Config {
  uint64_t seeds = 100;
  uint64_t first_seed = 0;
  std::optional<uint64_t> seed;
  std::string replay;
  bool shrink = false;
  double shrink_seconds = 20;
  double check_determinism = 0;
  int jobs = 1;
  int max_failures = 1;
  bool progress = false;
  std::string replay_dir;
  // Unset: CI-style default (see above).
  std::optional<bool> require_probes;
  // Exploration (sim/harness/explore.h): branching instead of the plain
  // sweep, or bounded exhaustive runs with bound *exhaustive.
  bool branch = false;
  uint64_t branch_energy = 1000;
  std::optional<int> exhaustive;
  uint64_t exhaustive_values = 8;
  uint64_t exhaustive_max_runs = 0;
  // How the seeds' draws are decided (sim/strategy.h, --twinloop_strategy):
  // uniform unless given; kPortfolio rotates the others by seed.
  StrategyKind strategy = StrategyKind::kUniform;
  // Said once on stderr before the tests run: given flags that have no
  // effect ("--twinloop_seed=3 given: only seed 3 runs; --twinloop_seeds=50
  // not used").
  std::vector<std::string> notes;
};

// Reads the flags (from GoogleTest's argv) and the environment (flag rules:
// docs/testing.md). Throws std::invalid_argument listing every error: a bad
// value (naming the flag and the variable), a flag without its value, an
// unknown --twinloop* / -twinloop* flag or TWINLOOP_* variable (naming the
// closest known one), contradictory flags.
Config config_from_flags_and_env(const std::vector<std::string>& argv);
// The config of this process (parsed once).
const Config& config();

// Thrown by ASSERT_* in files that include this header.
struct FatalFailure {};

// What one simulated run of a test body did.
struct SeedOutcome {
  // How a run failed. Reports, replay files ("<kind>: <what>") and the
  // shrinker's "fails the same way" use kind_name()'s text.
  enum class Kind : uint8_t {
    kNone,            // "": the run passed
    kAssertion,       // "assertion": an EXPECT_* / ASSERT_* failed
    kException,       // "exception": the body let an exception escape (or was cancelled)
    kDeadlock,        // "deadlock": nothing ready, no timer, tasks waiting
    kTimeLimit,       // "time limit": virtual time would pass Options::time_limit
    kUnhandledError,  // "unhandled error": the loop's exception handler was called
    kNondeterminism,  // "nondeterminism": the same seed ran differently
    kDidNotConverge,  // "did not converge": World::converge's condition failed (liveness)
    kProbe,           // "probe": an always() failed or an unreachable() was reached (api/probes.h)
  };
  // The kind as reports and replay files print it (see above).
  static const char* kind_name(Kind kind);
  const char* kind_name() const { return kind_name(kind); }

  bool failed = false;
  Kind kind = Kind::kNone;
  // The failure messages (GoogleTest's, or the exception's).
  std::string what;
  // Every live task and its await graph when the failure happened.
  std::string tasks;
  // The simulated network when the first failure happened (hosts, listeners,
  // open connections, bytes in flight; Network::describe), if the run had
  // added a host or had a listener or connection open then; "" otherwise,
  // and for deadlocks and time limits, whose messages include it.
  std::string network;
  std::string buggify;
  // The faults applied to the simulated world (crashes, restarts, clocks,
  // partitions...), one per line in virtual time order; "" if none.
  std::string faults;
  int64_t virtual_time_ns = 0;
  std::vector<EventRecord> last_events;
  Recording recording;  // if the run recorded
  // GoogleTest failures of the run, to re-report them.
  std::vector<::testing::TestPartResult> failures;
  // Probes first hit in this run, in the order they were hit:
  // "sometimes 'name' = true".
  std::vector<std::string> probe_hits;
  // Per probe_hits entry: the decisions drawn when it was hit.
  std::vector<size_t> probe_hit_decisions;
};

// What a sweep's runs did to the probes (api/probes.h), by (name, kind):
// bit 1 seen true, bit 2 seen false.
struct ProbeTally {
  std::map<std::pair<std::string, ProbeKind>, uint8_t> bits;
  // The must-hit probes (everything but unreachable) and those never hit:
  // a sometimes never true; the others are hit once reached.
  size_t must_hit() const;
  std::vector<std::string> never_hit() const;  // "sometimes 'x'", sorted by name
  // The draw sites drawn but always answered 0 (their built-in probes
  // "draw <site> took a non-default value" are listed, not must-hit).
  std::vector<std::string> draws_at_default() const;
  // "probes: k/m hit; never hit: sometimes 'x', ...; drawn, always 0: site, ..."
  // ("probes: m/m hit").
  std::string summary() const;
};

using Body = Coro<void> (*)();

// Runs `body` once under the simulated loop with `options`, capturing
// GoogleTest failures instead of reporting them.
SeedOutcome run_once(Body body, const Options& options);

// Runs the test `name` ("Suite.Name") as configured: the whole seed range,
// part `part` of `parts` of it, a single seed, or a replay file (only in the
// test the file was recorded for; others are skipped).
void run_sim_test(const char* name, Options options, Body body, int part, int parts);

namespace internal {

// Tests of the harness only: run_sim_test sweeps with `runner` instead of
// run_sweep (nullptr: run_sweep again).
using SweepRunner = std::function<SweepResult(const SweepOptions&, const std::function<bool(uint64_t)>&)>;
void set_sweep_runner_for_testing(SweepRunner runner);

// Registers `name` as one GoogleTest test, or as GTEST_TOTAL_SHARDS parts.
bool register_sim_test(const char* suite, const char* name, const char* file, int line, Options options,
                       Body body);

class FatalFailureHelper {
 public:
  FatalFailureHelper(const char* file, int line, const char* message)
      : file_(file), line_(line), message_(message) {}
  // Records the failure as GoogleTest's AssertHelper does, then throws.
  [[noreturn]] void operator=(const ::testing::Message& message) const;

 private:
  const char* file_;
  int line_;
  const char* message_;
};

}  // namespace internal
}  // namespace twinloop::sim::harness

#define TWINLOOP_SIM_TEST_WITH_OPTIONS(suite, name, options)                                          \
  static ::twinloop::Coro<void> twinloop_sim_body_##suite##_##name();                               \
  [[maybe_unused]] static const bool twinloop_sim_registered_##suite##_##name =                     \
      ::twinloop::sim::harness::internal::register_sim_test(#suite, #name, __FILE__, __LINE__, options, \
                                                            &twinloop_sim_body_##suite##_##name);   \
  static ::twinloop::Coro<void> twinloop_sim_body_##suite##_##name()

#define TWINLOOP_SIM_TEST(suite, name) \
  TWINLOOP_SIM_TEST_WITH_OPTIONS(suite, name, ::twinloop::sim::Options{})

// ASSERT_* inside coroutines: record, then throw (see above).
#undef GTEST_FATAL_FAILURE_
#define GTEST_FATAL_FAILURE_(message) \
  ::twinloop::sim::harness::internal::FatalFailureHelper(__FILE__, __LINE__, message) = ::testing::Message()

#endif  // TWINLOOP_SIM_TESTING_H_
