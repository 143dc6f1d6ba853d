// twinloop/sim/harness/rc_simulation.h: simulated runs inside RapidCheck properties,
// so that a failing case shrinks its workload AND its schedule together.
//
//   RC_GTEST_PROP(Bank, TransfersConserveMoney, ()) {
//     const auto transfers = *rc::gen::container<std::vector<Transfer>>(gen_transfer());
//     twinloop::sim::RcSimulation sim("Bank.TransfersConserveMoney");
//     const int total = sim.run(run_transfers(transfers));   // every decision is a RapidCheck draw
//     RC_ASSERT(total == 300);
//   }
//
// Every decision of the simulated loop (timer tie-breaks, executor
// latencies, step jitter, buggify sites) is drawn with
// `*rc::gen::inRange<uint64_t>(0, n)`, which RapidCheck shrinks towards 0,
// the default behaviour. When the property fails, RapidCheck shrinks the
// generated workload and these draws together, so the counterexample it
// prints is a small workload under a simple schedule.
//
// Replay files: while the property fails (the RcSimulation is destroyed
// while an exception propagates, as RC_ASSERT and a failing run throw), the
// run is written as a replay file, "<name>.first.replay" for the first
// failing run and "<name>.replay" for the latest, which after shrinking is
// the minimal one. They go to $TWINLOOP_REPLAY_DIR, else
// $TEST_UNDECLARED_OUTPUTS_DIR, else the temporary directory; the path is
// printed on stderr. The file holds the schedule; the workload is
// RapidCheck's (reproduce both with RapidCheck's printed `reproduce` string,
// or replay the schedule over a fixed workload by setting
// TWINLOOP_RC_REPLAY=<file>: draws then come from the file, 0 where it has
// none).
//
// Deadlocks, virtual-time limits and exceptions escaping the run propagate
// out of run() and fail the property like any exception.
#ifndef TWINLOOP_SIM_RAPIDCHECK_H_
#define TWINLOOP_SIM_RAPIDCHECK_H_

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "twinloop/api/coro.h"
#include "rapidcheck.h"
#include "twinloop/sim/harness/replay_file.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::sim {

class RcSimulation {
 public:
  explicit RcSimulation(std::string name, Options options = {})
      : name_(std::move(name)), options_(std::move(options)), exceptions_(std::uncaught_exceptions()) {
    options_.record = true;
    if (const char* replay = std::getenv("TWINLOOP_RC_REPLAY")) {
      auto rec = std::make_shared<Recording>(read_recording_file(replay));
      options_ = options_for_replay(*rec, options_);
      options_.replay = std::move(rec);
      options_.fallback = Options::Fallback::kDefault;
    } else {
      options_.chooser = [](std::string_view, uint64_t n) { return *rc::gen::inRange<uint64_t>(0, n); };
    }
  }
  RcSimulation(const RcSimulation&) = delete;
  RcSimulation& operator=(const RcSimulation&) = delete;

  // Runs `main` to completion under the simulated loop (once per object).
  template <class T>
  T run(Coro<T> main) {
    sim_.emplace(options_);
    return sim_->run(std::move(main));
  }

  Simulation& simulation() { return *sim_; }
  Recording recording() const { return sim_ ? sim_->recording() : Recording{}; }

  ~RcSimulation() {
    if (std::uncaught_exceptions() <= exceptions_ || !sim_) return;
    try {
      Recording r = sim_->recording();
      r.test = name_;
      r.failure = "RapidCheck property failed";
      const bool first = first_failure();
      if (first) write_recording_file(replay_path(name_, /*first=*/true), r);
      write_recording_file(replay_path(name_), r);
      if (first) {
        std::fprintf(stderr,
                     "twinloop: %s failed; the failing runs are saved as %s (the last one written, after "
                     "shrinking, is the minimal one; the first is %s)\n",
                     name_.c_str(), replay_path(name_).c_str(), replay_path(name_, true).c_str());
      }
    } catch (...) {
      // Never throw from a destructor during unwinding.
    }
  }

  // Where the replay files of `name` go (sim/harness/replay_file.h's default_replay_dir).
  static std::string replay_path(const std::string& name, bool first = false) {
    return replay_file_path(default_replay_dir(), std::string("rc-") + name + (first ? ".first" : ""));
  }

 private:
  // True the first time a run of this process fails for this name.
  bool first_failure() {
    static std::set<std::string>* seen = new std::set<std::string>();
    return seen->insert(name_).second;
  }

  std::string name_;
  Options options_;
  int exceptions_;
  std::optional<Simulation> sim_;
};

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_RAPIDCHECK_H_
