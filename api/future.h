// twinloop/api/future.h: Future<T>, the bridge between callback code and
// coroutines (asyncio.Future, CPython 3.14 Lib/asyncio/futures.py).
//
//   twinloop::Future<int> f = twinloop::create_future<int>();
//   loop.call_later(absl::Milliseconds(10), [f]() mutable { f.set_result(42); });
//   int v = co_await f;                       // 42, ten milliseconds later
//
// Contract (asyncio's):
//  - result() / exception() raise InvalidStateError while pending and
//    CancelledError(msg) when cancelled (for a task whose coroutine raised
//    its own CancelledError, that same instance, every time; asyncio hands
//    it out once, then a new one); result() rethrows a stored exception.
//  - set_result / set_exception on a done future raise InvalidStateError;
//    cancel() on a done future returns false.
//  - Done callbacks run through call_soon, in registration order, one loop
//    iteration after completion at the earliest, including a callback added
//    to an already-done future.
//  - An exception nobody retrieved (via result(), exception() or co_await) is
//    reported to the loop's exception handler when the last reference to the
//    future goes away ("Future exception was never retrieved").
//  - Awaiting a pending future suspends the current task; a task cancelled
//    while it waits cancels the future.
// Future handles are cheap to copy; all copies share one state. Use them on
// the loop's thread only.
#ifndef TWINLOOP_API_FUTURE_H_
#define TWINLOOP_API_FUTURE_H_

#include <coroutine>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "absl/functional/any_invocable.h"
#include "twinloop/api/contextvars.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/internal/ref.h"

namespace twinloop {

template <class T>
class Future;
template <class T>
class Task;

namespace internal {

class TaskBase;

// How a result of type T is stored: void results become std::monostate.
template <class T>
using Stored = std::conditional_t<std::is_void_v<T>, std::monostate, T>;

// The untyped part of every future and task. Kept small: a task's memory
// footprint is what spawning many tasks costs.
class FutureBase;

// A done callback that allocates nothing: an object embedded in its owner
// (gather keeps one per child in one array). When the future finishes, the
// link is scheduled on the ready queue, exactly where and when a call_soon
// callback would run (one iteration later, with a handle id and a callback
// event for the simulated loop's event hash), and on_done runs then. While
// queued, the link keeps its owner alive (hold/unhold); the owner removes
// the link from futures that have not finished when it is destroyed.
class FutureLink : public Runnable {
 public:
  virtual void on_done(FutureBase& f) = 0;
  virtual void hold() = 0;
  virtual void unhold() = 0;
  // The task on whose behalf the link waits (call-graph edge), or 0.
  virtual uint64_t awaiting_task_id() const { return 0; }

  void run() final;
  void drop() final { unhold(); }

 private:
  friend class FutureBase;
  FutureBase* future_ = nullptr;
  uint64_t handle_id_ = 0;

 protected:
  ~FutureLink() = default;
};

// An immutable label shared by many futures (FutureBase::set_label).
class Label final : public RefCounted {
 public:
  explicit Label(std::string text) : text(std::move(text)) {}
  const std::string text;
};

class FutureBase : public RefCounted {
 public:
  enum class State : uint8_t { kPending, kCancelled, kFinished };
  using Callback = absl::AnyInvocable<void(FutureBase&)>;

  explicit FutureBase(EventLoop& loop) : loop_(&loop) {}
  ~FutureBase() override;

  EventLoop& loop() const { return *loop_; }
  bool done() const { return state_ != State::kPending; }
  bool cancelled() const { return state_ == State::kCancelled; }

  // asyncio Future.cancel(msg); Task and gather override it.
  virtual bool cancel(std::string msg = {});
  // asyncio Future.exception(): the stored exception (null if the result was
  // set); InvalidStateError if pending; throws CancelledError if cancelled.
  std::exception_ptr exception();
  // Throws what result() would throw; marks a stored exception retrieved.
  // Returns if finished with a value; else throws what result() throws.
  void check_result() {
    if (state_ != State::kFinished || exception_) [[unlikely]] throw_result();
  }
  [[noreturn]] void throw_result();
  // InvalidStateError if done.
  void set_exception(std::exception_ptr e);
  // Registers `cb`, called through call_soon once done, in a copy of the
  // context current now (asyncio's add_done_callback). Returns a token for
  // remove_done_callback (C++ callables cannot be compared as Python's are).
  uint64_t add_done_callback(Callback cb);
  // The same, run in `context` itself (asyncio's context= argument).
  uint64_t add_done_callback(Callback cb, const Context& context);
  // Removes callbacks registered with `token` that have not been scheduled
  // yet; returns how many.
  size_t remove_done_callback(uint64_t token);

  // Fast path for a task awaiting this future: the task is scheduled
  // directly (no callback object), preserving registration order.
  void add_task_waiter(TaskBase* task) {
    if (done()) [[unlikely]] {
      schedule_task_now(task);
      return;
    }
    add_waiter_bits(task_bits(task));
  }
  // Schedules `link` when this future finishes (see FutureLink).
  void add_link(FutureLink* link);
  // Unregisters a link that has not been scheduled yet (a no-op otherwise).
  void remove_link(FutureLink* link);
  // shield()'s exception logger (asyncio's module-level _log_on_exception,
  // one function, so a future carries at most one): removed if present and
  // added again as the last done callback, as asyncio's
  // remove_done_callback + add_done_callback. Once this future is done and
  // not cancelled, the logger retrieves its exception and, if there is one,
  // reports it: "<type> exception in shielded future".
  void add_shield_logger();
  // An exception set later counts as retrieved (its owner is gone, as
  // asyncio's gather marks a child's exception retrieved in its callback).
  void mark_retrieved() { retrieved_ = true; }

  TaskBase* as_task() const { return task_; }
  // The message of the cancellation (asyncio's _cancel_message): for a task,
  // the one of its pending cancel request; for a cancelled future, the one it
  // was cancelled with.
  std::string cancel_message() const { return extras_ ? extras_->cancel_message : std::string(); }
  void set_cancel_message(std::string msg);
  // What this future stands for, for people: a synchronization primitive
  // labels its waiter futures ("Lock.acquire()", "Queue.get() on 'jobs'"),
  // and deadlock reports and the call graph show the label.
  void set_label(std::string label);
  // The same, sharing one immutable label among many futures (a primitive
  // labels every waiter alike): no allocation per future.
  void set_label(Ref<Label> label) { shared_label_ = std::move(label); }
  std::string label() const {
    if (shared_label_) return shared_label_->text;
    return extras_ ? extras_->label : std::string();
  }
  // Call-graph edges that are not "a task blocked on this future"
  // (asyncio's future_add_to_awaited_by): gather, shield, wait and TaskGroup
  // record that the task using them awaits this future. By task id.
  void add_awaited_by(uint64_t task_id);
  void discard_awaited_by(uint64_t task_id);
  std::vector<uint64_t> awaited_by_ids() const;
  // asyncio's _make_cancelled_error: the CancelledError a task's coroutine
  // ended with (the very instance: cancel_with_error), else a new one
  // carrying the cancel message. result(), exception() and co_await raise it.
  std::exception_ptr make_cancelled_error() const;
  // Cancels with `error` (a CancelledError, or a subclass, that a task's
  // coroutine raised; asyncio's Task._cancelled_exc) as what retrieving the
  // outcome raises, and its message as the cancel message. No-op returning
  // false if done.
  bool cancel_with_error(std::exception_ptr error, std::string msg);
  // "<Future pending>", "<Task finished name='x'>", "<Future pending Lock.acquire()>" ...
  virtual std::string describe() const;

  // Marks the result as set (the typed part stored it) and schedules the
  // callbacks. InvalidStateError if already done.
  void mark_finished();
  // The plain Future.cancel: no-op returning false if done.
  bool cancel_future(std::string msg);
  // Forgets every done callback without running it (the loop is closing:
  // this breaks reference cycles such as gather <-> a child that never
  // finishes, which asyncio leaves to its garbage collector).
  void clear_callbacks() {
    waiter_ = 0;
    more_.reset();
  }
  // InvalidStateError("invalid state: <describe()>"), asyncio's message for
  // setting a done future; out of line, off the setters' common path.
  [[noreturn, gnu::noinline]] void throw_invalid_state() const;
  // Whether a stored exception was never retrieved; report_unretrieved
  // reports it to the exception handler.
  bool has_unretrieved_exception() const {
    return state_ == State::kFinished && exception_ && !retrieved_;
  }
  void report_unretrieved(const std::string& task_name);

 private:
  // First, so that they fill RefCounted's tail padding (after its count).
  State state_ = State::kPending;
  bool retrieved_ = false;

 protected:
  TaskBase* task_ = nullptr;  // set by tasks

 private:
  // A waiter: a TaskBase* (low bit 0) or a FutureLink* (low bit 1).
  using WaiterBits = uintptr_t;
  static WaiterBits task_bits(TaskBase* t) { return reinterpret_cast<uintptr_t>(t); }
  static WaiterBits link_bits(FutureLink* l) { return reinterpret_cast<uintptr_t>(l) | 1; }
  static FutureLink* as_link(WaiterBits w) {
    return (w & 1) ? reinterpret_cast<FutureLink*>(w & ~uintptr_t{1}) : nullptr;
  }
  struct Entry {
    WaiterBits waiter;  // a task or link to wake, or 0
    Callback fn;        // else a callback
    uint64_t token;
    Ref<ContextState> context;  // the callback's (null: an empty one)
  };
  uint64_t add_done_callback_in(Callback cb, ContextState* context);
  void schedule_callbacks();
  // schedule_callbacks' and schedule_waiter's rare cases, out of line.
  [[gnu::noinline]] void schedule_more();
  void schedule_waiter(WaiterBits w);
  [[gnu::noinline]] void schedule_link(FutureLink* l);
  void schedule_task_now(TaskBase* task);
  // The common case inline (the first waiter), the rest in future.cc.
  void add_waiter_bits(WaiterBits w) {
    if (waiter_ == 0 && !more_) [[likely]] {
      waiter_ = w;
      return;
    }
    add_waiter_bits_slow(w);
  }
  void add_waiter_bits_slow(WaiterBits w);

  Ref<EventLoop> loop_;
  std::exception_ptr exception_;
  // Rarely needed strings, out of line to keep futures small.
  struct Extras {
    std::string cancel_message;
    std::string label;
    absl::InlinedVector<uint64_t, 2> awaited_by;
    uint64_t shield_logger = 0;  // add_shield_logger's token, 0 if none
    std::exception_ptr cancelled_error;  // cancel_with_error's, else null
    static void* operator new(size_t bytes) { return pool_allocate(bytes); }
    static void operator delete(void* p, size_t bytes) noexcept { pool_deallocate(p, bytes); }
  };
  std::unique_ptr<Extras> extras_;
  Ref<Label> shared_label_;
  // Callbacks in registration order: the common case (one awaiting task) is
  // `waiter_` alone; anything more moves everything to `more_`.
  WaiterBits waiter_ = 0;
  struct Entries {
    absl::InlinedVector<Entry, 2> list;
    static void* operator new(size_t bytes) { return pool_allocate(bytes); }
    static void operator delete(void* p, size_t bytes) noexcept { pool_deallocate(p, bytes); }
  };
  std::unique_ptr<Entries> more_;
};

// A future holding a value of type T.
template <class T>
class ValueHolder : public FutureBase {
 public:
  using FutureBase::FutureBase;

  template <class U>
  void set_value(U&& v) {
    if (done()) [[unlikely]] throw_invalid_state();
    value_.emplace(std::forward<U>(v));
    mark_finished();
  }
  Stored<T>& value() { return *value_; }

 private:
  std::optional<Stored<T>> value_;
};

// A void future stores nothing (8 bytes less per task: api/coro.h's room).
template <>
class ValueHolder<void> : public FutureBase {
 public:
  using FutureBase::FutureBase;

  template <class U>
  void set_value(U&&) {
    if (done()) [[unlikely]] throw_invalid_state();
    mark_finished();
  }
  std::monostate& value() { return nothing_; }

 private:
  static inline std::monostate nothing_{};  // empty: nothing to share
};

// A task's flags (TaskBase, api/task.h, derives from this), here so that an
// awaiter's resume check inlines where TaskBase is not known: did a cancel()
// ask to throw CancelledError in at this suspension point (pending_throw_)?
struct TaskFlags {
  bool pending_throw_ = false;
  // TaskBase's other flags, here so that they share this struct's padding
  // after the task's vtable pointer (api/task.h says what each means).
  bool must_cancel_ = false;
  bool started_ = false;
  bool parked_ = true;
  bool yielded_ = false;
  bool timer_busy_ = false;
  bool sleeping_ = false;
  bool sleep_woken_ = false;
};
// Clears the flag and throws the task's CancelledError (api/task.cc).
[[noreturn]] void throw_pending_cancel(TaskFlags* task);

// Suspends the current task on `f`; returns the task. Throws
// std::runtime_error outside a task or when a task awaits itself.
TaskFlags* suspend_on(FutureBase& f, std::coroutine_handle<> h);

template <class T>
class FutureAwaiter {
 public:
  explicit FutureAwaiter(ValueHolder<T>* s) : state_(s) {}
  bool await_ready() const noexcept { return state_->done(); }
  void await_suspend(std::coroutine_handle<> h) { task_ = suspend_on(*state_, h); }
  T await_resume() {
    if (task_ && task_->pending_throw_) [[unlikely]] throw_pending_cancel(task_);
    state_->check_result();
    if constexpr (!std::is_void_v<T>) return state_->value();
  }

 private:
  ValueHolder<T>* state_;
  TaskFlags* task_ = nullptr;
};

}  // namespace internal

template <class T = void>
class Future {
 public:
  using value_type = T;
  Future() = default;

  bool done() const { return state_->done(); }
  bool cancelled() const { return state_->cancelled(); }
  bool cancel(std::string msg = {}) { return state_->cancel(std::move(msg)); }
  // The result; rethrows a stored exception; CancelledError if cancelled;
  // InvalidStateError if pending.
  decltype(auto) result() const {
    state_->check_result();
    if constexpr (!std::is_void_v<T>) return static_cast<const T&>(state_->value());
  }
  std::exception_ptr exception() const { return state_->exception(); }
  template <class U = T>
    requires(!std::is_void_v<T>)
  void set_result(U&& v) {
    state_->set_value(std::forward<U>(v));
  }
  void set_result()
    requires std::is_void_v<T>
  {
    state_->set_value(std::monostate{});
  }
  void set_exception(std::exception_ptr e) { state_->set_exception(std::move(e)); }
  template <class E>
  void set_exception(E e) {
    state_->set_exception(std::make_exception_ptr(std::move(e)));
  }
  // `fn(Future<T>)` runs through call_soon once done. Returns a token for
  // remove_done_callback.
  // It runs in a copy of the context current now, or in `context` itself.
  uint64_t add_done_callback(std::function<void(Future<T>)> fn) {
    return state_->add_done_callback(
        [fn = std::move(fn)](internal::FutureBase& f) {
          fn(Future<T>(static_cast<internal::ValueHolder<T>*>(&f)));
        });
  }
  uint64_t add_done_callback(std::function<void(Future<T>)> fn, const Context& context) {
    return state_->add_done_callback(
        [fn = std::move(fn)](internal::FutureBase& f) {
          fn(Future<T>(static_cast<internal::ValueHolder<T>*>(&f)));
        },
        context);
  }
  size_t remove_done_callback(uint64_t token) { return state_->remove_done_callback(token); }
  EventLoop& get_loop() const { return state_->loop(); }
  // See FutureBase::set_label.
  void set_label(std::string label) { state_->set_label(std::move(label)); }
  void set_label(internal::Ref<internal::Label> label) { state_->set_label(std::move(label)); }

  auto operator co_await() const { return internal::FutureAwaiter<T>(state_.get()); }

  explicit operator bool() const { return bool(state_); }
  friend bool operator==(const Future& a, const Future& b) { return a.state_ == b.state_; }
  internal::ValueHolder<T>* state() const { return state_.get(); }

  explicit Future(internal::ValueHolder<T>* s) : state_(s) {}
  explicit Future(internal::Ref<internal::ValueHolder<T>> s) : state_(std::move(s)) {}

 protected:
  internal::Ref<internal::ValueHolder<T>> state_;
};

// A new pending future on the running loop (loop.create_future()).
template <class T = void>
Future<T> create_future() {
  return Future<T>(internal::make_ref<internal::ValueHolder<T>>(get_running_loop()));
}
template <class T = void>
Future<T> create_future(EventLoop& loop) {
  return Future<T>(internal::make_ref<internal::ValueHolder<T>>(loop));
}

template <class T>
Future<T> EventLoop::create_future() {
  check_thread_if_debug();
  return twinloop::create_future<T>(*this);
}

}  // namespace twinloop

#endif  // TWINLOOP_API_FUTURE_H_
