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

#include "absl/time/time.h"
#include "twinloop/api/awaitable.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"
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
}  // namespace internal

template <class A>
Coro<awaitable_value_t<A>> wait_for(A aw, absl::Duration timeout_after) {
  using T = awaitable_value_t<A>;
  if (timeout_after <= absl::ZeroDuration()) {
    Future<T> f = ensure_future(std::move(aw));
    if (!f.done()) {
      co_await internal::cancel_and_wait(internal::Ref<internal::FutureBase>(f.state()));
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
  Timeout cm = timeout(timeout_after);
  if constexpr (std::is_void_v<T>) {
    co_await cm.run([&](Timeout&) -> Coro<void> { co_await std::move(aw); });
  } else {
    co_return co_await cm.run([&](Timeout&) -> Coro<T> { co_return co_await std::move(aw); });
  }
}

}  // namespace twinloop

#endif  // TWINLOOP_API_TIMEOUTS_H_
