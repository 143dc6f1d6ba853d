// Cross-loop conformance: asyncio.wait_for, case by case from CPython 3.14's
// Lib/test/test_asyncio/test_waitfor.py (the cases combinators_test.cc's
// WaitForConformance does not already cover), on the real and the simulated
// loop. Since CPython 3.12 wait_for is `async with timeout(t): return await
// aw` (Lib/asyncio/tasks.py), run by the awaiting task itself; twinloop's
// wait_for is the awaitable internal::WaitFor (api/timeouts.h), so these
// cases check that it behaves as that coroutine does.
//
// CPython's delays (0.1 s, 0.2 s, 10 s) are scaled to kT = 10 ms; "10 s" is
// kNever. Python's try/finally becomes a guard object, and an await in an
// except clause (not allowed in C++) an await after the try.
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/future.h"
#include "twinloop/api/task.h"
#include "twinloop/api/timeouts.h"
#include "twinloop/api/wait.h"
#include "gtest/gtest.h"
#include "twinloop/tests/conformance/loop_fixture.h"

namespace twinloop::conformance {
namespace {

constexpr absl::Duration kT = absl::Milliseconds(10);
// CPython's _EPSILON: passes "timeout > 0" and costs nothing.
constexpr absl::Duration kEpsilon = absl::Microseconds(100);

class WaitForCpython : public LoopTest {};

// Sets *flag to false when destroyed (Python's `finally: flag = False`).
struct ClearOnExit {
  bool* flag;
  ~ClearOnExit() { *flag = false; }
};

// CPython's SlowTask.run: sleeps until `total` has passed on the loop's
// clock, swallowing every cancellation, then sets *exited.
Coro<void> slow_task_run(absl::Duration total, bool* exited) {
  EventLoop& loop = get_running_loop();
  const absl::Time exit_at = loop.time() + total;
  while (true) {
    const absl::Duration to_sleep = exit_at - loop.time();
    if (to_sleep <= absl::ZeroDuration()) break;
    try {
      co_await sleep(to_sleep);
    } catch (const CancelledError&) {
      // ignored, as SlowTask ignores cancel requests
    }
  }
  *exited = true;
}

// test_asyncio_wait_for_cancelled: cancelling the task that runs wait_for
// cancels the inner coroutine, which ignores it; wait_for's task finishes
// only once the inner one has run to its end.
TEST_P(WaitForCpython, CancelledWaitForWaitsForAnInnerThatIgnoresIt) {
  run([&]() -> Coro<void> {
    bool exited = false;
    Task<void> waiting = create_task(wait_for(slow_task_run(2 * kT, &exited), 4 * kT));
    co_await sleep(absl::ZeroDuration());
    waiting.cancel();
    // Named first: a braced list inside a co_await does not compile with
    // g++ 12 (docs/design.md, "Compilers").
    std::vector<Task<void>> tasks;
    tasks.push_back(waiting);
    co_await wait(std::move(tasks));
    EXPECT_TRUE(waiting.done());
    EXPECT_TRUE(exited);
  }());
}

// test_asyncio_wait_for_timeout: the deadline passes, the inner coroutine
// ignores the cancellation and returns normally; wait_for then returns
// normally too (Timeout.__aexit__ converts only an exception), after the
// inner one has finished.
TEST_P(WaitForCpython, TimeoutSwallowedByTheInnerReturnsNormallyAfterIt) {
  run([&]() -> Coro<void> {
    bool exited = false;
    bool timed_out = false;
    try {
      co_await wait_for(slow_task_run(2 * kT, &exited), kT);
    } catch (const TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(exited);
    EXPECT_FALSE(timed_out);
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

Coro<std::string> foo_sleeping(bool* running, Future<void> started) {
  *running = true;
  ClearOnExit clear{running};
  started.set_result();
  co_await sleep(kNever);
  co_return "done";
}

// test_wait_for_timeout_less_then_0_or_0: a running task given a timeout of
// 0 or less is cancelled and awaited at once: TimeoutError, the task
// cancelled and its finally clause run, no time passed.
TEST_P(WaitForCpython, NonPositiveTimeoutCancelsAndAwaitsARunningTask) {
  for (absl::Duration timeout : {absl::ZeroDuration(), -absl::Seconds(1)}) {
    SCOPED_TRACE(absl::FormatDuration(timeout));
    run([&]() -> Coro<void> {
      EventLoop& loop = get_running_loop();
      bool running = false;
      Future<void> started = create_future<void>();
      Task<std::string> fut = create_task(foo_sleeping(&running, started));
      co_await started;
      EXPECT_TRUE(running);
      const absl::Time t0 = loop.time();
      EXPECT_THROW(co_await wait_for(fut, timeout), TimeoutError);
      const absl::Time t1 = loop.time();
      EXPECT_TRUE(fut.done());
      EXPECT_TRUE(fut.cancelled());
      EXPECT_FALSE(running);
      EXPECT_LT(t1 - t0, absl::Milliseconds(100));
    }());
  }
}

// test_wait_for: a task that outlives the deadline is cancelled and awaited;
// TimeoutError is raised once the deadline has passed, not before.
TEST_P(WaitForCpython, ATaskPastTheDeadlineIsCancelledAndAwaited) {
  run([&]() -> Coro<void> {
    EventLoop& loop = get_running_loop();
    bool running = false;
    Future<void> started = create_future<void>();
    Task<std::string> fut = create_task(foo_sleeping(&running, started));
    const absl::Time t0 = loop.time();
    EXPECT_THROW(co_await wait_for(fut, kT), TimeoutError);
    const absl::Time t1 = loop.time();
    EXPECT_TRUE(fut.done());
    EXPECT_TRUE(fut.cancelled());
    EXPECT_FALSE(running);
    EXPECT_GE(t1 - t0, kT);
    EXPECT_LT(t1 - t0, absl::Milliseconds(500));
  }());
}

Coro<std::string> done_now() { co_return "done"; }

// test_wait_for_blocking: timeout=None waits without a deadline.
TEST_P(WaitForCpython, NoTimeoutJustAwaits) {
  run([&]() -> Coro<void> {
    EXPECT_EQ(co_await wait_for(done_now(), absl::InfiniteDuration()), "done");
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

// test_wait_for_race_condition: a future set by a callback before the
// deadline gives its result. The deadline counts from the await, as the
// coroutine's `async with` starts when it first runs.
TEST_P(WaitForCpython, AFutureSetBeforeTheDeadlineGivesItsResult) {
  run([&]() -> Coro<void> {
    EventLoop& loop = get_running_loop();
    Future<std::string> fut = create_future<std::string>();
    auto waiting = wait_for(fut, 2 * kT);
    loop.call_later(kT, [fut]() mutable { fut.set_result("ok"); });
    EXPECT_EQ(co_await std::move(waiting), "ok");
  }());
}

Coro<void> wait_for_inner_with_zero_timeout(bool* task_done) {
  Task<void> inner = create_task(clean_up_slowly_on_cancel(kEpsilon, task_done));
  co_await sleep(kEpsilon);
  co_await wait_for(inner, absl::ZeroDuration());
}

// test_wait_for_waits_for_task_cancellation_w_timeout_0: with timeout 0 too,
// the inner task is cancelled and awaited (its clean-up takes a while)
// before TimeoutError is raised.
TEST_P(WaitForCpython, ZeroTimeoutAwaitsTheInnerTasksCleanUp) {
  run([&]() -> Coro<void> {
    bool task_done = false;
    EXPECT_THROW(co_await wait_for_inner_with_zero_timeout(&task_done), TimeoutError);
    EXPECT_TRUE(task_done);
  }());
}

struct FooException : std::runtime_error {
  FooException() : std::runtime_error("foo") {}
};

Coro<void> raise_foo_when_ending() {
  try {
    co_await sleep(20 * kT);
  } catch (...) {
  }
  throw FooException();
}

Coro<void> wait_for_inner_that_raises_foo() {
  Task<void> inner = create_task(raise_foo_when_ending());
  co_await wait_for(inner, kEpsilon);
}

// test_wait_for_reraises_exception_during_cancellation: an inner task that
// raises another exception while being cancelled for the deadline: that
// exception comes out of wait_for, not TimeoutError.
TEST_P(WaitForCpython, AnExceptionRaisedWhileCancellingComesOut) {
  run([&]() -> Coro<void> {
    EXPECT_THROW(co_await wait_for_inner_that_raises_foo(), FooException);
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

Coro<int> hold_up_two_cancellations() {
  int cancels = 0;
  while (cancels < 3) {
    try {
      co_await sleep(3 * kT);
      break;
    } catch (const CancelledError&) {
      ++cancels;
    }
  }
  co_return 42;
}

// test_wait_for_self_cancellation: a task running wait_for is cancelled
// before its first step: it ends cancelled without ever reaching the inner
// task, which goes on and returns its value.
TEST_P(WaitForCpython, WaitForItselfIsCancellableBeforeItStarts) {
  run([&]() -> Coro<void> {
    Task<int> inner = create_task(hold_up_two_cancellations());
    Task<int> task = create_task(wait_for(inner, kT));
    task.cancel();
    EXPECT_THROW(co_await task, CancelledError);
    EXPECT_TRUE(task.cancelled());
    EXPECT_EQ(co_await inner, 42);
    EXPECT_FALSE(inner.cancelled());
  }());
}

Coro<void> return_at_once() { co_return; }

Coro<void> wait_for_then_sleep(bool* reached_end) {
  co_await wait_for(return_at_once(), absl::Seconds(100));
  co_await sleep(absl::Seconds(1));
  *reached_end = true;
}

// test_wait_for_issue86296 (GH-86296): a cancellation that arrives after a
// wait_for has returned is not swallowed by it.
TEST_P(WaitForCpython, ACancelAfterTheResultIsNotSwallowed) {
  run([&]() -> Coro<void> {
    bool reached_end = false;
    Task<void> task = create_task(wait_for_then_sleep(&reached_end));
    co_await sleep(absl::ZeroDuration());
    EXPECT_FALSE(task.done());
    task.cancel();
    EXPECT_THROW(co_await task, CancelledError);
    EXPECT_FALSE(reached_end);
  }());
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(WaitForCpython);

}  // namespace
}  // namespace twinloop::conformance
