// twinloop/api/loop_backend.h: the seam between the shared scheduling core and
// a loop implementation.
//
// `EventLoop` (api/event_loop.h) owns everything about ordering: the FIFO ready
// queue, the timer heap, what one iteration runs, tasks, futures, the
// exception handler. A `LoopBackend` supplies only what differs between a real
// and a simulated loop:
//
//   attach(loop)    called once by the loop it serves
//   time_ns()       the clock
//   wait(deadline)  the I/O source: block for I/O or until the next timer
//   wake()          interrupt wait() from another thread
//   submit()        the executor behind run_in_executor / to_thread
//   choose()        the source of every nondeterministic decision
//   buggify()       whether a fault-injection point fires (never, for real)
//   task_key()      a new task's identity, for naming decisions (sim only)
//   net()           the network: connections, listeners, names
//                   (api/net_backend.h; nullptr: none)
//   processes()     child processes (api/process_backend.h; nullptr: none)
//   watch_signal()  start or stop delivering a POSIX signal
//   signal_is_default()  whether a Runner may take over SIGINT for a run
//   close()         release resources when the loop closes
//
// `real/` implements it with epoll, eventfd, a self-pipe for signals and a
// thread pool; `sim/` with virtual time and a seeded choice source. Both can
// live in one binary. Nothing in api/ knows which one it runs on: there is no
// "if simulated" anywhere above this interface.
#ifndef TWINLOOP_API_LOOP_BACKEND_H_
#define TWINLOOP_API_LOOP_BACKEND_H_

#include <cstdint>
#include <functional>
#include <limits>
#include <string_view>

#include "absl/functional/any_invocable.h"

namespace twinloop {

// The names of the decisions the shared core draws through
// LoopBackend::choose, written once (the simulator's own sites are in
// sim/draw_sites.h, which lists every site with its n and what 0 means).
namespace draw_sites {
// The order of timers with equal deadlines that fall due together
// (EventLoop's tie rule): n = the tied timers still to place, 0 = the one
// scheduled first (scheduling order).
inline constexpr std::string_view kTimerTie = "loop.timer_tie";
}  // namespace draw_sites

class Context;
class EventLoop;
class NetBackend;
class ProcessBackend;
namespace internal {
class ClockView;
class Runnable;
class StepObserver;
class TimerTarget;
}  // namespace internal

class LoopBackend {
 public:
  // wait() deadline meaning "no timer is pending: wait for I/O only".
  static constexpr int64_t kNoDeadline = std::numeric_limits<int64_t>::max();
  // wait() deadline meaning "poll without blocking".
  static constexpr int64_t kPollOnly = std::numeric_limits<int64_t>::min();

  virtual ~LoopBackend() = default;

  // Called once, by the EventLoop constructor. The loop outlives every other
  // call on the backend.
  virtual void attach(EventLoop& loop) = 0;

  // The loop's monotonic clock in nanoseconds. The epoch is unspecified (the
  // simulated loop starts at 0).
  virtual int64_t time_ns() = 0;

  // Waits for I/O, a signal or a wake() until the clock reaches
  // `deadline_ns` (kNoDeadline: no timer is pending; kPollOnly: do not block),
  // and delivers what happened by scheduling callbacks on the loop
  // (EventLoop::call_soon, EventLoop::deliver_signal). May return early.
  // The simulated backend advances virtual time instead of blocking, and
  // throws if nothing can ever happen (a deadlock).
  virtual void wait(int64_t deadline_ns) = 0;

  // Thread-safe: makes a blocked or future wait() return soon.
  virtual void wake() = 0;

  // Runs `work` (possibly on another thread), then `done` on the loop thread.
  // Both run exactly once unless the loop is closed first.
  virtual void submit(absl::AnyInvocable<void()> work,
                      absl::AnyInvocable<void()> done) = 0;

  // A value in [0, n) for the decision named `site` (n >= 1). By convention
  // 0 is the default behaviour (no fault, shortest delay, natural order); the
  // real loop always answers 0.
  virtual uint64_t choose(std::string_view site, uint64_t n) = 0;

  // Whether the fault-injection point `site` fires now (twinloop::buggify,
  // api/buggify.h). The real loop never fires one.
  virtual bool buggify(std::string_view site) {
    static_cast<void>(site);
    return false;
  }

  // The identity key of a new task: the `index`-th task that the task with
  // key `parent_key` (0: no task, the loop itself) created with this `base`
  // (the task's explicit name, else its coroutine's function name). Only
  // called when the backend asked for task keys (EventLoop::set_task_keys);
  // the simulated loop names its decisions by them (sim/choice.h), so that a
  // replay survives unrelated edits. The real loop does not ask.
  virtual uint64_t task_key(uint64_t parent_key, std::string_view base) {
    static_cast<void>(parent_key);
    static_cast<void>(base);
    return 0;
  }

  // The loop's network (api/net_backend.h): connections, listeners, name
  // resolution. nullptr: this loop has none (the default).
  virtual NetBackend* net() { return nullptr; }

  // The loop's child processes (api/process_backend.h). nullptr: this loop
  // cannot start any (the default).
  virtual ProcessBackend* processes() { return nullptr; }

  // Starts (on=true) or stops delivering signal `sig` to
  // EventLoop::deliver_signal on the loop thread.
  virtual void watch_signal(int sig, bool on) = 0;

  // Whether `sig` is left at its default action where this backend receives
  // it, so that a Runner may watch it for the length of a run (Ctrl-C
  // handling, api/runner.h; asyncio's Runner installs its SIGINT handler
  // only on the main thread and only while signal.getsignal(SIGINT) is
  // default_int_handler). The real loop answers for the process: the main
  // thread, and a SIG_DFL disposition. The simulated loop answers true: its
  // signals come from SimBackend::raise_signal, never from the OS. The
  // default, false, suits a backend without signals: the runner then leaves
  // SIGINT alone. Called on the loop thread, before watch_signal(sig, true).
  virtual bool signal_is_default(int sig) {
    static_cast<void>(sig);
    return false;
  }

  // The loop is closing: stop the executor (work not started is dropped;
  // work already running is waited for, since threads cannot be interrupted)
  // and release OS resources. wake() may still be called concurrently.
  virtual void close() = 0;

 protected:
  // What a backend may ask of the loop it serves, besides its public API.
  // Delivers `sig` (watched with watch_signal) to its handler: on the loop
  // thread, from wait().
  static void deliver_signal(EventLoop& loop, int sig);
  // Sees every scheduling event from now on (nullptr: none).
  static void observe_steps(EventLoop& loop, internal::StepObserver* observer);
  // New tasks get identity keys from task_key().
  static void enable_task_keys(EventLoop& loop);
  // Whose decision a draw made now is: the running task's key, or while
  // timer ties are ordered, the key of the task that scheduled the first
  // tied timer; 0 for the loop itself (see EventLoop's tie rule).
  static uint64_t decision_context(const EventLoop& loop);
  // The unfinished tasks of `loop`, for reports.
  static size_t task_count(const EventLoop& loop);
  // Queues `r` on the loop's ready queue (FIFO with every other callback):
  // how a channel delivers an I/O notification (api/net_backend.h). The
  // queue holds no reference: `r` must live until it runs or is dropped
  // (Runnable::drop, when the loop closes first).
  static void schedule_io(EventLoop& loop, internal::Runnable* r);
  // Puts the backend's own timer entry `t` in the loop's timer heap at
  // `when_ns` (a simulated packet's arrival): when due it joins the ready
  // queue like any timer (ties ordered by the loop's tie rule, made on
  // behalf of the running task). The heap holds no reference: `t` must live
  // until it runs or its release_timer() is called (when the loop closes).
  static void add_timer(EventLoop& loop, internal::TimerTarget* t, int64_t when_ns);
  // From now on loop.time(), call_later, call_at and sleep use `view`'s
  // clock for the code running (the simulated hosts' clocks); nullptr:
  // the loop's own clock. `view` must outlive its use.
  static void set_clock_view(EventLoop& loop, const internal::ClockView* view);
  // A crash (the simulated hosts'): every unfinished task whose context
  // satisfies `in_scope` ends at once without running again: its frame is
  // destroyed where it waits (only its locals' destructors run; no catch
  // handler, no code after its co_await), and its future is cancelled, so
  // that whoever awaits it sees CancelledError. Callbacks scheduled with
  // call_soon / call_later / call_at in such a context are cancelled. Not
  // from a task in scope. Returns the number of tasks ended.
  static size_t abandon(EventLoop& loop, const std::function<bool(const Context&)>& in_scope);
};

}  // namespace twinloop

#endif  // TWINLOOP_API_LOOP_BACKEND_H_
