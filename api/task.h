// twinloop/api/task.h: Task<T>, create_task, current_task, all_tasks
// (asyncio.Task and friends, CPython 3.14 Lib/asyncio/tasks.py).
//
//   twinloop::Task<int> t = twinloop::create_task(compute(), {.name = "compute"});
//   ...
//   int v = co_await t;            // or t.result() once t.done()
//
// A task runs a Coro<T> in steps on the loop: each step resumes the
// coroutine until it suspends on a future (the task then waits for that
// future's done callback) or on sleep(0) (the task is rescheduled with
// call_soon: exactly one loop iteration).
//
// Cancellation (asyncio's rules, all of them):
//  - cancel(msg) returns false once done, true otherwise, on every call; it
//    counts requests (cancelling()); uncancel() takes one back, and at 0 also
//    withdraws a pending throw-in.
//  - If the task waits on a future, that future is cancelled (and the task
//    wakes with CancelledError from it); else CancelledError is thrown in at
//    the next suspension point. A task cancelled before its first step never
//    starts its coroutine.
//  - The task is cancelled() only if its coroutine ends with CancelledError
//    (or returns while a cancel is pending); catching the error and
//    returning leaves it finished normally. Awaiting it, result() and
//    exception() then raise the very CancelledError object the coroutine
//    ended with (a subclass keeps its type; asyncio's _cancelled_exc).
//
// Ownership: unlike asyncio (which keeps only weak references, a known
// pitfall), the loop keeps every unfinished task alive, so fire-and-forget
// tasks run to completion. A Task handle keeps the task's result alive.
// Tasks still unfinished when the loop closes are destroyed with their
// coroutine frames.
#ifndef TWINLOOP_API_TASK_H_
#define TWINLOOP_API_TASK_H_

#include <coroutine>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/time/time.h"
#include "twinloop/api/contextvars.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/future.h"
#include "twinloop/api/internal/loop_access.h"

namespace twinloop {

namespace internal {

class TaskBase;

// A task's own sleep timer: a sleep() of a task whose timer is free waits
// on this entry of the loop's timer heap instead of a SleepState future, so
// that a sleep allocates nothing. It behaves as the SleepState it replaces,
// event for event (a kCallback event when it fires, the task woken in the
// next iteration; cancelling the sleep cancels the timer). While in the
// heap or the ready queue it holds a reference to the task.
//
// The same timer also serves as the deadline of a wait_for (deadline mode,
// TaskBase::arm_deadline): it then behaves as the timeout's call_at handle
// (a kCallback event when it fires, and the task cancelled), so that a
// wait_for allocates nothing either. A sleep or wait_for finding the timer
// cancelled but still in the heap arms it again (EventLoop::rearm_timer).
class TaskSleepTimer final : public TimerTarget {
 public:
  void run() override;
  void drop() override;
  void release_timer() override;
  void release_stale_entry() override;

 private:
  TaskBase* task();  // the TaskBase whose timer_ this is
};

// Decides, when a task wakes, whether its coroutine resumes now: set by an
// awaitable that waits without a coroutine frame of its own and may have to
// wait again before its awaiter resumes (a queue's get() whose item another
// task took meanwhile, api/queues.h). resume_now() either says yes, or parks
// the task again (TaskBase::block_on) and says no; the task's step then ends
// there, as the coroutine's would have ended at its next suspension.
class WakeFilter {
 public:
  virtual bool resume_now() = 0;

 protected:
  ~WakeFilter() = default;
};

// The task machinery, independent of the result type.
class TaskBase : public Runnable, public TaskFlags {
 public:
  // `function`: the root coroutine's function (its promise knows it).
  TaskBase(FutureBase& self, EventLoop& loop, std::coroutine_handle<> root,
           std::string name, const char* function);

  // One step (the ready queue calls this).
  void run() override;
  void drop() override {}

  // asyncio Task.cancel / cancelling / uncancel.
  bool cancel_task(std::string msg);
  int cancelling() const { return num_cancels_requested_; }
  int uncancel();

  uint64_t id() const { return id_; }
  // The task's identity for the simulated loop's decisions: a hash of its
  // creation path from the loop (parent's key, then its explicit name or
  // its coroutine's function, then its index among the parent's children
  // with that name), so it does not change when unrelated tasks are added.
  // 0 on loops that do not ask for keys (LoopBackend::task_key).
  uint64_t key() const { return key_; }
  std::string get_name() const;
  void set_name(std::string name);
  FutureBase& future() const { return *self_; }
  // What the task waits on now, described (for deadlock reports).
  std::string waiting_on() const;
  // The future the task is blocked on, if any.
  FutureBase* fut_waiter() const { return fut_waiter_.get(); }
  // The promise of the task's coroutine (null once it finished).
  virtual PromiseBase* root_promise() const = 0;

  // Runs the first step synchronously (eager start).
  void eager_start();
  // Ends the task at once, without resuming it (EventLoop::abandon): its
  // frame is destroyed where it is parked and its future cancelled. The
  // caller keeps the task alive afterwards (the ready queue or a future's
  // waiters may still name it; run() then does nothing).
  void abandon();
  // The loop is closing and this task never finished: its frame is
  // destroyed now, where it is parked, and the task stays pending (it can
  // never run again). Without this, a frame that holds an object that holds
  // the task (a StreamWriter -> its StreamProtocol -> the client_connected
  // task) would keep the loop and everything in it alive: a cycle asyncio
  // leaves to its garbage collector ("Task was destroyed but it is pending!").
  void destroy_frame_at_close();
  // Runs the task in `context` itself instead of the copy of its creator's
  // (create_task's context=); before the first step.
  void use_context(const Context& context) { context_ = ContextAccess::state(context); }
  // The task's context (null: empty), for api/contextvars.cc.
  Ref<ContextState>& context_slot() { return context_; }

  // Called by awaitables.
  void block_on(FutureBase& f, std::coroutine_handle<> h);
  // The awaitable the task waits in (see WakeFilter); null to clear.
  void set_wake_filter(WakeFilter* filter) { wake_filter_ = filter; }
  WakeFilter* wake_filter() const { return wake_filter_; }
  // block_on's rare path, out of line so that block_on keeps a small frame.
  [[gnu::noinline]] void cancel_what_it_awaits(FutureBase& f);
  // step()'s rare paths, out of line for the same reason.
  [[gnu::noinline]] void cancel_before_first_step();
  [[gnu::noinline]] void bad_yield();
  // Whether the coroutine resumes now (see WakeFilter); clears the filter if so.
  [[gnu::noinline]] bool ask_wake_filter(bool throw_cancel);
  void yield_now(std::coroutine_handle<> h);
  // sleep(): whether the task's own timer can serve a sleep now (it is in
  // neither the timer heap nor the ready queue, and no cancel is pending,
  // which would cancel the sleep at once: the SleepState path does that).
  bool can_sleep_on_own_timer() const { return own_timer_free() && !must_cancel_; }
  // Suspends the task until `when_ns` on the loop clock, on its own timer.
  void sleep_on_own_timer(int64_t when_ns, std::coroutine_handle<> h);
  // After a sleep on the own timer: throws CancelledError if it was
  // cancelled (as the SleepState's check_result would).
  void after_own_sleep();
  // wait_for (api/timeouts.h): whether the task's own timer can be the
  // deadline now (free, and no expired deadline still unread).
  bool can_arm_deadline() const { return own_timer_free() && !deadline_expired_; }
  // Arms the own timer as a deadline at `when_ns` on the loop clock: when it
  // fires, the task is cancelled (asyncio's Timeout.on_timeout) and the
  // deadline marked expired.
  void arm_deadline(int64_t when_ns);
  // Leaves the deadline: cancels the timer if it is still armed; returns
  // whether it expired (and forgets that it did).
  bool disarm_deadline();
  std::string cancel_message() const { return self_->cancel_message(); }

  // Registry links (EventLoop keeps unfinished tasks in creation order).
  TaskBase* registry_prev_ = nullptr;
  TaskBase* registry_next_ = nullptr;

 protected:
  ~TaskBase() = default;
  // The coroutine finished: store its result or exception in the future.
  virtual void on_root_done() = 0;
  // Helpers for on_root_done.
  void finish_with_exception(std::exception_ptr e);
  bool consume_must_cancel_at_end();

  std::coroutine_handle<> root_;

 private:
  // Inlined into run() (the common path: a call costs the ping-pong
  // hand-off ~12 instructions); defined inline in task.cc, its only user.
  void step(bool throw_cancel);
  // step() with the task's context current (asyncio's Task.__step runs in
  // self._context). While the task's context is empty and the thread's
  // current context is the thread's unused one (null), the common case,
  // nothing is switched: a null current context means the running task's
  // (api/contextvars.h), and a set() in the step creates it in context_.
  [[gnu::always_inline]] void step_in_context(bool throw_cancel) {
    if (!context_ && !tls_context) {
      step(throw_cancel);
    } else {
      step_switching_context(throw_cancel);
    }
  }
  // Out of line, like run_timed: run()'s common path keeps a small frame.
  [[gnu::noinline]] void step_switching_context(bool throw_cancel);
  // run()'s step under the loop's debug mode: timed, a slow one reported.
  [[gnu::noinline]] void run_timed(EventLoop& loop, bool throw_cancel);
  void after_step();

  EventLoop& loop() const { return self_->loop(); }
  friend class TaskSleepTimer;
  // The own timer can be armed: it is in neither the heap nor the ready
  // queue, or it was cancelled in the heap (then it is re-armed).
  bool own_timer_free() const { return !timer_busy_ || (timer_.in_heap_ && timer_.cancelled_); }
  // Puts the own timer (already given its id) in the heap at `when_ns`.
  void arm_own_timer(int64_t when_ns);
  // Cancels the own timer, armed and not cancelled yet (in the heap, or
  // fired and queued: run() then does nothing), without an event.
  void cancel_own_timer();
  // Rarely set, allocated only then: a name given to the task, the message
  // of a cancelled sleep.
  struct Rare {
    std::optional<std::string> name;
    std::string sleep_cancel_message;
  };
  Rare& rare() {
    if (!rare_) rare_ = std::make_unique<Rare>();
    return *rare_;
  }

  FutureBase* self_;
  std::coroutine_handle<> resume_point_;
  Ref<FutureBase> fut_waiter_;
  std::unique_ptr<Rare> rare_;  // null: named "Task-<id>", no message
  // What every step runs in (asyncio's Task._context): a copy of the
  // creator's context, null while empty (api/contextvars.h).
  Ref<ContextState> context_;
  uint64_t id_;
  uint64_t key_ = 0;
  int num_cancels_requested_ = 0;
  // The flags live in TaskFlags (api/future.h), in the padding after
  // the vtable pointer: pending_throw_, must_cancel_, started_, and:
  //  - parked_: whether the task may step: it waits for its first step (so
  //    true from the start), on a future (block_on) or for the next
  //    iteration (yield_now, yielded_); false while a step runs. run()
  //    checks this one flag.
  //  - the own timer's state: it is in the timer heap or the ready queue
  //    (timer_busy_); the task waits on it (sleeping_, from the sleep until
  //    the next step); the sleep is over (sleep_woken_: the timer fired or
  //    the sleep was cancelled; the SleepState future's done()).
  // The sleep on the own timer was cancelled (its message, if any, in
  // rare_->sleep_cancel_message).
  bool sleep_cancelled_ = false;
  // The own timer serves a wait_for's deadline (not a sleep); it fired
  // while it did (read and cleared by disarm_deadline).
  bool deadline_mode_ = false;
  bool deadline_expired_ = false;
  // Asked before the coroutine resumes (see WakeFilter); null: resume.
  WakeFilter* wake_filter_ = nullptr;
  TaskSleepTimer timer_;
};

// "sleep() until <when> on the loop clock" (a sleep, for deadlock reports).
std::string sleep_description(int64_t when_ns);

// The running task; std::runtime_error naming `what` outside a task.
TaskBase* current_task_or_throw(const char* what);
// Called when the task resumes: throws the CancelledError a cancel() asked
// to throw in at this suspension point, if any.
inline void after_resume(TaskBase* task) {
  if (task->pending_throw_) [[unlikely]] throw_pending_cancel(task);
}

// TaskState's deallocation function, keyed by the room's size alone (not a
// member of TaskState<T>: see FrameAlloc in api/coro.h, g++ 12's
// -Wmismatched-new-delete and classes local to coroutine lambdas). Frees the
// whole block; the frame is gone by then (see ~TaskState).
template <size_t Room>
struct TaskRoomFree {
  static void* operator new(size_t) = delete;
  static void operator delete(void* p, size_t) noexcept {
    const FrameHeader* header = reinterpret_cast<const FrameHeader*>(static_cast<char*>(p) + Room);
    pool_deallocate(p, header->block_bytes);
  }
};

template <class T>
class TaskState final : public ValueHolder<T>, public TaskBase, public TaskRoomFree<task_room_bytes<T>()> {
 public:
  // Builds the task in the room in front of `root`'s frame (one block for
  // both; coro.h's FrameHeader), or in a block of its own without a frame.
  static TaskState* create(EventLoop& loop, typename Coro<T>::handle_type root, std::string name) {
    static_assert(sizeof(TaskState) <= task_room_bytes<T>(), "kTaskBaseBytes (api/coro.h) is too small");
    char* room;
    FrameHeader* header;
    if (root) [[likely]] {
      room = static_cast<char*>(root.address()) - frame_offset<T>();
      header = frame_header(root.address());
    } else {
      room = static_cast<char*>(pool_allocate(frame_offset<T>()));
      header = ::new (room + task_room_bytes<T>()) FrameHeader{static_cast<uint32_t>(frame_offset<T>())};
    }
    TaskState* t;
    try {
      t = ::new (room) TaskState(loop, root, std::move(name));
    } catch (...) {
      if (!root) pool_deallocate(room, frame_offset<T>());
      throw;
    }
    header->task_lives = true;
    return t;
  }
  using TaskRoomFree<task_room_bytes<T>()>::operator new;
  using TaskRoomFree<task_room_bytes<T>()>::operator delete;

  ~TaskState() override {
    // Test first: building the default name costs more than the rest of
    // the destructor.
    if (this->has_unretrieved_exception()) this->report_unretrieved(get_name());
    if (root_) root_.destroy();
  }
  bool cancel(std::string msg) override { return cancel_task(std::move(msg)); }
  PromiseBase* root_promise() const override {
    if (!root_) return nullptr;
    return &std::coroutine_handle<Promise<T>>::from_address(root_.address()).promise();
  }

 private:
  TaskState(EventLoop& loop, typename Coro<T>::handle_type root, std::string name)
      : ValueHolder<T>(loop),
        TaskBase(*this, loop, root, std::move(name), root ? root.promise().site_.function : nullptr) {
    this->task_ = this;
  }

  void on_root_done() override {
    auto h = std::coroutine_handle<Promise<T>>::from_address(root_.address());
    std::exception_ptr e = h.promise().exception_;
    if (e) {
      root_ = nullptr;
      h.destroy();
      finish_with_exception(std::move(e));
      return;
    }
    if (consume_must_cancel_at_end()) {
      root_ = nullptr;
      h.destroy();
      return;
    }
    if constexpr (std::is_void_v<T>) {
      root_ = nullptr;
      h.destroy();
      this->set_value(std::monostate{});
    } else {
      std::optional<T> v = std::move(h.promise().value_);
      root_ = nullptr;
      h.destroy();
      this->set_value(std::move(*v));
    }
  }
};

}  // namespace internal

// Options for create_task (asyncio's keyword arguments). Every field has a
// default, so `TaskOptions{.eager_start = true}` names only what it sets
// (and compiles cleanly under -Wmissing-field-initializers).
struct TaskOptions {
  // Defaults to "Task-<n>", n counting tasks on this loop from 1.
  std::string name = {};
  // Run the first step inside create_task (asyncio 3.12 eager tasks). Only
  // when the loop is running; a task that finishes in that step is returned
  // done and never scheduled. Unset: the loop's task factory decides (the
  // default: not eager; eager_task_factory: eager); false keeps the task
  // lazy even under eager_task_factory (asyncio 3.14's
  // create_task(eager_start=False)).
  std::optional<bool> eager_start = std::nullopt;
  // The context the task runs in, itself (its sets are visible in it
  // afterwards). Defaults to a copy of the current context, taken by
  // create_task (asyncio's context=; api/contextvars.h).
  std::optional<Context> context = {};
};

// ---- task factories (asyncio loop.set_task_factory, eager_task_factory)
//
//   loop.set_task_factory(twinloop::eager_task_factory);
//
//   // A factory of one's own: takes the coroutine and create_task's options,
//   // makes the task with new_task, returns it.
//   loop.set_task_factory([](twinloop::EventLoop& loop, twinloop::TaskCoro& coro, twinloop::TaskOptions options) {
//     if (options.name.empty()) options.name = absl::StrCat("job:", coro.function());
//     return twinloop::new_task(loop, coro, std::move(options));
//   });
//
// The factory sees every task made on the loop (create_task, and the tasks
// gather, wait, as_completed, TaskGroup and Runner make), as asyncio's does.
// Unlike asyncio's it cannot return a Task subclass or another task: it must
// make the task of the coroutine it was given, with new_task, exactly once,
// and return it (std::logic_error otherwise). If it throws, create_task
// throws that, and a coroutine not yet made into a task is destroyed.

// The coroutine create_task hands to a task factory (asyncio's `coro`
// argument), its result type erased: new_task makes it a task.
class TaskCoro {
 public:
  using Make = internal::TaskBase* (*)(EventLoop& loop, std::coroutine_handle<> root, std::string name);
  TaskCoro(std::coroutine_handle<> root, Make make, const char* function)
      : root_(root), make_(make), function_(function) {}
  TaskCoro(const TaskCoro&) = delete;
  TaskCoro& operator=(const TaskCoro&) = delete;
  // Destroys the coroutine if it never became a task.
  ~TaskCoro();

  // The coroutine's function, as the call graph and task keys name it.
  std::string_view function() const { return internal::coroutine_function_name(function_); }
  // The task new_task made of it, or null.
  internal::TaskBase* task() const { return task_ ? task_->as_task() : nullptr; }

 private:
  friend TaskRef new_task(EventLoop& loop, TaskCoro& coro, TaskOptions options);
  std::coroutine_handle<> root_;
  Make make_;
  const char* function_;
  internal::Ref<internal::FutureBase> task_;
};

// The default task factory (asyncio's Task(coro, loop=loop, **kwargs)):
// makes `coro` a task on `loop` with `options`, scheduled, or run to its
// first suspension now if options.eager_start is true and the loop runs.
// std::logic_error if `coro` was made a task already.
TaskRef new_task(EventLoop& loop, TaskCoro& coro, TaskOptions options);

// asyncio.eager_task_factory: new_task with eager_start true unless
// create_task said otherwise.
TaskRef eager_task_factory(EventLoop& loop, TaskCoro& coro, TaskOptions options);

namespace internal {
template <class T>
TaskBase* make_task_state(EventLoop& loop, std::coroutine_handle<> root, std::string name) {
  return TaskState<T>::create(loop, Coro<T>::handle_type::from_address(root.address()), std::move(name));
}
// Calls the loop's task factory and checks what it did; the task it made.
TaskBase* call_task_factory(EventLoop& loop, TaskCoro& coro, TaskOptions options);
// create_task when a task factory is set. It takes the coroutine's handle
// and builds any TaskOptions itself, so that create_task's path without a
// factory keeps a small frame.
template <class T>
Task<T> create_task_by_factory(EventLoop& loop, typename Coro<T>::handle_type root, TaskOptions options) {
  TaskCoro erased(root, &make_task_state<T>, root ? root.promise().site_.function : nullptr);
  return Task<T>(static_cast<TaskState<T>*>(call_task_factory(loop, erased, std::move(options))));
}
template <class T>
Task<T> create_task_by_factory(EventLoop& loop, typename Coro<T>::handle_type root) {
  return create_task_by_factory<T>(loop, root, TaskOptions{});
}
}  // namespace internal

template <class T = void>
class Task : public Future<T> {
 public:
  Task() = default;

  int cancelling() const { return base().cancelling(); }
  int uncancel() { return base().uncancel(); }
  std::string get_name() const { return base().get_name(); }
  void set_name(std::string name) { base().set_name(std::move(name)); }
  uint64_t id() const { return base().id(); }
  internal::TaskBase& base() const { return *this->state_->as_task(); }

  explicit Task(internal::TaskState<T>* s) : Future<T>(s) {}
};

// Wraps `coro` in a task scheduled on the running loop.
//
// Two overloads rather than a defaulted `TaskOptions options = {}`: g++ 12
// miscompiles a defaulted argument of a class type holding a std::string in
// a call inside a co_await expression (`co_await create_task(work())`), so
// the one-argument form builds no TaskOptions at all (docs/design.md,
// "Compilers").
template <class T>
Task<T> create_task(Coro<T> coro) {
  return get_running_loop().create_task(std::move(coro));
}
template <class T>
Task<T> create_task(Coro<T> coro, TaskOptions options) {
  return get_running_loop().create_task(std::move(coro), std::move(options));
}

template <class T>
Task<T> EventLoop::create_task(Coro<T> coro) {
  check_thread_if_debug();
  if (task_factory_) [[unlikely]] return internal::create_task_by_factory<T>(*this, coro.release());
  auto* state = internal::TaskState<T>::create(*this, coro.release(), std::string());
  internal::LoopAccess::schedule(*this, state);
  return Task<T>(state);
}
template <class T>
Task<T> EventLoop::create_task(Coro<T> coro, TaskOptions options) {
  check_thread_if_debug();
  if (task_factory_) [[unlikely]] return internal::create_task_by_factory<T>(*this, coro.release(), std::move(options));
  auto* state = internal::TaskState<T>::create(*this, coro.release(), std::move(options.name));
  Task<T> task(state);
  if (options.context) state->use_context(*options.context);
  if (options.eager_start.value_or(false) && is_running()) {
    state->eager_start();
  } else {
    internal::LoopAccess::schedule(*this, state);
  }
  return task;
}

// The task running now, or nullopt outside a task (asyncio.current_task).
// std::runtime_error if no loop is running.
struct TaskRef {
  internal::TaskBase* task;
  std::string get_name() const { return task->get_name(); }
  int cancelling() const { return task->cancelling(); }
  int uncancel() { return task->uncancel(); }
  bool cancel(std::string msg = {}) { return task->future().cancel(std::move(msg)); }
  bool done() const { return task->future().done(); }
  uint64_t id() const { return task->id(); }
  friend bool operator==(const TaskRef& a, const TaskRef& b) { return a.task == b.task; }
};
std::optional<TaskRef> current_task();
// The unfinished tasks of the running loop, in creation order.
std::vector<TaskRef> all_tasks();

namespace internal {
// A sleep's state: the future the task waits on and, at once, the entry in
// the loop's timer heap, so a sleep costs one allocation.
class SleepState final : public ValueHolder<void>, public TimerTarget {
 public:
  using ValueHolder<void>::ValueHolder;
  void run() override;
  void drop() override { release(); }
  void release_timer() override { release(); }
  bool cancel(std::string msg) override;
  std::string describe() const override;  // "sleep() until <virtual or loop time>"
};
}  // namespace internal

// What sleep() returns: awaitable directly, and convertible to Coro<void>
// (so create_task, gather, wait_for and shield accept it).
class [[nodiscard]] SleepAwaitable {
 public:
  explicit SleepAwaitable(absl::Duration delay) : delay_(delay) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h);
  void await_resume();
  // The same sleep as a coroutine object.
  Coro<void> as_coro() &&;
  operator Coro<void>() && { return std::move(*this).as_coro(); }

 private:
  static constexpr uintptr_t kOwnTimer = 1;  // TaskBase is aligned: bit 0 is free
  internal::TaskBase* task() const { return reinterpret_cast<internal::TaskBase*>(task_bits_ & ~kOwnTimer); }

  // 24 bytes, not 40: it lives in the frame of every coroutine that sleeps
  // (issue 13, bytes per task). The delay is read only until the suspension,
  // which then stores the task in its place.
  union {
    absl::Duration delay_;  // until await_suspend
    uintptr_t task_bits_;   // from await_suspend: the task, | kOwnTimer on its own timer (no state_)
  };
  internal::Ref<internal::FutureBase> state_;
};
static_assert(std::is_trivially_destructible_v<absl::Duration> && std::is_trivially_copyable_v<absl::Duration>,
              "SleepAwaitable keeps its delay in a union");

// Suspends the current task for `delay` (asyncio.sleep). A delay <= 0
// yields for exactly one loop iteration (callbacks scheduled before it run
// first). absl::InfiniteDuration() sleeps until cancelled. Cancelling the
// task cancels the timer; the task then raises CancelledError.
inline SleepAwaitable sleep(absl::Duration delay) { return SleepAwaitable(delay); }
// sleep(delay) then return `result`.
template <class T>
Coro<T> sleep(absl::Duration delay, T result) {
  co_await sleep(delay);
  co_return result;
}

// A CoroConvertible (sleep(), queue get/put) becomes its Coro, then a task.
template <CoroConvertible A>
auto create_task(A a) {
  return create_task(std::move(a).as_coro());
}
template <CoroConvertible A>
auto create_task(A a, TaskOptions options) {
  return create_task(std::move(a).as_coro(), std::move(options));
}

}  // namespace twinloop

#endif  // TWINLOOP_API_TASK_H_
