// twinloop/api/event_loop.h: the event loop's shared scheduling core.
//
// One class serves both loops: the FIFO ready queue, the timer heap, the
// iteration rule, the task registry, the exception handler, signals and the
// executor hand-off all live here, so ordering-sensitive behaviour is the same
// code on the real and the simulated loop. Only the clock, the I/O source,
// the executor and randomness come from the LoopBackend (api/loop_backend.h).
//
// Scheduling rules (asyncio's BaseEventLoop._run_once, CPython 3.14
// Lib/asyncio/base_events.py):
//  - call_soon appends to a FIFO ready queue.
//  - One iteration runs exactly the callbacks that were ready when it began
//    (after timers that fell due were moved in); callbacks they schedule run
//    in the next iteration. So `sleep(0)` is exactly one iteration.
//  - Timers are ordered by deadline, then by scheduling order. When several
//    timers with the same deadline fall due together, their order is a
//    decision of the backend ("loop.timer_tie", made on behalf of the task
//    that scheduled the first of them: 0, scheduling order, is the real
//    loop's answer; the simulated loop draws a permutation). asyncio leaves
//    the order of equal deadlines undefined; we make it explicit, and draw
//    nothing when no deadlines tie.
//  - A negative delay means "as soon as possible", still ordered by deadline
//    (call_later(-2) runs before call_later(-1)).
//
// Example:
//   EventLoop& loop = twinloop::get_running_loop();
//   TimerHandle h = loop.call_later(absl::Milliseconds(5), [] { ... });
//   h.cancel();
//
// Threads: an EventLoop and everything it owns are used on its own thread,
// except call_soon_threadsafe(), which any thread may call. In debug mode the
// loop checks this (see "Debug mode" below).
//
// Debug mode (asyncio's, CPython 3.14 Lib/asyncio/base_events.py,
// coroutines.py; on by set_debug(true), by real::RunOptions::debug /
// sim::Options::debug, or for every new loop by TWINLOOP_DEBUG=1):
//  - call_soon, call_later, call_at, create_task, create_future,
//    run_forever, run_until_complete, run_once, add/remove_signal_handler
//    and close raise std::runtime_error("Non-thread-safe operation invoked on
//    an event loop other than the current one") when called from a thread
//    other than the one running the loop (a loop that is not running has no
//    owner and accepts calls, as asyncio's _thread_id is None then);
//  - callbacks and task steps that take at least slow_callback_duration
//    are logged ("Executing <Task name='t'> took 0.120 seconds"); on the
//    simulated loop they are measured on the virtual clock, so a step is
//    slow only by the step jitter charged to it (sim::Options);
//  - close() reports every task still pending ("Task was destroyed but it
//    is pending!", with where the task was created if debug mode was on
//    then) and every resource still open on the loop
//    (internal::LoopResource: "unclosed <what>"), through the exception
//    handler;
//  - a coroutine dropped without ever running is reported ("coroutine 'f'
//    was never awaited") in every mode, not only in debug mode: api/coro.h.
#ifndef TWINLOOP_API_EVENT_LOOP_H_
#define TWINLOOP_API_EVENT_LOOP_H_

#include <atomic>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/time/time.h"
#include "twinloop/api/contextvars.h"
#include "twinloop/api/internal/ref.h"
#include "twinloop/api/internal/ring.h"
#include "twinloop/api/loop_backend.h"

namespace twinloop {

class EventLoop;
template <class T>
class Coro;
template <class T>
class Future;
template <class T>
class Task;
struct TaskOptions;
struct TaskRef;
class TaskCoro;

// What loop.set_task_factory takes (asyncio's factory(loop, coro, **kwargs)):
// called by every create_task on the loop with the coroutine and the options
// create_task was given; it makes the task with new_task (api/task.h), the
// default factory, and returns it. eager_task_factory is one.
using TaskFactory = std::function<TaskRef(EventLoop& loop, TaskCoro& coro, TaskOptions options)>;

namespace internal {

class TaskBase;
class FutureBase;
struct LoopAccess;

// Something the ready queue can run: a callback handle or a task step.
class Runnable {
 public:
  virtual void run() = 0;
  // The loop closes with this still queued.
  virtual void drop() = 0;

 protected:
  ~Runnable() = default;
};

// Something the timer heap holds. When due it joins the ready queue (the
// heap's reference moves with it); a cancelled one is dropped instead.
class TimerTarget : public Runnable {
 public:
  bool cancelled() const { return cancelled_; }
  uint64_t id() const { return id_; }
  // Drops the reference the heap (or the ready queue) holds.
  virtual void release_timer() = 0;
  // Drops the reference a stale heap entry holds (see EventLoop::rearm_timer;
  // only a timer that is re-armed has stale entries).
  virtual void release_stale_entry();

  int64_t when_ns_ = 0;
  uint64_t id_ = 0;
  // The key of the task that scheduled the timer (TaskBase::key; 0 on loops
  // without task keys): the decision of a tie it leads is that task's.
  uint64_t owner_key_ = 0;
  // The heap sequence number of the timer's live entry: an entry of this
  // timer with another number is stale (EventLoop::rearm_timer).
  uint64_t seq_ = 0;
  bool cancelled_ = false;
  // Its live entry is in the heap (a stale one may be there besides).
  bool in_heap_ = false;

 protected:
  ~TimerTarget() = default;
};

// The state behind Handle / TimerHandle.
class HandleState final : public RefCounted, public TimerTarget {
 public:
  HandleState(EventLoop& loop, absl::AnyInvocable<void()> callback, uint64_t id)
      : loop_(&loop), callback_(std::move(callback)) {
    id_ = id;
  }

  void run() override;
  void drop() override { release(); }
  void release_timer() override { release(); }
  void cancel();

  EventLoop* loop_;
  absl::AnyInvocable<void()> callback_;
  // The context the callback runs in (asyncio's Handle._context); null: an
  // empty one.
  Ref<ContextState> context_;
};

// What a StepObserver is told about.
enum class EventKind : uint8_t {
  kTaskStep = 1,   // a task resumed; id = task id
  kCallback = 2,   // a call_soon / timer callback ran; id = handle id
  kTimerDue = 3,   // a timer became ready; id = handle id
  kSignal = 4,     // a signal was delivered; id = signal number
  // The simulated network (sim/network.h): a segment (data or control) was
  // put on a link / arrived at its receiver; id = the segment's id
  // (connection id << 32 | direction << 31 | sequence number).
  kNetSend = 5,
  kNetDeliver = 6,
  // A fault applied to the simulated world (sim/network.h: a partition, a
  // heal, a host down ...; sim/world.h: a crash, a restart, a clock change);
  // id = the fault's code << 56 | a 56-bit hash of its description (the
  // network's), or a hash of its description (the world's).
  kFault = 7,
};

// A backend's mapping between the loop's clock (the backend's time_ns():
// what orders timers) and the clock the code running now sees (loop.time()):
// the simulated loop gives each host its own clock (offset and drift).
// Installed with LoopBackend::set_clock_view; without one both are the same.
class ClockView {
 public:
  // The clock the running code sees when the loop's clock reads `loop_ns`.
  // Monotonic in loop_ns.
  virtual int64_t local_ns(int64_t loop_ns) const = 0;
  // The earliest loop time at which the running code's clock reaches
  // `local_ns` (a timer for local time t fires at loop_ns(t)), at least
  // `now_loop_ns`; saturating at LoopBackend::kNoDeadline - 1.
  virtual int64_t loop_ns(int64_t local_ns, int64_t now_loop_ns) const = 0;

 protected:
  ~ClockView() = default;
};

// Sees every scheduling event; the simulated loop hashes them.
class StepObserver {
 public:
  virtual void on_event(EventKind kind, uint64_t id) = 0;

 protected:
  ~StepObserver() = default;
};

// Something open on a loop that the program should close before the loop
// closes: a server, a transport (the streams register theirs). A loop in
// debug mode reports those still open when it closes ("unclosed " +
// describe(), asyncio's ResourceWarning "unclosed transport <...>").
// Register with LoopAccess::open_resource, unregister (when closed, and at
// the latest in the destructor) with LoopAccess::close_resource. A loop
// that closes unregisters its resources still open, then calls their
// on_loop_close() (closing one afterwards is a no-op).
class LoopResource {
 public:
  // What the report names: "transport <fd=5 peer=...>".
  virtual std::string describe() const = 0;
  // The loop is closing with this resource still open (it is unregistered
  // already): release the operating system's resources and what keeps this
  // object alive, without scheduling anything (the loop runs nothing more).
  // asyncio leaves that to the garbage collector (a transport's __del__
  // closes its socket); without one, a server or a connection left open
  // would keep its file descriptor and its memory forever. May destroy
  // this object. Default: nothing.
  virtual void on_loop_close() {}

 protected:
  LoopResource() = default;
  LoopResource(const LoopResource&) = delete;
  LoopResource& operator=(const LoopResource&) = delete;
  ~LoopResource() = default;

 private:
  friend class ::twinloop::EventLoop;
  // The loop's registry, in registration order (no addresses decide it).
  EventLoop* resource_loop_ = nullptr;
  LoopResource* resource_prev_ = nullptr;
  LoopResource* resource_next_ = nullptr;
};

// TWINLOOP_DEBUG's value (asyncio's PYTHONASYNCIODEBUG): "1" true, "0" or
// empty false; anything else std::invalid_argument naming the variable.
// nullptr (unset) is false.
bool parse_debug_variable(const char* value);
// Whether new loops start in debug mode: TWINLOOP_DEBUG, read once per
// process. std::invalid_argument (every time) if its value is bad.
bool debug_mode_default();
// The same without throwing: false when the value is bad (for destructors;
// the loops report the bad value).
bool debug_mode_default_or_false() noexcept;

}  // namespace internal

// A scheduled callback (asyncio.Handle). Copyable; all copies refer to the
// same callback.
class Handle {
 public:
  Handle() = default;
  // Cancels the callback if it has not run yet. Idempotent.
  void cancel() {
    if (state_) state_->cancel();
  }
  bool cancelled() const { return state_ && state_->cancelled(); }

 protected:
  friend class EventLoop;
  explicit Handle(internal::Ref<internal::HandleState> s) : state_(std::move(s)) {}
  internal::Ref<internal::HandleState> state_;
};

// A callback scheduled at a time (asyncio.TimerHandle).
class TimerHandle : public Handle {
 public:
  TimerHandle() = default;
  // The scheduled time, on the loop's clock.
  absl::Time when() const;

 private:
  friend class EventLoop;
  using Handle::Handle;
};

// What the exception handler receives (asyncio's context dict).
struct ExceptionContext {
  std::string message;
  std::exception_ptr exception;  // may be null
  std::string task;              // name of the task involved, if any
  std::string future;            // the future involved, described
  std::string handle;            // the callback involved, described
  // Where the object reported was created (debug mode; asyncio's
  // source_traceback): "task 'main', in main (app.cc:12) -> handle".
  std::string source_traceback;

  static ExceptionContext of(std::string message, std::exception_ptr exception = nullptr) {
    ExceptionContext c;
    c.message = std::move(message);
    c.exception = std::move(exception);
    return c;
  }
};

using ExceptionHandler =
    std::function<void(EventLoop& loop, const ExceptionContext& context)>;

class EventLoop : public internal::RefCounted {
 public:
  // A loop on `backend` (the real loop: real::new_event_loop(); the
  // simulated loop: sim::Simulation). Most code never constructs one: it
  // calls real::run / sim::run, or Runner.
  explicit EventLoop(std::unique_ptr<LoopBackend> backend);
  ~EventLoop() override;

  // ---- clock (asyncio loop.time)

  // The loop's monotonic clock. The simulated loop starts at the Unix epoch
  // (absl::UnixEpoch() is virtual time 0); the real loop's epoch is
  // unspecified, as asyncio's.
  // On the simulated loop, the clock of the host the running code is on
  // (sim::Network::set_clock): timers, sleeps and timeouts run by it.
  absl::Time time() const { return absl::UnixEpoch() + absl::Nanoseconds(time_ns()); }
  // The same clock in nanoseconds since its epoch.
  int64_t time_ns() const {
    const int64_t t = backend_->time_ns();
    return clock_view_ ? clock_view_->local_ns(t) : t;
  }

  // ---- callbacks (asyncio call_soon, call_later, call_at, call_soon_threadsafe)

  // The callback runs in a copy of the context current now (asyncio's
  // Handle: contextvars.copy_context()), or in `context` itself (asyncio's
  // context= argument; separate overloads rather than a defaulted argument,
  // see create_task). api/contextvars.h.
  Handle call_soon(absl::AnyInvocable<void()> callback);
  Handle call_soon(absl::AnyInvocable<void()> callback, const Context& context);
  TimerHandle call_later(absl::Duration delay, absl::AnyInvocable<void()> callback);
  TimerHandle call_later(absl::Duration delay, absl::AnyInvocable<void()> callback, const Context& context);
  TimerHandle call_at(absl::Time when, absl::AnyInvocable<void()> callback);
  TimerHandle call_at(absl::Time when, absl::AnyInvocable<void()> callback, const Context& context);
  // Thread-safe. Unlike asyncio it returns no Handle: a Handle is a
  // loop-thread object. Throws std::runtime_error if the loop is closed.
  // The callback runs in a copy of the calling thread's current context.
  void call_soon_threadsafe(absl::AnyInvocable<void()> callback);

  // ---- tasks and futures (asyncio loop.create_task, loop.create_future)

  // A task of `coro` on this loop, which need not be running yet (asyncio's
  // loop.create_task): it starts when the loop runs. Defined in api/task.h.
  template <class T>
  Task<T> create_task(Coro<T> coro);
  template <class T>
  Task<T> create_task(Coro<T> coro, TaskOptions options);
  // A new pending future of this loop. Defined in api/future.h.
  template <class T = void>
  Future<T> create_future();

  // asyncio's loop.set_task_factory: from now on create_task calls `factory`
  // (and so does every task twinloop makes on this loop: gather, wait,
  // as_completed, TaskGroup, Runner). An empty factory restores the default,
  // new_task. With none set, create_task costs one extra test.
  void set_task_factory(TaskFactory factory) { task_factory_ = std::move(factory); }
  // The factory set, or an empty one (asyncio's None).
  const TaskFactory& get_task_factory() const { return task_factory_; }

  // ---- running (asyncio run_forever, run_until_complete, stop, close)

  // Runs iterations until stop(). std::runtime_error if already running or
  // if another loop runs on this thread.
  void run_forever();
  // Runs until `aw` (a Future, a Task, or a Coro, which becomes a task) is
  // done and returns its result (or rethrows its exception, CancelledError
  // if it was cancelled). std::runtime_error("Event loop stopped before
  // Future completed.") if stop() came first. Defined in api/awaitable.h.
  template <class A>
  auto run_until_complete(A aw);
  // Finishes the current iteration, then returns from run_forever.
  void stop() { stopping_ = true; }
  bool is_running() const { return running_; }
  bool is_closed() const { return closed_; }
  // Drops every pending callback, timer and unfinished task, and closes the
  // backend. std::runtime_error while running; idempotent.
  void close();
  // One iteration of the loop (asyncio's _run_once), with this loop as the
  // running loop while it runs: for custom runners and tests that step a
  // loop by hand. std::runtime_error if another loop runs on this thread.
  void run_once();

  // ---- errors and debugging

  void set_exception_handler(ExceptionHandler handler) { exception_handler_ = std::move(handler); }
  const ExceptionHandler& get_exception_handler() const { return exception_handler_; }
  void call_exception_handler(const ExceptionContext& context);
  void default_exception_handler(const ExceptionContext& context);

  // Debug mode (see the top of this file). A new loop starts in it if
  // TWINLOOP_DEBUG=1 (internal::debug_mode_default); run()'s options, and a
  // runner's, call set_debug when they name a value, which wins. Callbacks
  // and task steps that take at least slow_callback_duration (100 ms by
  // default) on the loop's clock are logged.
  void set_debug(bool enabled) { debug_ = enabled; }
  bool get_debug() const { return debug_; }
  void set_slow_callback_duration(absl::Duration d) { slow_callback_ns_ = absl::ToInt64Nanoseconds(d); }
  absl::Duration slow_callback_duration() const { return absl::Nanoseconds(slow_callback_ns_); }
  // Where the default exception handler and debug mode write (asyncio's
  // logger). Defaults to standard error.
  void set_logger(std::function<void(std::string_view)> logger) { logger_ = std::move(logger); }
  void log(std::string_view line);

  // ---- signals (asyncio add_signal_handler / remove_signal_handler)

  // The callback runs from the ready queue, not in signal context, in a
  // copy of the context current when the handler was added (every delivery
  // in the same one, as asyncio's single Handle).
  // std::invalid_argument("invalid signal number N") for a number outside
  // asyncio's signal.valid_signals(), std::runtime_error for SIGKILL /
  // SIGSTOP. Replaces an earlier handler for the same signal.
  void add_signal_handler(int sig, std::function<void()> callback);
  // Returns false if no handler was set; std::invalid_argument for an
  // invalid signal number, as add_signal_handler (asyncio's _check_signal).
  bool remove_signal_handler(int sig);

  // ---- the backend: the extension point (api/loop_backend.h); the
  // simulated loop's is a sim::SimBackend.
  LoopBackend& backend() { return *backend_; }

 private:
  // twinloop's own code reaches the loop's internals through
  // internal::LoopAccess (api/internal/loop_access.h), backends through
  // LoopBackend's protected helpers.
  friend struct internal::LoopAccess;
  friend class LoopBackend;

  TimerHandle call_at_ns(int64_t when_ns, absl::AnyInvocable<void()> callback);
  // call_soon / call_at_ns running the callback in `context` (null: an empty
  // one), whose reference the handle takes over.
  Handle call_soon_in(absl::AnyInvocable<void()> callback, internal::ContextState* context);
  TimerHandle call_at_ns(int64_t when_ns, absl::AnyInvocable<void()> callback, internal::ContextState* context);
  // Puts `t` in the timer heap at `when_ns`; the heap takes over one
  // reference that the caller counted.
  void add_timer(internal::TimerTarget* t, int64_t when_ns);
  // Arms again, at `when_ns`, a timer cancelled while its entry is in the
  // heap: that entry stays, stale (still counted cancelled, dropped when it
  // comes up or is purged, releasing the reference it holds), and a new one
  // goes in, taking over one more reference that the caller counted. So a
  // task's own timer (api/task.h) serves the next sleep or wait_for at once
  // after a cancelled one, instead of waiting for the old deadline.
  void rearm_timer(internal::TimerTarget* t, int64_t when_ns);
  // Cancels a timer whose live entry is in the heap: the entry goes at once
  // if it is the heap's last one (a leaf: the heap stays a heap; the common
  // case of a deadline armed and cancelled with no timer armed in between),
  // else it stays until it comes up or is purged (asyncio's lazy deletion).
  // Either way no event: a cancelled timer never fires.
  void cancel_timer_in_heap(internal::TimerTarget* t);
  // Whether the heap entry `e` is dead: its timer was cancelled, or it is
  // a stale entry of a re-armed timer.
  struct TimerEntry;
  static bool dead(const TimerEntry& e);
  // Drops the reference a heap entry holds, taken out of the heap (dead,
  // or any entry when the loop closes): a stale entry's, or the timer's.
  static void release_dead(const TimerEntry& e);
  // Runs until `future` is done (run_until_complete without the result).
  void run_until_done(internal::FutureBase& future);
  void run_once_here();
  // Called by the backend on the loop thread when `sig` arrived.
  void deliver_signal(int sig);
  // Ctrl-C for a Runner (api/runner.h; asyncio's Runner._on_sigint): unless
  // the program claimed SIGINT (an add_signal_handler(SIGINT) handler, or
  // the backend's signal_is_default says no), watches it and calls `hook`
  // on the loop thread, synchronously, each time it arrives (a handler set
  // later with add_signal_handler takes precedence). False, and nothing
  // watched, if SIGINT is not the runner's to take or the backend refuses
  // to watch it.
  bool take_sigint(absl::AnyInvocable<void()> hook);
  // Undoes take_sigint (the backend restores the earlier disposition).
  void release_sigint();
  void submit_to_executor(absl::AnyInvocable<void()> work, absl::AnyInvocable<void()> done);
  void register_task(internal::TaskBase* t);
  void unregister_task(internal::TaskBase* t);
  // Unfinished tasks in creation order.
  std::vector<internal::TaskBase*> registered_tasks() const;
  void note(internal::EventKind kind, uint64_t id) {
    if (observer_) observer_->on_event(kind, id);
  }
  void report_slow(std::string_view what, int64_t took_ns);
  // Whose decision a draw made now is (LoopBackend::choose): the running
  // task's key, or while timer ties are ordered, the key of the task that
  // scheduled the first tied timer; 0 for the loop itself.
  uint64_t decision_context() const;
  // The earliest pending timer deadline, or kNoDeadline.
  int64_t next_deadline_ns();
  // The loop-clock deadline of a timer `delay` from now on the running
  // code's clock (call_later, sleep), and of one at `local_ns` on it
  // (call_at). Saturating: past the end of time is kNoDeadline - 1.
  int64_t deadline_after_ns(absl::Duration delay) const;
  int64_t deadline_at_ns(int64_t local_ns) const;
  // Ends every unfinished task, and cancels every call_soon / timer
  // callback, whose context satisfies `in_scope` (LoopBackend::abandon).
  size_t abandon(const std::function<bool(const Context&)>& in_scope);

  struct TimerEntry {
    int64_t when;
    uint64_t seq;
    internal::TimerTarget* handle;  // the heap owns one reference
  };
  // The heap's order (a function object, so that the heap algorithms inline
  // the comparison instead of calling through a function pointer).
  struct Later {
    bool operator()(const TimerEntry& a, const TimerEntry& b) const {
      if (a.when != b.when) return a.when > b.when;
      return a.seq > b.seq;
    }
  };
  // Moves the timers that fell due to the ready queue, in deadline order;
  // equal deadlines in the order the backend chooses.
  void move_due_timers(int64_t now);
  void order_tie(size_t first, size_t last);
  // Drops cancelled timers from the heap (all of them, or those on top).
  void purge_timers() {
    if (timers_cancelled_ != 0) purge_cancelled_timers();
  }
  void purge_cancelled_timers();
  void drain_threadsafe();
  void close_now();
  void check_open() const;
  // Debug mode's thread-affinity check (asyncio's _check_thread): the
  // caller tests debug_ first, so that the check costs a branch otherwise.
  void check_thread() const;
  void check_thread_if_debug() const {
    if (debug_) [[unlikely]] check_thread();
  }
  // Debug mode at close: tasks still pending, resources still open.
  void report_open_at_close();
  // Debug mode: where a task was created (asyncio's Task._source_traceback),
  // reported if it is still pending at close; forgotten when it finishes.
  void record_task_origin(const internal::TaskBase* t);
  // Forgets where `t` was created, then drops the registry's reference.
  void forget_task_origin(internal::TaskBase* t);
  void open_resource(internal::LoopResource* r);
  void close_resource(internal::LoopResource* r);

  std::unique_ptr<LoopBackend> backend_;
  internal::Ring<internal::Runnable*> ready_;
  std::vector<TimerEntry> timers_;
  std::vector<internal::TimerTarget*> due_;  // move_due_timers' scratch
  size_t timers_cancelled_ = 0;
  uint64_t timer_seq_ = 0;

  std::mutex threadsafe_mu_;
  // Callbacks from other threads, with the context of the calling thread.
  std::vector<std::pair<absl::AnyInvocable<void()>, internal::Ref<internal::ContextState>>> threadsafe_;
  std::atomic<bool> threadsafe_pending_{false};

  internal::TaskBase* current_task_ = nullptr;
  internal::TaskBase* tasks_head_ = nullptr;
  internal::TaskBase* tasks_tail_ = nullptr;
  size_t task_count_ = 0;
  uint64_t task_ids_ = 0;
  uint64_t handle_ids_ = 0;
  uint64_t tokens_ = 0;
  uint64_t busy_iterations_ = 0;
  int64_t last_poll_ns_ = 0;  // when the busy loop last polled the backend

  // The thread running the loop (run_forever, or a run_once outside it);
  // none (std::thread::id()) while it does not run. Read by other threads.
  std::atomic<std::thread::id> owner_{};
  internal::LoopResource* resources_head_ = nullptr;
  internal::LoopResource* resources_tail_ = nullptr;
  std::map<uint64_t, std::string> task_origins_;  // by task id; debug mode

  bool running_ = false;
  // The runner's shutdown began (the main coroutine is done; the tasks
  // left are being cancelled): see LoopAccess::shutting_down.
  bool shutting_down_ = false;
  bool stopping_ = false;
  bool closed_ = false;
  bool debug_;  // from internal::debug_mode_default()
  bool task_keys_ = false;
  bool tie_context_set_ = false;
  uint64_t tie_context_ = 0;
  int64_t slow_callback_ns_ = 100'000'000;

  ExceptionHandler exception_handler_;
  std::function<void(std::string_view)> logger_;
  std::map<int, std::function<void()>> signal_handlers_;
  absl::AnyInvocable<void()> sigint_hook_;  // take_sigint's
  TaskFactory task_factory_;
  internal::StepObserver* observer_ = nullptr;
  const internal::ClockView* clock_view_ = nullptr;
  // Tasks abandon() ended: kept (finished) until the loop closes, since the
  // ready queue or a future's waiters may still point at them.
  std::vector<internal::Ref<internal::FutureBase>> abandoned_;
};

// An owning handle to an event loop, as asyncio's new_event_loop() returns
// one: copies share the loop, and the last one to go closes the loop if it
// is still open (asyncio leaves that to the garbage collector, with a
// ResourceWarning).
//
//   twinloop::EventLoopRef loop = twinloop::real::new_event_loop();
//   int v = loop->run_until_complete(main_coro());
//   loop->close();
class EventLoopRef {
 public:
  EventLoopRef() = default;
  // Takes a new loop (`new EventLoop(backend)`) or shares an existing one.
  explicit EventLoopRef(EventLoop* loop) : loop_(loop) {}

  EventLoop& operator*() const { return *loop_; }
  EventLoop* operator->() const { return loop_.get(); }
  EventLoop* get() const { return loop_.get(); }
  explicit operator bool() const { return bool(loop_); }
  friend bool operator==(const EventLoopRef& a, const EventLoopRef& b) { return a.loop_ == b.loop_; }

 private:
  internal::Ref<EventLoop> loop_;
};

namespace internal {
// The loop running on this thread (constant-initialised: no guard to read).
inline constinit thread_local EventLoop* tls_running_loop = nullptr;
// The loop that close() is closing on this thread, if none runs: reports
// made while it destroys its tasks go to its exception handler.
inline constinit thread_local EventLoop* tls_closing_loop = nullptr;
[[noreturn]] void throw_no_running_loop();
}  // namespace internal

// The loop running on this thread. std::runtime_error("no running event
// loop") if none (asyncio.get_running_loop).
inline EventLoop& get_running_loop() {
  if (!internal::tls_running_loop) [[unlikely]] internal::throw_no_running_loop();
  return *internal::tls_running_loop;
}
// The running loop or nullptr.
inline EventLoop* running_loop_or_null() { return internal::tls_running_loop; }

namespace internal {
// Makes `loop` the running loop of this thread for the scope.
class RunningLoopScope {
 public:
  explicit RunningLoopScope(EventLoop* loop);
  ~RunningLoopScope();

 private:
  EventLoop* prev_;
};
}  // namespace internal

}  // namespace twinloop

#endif  // TWINLOOP_API_EVENT_LOOP_H_
