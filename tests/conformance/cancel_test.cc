// Cross-loop conformance: asyncio's task cancellation rules (CPython 3.14
// Lib/asyncio/tasks.py Task.cancel / cancelling / uncancel / __step), on the
// real and the simulated loop.
#include <exception>
#include <stdexcept>
#include <string>
#include <utility>

#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/future.h"
#include "twinloop/api/gather.h"
#include "twinloop/api/task.h"
#include "twinloop/api/internal/loop_access.h"
#include "gtest/gtest.h"
#include "twinloop/tests/conformance/loop_fixture.h"

namespace twinloop::conformance {
namespace {

constexpr absl::Duration kZero = absl::ZeroDuration();

class CancelConformance : public LoopTest {};

Coro<int> sleep_recording_cancel_message(std::string* seen) {
  try {
    co_await sleep(kNever);
  } catch (const CancelledError& e) {
    *seen = e.what();
    throw;
  }
  co_return 0;
}

// CPython test_tasks.py test_cancel_with_message_then_future_result: a task
// cancelled while sleeping gets CancelledError(msg) at its await, ends
// cancelled, and awaiting it raises CancelledError carrying the message.
TEST_P(CancelConformance, CancelWhileSleepingRaisesCancelledErrorWithMessage) {
  run([&]() -> Coro<void> {
    std::string inside;
    Task<int> t = create_task(sleep_recording_cancel_message(&inside));
    co_await sleep(absl::Milliseconds(1));
    EXPECT_TRUE(t.cancel("stop now"));
    std::string outside;
    bool raised = false;
    try {
      co_await t;
    } catch (const CancelledError& e) {
      raised = true;
      outside = e.what();
    }
    EXPECT_TRUE(raised);
    EXPECT_EQ(inside, "stop now");
    EXPECT_EQ(outside, "stop now");
    EXPECT_TRUE(t.cancelled());
    // The awaiting task itself was not cancelled.
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

Coro<int> await_then_catch(Future<void> fut1, Future<void> fut2) {
  co_await fut1;
  try {
    co_await fut2;
  } catch (const CancelledError&) {
    co_return 42;
  }
  co_return 0;
}

// CPython test_tasks.py test_cancel_task_catching: cancel() cancels the
// future the task waits on; the task catches CancelledError and returns 42,
// so it is NOT cancelled and its result is available.
TEST_P(CancelConformance, CancelCaughtAndTaskReturnsValue) {
  run([&]() -> Coro<void> {
    Future<void> fut1 = create_future<void>();
    Future<void> fut2 = create_future<void>();
    Task<int> t = create_task(await_then_catch(fut1, fut2));
    co_await sleep(kZero);
    fut1.set_result();
    co_await sleep(kZero);
    co_await sleep(kZero);
    EXPECT_TRUE(t.cancel());
    EXPECT_TRUE(fut2.cancelled());
    EXPECT_EQ(co_await t, 42);
    EXPECT_FALSE(t.cancelled());
    EXPECT_EQ(t.result(), 42);
  }());
}

Coro<int> await_ignoring_cancel(Future<void> fut1, Future<void> fut2, Future<int> fut3) {
  co_await fut1;
  try {
    co_await fut2;
  } catch (const CancelledError&) {
  }
  co_return co_await fut3;
}

// CPython test_tasks.py test_cancel_task_ignoring: the task swallows the
// cancellation and keeps awaiting; it finishes normally with fut3's result.
TEST_P(CancelConformance, CancelIgnoredTaskContinues) {
  run([&]() -> Coro<void> {
    Future<void> fut1 = create_future<void>();
    Future<void> fut2 = create_future<void>();
    Future<int> fut3 = create_future<int>();
    Task<int> t = create_task(await_ignoring_cancel(fut1, fut2, fut3));
    co_await sleep(kZero);
    fut1.set_result();
    co_await sleep(kZero);
    co_await sleep(kZero);
    EXPECT_TRUE(t.cancel());
    EXPECT_TRUE(fut2.cancelled());
    co_await sleep(kZero);
    co_await sleep(kZero);
    EXPECT_FALSE(t.done());  // still waiting on fut3
    fut3.set_result(42);
    EXPECT_EQ(co_await t, 42);
    EXPECT_FALSE(t.cancelled());
    EXPECT_EQ(t.cancelling(), 1);  // the request is still counted
  }());
}

Coro<int> cancel_self_then_return() {
  EXPECT_TRUE(current_task()->cancel());
  co_return 12;
}

// CPython test_tasks.py test_cancel_at_end: cancel() then return without
// awaiting anything: the task still ends cancelled, and a later cancel()
// returns False.
TEST_P(CancelConformance, CancelAtEndStillCancels) {
  run([&]() -> Coro<void> {
    Task<int> t = create_task(cancel_self_then_return());
    EXPECT_FALSE(t.cancelled());
    bool raised = false;
    try {
      co_await t;
    } catch (const CancelledError&) {
      raised = true;
    }
    EXPECT_TRUE(raised);
    EXPECT_TRUE(t.done());
    EXPECT_TRUE(t.cancelled());
    EXPECT_FALSE(t.cancel());
  }());
}

// CPython test_tasks.py test_cancelling: every cancel() on an unfinished task
// returns True and cancelling() counts the requests.
TEST_P(CancelConformance, RepeatedCancelReturnsTrueAndCountsCancelling) {
  run([&]() -> Coro<void> {
    Task<int> t = create_task(value_after(kNever, 1));
    EXPECT_EQ(t.cancelling(), 0);
    EXPECT_TRUE(t.cancel());
    EXPECT_EQ(t.cancelling(), 1);
    EXPECT_TRUE(t.cancel());
    EXPECT_EQ(t.cancelling(), 2);
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_TRUE(t.cancelled());
    EXPECT_FALSE(t.cancel());
  }());
}

Coro<int> await_then_42(Future<void> fut) {
  co_await fut;
  co_return 42;
}

// CPython test_tasks.py test_uncancel_resets_must_cancel: the task is
// runnable (its future is done), so cancel() can only arm a throw-in
// (_must_cancel); uncancel() back to 0 withdraws it and the task returns 42.
// Without the uncancel the same task ends cancelled.
TEST_P(CancelConformance, UncancelToZeroWithdrawsPendingCancel) {
  run([&]() -> Coro<void> {
    Future<void> fut = create_future<void>();
    Task<int> t = create_task(await_then_42(fut));
    Future<void> control_fut = create_future<void>();
    Task<int> control = create_task(await_then_42(control_fut));
    co_await sleep(kZero);  // both wait on their futures
    fut.set_result();
    control_fut.set_result();
    EXPECT_TRUE(t.cancel());
    EXPECT_EQ(t.cancelling(), 1);
    EXPECT_EQ(t.uncancel(), 0);
    EXPECT_EQ(t.cancelling(), 0);
    EXPECT_TRUE(control.cancel());
    EXPECT_EQ(co_await t, 42);
    EXPECT_FALSE(t.cancelled());
    EXPECT_THROW(co_await control, CancelledError);
    EXPECT_TRUE(control.cancelled());
  }());
}

// CPython tasks.py Task.uncancel: "if self._num_cancels_requested > 0": the
// count never goes below zero.
TEST_P(CancelConformance, UncancelNeverGoesBelowZero) {
  run([&]() -> Coro<void> {
    Task<int> t = create_task(value_after(kNever, 1));
    EXPECT_EQ(t.uncancel(), 0);
    EXPECT_EQ(t.uncancel(), 0);
    EXPECT_TRUE(t.cancel());
    EXPECT_EQ(t.cancelling(), 1);
    EXPECT_THROW(co_await t, CancelledError);
  }());
}

// CPython tasks.py Task.cancel: "if self.done(): return False"; the request
// is not counted (test_tasks.py test_cancel_yield's final assertFalse).
TEST_P(CancelConformance, CancellingDoneTaskReturnsFalse) {
  run([&]() -> Coro<void> {
    Task<int> t = create_task(value_after(kZero, 5));
    EXPECT_EQ(co_await t, 5);
    EXPECT_FALSE(t.cancel());
    EXPECT_EQ(t.cancelling(), 0);
    EXPECT_FALSE(t.cancelled());
    EXPECT_EQ(t.result(), 5);
  }());
}

Coro<void> set_flag_then_sleep(bool* ran) {
  *ran = true;
  co_await sleep(kNever);
}

// CPython tasks.py __step: a task cancelled before its first step has
// CancelledError thrown in at its first line, so its body never runs
// (the same path asyncio.run's shutdown takes for never-started tasks).
TEST_P(CancelConformance, TaskCancelledBeforeFirstStepNeverRunsItsBody) {
  run([&]() -> Coro<void> {
    bool ran = false;
    Task<void> t = create_task(set_flag_then_sleep(&ran));
    EXPECT_TRUE(t.cancel("early"));
    std::string msg;
    try {
      co_await t;
    } catch (const CancelledError& e) {
      msg = e.what();
    }
    EXPECT_FALSE(ran);
    EXPECT_TRUE(t.cancelled());
    EXPECT_EQ(msg, "early");
  }());
}

Coro<void> await_future(Future<void> fut) { co_await fut; }

Coro<void> cancel_self_then_await(Task<void>* nested, Future<void> fut) {
  *nested = create_task(await_future(fut));
  co_await sleep(kZero);
  EXPECT_TRUE(current_task()->cancel());
  co_await *nested;  // cancelled at once, as is what it waits on
}

// CPython test_tasks.py test_cancel_awaited_task (bpo-34872): a task that
// cancels itself and then blocks on a nested task cancels that task (and so
// the future it waits on) at once.
TEST_P(CancelConformance, SelfCancelThenAwaitCancelsTheAwaitedTask) {
  run([&]() -> Coro<void> {
    Future<void> fut = create_future<void>();
    Task<void> nested;
    Task<void> t = create_task(cancel_self_then_await(&nested, fut));
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_TRUE(t.cancelled());
    EXPECT_TRUE(nested.cancelled());
    EXPECT_TRUE(fut.cancelled());
  }());
}

Coro<void> catch_std_exceptions(bool* caught, bool* after) {
  try {
    co_await sleep(kNever);
  } catch (const std::exception&) {
    *caught = true;
  }
  *after = true;
}

// CPython exceptions.py: CancelledError derives from BaseException so that
// `except Exception:` does not swallow it (bpo-32528); here it is not a
// std::exception.
TEST_P(CancelConformance, CancelledErrorIsNotCaughtAsStdException) {
  run([&]() -> Coro<void> {
    bool caught = false;
    bool after = false;
    Task<void> t = create_task(catch_std_exceptions(&caught, &after));
    co_await sleep(absl::Milliseconds(1));
    t.cancel();
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_FALSE(caught);
    EXPECT_FALSE(after);
    EXPECT_TRUE(t.cancelled());
  }());
}

// CPython test_tasks.py test_cancel_inner_future: cancelling the future a
// task awaits makes the task end cancelled.
TEST_P(CancelConformance, CancellingTheAwaitedFutureCancelsTheTask) {
  run([&]() -> Coro<void> {
    Future<void> f = create_future<void>();
    Task<int> t = create_task(await_then_42(f));
    co_await sleep(kZero);
    EXPECT_TRUE(f.cancel());
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_TRUE(f.cancelled());
    EXPECT_TRUE(t.cancelled());
  }());
}

// CPython test_tasks.py test_sleep_cancel: cancelling a sleeping task cancels
// the sleep's timer handle, so no timer is left behind.
TEST_P(CancelConformance, CancellingSleepCancelsItsTimer) {
  run([&]() -> Coro<void> {
    EventLoop& loop = get_running_loop();
    Task<int> t = create_task(value_after(kNever, 1));
    co_await sleep(kZero);
    EXPECT_EQ(internal::LoopAccess::timer_count(loop), 1u);
    t.cancel();
    EXPECT_THROW(co_await t, CancelledError);
    EXPECT_EQ(internal::LoopAccess::timer_count(loop), 0u);
  }());
}

// A CancelledError of the program's own.
struct MyCancel : CancelledError {
  explicit MyCancel(std::string message) : CancelledError(std::move(message)) {}
};

// Sleeps until cancelled, then raises `own` instead of the CancelledError it
// received.
Coro<int> replace_cancel_with(std::exception_ptr own) {
  bool cancelled = false;
  try {
    co_await sleep(kNever);
  } catch (const CancelledError&) {
    cancelled = true;
  }
  if (cancelled) std::rethrow_exception(own);
  co_return 0;
}

// Raises `own` at its second step, without having been cancelled.
Coro<int> raise_after_a_step(std::exception_ptr own) {
  co_await sleep(kZero);
  std::rethrow_exception(own);
  co_return 0;
}

// What `fn` raises (null if nothing).
template <class Fn>
std::exception_ptr raised_by(Fn fn) {
  try {
    fn();
  } catch (...) {
    return std::current_exception();
  }
  return nullptr;
}

// CPython 3.14 tasks.py Task.__step (`except CancelledError as exc:
// self._cancelled_exc = exc; super().cancel()`) and futures.py
// _make_cancelled_error (which raises that saved instance): awaiting a task
// whose coroutine ended with its own CancelledError raises that very object,
// a subclass keeping its dynamic type; result() and exception() raise it too.
// (test_tasks.py test_cancel_with_message_then_future_result relies on it:
// there the message survives only through the saved instance.)
TEST_P(CancelConformance, AwaitingRethrowsTheCancelledErrorTheCoroutineRaised) {
  run([&]() -> Coro<void> {
    const std::exception_ptr mine = std::make_exception_ptr(MyCancel("mine"));
    Task<int> t = create_task(replace_cancel_with(mine));
    co_await sleep(kZero);
    EXPECT_TRUE(t.cancel("asked"));
    std::exception_ptr awaited;
    bool is_mine = false;
    try {
      co_await t;
    } catch (const CancelledError& e) {
      awaited = std::current_exception();
      is_mine = dynamic_cast<const MyCancel*>(&e) != nullptr;
    }
    EXPECT_TRUE(t.cancelled());
    EXPECT_TRUE(is_mine);
    EXPECT_TRUE(awaited == mine);
    EXPECT_TRUE(raised_by([&] { t.result(); }) == mine);
    EXPECT_TRUE(raised_by([&] { (void)t.exception(); }) == mine);
    EXPECT_TRUE(raised_by([&] { t.result(); }) == mine);  // every retrieval
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

// The same for a CancelledError with a message that the coroutine raises
// without being cancelled: the task ends cancelled, with that message, and
// gather (tasks.py _done_callback: `exc = fut._make_cancelled_error()`)
// passes the same instance on.
TEST_P(CancelConformance, OwnCancelledErrorWithoutCancelIsTheOneRaised) {
  run([&]() -> Coro<void> {
    const std::exception_ptr own = std::make_exception_ptr(CancelledError("on my own"));
    Task<int> t = create_task(raise_after_a_step(own));
    std::exception_ptr awaited;
    std::string message;
    try {
      co_await t;
    } catch (const CancelledError& e) {
      awaited = std::current_exception();
      message = e.what();
    }
    EXPECT_TRUE(t.cancelled());
    EXPECT_TRUE(awaited == own);
    EXPECT_EQ(message, "on my own");

    const std::exception_ptr again = std::make_exception_ptr(MyCancel("again"));
    Task<int> u = create_task(raise_after_a_step(again));
    std::exception_ptr from_gather;
    try {
      co_await gather(u);
    } catch (const CancelledError&) {
      from_gather = std::current_exception();
    }
    EXPECT_TRUE(from_gather == again);
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(CancelConformance);

}  // namespace
}  // namespace twinloop::conformance
