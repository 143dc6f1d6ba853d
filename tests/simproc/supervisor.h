// A process supervisor for simulated scenarios (issue 12): it keeps
// kWorkers worker processes running, restarting each one that exits, with a
// back-off between restarts that the whole supervisor shares (restarts are
// rate-limited supervisor-wide, as an Erlang supervisor's intensity is).
//
// Two policies:
//  - kSerializedBackoff (correct): a crash that arrives while the
//    supervisor is already backing off waits for its turn, then backs off
//    and restarts its worker.
//  - kDropDuringBackoff (the planted bug): a crash that arrives while the
//    supervisor is backing off is taken as covered by the back-off in
//    progress, and that worker's slot stops: the supervisor never restarts
//    it again. Only two crashes within one back-off show it, which process
//    faults (sim/faults.h) make happen in some seeds.
//
// The worker is a simulated program (sim/process.h), "worker": it prints a
// heartbeat line every 100 ms and recycles itself after kWorkerLife (exits
// 0, as a worker with a request limit does: the supervisor starts a new one
// at once), or exits 0 on SIGTERM (the supervisor's stop()). Only other
// exits are crashes, which back off. Faults crash it by a signal, hang it,
// or fail its spawn.
//
// supervise(policy) is the scenario: the supervisor runs under process
// faults for the profile's duration, then the faults stop and every slot
// must have a worker running again within kConvergeWithin
// (World::converge: else the run fails with DidNotConvergeError); then
// stop() ends every worker.
#ifndef TWINLOOP_TESTS_SIMPROC_SUPERVISOR_H_
#define TWINLOOP_TESTS_SIMPROC_SUPERVISOR_H_

#include <algorithm>
#include <csignal>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/faults.h"
#include "twinloop/sim/process.h"
#include "twinloop/sim/world.h"
#include "gtest/gtest.h"

namespace twinloop::simproc {

inline constexpr int kWorkers = 3;
inline constexpr absl::Duration kFirstBackoff = absl::Milliseconds(100);
inline constexpr absl::Duration kMaxBackoff = absl::Seconds(2);
inline constexpr int kWorkerBeats = 10;  // 100 ms apart: a worker lives 1 s

enum class BackoffPolicy { kSerializedBackoff, kDropDuringBackoff };

// The simulated worker.
inline Coro<int> worker_program(sim::ProgramContext& ctx) {
  ctx.handle_signal(SIGTERM);
  Task<int> stop = create_task(ctx.next_signal());
  for (int beat = 0; beat < kWorkerBeats && !stop.done(); ++beat) {
    ctx.stdout().write("beat\n");
    co_await sleep(absl::Milliseconds(100));
  }
  co_return 0;
}

class Supervisor {
 public:
  explicit Supervisor(BackoffPolicy policy) : policy_(policy), current_(kWorkers) {}
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

  // Runs the slots until stop(); returns when every slot has ended.
  Coro<void> run() {
    std::vector<Task<void>> slots;
    for (int i = 0; i < kWorkers; ++i) slots.push_back(create_task(slot(i)));
    for (Task<void>& t : slots) co_await t;
  }

  // Asks every worker to terminate and the slots to end.
  void stop() {
    stopping_ = true;
    for (std::optional<Process>& p : current_) {
      if (p && !p->returncode()) p->terminate();
    }
  }

  // Slots whose worker is running now.
  int running() const {
    int n = 0;
    for (const std::optional<Process>& p : current_) n += p && !p->returncode();
    return n;
  }
  int spawned() const { return spawned_; }
  int exits() const { return exits_; }
  int crashes() const { return crashes_; }
  int spawn_failures() const { return spawn_failures_; }
  int slots_given_up() const { return given_up_; }
  std::string describe() const {
    return absl::StrCat(spawned_, " spawns, ", exits_, " worker exits (", crashes_, " crashes), ", spawn_failures_,
                        " failed spawns, ",
                        running(), " of ", kWorkers, " running, ", given_up_, " slots given up");
  }

 private:
  Coro<void> slot(int i) {
    while (!stopping_) {
      bool started = false;
      try {
        SubprocessOptions o;
        o.stdout = subprocess::DEVNULL;
        std::vector<std::string> args = {absl::StrCat(i)};
        Process p = co_await create_subprocess_exec("worker", std::move(args), o);
        current_[i] = p;
        started = true;
        ++spawned_;
      } catch (const std::system_error&) {
        ++spawn_failures_;
      }
      if (started) {
        Process p = *current_[i];
        const int rc = co_await p.wait();
        if (stopping_) break;
        ++exits_;
        if (rc == 0) continue;  // recycled: start the next one at once
        ++crashes_;
      }
      const bool restart = co_await back_off();
      if (!restart) {
        ++given_up_;
        co_return;
      }
    }
  }

  // The supervisor-wide back-off before a restart. false: do not restart.
  Coro<bool> back_off() {
    if (backing_off_) {
      // BUG (kDropDuringBackoff): "the back-off in progress covers this
      // crash too" -- but the restart after it is the other slot's.
      if (policy_ == BackoffPolicy::kDropDuringBackoff) co_return false;
      while (backing_off_) co_await backoff_done_.wait();
    }
    backing_off_ = true;
    backoff_done_.clear();
    co_await sleep(backoff_);
    backoff_ = std::min(backoff_ * 2, kMaxBackoff);
    backing_off_ = false;
    backoff_done_.set();
    co_return true;
  }

  BackoffPolicy policy_;
  std::vector<std::optional<Process>> current_;
  absl::Duration backoff_ = kFirstBackoff;
  bool backing_off_ = false;
  Event backoff_done_;
  bool stopping_ = false;
  int spawned_ = 0;
  int exits_ = 0;
  int crashes_ = 0;
  int spawn_failures_ = 0;
  int given_up_ = 0;
};

inline sim::FaultProfile process_fault_profile() {
  sim::FaultProfile profile;
  profile.duration = absl::Seconds(5);
  profile.process_crashes = 0.5;
  profile.process_crash_max = absl::Seconds(1);
  profile.process_spawn_failures = 0.1;
  profile.process_hangs = 0.05;
  profile.process_slow_output = 0.2;
  return profile;
}

inline constexpr absl::Duration kConvergeWithin = absl::Seconds(30);

// The scenario; the checks use GoogleTest's EXPECT_* (a harness test's
// failures).
inline Coro<void> supervise(BackoffPolicy policy) {
  EventLoop& loop = get_running_loop();
  sim::register_program(loop, "worker", worker_program);
  auto supervisor = std::make_shared<Supervisor>(policy);
  Task<void> running = create_task(supervisor->run());
  sim::World& world = sim::World::of(loop);
  const sim::FaultProfile profile = process_fault_profile();
  world.inject(profile);
  co_await sleep(profile.duration);
  std::function<bool()> all_running = [supervisor] { return supervisor->running() == kWorkers; };
  const std::string what = "every worker slot runs a worker again";
  co_await world.converge(std::move(all_running), kConvergeWithin, what);
  EXPECT_EQ(supervisor->slots_given_up(), 0) << supervisor->describe();
  EXPECT_GT(supervisor->crashes(), 0) << "no worker crashed: the faults did nothing; " << supervisor->describe();
  supervisor->stop();
  co_await running;
  EXPECT_EQ(supervisor->running(), 0) << supervisor->describe();
}

}  // namespace twinloop::simproc

#endif  // TWINLOOP_TESTS_SIMPROC_SUPERVISOR_H_
