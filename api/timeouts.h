// twinloop/api/timeouts.h: timeout / timeout_at (asyncio.timeout, CPython
// 3.14 Lib/asyncio/timeouts.py) and wait_for.
//
// asyncio's `async with asyncio.timeout(d) as cm: body` becomes
//
//   co_await twinloop::timeout(absl::Seconds(1)).run(body());
//   // or, to reach the context manager from the body:
//   twinloop::Timeout cm = twinloop::timeout(absl::Seconds(1));
//   co_await cm.run([&](twinloop::Timeout& t) -> twinloop::Coro<void> {
//     t.reschedule(twinloop::get_running_loop().time() + absl::Seconds(5));
//     co_await work();
//   });
//   if (cm.expired()) ...
//
// The body runs inside the calling task. At the deadline the task is
// cancelled; when the body then exits with CancelledError and no other
// cancel request arrived meanwhile (the task's cancelling() count is back to
// its value at entry), run() raises TimeoutError (nested with the
// CancelledError). So with nested timeouts of equal deadline only the
// outermost converts, and a foreign cancel stays a CancelledError.
// absl::InfiniteDuration() / absl::InfiniteFuture() mean "no deadline"
// (asyncio's None). States: CREATED -> ENTERED -> EXPIRING -> EXPIRED, or
// EXITED; reschedule() outside ENTERED raises std::runtime_error, and a
// Timeout cannot be entered twice. A Timeout is a handle (like Future):
// copies share one timeout.
// Deliberate difference: asyncio also splices a TimeoutError into the
// __context__ chain of other exceptions leaving an expired block; C++
// exceptions have no such chain, so those propagate unchanged.
//
// wait_for(aw, timeout) is asyncio 3.12's: `async with timeout(t): return
// await aw` (a coroutine runs inside the caller's task). On timeout the inner
// awaitable is cancelled and awaited until it finishes; if it suppresses the
// cancellation and returns, its value is returned. With timeout <= 0 the
// awaitable is cancelled at once without being started (a coroutine never
// runs) unless it is already done.
#ifndef TWINLOOP_API_TIMEOUTS_H_
#define TWINLOOP_API_TIMEOUTS_H_

#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

#include "absl/time/time.h"
#include "twinloop/api/awaitable.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/internal/check.h"
#include "twinloop/api/internal/loop_access.h"
#include "twinloop/api/internal/ref.h"
#include "twinloop/api/task.h"

namespace twinloop {

namespace internal {

// Timeout::State.
enum class TimeoutStateKind { kCreated, kEntered, kExpiring, kExpired, kExited };

// What a Timeout handle refers to: asyncio's Timeout object.
class TimeoutState final : public RefCounted {
 public:
  explicit TimeoutState(absl::Time when) : when_(when) {}
  ~TimeoutState() override {
    handle_.cancel();
    soon_.cancel();
  }

  void enter();
  void exit(std::exception_ptr error);
  void reschedule(absl::Time when);

  absl::Time when_;
  TimeoutStateKind state_ = TimeoutStateKind::kCreated;

 private:
  void arm();
  void on_timeout();

  TaskBase* task_ = nullptr;
  int cancelling_ = 0;
  TimerHandle handle_;  // the deadline timer
  Handle soon_;         // or the call_soon when the deadline had passed
};

}  // namespace internal

class Timeout {
 public:
  // asyncio's _State: CREATED "created", ENTERED "active", EXPIRING
  // "expiring", EXPIRED "expired", EXITED "finished".
  using State = internal::TimeoutStateKind;

  // `when` on the loop's clock; absl::InfiniteFuture() for no deadline.
  explicit Timeout(absl::Time when);

  absl::Time when() const;
  // Moves the deadline (absl::InfiniteFuture(): none). Only while entered;
  // else std::runtime_error: "Timeout has not been entered" before, and
  // "Cannot change state of <expiring|expired|finished> Timeout" after
  // (asyncio's wording, with the state's value).
  void reschedule(absl::Time when);
  bool expired() const;
  State state() const;

  // Runs `body` (a Coro<R>, or a callable taking Timeout& and returning one)
  // under this timeout in the current task. The returned Coro owns its own
  // reference to the timeout, so the Timeout may be gone before it is
  // awaited (`auto c = timeout(d).run(body); co_await c;`).
  template <class Body>
  auto run(Body body) {
    if constexpr (CoroConvertible<Body>) {
      return run_coro(*this, std::move(body).as_coro());
    } else if constexpr (std::is_invocable_v<Body&, Timeout&>) {
      using R = awaitable_value_t<std::invoke_result_t<Body&, Timeout&>>;
      return run_callable<R>(*this, std::move(body));
    } else {
      return run_coro(*this, std::move(body));
    }
  }

 private:
  // Both static, taking the handle by value: a member coroutine would hold
  // only `this`, which may dangle by the time the coroutine starts.

  // Keeps the callable (and so its captures) alive in this frame while the
  // coroutine it returns runs.
  template <class R, class Body>
  static Coro<R> run_callable(Timeout self, Body body) {
    if constexpr (std::is_void_v<R>) {
      co_await run_coro(self, body(self));
    } else {
      co_return co_await run_coro(self, body(self));
    }
  }

  template <class R>
  static Coro<R> run_coro(Timeout self, Coro<R> body) {
    try {
      self.enter();
    } catch (...) {
      body.close();  // refused, not forgotten: no "never awaited" report
      throw;
    }
    std::exception_ptr error;
    if constexpr (std::is_void_v<R>) {
      try {
        co_await std::move(body);
      } catch (...) {
        error = std::current_exception();
      }
      self.exit(error);
      co_return;
    } else {
      std::optional<R> value;
      try {
        value.emplace(co_await std::move(body));
      } catch (...) {
        error = std::current_exception();
      }
      self.exit(error);
      co_return std::move(*value);
    }
  }

  void enter();
  // Leaves the block: rethrows `error`, converted to TimeoutError when this
  // timeout caused it; returns normally if there was no error.
  void exit(std::exception_ptr error);

  // A handle: copies (the one in run()'s frame, the Timeout& a body gets)
  // share one state.
  internal::Ref<internal::TimeoutState> state_;
};

// A Timeout expiring `delay` from now (absl::InfiniteDuration(): never).
Timeout timeout(absl::Duration delay);
// A Timeout expiring at `when` on the loop's clock (absl::InfiniteFuture(): never).
Timeout timeout_at(absl::Time when);

namespace internal {
// Cancels `f` and waits until it is done, without being cancellable through
// `f` itself (asyncio's _cancel_and_wait).
Coro<void> cancel_and_wait(Ref<FutureBase> f);

// wait_for with a timeout <= 0 (asyncio 3.12's first branch): `aw` is
// cancelled at once without being started, unless it is already done.
template <class A>
Coro<awaitable_value_t<A>> wait_for_now(A aw) {
  using T = awaitable_value_t<A>;
  Future<T> f = ensure_future(std::move(aw));
  if (!f.done()) {
    co_await cancel_and_wait(Ref<FutureBase>(f.state()));
    try {
      if constexpr (std::is_void_v<T>) {
        f.result();
        co_return;
      } else {
        co_return f.result();
      }
    } catch (const CancelledError&) {
      std::throw_with_nested(TimeoutError());
    }
  }
  if constexpr (std::is_void_v<T>) {
    f.result();
    co_return;
  } else {
    co_return f.result();
  }
}

template <class A>
concept HasMemberCoAwait = requires(A&& a) { std::move(a).operator co_await(); };

template <class A>
class WaitFor;

// wait_for as a coroutine object (create_task(wait_for(...)) and the like).
template <class A>
Coro<awaitable_value_t<A>> wait_for_coro(A aw, absl::Duration timeout_after) {
  if constexpr (std::is_void_v<awaitable_value_t<A>>) {
    co_await WaitFor<A>(std::move(aw), timeout_after);
  } else {
    co_return co_await WaitFor<A>(std::move(aw), timeout_after);
  }
}

// What wait_for returns: `async with timeout(t): return await aw`, done by
// the awaiting coroutine itself, without a coroutine frame (issue 13). The
// deadline is the task's own timer (api/task.h) when it is free, so that a
// wait_for allocates nothing; else (a wait_for inside another's body, or in
// a task sleeping on a SleepState) a Timeout's state and call_at handle, as
// Timeout::run. Either way the events are the same: a handle id taken on
// entry, a kTimerDue and a kCallback event when the deadline fires, the task
// cancelled then, and TimeoutError when that cancellation ends the body
// (asyncio 3.14 Lib/asyncio/timeouts.py, Timeout.__aenter__/__aexit__).
// Converts to Coro<T> wherever a Coro is taken (create_task, gather, ...).
template <class A>
class [[nodiscard]] WaitFor {
 public:
  using T = awaitable_value_t<A>;

  WaitFor(A aw, absl::Duration timeout_after) : aw_(std::move(aw)), timeout_(timeout_after) {}
  WaitFor(WaitFor&& o) noexcept(std::is_nothrow_move_constructible_v<A>)
      : aw_(std::move(o.aw_)), timeout_(o.timeout_) {}
  WaitFor& operator=(WaitFor&&) = delete;
  ~WaitFor() {
    // Destroyed while it waits (its frame destroyed: the loop closing, a
    // crashed host): the deadline goes with it, as the Timeout's would.
    if (path_ == Path::kOwnTimer) task_->disarm_deadline();
  }

  Coro<T> as_coro() && {
    if (timeout_ <= absl::ZeroDuration()) return wait_for_now(std::move(aw_));
    return wait_for_coro(std::move(aw_), timeout_);
  }
  operator Coro<T>() && { return std::move(*this).as_coro(); }

  // The call graph (api/graph.h) shows the awaited coroutine as the
  // awaiting one's child: it runs in the awaiting task.
  PromiseBase* promise_base() const
    requires requires(const A& a) { a.promise_base(); }
  {
    return timeout_ <= absl::ZeroDuration() ? nullptr : aw_.promise_base();
  }
  // A WaitFor is its own awaiter; awaiting goes through this only where the
  // promise tracks the child (PromiseBase::await_transform), which needs it.
  WaitFor& operator co_await() &
    requires requires(const A& a) { a.promise_base(); }
  {
    return *this;
  }
  WaitFor& operator co_await() &&
    requires requires(const A& a) { a.promise_base(); }
  {
    return *this;
  }

  bool await_ready() {
    if (timeout_ <= absl::ZeroDuration()) {
      path_ = Path::kCoro;
      coro_.emplace(wait_for_now(std::move(aw_)));
      coro_awaiter_.emplace(std::move(*coro_).operator co_await());
      return false;
    }
    enter();
    bool ready;
    try {
      if constexpr (HasMemberCoAwait<A>) inner_.emplace(std::move(aw_).operator co_await());
      ready = inner().await_ready();
    } catch (...) {
      leave(std::current_exception());
      throw;  // not reached: leave() rethrows
    }
    return ready;
  }

  // Whatever the inner awaiter's await_suspend returns (void, bool or a
  // handle), as a handle: the next coroutine to run.
  template <class P>
  std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) {
    if (path_ == Path::kCoro) return coro_awaiter_->await_suspend(h);
    try {
      using R = decltype(inner().await_suspend(h));
      if constexpr (std::is_void_v<R>) {
        inner().await_suspend(h);
        return std::noop_coroutine();
      } else if constexpr (std::is_same_v<R, bool>) {
        if (inner().await_suspend(h)) return std::noop_coroutine();
        return h;  // not suspended after all: resume at once
      } else {
        return inner().await_suspend(h);
      }
    } catch (...) {
      leave(std::current_exception());
      throw;  // not reached
    }
  }

  T await_resume() {
    if (path_ == Path::kCoro) {
      path_ = Path::kNone;
      return coro_awaiter_->await_resume();
    }
    std::exception_ptr error;
    if constexpr (std::is_void_v<T>) {
      try {
        inner().await_resume();
      } catch (...) {
        error = std::current_exception();
      }
      leave(error);
    } else {
      std::optional<T> value;
      try {
        value.emplace(inner().await_resume());
      } catch (...) {
        error = std::current_exception();
      }
      leave(error);
      return std::move(*value);
    }
  }

 private:
  enum class Path : uint8_t { kNone, kOwnTimer, kTimeout, kCoro };
  static auto inner_type() {
    if constexpr (HasMemberCoAwait<A>) {
      return std::type_identity<decltype(std::declval<A&&>().operator co_await())>{};
    } else {
      return std::type_identity<A>{};
    }
  }
  using Inner = typename decltype(inner_type())::type;
  Inner& inner() {
    if constexpr (HasMemberCoAwait<A>) {
      return *inner_;
    } else {
      return aw_;
    }
  }

  // Timeout.__aenter__.
  void enter() {
    EventLoop& loop = get_running_loop();
    TaskBase* task;
    try {
      task = current_task_or_throw("Timeout");
    } catch (...) {
      if constexpr (requires { aw_.close(); }) aw_.close();  // refused, not forgotten
      throw;
    }
    if (timeout_ != absl::InfiniteDuration() && task->can_arm_deadline()) [[likely]] {
      task_ = task;
      cancelling_ = task->cancelling();
      // loop.time() + timeout on the loop clock, as call_at(when) would
      // put it (timeout > 0: it is never already due), without absl::Time
      // arithmetic; saturating at the end of time as call_later does.
      task->arm_deadline(LoopAccess::deadline_after_ns(loop, timeout_));
      path_ = Path::kOwnTimer;
      return;
    }
    const absl::Time when = timeout_ == absl::InfiniteDuration() ? absl::InfiniteFuture() : loop.time() + timeout_;
    timeout_state_ = make_ref<TimeoutState>(when);
    timeout_state_->enter();
    path_ = Path::kTimeout;
  }

  // Timeout.__aexit__: rethrows `error`, converted to TimeoutError when the
  // deadline caused it; returns normally if there was no error.
  void leave(std::exception_ptr error) {
    const Path path = std::exchange(path_, Path::kNone);
    if (path == Path::kTimeout) {
      Ref<TimeoutState> state = std::move(timeout_state_);
      state->exit(std::move(error));
      return;
    }
    TWINLOOP_DCHECK(path == Path::kOwnTimer, "wait_for leaves the deadline it entered");
    // Only if no new cancel request arrived since entry is this our doing.
    if (task_->disarm_deadline() && task_->uncancel() <= cancelling_ && error && is_cancelled_error(error)) {
      try {
        std::rethrow_exception(error);
      } catch (const CancelledError&) {
        std::throw_with_nested(TimeoutError());
      }
    }
    if (error) std::rethrow_exception(error);
  }

  A aw_;
  absl::Duration timeout_;
  Path path_ = Path::kNone;
  TaskBase* task_ = nullptr;
  int cancelling_ = 0;
  // A's awaiter, unless A is its own.
  std::conditional_t<HasMemberCoAwait<A>, std::optional<Inner>, std::monostate> inner_;
  Ref<TimeoutState> timeout_state_;
  std::optional<Coro<T>> coro_;
  std::optional<typename Coro<T>::Awaiter> coro_awaiter_;
};

}  // namespace internal

// asyncio.wait_for: `co_await wait_for(aw, t)` (an awaitable that converts
// to Coro<T>). See internal::WaitFor.
template <class A>
internal::WaitFor<A> wait_for(A aw, absl::Duration timeout_after) {
  return internal::WaitFor<A>(std::move(aw), timeout_after);
}

}  // namespace twinloop

#endif  // TWINLOOP_API_TIMEOUTS_H_
