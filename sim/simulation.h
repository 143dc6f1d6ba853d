// twinloop/sim/simulation.h: run coroutines under the simulated loop.
//
//   twinloop::Coro<int> main_coro();
//   int v = twinloop::sim::run(main_coro(), {.seed = 7});
//
//   // Or keep the simulation to inspect it afterwards:
//   twinloop::sim::Simulation sim({.seed = 7});
//   int v = sim.run(main_coro());
//   uint64_t h = sim.event_hash();       // same seed => same hash
//   absl::Time t = sim.time();           // virtual time at the end
//
// sim::run is asyncio.run for the simulated loop (a Runner's run, then its
// close: api/runner.h): it runs `main` in a task until it finishes, cancels
// and finishes leftover tasks, closes the loop and returns main's result (or
// rethrows its exception). A run that can make no progress throws
// DeadlockError naming every waiting task; one whose virtual time would pass
// Options::time_limit throws TimeLimitError. Ctrl-C is simulated:
// backend().raise_signal(SIGINT) during a run does what a real SIGINT does
// to real::run (the main task is cancelled, run() throws KeyboardInterrupt),
// without touching the process's signal dispositions.
//
// Several runs on one simulated loop, whose virtual time goes on from run to
// run: sim::Runner (asyncio.Runner).
//
//   twinloop::sim::Runner runner({.seed = 7});
//   runner.run(setup());
//   runner.run(workload());
#ifndef TWINLOOP_SIM_SIMULATION_H_
#define TWINLOOP_SIM_SIMULATION_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/internal/ref.h"
#include "twinloop/api/runner.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/recording.h"
#include "twinloop/sim/sim_backend.h"
#include "twinloop/sim/world.h"

namespace twinloop::sim {

class Simulation {
 public:
  explicit Simulation(Options options = {});

  // Runs `main` to completion on the simulation's loop, then closes it
  // (asyncio.run). Once per Simulation: std::runtime_error("Runner is
  // closed") the second time.
  template <class T>
  T run(Coro<T> main) {
    return internal::run_main(runner_, std::move(main));
  }
  // What converts to a Coro (sleep(), wait_for(), a queue's get()) runs as it.
  template <CoroConvertible A>
  auto run(A main) {
    return run(std::move(main).as_coro());
  }

  EventLoop& loop() { return *loop_; }
  SimBackend& backend() { return *backend_; }
  // The simulated network: hosts, names, links (sim/network.h). Configure
  // it before run(); tests may also inspect it while the run goes on.
  Network& network() { return backend_->network(); }
  // The hosts as machines: clocks, crashes, restarts (sim/world.h).
  World& world() { return backend_->world(); }
  // The network's state (hosts, listeners, open connections with their
  // buffered and in-flight bytes) for failure reports; "" when no
  // connection or listener exists.
  std::string network_report() const;
  const Options& options() const { return options_; }

  // The running hash of every scheduling event so far.
  uint64_t event_hash() const { return backend_->event_hash(); }
  uint64_t event_count() const { return backend_->event_count(); }
  uint64_t choices_made() const { return backend_->choices_made(); }
  // Virtual time (absl::UnixEpoch() is the start of the run).
  absl::Time time() const { return absl::UnixEpoch() + absl::Nanoseconds(backend_->time_ns()); }
  absl::Duration elapsed() const { return absl::Nanoseconds(backend_->time_ns()); }
  std::vector<EventRecord> last_events() const { return backend_->last_events(); }

  // With Options::record (or replay): the run so far as a Recording (seed,
  // options, decisions, events), ready for write_recording_file.
  Recording recording() const;
  // With Options::replay: where this run's events first differ from the
  // replayed recording's (nullopt: identical so far and of equal length).
  std::optional<Divergence> divergence() const;
  // "buggify sites: db.cc:12 (enabled, fired 3 of 9), ..." for the sites
  // that were enabled in this run; empty if none was.
  std::string buggify_summary() const;

 private:
  Options options_;
  SimBackend* backend_;  // owned by loop_
  internal::Ref<EventLoop> loop_;
  ::twinloop::Runner runner_;  // its loop is loop_
};

// Options::debug (when set) and Options::slow_callback_duration, applied to
// a simulated loop.
void apply_debug_options(EventLoop& loop, const Options& options);

// A new, not running, simulated loop (asyncio.new_event_loop for the
// simulated loop): for code that drives a loop itself (run_until_complete,
// run_forever, Runner's loop factory). A Simulation wraps the same and keeps
// access to the run's hash, recording and virtual time.
EventLoopRef new_event_loop(Options options = {});

// asyncio.Runner on the simulated loop: a Runner whose loop is
// sim::new_event_loop(options). Virtual time and the choice source carry on
// from one run to the next.
class Runner : public ::twinloop::Runner {
 public:
  Runner() : Runner(Options{}) {}
  explicit Runner(Options options)
      : ::twinloop::Runner(RunnerOptions{.loop_factory = [options] { return new_event_loop(options); }}) {}
};

// What sim::run can report about the run it did.
struct RunStats {
  uint64_t event_hash = 0;
  uint64_t events = 0;
  uint64_t choices = 0;
  absl::Duration virtual_time;
};

// asyncio.run for the simulated loop. If `stats` is given it is filled in
// (also when the run throws).
template <class T>
T run(Coro<T> main, Options options = {}, RunStats* stats = nullptr) {
  Simulation sim(options);
  struct Fill {
    Simulation& sim;
    RunStats* stats;
    ~Fill() {
      if (stats) *stats = RunStats{sim.event_hash(), sim.event_count(), sim.choices_made(), sim.elapsed()};
    }
  } fill{sim, stats};
  return sim.run(std::move(main));
}

// What converts to a Coro (sleep(), wait_for(), a queue's get()) runs as it.
template <CoroConvertible A>
auto run(A main, Options options = {}, RunStats* stats = nullptr) {
  return run(std::move(main).as_coro(), options, stats);
}

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_SIMULATION_H_
