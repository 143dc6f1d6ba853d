// Cross-loop conformance: gather, wait, wait_for, as_completed and shield
// (CPython 3.14 Lib/asyncio/tasks.py and timeouts.py), on the real and the
// simulated loop.
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include "absl/time/time.h"
#include "twinloop/api/as_completed.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/future.h"
#include "twinloop/api/gather.h"
#include "twinloop/api/shield.h"
#include "twinloop/api/task.h"
#include "twinloop/api/timeouts.h"
#include "twinloop/api/wait.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/tests/conformance/loop_fixture.h"

namespace twinloop::conformance {
namespace {

using ::testing::ElementsAre;

constexpr absl::Duration kZero = absl::ZeroDuration();
constexpr absl::Duration kMs = absl::Milliseconds(1);

Coro<int> logged_value_after(absl::Duration delay, int value, std::vector<int>* finished) {
  co_await sleep(delay);
  finished->push_back(value);
  co_return value;
}

Coro<std::string> string_after(absl::Duration delay, std::string s, std::vector<int>* finished, int tag) {
  co_await sleep(delay);
  finished->push_back(tag);
  co_return s;
}

Coro<void> nothing_after(absl::Duration delay, std::vector<int>* finished, int tag) {
  co_await sleep(delay);
  finished->push_back(tag);
}

// ---------------------------------------------------------------- gather

class GatherConformance : public LoopTest {};

// CPython test_tasks.py FutureGatherTests test_result: results come in
// argument order, whatever the completion order (void children give a
// placeholder, Python's None).
TEST_P(GatherConformance, TupleResultsInArgumentOrder) {
  run([&]() -> Coro<void> {
    std::vector<int> finished;
    auto [a, b, c] = co_await gather(logged_value_after(30 * kMs, 1, &finished),
                                     string_after(10 * kMs, "two", &finished, 2),
                                     nothing_after(20 * kMs, &finished, 3));
    EXPECT_EQ(a, 1);
    EXPECT_EQ(b, "two");
    EXPECT_EQ(c, std::monostate{});
    EXPECT_THAT(finished, ElementsAre(2, 3, 1));
  }());
}

// CPython test_tasks.py GatherTests (gather(*list)): the list form keeps
// argument order too.
TEST_P(GatherConformance, VectorResultsInArgumentOrder) {
  run([&]() -> Coro<void> {
    std::vector<int> finished;
    std::vector<Task<int>> tasks;
    tasks.push_back(create_task(logged_value_after(30 * kMs, 1, &finished)));
    tasks.push_back(create_task(logged_value_after(10 * kMs, 2, &finished)));
    tasks.push_back(create_task(logged_value_after(20 * kMs, 3, &finished)));
    std::vector<int> results = co_await gather(tasks);
    EXPECT_THAT(results, ElementsAre(1, 2, 3));
    EXPECT_THAT(finished, ElementsAre(2, 3, 1));
  }());
}

// CPython test_tasks.py GatherTests test_one_exception: the first child
// error finishes the outer future with that error; the other children are
// not cancelled and keep running.
TEST_P(GatherConformance, FirstErrorPropagatesAndOthersKeepRunning) {
  run([&]() -> Coro<void> {
    Task<int> bad = create_task(fail_after(5 * kMs, "first"));
    Task<int> good = create_task(value_after(20 * kMs, 2));
    std::string caught;
    try {
      co_await gather(bad, good);
    } catch (const std::runtime_error& e) {
      caught = e.what();
    }
    EXPECT_EQ(caught, "first");
    EXPECT_FALSE(good.cancelled());
    EXPECT_EQ(co_await good, 2);
  }());
}

// CPython test_tasks.py GatherTests test_one_cancellation: a cancelled child
// makes the outer future fail with CancelledError, but the outer itself is
// not cancelled.
TEST_P(GatherConformance, CancelledChildRaisesCancelledErrorButOuterIsNotCancelled) {
  run([&]() -> Coro<void> {
    Future<int> a = create_future<int>();
    Future<int> b = create_future<int>();
    Future<int> c = create_future<int>();
    auto outer = gather(a, b, c);
    a.set_result(1);
    b.cancel();
    co_await sleep(kZero);
    EXPECT_TRUE(outer.done());
    EXPECT_FALSE(outer.cancelled());
    EXPECT_THROW(outer.result(), CancelledError);
    EXPECT_FALSE(c.cancelled());  // the others are left alone
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

// CPython test_tasks.py GatherTests test_return_exceptions: with
// return_exceptions, errors and cancellations (a CancelledError instance)
// are results.
TEST_P(GatherConformance, ReturnExceptionsPutsErrorsAndCancellationsInOutcomes) {
  run([&]() -> Coro<void> {
    Task<int> ok = create_task(value_after(kMs, 1));
    Task<int> bad = create_task(fail_after(kMs, "broken"));
    Task<int> cancelled = create_task(value_after(kNever, 3));
    cancelled.cancel();
    auto [o1, o2, o3] = co_await gather(return_exceptions, ok, bad, cancelled);
    EXPECT_TRUE(o1.ok());
    EXPECT_EQ(o1.value(), 1);
    EXPECT_FALSE(o2.ok());
    EXPECT_EQ(runtime_error_message(o2.exception()), "broken");
    EXPECT_FALSE(o3.ok());
    EXPECT_TRUE(is_cancelled_error(o3.exception()));
    EXPECT_THROW(o3.value(), CancelledError);
  }());
}

// CPython test_tasks.py test_cancel_gather_2 (bpo-32684): cancelling the outer
// future cancels every unfinished child, and the outer ends with
// CancelledError even with return_exceptions.
TEST_P(GatherConformance, OuterCancelCancelsChildrenEvenWithReturnExceptions) {
  run([&]() -> Coro<void> {
    Task<int> a = create_task(value_after(kNever, 1));
    Task<int> b = create_task(value_after(kNever, 2));
    auto outer = gather(return_exceptions, a, b);
    co_await sleep(kZero);
    EXPECT_TRUE(outer.cancel("enough"));
    std::string msg;
    bool raised = false;
    try {
      co_await outer;
    } catch (const CancelledError& e) {
      raised = true;
      msg = e.what();
    }
    EXPECT_TRUE(raised);
    EXPECT_EQ(msg, "enough");
    EXPECT_TRUE(a.cancelled());
    EXPECT_TRUE(b.cancelled());
  }());
}

Coro<void> gather_in_a_loop(int* rounds) {
  for (int i = 0; i < 200; ++i) {
    co_await gather(return_exceptions, sleep(kMs));
    ++*rounds;
  }
}

// CPython test_tasks.py test_cancel_gather_2 (bpo-32684), as written: a task
// looping on gather(sleep, return_exceptions=True) is cancelled with a
// message, and awaiting it raises CancelledError with that message.
TEST_P(GatherConformance, TaskAwaitingGatherWithReturnExceptionsCanBeCancelled) {
  run([&]() -> Coro<void> {
    int rounds = 0;
    Task<void> qwe = create_task(gather_in_a_loop(&rounds));
    co_await sleep(5 * kMs);
    qwe.cancel("my message");
    std::string msg;
    try {
      co_await qwe;
    } catch (const CancelledError& e) {
      msg = e.what();
    }
    EXPECT_TRUE(qwe.cancelled());
    EXPECT_EQ(msg, "my message");
    EXPECT_LT(rounds, 200);
  }());
}

// CPython test_tasks.py test_constructor_empty_sequence_without_loop /
// tasks.py gather ("if not coros_or_futures: ... outer.set_result([])"):
// gather() of nothing is already done with an empty result.
TEST_P(GatherConformance, GatherOfNothingIsDone) {
  run([&]() -> Coro<void> {
    auto empty = gather(std::vector<Task<int>>{});
    EXPECT_TRUE(empty.done());
    EXPECT_TRUE(empty.result().empty());
    auto none = gather();
    EXPECT_TRUE(none.done());
    co_await none;
  }());
}

Coro<int> child_awaiting(Future<int> fut) { co_return co_await fut; }

// CPython test_tasks.py test_cancel_gather_1 (bpo-26923): once all children
// are done the gathering future refuses to be cancelled, even before its own
// done callback has run.
TEST_P(GatherConformance, CancelAfterAllChildrenDoneReturnsFalse) {
  run([&]() -> Coro<void> {
    Future<int> fut = create_future<int>();
    std::vector<Coro<int>> children;
    children.push_back(child_awaiting(fut));
    auto outer = gather(std::move(children));
    co_await sleep(kZero);  // the child now waits on fut
    std::optional<bool> cancel_result;
    fut.add_done_callback([&cancel_result, outer](Future<int>) mutable {
      cancel_result = outer.cancel();
    });
    fut.set_result(42);
    std::vector<int> results = co_await outer;
    EXPECT_EQ(cancel_result, false);
    EXPECT_FALSE(outer.cancelled());
    EXPECT_THAT(results, ElementsAre(42));
  }());
}

// CPython tasks.py gather: "arg_to_fut": the same future given twice is
// awaited once and its result repeated.
TEST_P(GatherConformance, SameFutureTwiceGivesItsResultTwice) {
  run([&]() -> Coro<void> {
    Task<int> t = create_task(value_after(kMs, 7));
    auto [x, y] = co_await gather(t, t);
    EXPECT_EQ(x, 7);
    EXPECT_EQ(y, 7);
  }());
}

// ---------------------------------------------------------------- wait

class WaitConformance : public LoopTest {};

// The same futures, in the same order (asyncio compares sets; wait keeps
// input order).
template <class F>
bool same(const std::vector<F>& got, const std::vector<F>& want) {
  if (got.size() != want.size()) return false;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!(got[i] == want[i])) return false;
  }
  return true;
}

// CPython test_tasks.py test_wait: ALL_COMPLETED returns every future in
// `done` and nothing pending.
TEST_P(WaitConformance, AllCompletedWaitsForEverything) {
  run([&]() -> Coro<void> {
    Task<int> a = create_task(value_after(10 * kMs, 1));
    Task<int> b = create_task(value_after(kMs, 2));
    std::vector<Task<int>> fs{a, b};
    auto [done, pending] = co_await wait(fs);
    EXPECT_TRUE(pending.empty());
    EXPECT_TRUE(same(done, {a, b}));  // input order
    EXPECT_TRUE(a.done());
    EXPECT_TRUE(b.done());
  }());
}

// CPython test_tasks.py test_wait_first_completed: returns once one is done;
// the others stay pending and are not cancelled.
TEST_P(WaitConformance, FirstCompletedReturnsAtFirstCompletion) {
  run([&]() -> Coro<void> {
    Task<int> slow = create_task(value_after(kNever, 1));
    Task<int> fast = create_task(value_after(kMs, 2));
    std::vector<Task<int>> fs{slow, fast};
    WaitOptions options{.return_when = FIRST_COMPLETED};
    auto [done, pending] = co_await wait(fs, options);
    EXPECT_TRUE(same(done, {fast}));
    EXPECT_TRUE(same(pending, {slow}));
    EXPECT_FALSE(slow.done());
    EXPECT_FALSE(slow.cancelled());
    slow.cancel();
  }());
}

// CPython tasks.py _wait._on_completion: FIRST_EXCEPTION returns on the first
// future that *raised* ("not f.cancelled() and f.exception() is not None"):
// a cancellation does not count (test_tasks.py test_wait_first_exception).
TEST_P(WaitConformance, FirstExceptionIgnoresCancellations) {
  run([&]() -> Coro<void> {
    Task<int> cancelled = create_task(value_after(kNever, 1));
    Task<int> failing = create_task(fail_after(10 * kMs, "fail"));
    Task<int> slow = create_task(value_after(kNever, 3));
    cancelled.cancel();
    std::vector<Task<int>> fs{cancelled, failing, slow};
    WaitOptions options{.return_when = FIRST_EXCEPTION};
    auto [done, pending] = co_await wait(fs, options);
    EXPECT_TRUE(same(done, {cancelled, failing}));
    EXPECT_TRUE(same(pending, {slow}));
    EXPECT_FALSE(slow.cancelled());
    EXPECT_EQ(runtime_error_message(failing.exception()), "fail");
    slow.cancel();
  }());
}

// CPython test_tasks.py test_wait_with_timeout: on timeout wait returns the
// unfinished futures in `pending`, raises nothing and cancels nothing.
TEST_P(WaitConformance, TimeoutReturnsPendingWithoutCancellingOrRaising) {
  run([&]() -> Coro<void> {
    Task<int> slow = create_task(value_after(kNever, 1));
    Future<int> ready = create_future<int>();
    ready.set_result(2);
    std::vector<Future<int>> fs{slow, ready};
    WaitOptions options{.timeout = 10 * kMs};
    auto [done, pending] = co_await wait(fs, options);
    EXPECT_TRUE(same(done, {ready}));
    EXPECT_TRUE(same(pending, {slow}));
    EXPECT_FALSE(slow.done());
    EXPECT_FALSE(slow.cancelled());
    slow.cancel();
  }());
}

// CPython tasks.py wait: "if not fs: raise ValueError('Set of Tasks/Futures
// is empty.')" (std::invalid_argument here).
TEST_P(WaitConformance, EmptyInputRaisesInvalidArgument) {
  run([&]() -> Coro<void> {
    std::vector<Task<int>> none;
    EXPECT_THROW(co_await wait(none), std::invalid_argument);
  }());
}

// ---------------------------------------------------------------- wait_for

class WaitForConformance : public LoopTest {};

Coro<void> await_future(Future<void> f) { co_await f; }


// CPython test_waitfor.py test_wait_for_waits_for_task_cancellation
// (bpo-32751): on timeout the inner task is cancelled AND awaited: it has
// finished by the time TimeoutError is raised.
TEST_P(WaitForConformance, TimeoutCancelsAndAwaitsTheInnerTask) {
  run([&]() -> Coro<void> {
    bool cleanup_done = false;
    Task<void> inner = create_task(clean_up_slowly_on_cancel(2 * kMs, &cleanup_done));
    bool timed_out = false;
    try {
      co_await wait_for(inner, 5 * kMs);
    } catch (const TimeoutError&) {
      timed_out = true;
      EXPECT_TRUE(inner.done());
      EXPECT_TRUE(cleanup_done);
    }
    EXPECT_TRUE(timed_out);
    EXPECT_TRUE(inner.cancelled());
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

Coro<int> return_42_when_cancelled() {
  try {
    co_await sleep(kNever);
  } catch (const CancelledError&) {
    co_return 42;
  }
  co_return 0;
}

// CPython test_waitfor.py test_wait_for_cancel_suppressed (GH-86296): an inner
// coroutine that suppresses the cancellation and returns gives its value
// instead of TimeoutError.
TEST_P(WaitForConformance, InnerThatSuppressesCancelGivesItsValue) {
  run([&]() -> Coro<void> {
    int v = co_await wait_for(return_42_when_cancelled(), 5 * kMs);
    EXPECT_EQ(v, 42);
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

Coro<int> set_started(bool* started) {
  *started = true;
  co_return 1;
}

// CPython test_waitfor.py
// test_wait_for_timeout_less_then_0_or_0_coroutine_do_not_started: with a
// timeout <= 0 the coroutine never starts and TimeoutError is raised.
TEST_P(WaitForConformance, NonPositiveTimeoutNeverStartsTheCoroutine) {
  run([&]() -> Coro<void> {
    bool started = false;
    EXPECT_THROW(co_await wait_for(set_started(&started), kZero), TimeoutError);
    EXPECT_THROW(co_await wait_for(set_started(&started), -kMs), TimeoutError);
    co_await sleep(kZero);
    EXPECT_FALSE(started);
  }());
}

// CPython test_waitfor.py test_wait_for_timeout_less_then_0_or_0_future_done:
// an already-done future gives its result even with timeout 0.
TEST_P(WaitForConformance, NonPositiveTimeoutReturnsResultOfDoneFuture) {
  run([&]() -> Coro<void> {
    Future<std::string> fut = create_future<std::string>();
    fut.set_result("done");
    EXPECT_EQ(co_await wait_for(fut, kZero), "done");
  }());
}

// CPython test_waitfor.py test_wait_for_with_global_loop: a result before the
// deadline is returned, with no cancellation left behind.
TEST_P(WaitForConformance, ResultBeforeTimeoutIsReturned) {
  run([&]() -> Coro<void> {
    Task<int> t = create_task(value_after(kMs, 7));
    EXPECT_EQ(co_await wait_for(t, kNever), 7);
    EXPECT_EQ(co_await wait_for(value_after(kMs, 8), kNever), 8);
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

Coro<int> wait_for_task(Task<void> inner, absl::Duration timeout) {
  co_await wait_for(inner, timeout);
  co_return 0;
}

// CPython test_waitfor.py test_cancel_wait_for / test_cancel_blocking_wait_for
// (bpo-23219): cancelling the task in wait_for cancels the inner task too,
// with a deadline and without one.
TEST_P(WaitForConformance, CancellingWaitForCancelsTheInner) {
  for (absl::Duration timeout : {kNever, absl::InfiniteDuration()}) {
    run([&]() -> Coro<void> {
      Future<void> never = create_future<void>();
      Task<void> inner = create_task(await_future(never));
      Task<int> waiting = create_task(wait_for_task(inner, timeout));
      get_running_loop().call_soon([waiting]() mutable { waiting.cancel(); });
      EXPECT_THROW(co_await waiting, CancelledError);
      EXPECT_TRUE(waiting.cancelled());
      EXPECT_TRUE(inner.cancelled());
    }());
  }
}

// The deadline of a wait_for that ends early is gone at once: a sleep right
// after it wakes on time, and nothing is cancelled when the old deadline
// passes (twinloop re-arms the task's own timer, whose cancelled entry is
// still in the timer heap: api/task.h TaskSleepTimer).
TEST_P(WaitForConformance, AnEarlyResultLeavesNoDeadlineBehind) {
  run([&]() -> Coro<void> {
    EventLoop& loop = get_running_loop();
    for (int i = 0; i < 3; ++i) EXPECT_EQ(co_await wait_for(value_after(kMs, i), 40 * kMs), i);
    const absl::Time before = loop.time();
    co_await sleep(2 * kMs);
    const absl::Duration slept = loop.time() - before;
    EXPECT_GE(slept, 2 * kMs);
    EXPECT_LT(slept, 30 * kMs) << "the sleep waited for the cancelled deadline";
    // Past the three old deadlines: no cancellation arrives.
    Future<int> late = create_future<int>();
    loop.call_later(60 * kMs, [late]() mutable { late.set_result(5); });
    EXPECT_EQ(co_await late, 5);
    EXPECT_EQ(current_task()->cancelling(), 0);
    // And a deadline armed after all that still expires, on time.
    const absl::Time start = loop.time();
    EXPECT_THROW(co_await wait_for(value_after(kNever, 6), 3 * kMs), TimeoutError);
    EXPECT_GE(loop.time() - start, 3 * kMs);
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

Coro<int> inner_wait_for_times_out() {
  try {
    co_await wait_for(value_after(kNever, 1), 2 * kMs);
  } catch (const TimeoutError&) {
    co_return 5;
  }
  co_return 0;
}

Coro<int> inner_wait_for_cancelled(std::string* seen) {
  try {
    co_await wait_for(value_after(kNever, 1), kNever);
  } catch (const TimeoutError&) {
    *seen = "TimeoutError";
    throw;
  } catch (const CancelledError&) {
    *seen = "CancelledError";
    throw;
  }
  co_return 0;
}

// Nested timeouts (CPython test_timeouts.py test_nested_timeouts and
// test_nested_timeout_in_finally): the one whose deadline passed converts,
// the other sees a CancelledError or nothing at all.
TEST_P(WaitForConformance, NestedWaitForsConvertOnlyTheirOwnDeadline) {
  run([&]() -> Coro<void> {
    // The inner one expires first: the outer body carries on.
    EXPECT_EQ(co_await wait_for(inner_wait_for_times_out(), 40 * kMs), 5);
    EXPECT_EQ(current_task()->cancelling(), 0);
    // The outer one expires first: the inner one passes CancelledError on.
    std::string seen;
    EXPECT_THROW(co_await wait_for(inner_wait_for_cancelled(&seen), 2 * kMs), TimeoutError);
    EXPECT_EQ(seen, "CancelledError");
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

Coro<int> catch_cancel_then_wait_again() {
  try {
    co_await sleep(kNever);
  } catch (const CancelledError&) {
  }
  // The outer deadline has expired; this one expires too.
  try {
    co_await wait_for(value_after(kNever, 1), 2 * kMs);
  } catch (const TimeoutError&) {
    co_return 9;
  }
  co_return 0;
}

// A body that swallows the expiry's cancellation and then runs a wait_for of
// its own: that one times out by itself, and the outer one returns the
// body's value (CPython timeouts.py: no exception leaves the block, so no
// TimeoutError), with the cancel requests all taken back.
TEST_P(WaitForConformance, ABodyThatSwallowsTheExpiryCanWaitAgain) {
  run([&]() -> Coro<void> {
    EXPECT_EQ(co_await wait_for(catch_cancel_then_wait_again(), 2 * kMs), 9);
    EXPECT_EQ(current_task()->cancelling(), 0);
  }());
}

// wait_for converts to a Coro wherever one is taken, and runs as one.
TEST_P(WaitForConformance, ConvertsToACoroutine) {
  run([&]() -> Coro<void> {
    Task<int> t = create_task(wait_for(value_after(kMs, 3), kNever));
    Coro<int> c = wait_for(value_after(kMs, 4), kNever);
    auto outcomes = co_await gather(return_exceptions, wait_for(value_after(kMs, 1), kNever),
                                    wait_for(value_after(kNever, 2), kMs));
    EXPECT_EQ(co_await t, 3);
    EXPECT_EQ(co_await std::move(c), 4);
    EXPECT_TRUE(std::get<0>(outcomes).ok());
    if (std::get<0>(outcomes).ok()) {
      EXPECT_EQ(std::get<0>(outcomes).value(), 1);
    }
    EXPECT_FALSE(std::get<1>(outcomes).ok());
    if (!std::get<1>(outcomes).ok()) {
      EXPECT_THROW(std::rethrow_exception(std::get<1>(outcomes).exception()), TimeoutError);
    }
  }());
}

// ---------------------------------------------------------------- as_completed

class AsCompletedConformance : public LoopTest {};

// CPython test_tasks.py test_as_completed: results come in completion order.
TEST_P(AsCompletedConformance, YieldsInCompletionOrder) {
  run([&]() -> Coro<void> {
    std::vector<int> finished;
    std::vector<Coro<int>> coros;
    coros.push_back(logged_value_after(30 * kMs, 1, &finished));
    coros.push_back(logged_value_after(10 * kMs, 2, &finished));
    coros.push_back(logged_value_after(20 * kMs, 3, &finished));
    std::vector<int> order;
    for (Coro<int> next : as_completed(std::move(coros))) order.push_back(co_await next);
    EXPECT_THAT(order, ElementsAre(2, 3, 1));
  }());
}

// as_completed(a, b, ...): a few awaitables without a vector; coroutines,
// tasks and futures of one result type, in completion order, with
// duplicates taken once (CPython test_tasks.py test_as_completed_duplicate_coroutines).
TEST_P(AsCompletedConformance, VariadicFormYieldsInCompletionOrder) {
  run([&]() -> Coro<void> {
    std::vector<int> finished;
    std::vector<int> order;
    for (Coro<int> next : as_completed(logged_value_after(30 * kMs, 1, &finished),
                                       logged_value_after(10 * kMs, 2, &finished),
                                       logged_value_after(20 * kMs, 3, &finished))) {
      order.push_back(co_await next);
    }
    EXPECT_THAT(order, ElementsAre(2, 3, 1));

    Task<int> task = create_task(value_after(15 * kMs, 4));
    Future<int> fut = create_future<int>();
    get_running_loop().call_later(5 * kMs, [fut]() mutable { fut.set_result(5); });
    auto it = as_completed(task, value_after(25 * kMs, 6), fut, task);
    EXPECT_EQ(it.size(), 3u);
    order.clear();
    while (!it.empty()) order.push_back(co_await it.next());
    EXPECT_THAT(order, ElementsAre(5, 4, 6));

    auto one = as_completed(value_after(kMs, 7));
    EXPECT_EQ(co_await one.next(), 7);
    EXPECT_TRUE(one.empty());
  }());
}

// CPython test_tasks.py test_as_completed_with_timeout: after the timeout every
// remaining iteration raises TimeoutError and the pending tasks are not
// cancelled.
TEST_P(AsCompletedConformance, TimeoutRaisesForRemainingWithoutCancelling) {
  run([&]() -> Coro<void> {
    Future<int> ready = create_future<int>();
    ready.set_result(1);
    Task<int> slow1 = create_task(value_after(kNever, 2));
    Task<int> slow2 = create_task(value_after(kNever, 3));
    auto it = as_completed(std::vector<Future<int>>{slow1, ready, slow2}, 10 * kMs);
    EXPECT_EQ(it.size(), 3u);
    EXPECT_EQ(co_await it.next(), 1);
    EXPECT_THROW(co_await it.next(), TimeoutError);
    EXPECT_THROW(co_await it.next(), TimeoutError);
    EXPECT_TRUE(it.empty());
    EXPECT_FALSE(slow1.done());
    EXPECT_FALSE(slow2.done());
    slow1.cancel();
    slow2.cancel();
  }());
}

// CPython tasks.py as_completed, 3.13 async-iterator form (_AsCompletedIterator):
// it yields the original tasks, in completion order.
TEST_P(AsCompletedConformance, NextFutureReturnsTheOriginalTasks) {
  run([&]() -> Coro<void> {
    std::vector<int> finished;
    Task<int> late = create_task(logged_value_after(20 * kMs, 1, &finished));
    Task<int> early = create_task(logged_value_after(5 * kMs, 2, &finished));
    auto it = as_completed(std::vector<Task<int>>{late, early});
    Future<int> first = co_await it.next_future();
    Future<int> second = co_await it.next_future();
    EXPECT_TRUE(first == early);
    EXPECT_TRUE(second == late);
    EXPECT_EQ(first.result(), 2);
    EXPECT_TRUE(it.empty());
  }());
}

// CPython test_tasks.py test_as_completed_reverse_wait: `futs =
// list(as_completed(fs))`, then awaiting the second one first gives the
// earliest completion. The iterations outlive the iterator (a use after free
// without their own reference to its state).
TEST_P(AsCompletedConformance, IterationsOutliveTheIterator) {
  run([&]() -> Coro<void> {
    std::vector<int> finished;
    std::vector<Coro<int>> futs;
    {
      std::vector<Coro<int>> coros;
      coros.push_back(logged_value_after(10 * kMs, 1, &finished));
      coros.push_back(logged_value_after(20 * kMs, 2, &finished));
      auto it = as_completed(std::move(coros));
      while (!it.empty()) futs.push_back(it.next());
    }
    EXPECT_EQ(futs.size(), 2u);
    if (futs.size() != 2) co_return;
    EXPECT_EQ(co_await std::move(futs[1]), 1);
    EXPECT_EQ(co_await std::move(futs[0]), 2);
    EXPECT_THAT(finished, ElementsAre(1, 2));
  }());
}

// The same for the async-iterator form (next_future()) and the range-for
// iterator's operator*.
TEST_P(AsCompletedConformance, FutureIterationsOutliveTheIterator) {
  run([&]() -> Coro<void> {
    std::vector<int> finished;
    Task<int> late = create_task(logged_value_after(20 * kMs, 1, &finished));
    Task<int> early = create_task(logged_value_after(5 * kMs, 2, &finished));
    std::vector<Coro<Future<int>>> futs;
    std::vector<Coro<int>> values;
    {
      auto it = as_completed(std::vector<Task<int>>{late, early});
      futs.push_back(it.next_future());
      futs.push_back(it.next_future());
    }
    for (Coro<int> next : as_completed(std::vector<Task<int>>{late, early})) values.push_back(std::move(next));
    Future<int> first = co_await std::move(futs[0]);
    Future<int> second = co_await std::move(futs[1]);
    EXPECT_TRUE(first == early);
    EXPECT_TRUE(second == late);
    EXPECT_EQ(values.size(), 2u);
    if (values.size() != 2) co_return;
    EXPECT_EQ(co_await std::move(values[0]), 2);
    EXPECT_EQ(co_await std::move(values[1]), 1);
  }());
}

// ---------------------------------------------------------------- shield

class ShieldConformance : public LoopTest {};

Coro<void> proof_inner(Future<void> waiter, int* proof) {
  co_await waiter;
  *proof += 1;
}

Coro<void> proof_outer(Future<void> waiter, int* proof) {
  co_await shield(proof_inner(waiter, proof));
  *proof += 100;
}

// CPython test_tasks.py test_shield_effect: cancelling the task awaiting
// shield(inner()) does not affect inner(), which runs to completion.
TEST_P(ShieldConformance, CancellingTheAwaiterLeavesTheInnerRunning) {
  run([&]() -> Coro<void> {
    int proof = 0;
    Future<void> waiter = create_future<void>();
    Task<void> f = create_task(proof_outer(waiter, &proof));
    co_await sleep(kZero);
    f.cancel();
    EXPECT_THROW(co_await f, CancelledError);
    waiter.set_result();
    co_await sleep(kZero);
    co_await sleep(kZero);
    EXPECT_EQ(proof, 1);
  }());
}

// CPython test_tasks.py test_shield_cancel_inner: cancelling the inner
// cancels the outer.
TEST_P(ShieldConformance, CancellingTheInnerCancelsTheOuter) {
  run([&]() -> Coro<void> {
    Future<int> inner = create_future<int>();
    Future<int> outer = shield(inner);
    co_await sleep(kZero);
    inner.cancel();
    co_await sleep(kZero);
    EXPECT_TRUE(outer.cancelled());
  }());
}

// CPython tasks.py shield: "if inner.done(): return inner"
// (test_tasks.py test_shield_shortcut).
TEST_P(ShieldConformance, DoneInnerIsReturnedAsIs) {
  run([&]() -> Coro<void> {
    Future<int> fut = create_future<int>();
    fut.set_result(42);
    Future<int> shielded = shield(fut);
    EXPECT_TRUE(shielded == fut);
    EXPECT_EQ(co_await shielded, 42);
  }());
}

// CPython test_tasks.py test_shield_result: the outer follows the inner's
// result.
TEST_P(ShieldConformance, OuterFollowsTheInnerResult) {
  run([&]() -> Coro<void> {
    EXPECT_EQ(co_await shield(value_after(kMs, 7)), 7);
  }());
}

// CPython test_tasks.py test_shield_cancel_outer_result /
// test_shield_cancel_outer_exception: after the outer is cancelled, an inner
// exception is reported to the exception handler exactly once; an inner
// result is not reported.
TEST_P(ShieldConformance, InnerFailureAfterOuterCancelledIsReportedOnce) {
  Reports reports;
  run([&]() -> Coro<void> {
    reports.install();
    Future<int> failing = create_future<int>();
    Future<int> succeeding = create_future<int>();
    Future<int> outer1 = shield(failing);
    Future<int> outer2 = shield(succeeding);
    co_await sleep(kZero);
    outer1.cancel();
    outer2.cancel();
    co_await sleep(kZero);
    EXPECT_TRUE(outer1.cancelled());
    failing.set_exception(std::runtime_error("foo"));
    succeeding.set_result(1);
    co_await sleep(kZero);
    co_await sleep(kZero);
  }());
  ASSERT_EQ(reports.contexts.size(), 1u);
  EXPECT_EQ(reports.contexts[0].message, "std::runtime_error exception in shielded future");
  EXPECT_EQ(runtime_error_message(reports.contexts[0].exception), "foo");
}

struct ShieldedFailure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Cancels every shield of `inner`, lets the outers' callbacks run, then fails
// `inner` and drops it (so a "never retrieved" report would come now).
Coro<void> cancel_shields_then_fail(std::vector<Future<int>> outers, Future<int> inner) {
  co_await sleep(kZero);
  for (Future<int>& o : outers) o.cancel();
  co_await sleep(kZero);
  inner.set_exception(ShieldedFailure("shared"));
  inner = Future<int>();
  outers.clear();
  co_await sleep(kZero);
  co_await sleep(kZero);
}

// CPython test_tasks.py test_shield_duplicate_log_once (tasks.py
// _outer_done_callback: one module-level _log_on_exception per inner):
// several cancelled shields over one inner that fails report it once, named
// by the exception's type; the exception counts as retrieved, so no "never
// retrieved" report follows when the inner goes.
TEST_P(ShieldConformance, SeveralCancelledShieldsOverOneFailingInnerReportOnce) {
  for (int shields : {2, 3}) {
    Reports reports;
    run([&]() -> Coro<void> {
      reports.install();
      Future<int> inner = create_future<int>();
      std::vector<Future<int>> outers;
      for (int i = 0; i < shields; ++i) outers.push_back(shield(inner));
      co_await cancel_shields_then_fail(std::move(outers), std::move(inner));
    }());
    EXPECT_EQ(reports.contexts.size(), 1u) << shields << " shields";
    EXPECT_EQ(reports.count_starting_with("never retrieved"), 0u);
    if (reports.contexts.empty()) continue;
    EXPECT_THAT(reports.contexts[0].message, ::testing::EndsWith("ShieldedFailure exception in shielded future"));
    EXPECT_EQ(runtime_error_message(reports.contexts[0].exception), "shared");
  }
}

// The same when the shields are made and cancelled one after the other
// (test_shield_duplicate_log_once's order), and when one shield is left
// uncancelled: that one receives the exception, and the logger of the
// cancelled ones still reports it once.
TEST_P(ShieldConformance, ShieldsCancelledInTurnReportOnce) {
  Reports reports;
  run([&]() -> Coro<void> {
    reports.install();
    Future<int> inner = create_future<int>();
    Future<int> first = shield(inner);
    co_await sleep(kZero);
    first.cancel();
    co_await sleep(kZero);
    Future<int> second = shield(inner);
    co_await sleep(kZero);
    second.cancel();
    co_await sleep(kZero);
    Future<int> kept = shield(inner);
    inner.set_exception(std::runtime_error("foo"));
    bool raised = false;
    try {
      co_await kept;
    } catch (const std::runtime_error&) {
      raised = true;
    }
    EXPECT_TRUE(raised);
    co_await sleep(kZero);
  }());
  EXPECT_EQ(reports.contexts.size(), 1u);
  EXPECT_EQ(reports.count_starting_with("std::runtime_error exception in shielded future"), 1u);
}

// tasks.py _log_on_exception returns for a cancelled inner, and for one
// that succeeds.
TEST_P(ShieldConformance, CancelledShieldsOverAnInnerThatSucceedsOrIsCancelledReportNothing) {
  Reports reports;
  run([&]() -> Coro<void> {
    reports.install();
    Future<int> ok = create_future<int>();
    Future<int> gone = create_future<int>();
    std::vector<Future<int>> outers{shield(ok), shield(ok), shield(gone), shield(gone)};
    co_await sleep(kZero);
    for (Future<int>& o : outers) o.cancel();
    co_await sleep(kZero);
    ok.set_result(1);
    gone.cancel();
    co_await sleep(kZero);
    co_await sleep(kZero);
  }());
  EXPECT_TRUE(reports.contexts.empty());
}

// ---------------------------------------------------------------- nothing outlives run()

class ReleaseConformance : public LoopTest {};

// Gives the running loop an exception handler that owns `token`: the token
// lives exactly as long as the EventLoop object, which every future keeps
// alive (FutureBase holds a Ref<EventLoop>). So `token` expiring after run()
// shows that no future, task or callback of the run outlived it.
void tie_to_loop(std::shared_ptr<int> token) {
  get_running_loop().set_exception_handler([token](EventLoop&, const ExceptionContext&) {});
}

// CPython runners.py Runner.close: asyncio.run closes the loop, and once
// run() returns nothing of it stays reachable (Python's cycle collector
// frees futures that refer to each other). The control case: tasks, a
// finished gather, wait_for and a timeout leave nothing behind.
TEST_P(ReleaseConformance, FinishedRunReleasesItsLoop) {
  std::weak_ptr<int> watch;
  run([&]() -> Coro<void> {
    auto token = std::make_shared<int>(0);
    watch = token;
    tie_to_loop(std::move(token));
    co_await gather(value_after(kMs, 1), value_after(2 * kMs, 2));
    EXPECT_THROW(co_await wait_for(value_after(kNever, 3), kMs), TimeoutError);
    Task<int> never = create_task(value_after(kNever, 4));  // cancelled by run()'s shutdown
    co_await sleep(kZero);
  }());
  EXPECT_TRUE(watch.expired());
}

// The same with a gather whose outer future finished (a child was
// cancelled) while another child stays pending forever: in asyncio the
// outer <-> child reference cycle is garbage once the run is over.
TEST_P(ReleaseConformance, GatherWithAPendingChildDoesNotOutliveTheRun) {
  std::weak_ptr<int> watch;
  run([&]() -> Coro<void> {
    auto token = std::make_shared<int>(0);
    watch = token;
    tie_to_loop(std::move(token));
    Future<int> a = create_future<int>();
    Future<int> b = create_future<int>();
    Future<int> c = create_future<int>();
    auto outer = gather(a, b, c);
    a.set_result(1);
    b.cancel();
    co_await sleep(kZero);
    EXPECT_THROW(outer.result(), CancelledError);
  }());
  EXPECT_TRUE(watch.expired());
}

// The same with an as_completed whose timeout fired.
TEST_P(ReleaseConformance, AsCompletedAfterItsTimeoutDoesNotOutliveTheRun) {
  std::weak_ptr<int> watch;
  run([&]() -> Coro<void> {
    auto token = std::make_shared<int>(0);
    watch = token;
    tie_to_loop(std::move(token));
    Task<int> slow = create_task(value_after(kNever, 1));
    auto it = as_completed(std::vector<Task<int>>{slow}, kMs);
    EXPECT_THROW(co_await it.next(), TimeoutError);
    slow.cancel();
  }());
  EXPECT_TRUE(watch.expired());
}

// The same with shields over a future that never finishes, one left
// pending and one cancelled: shield's callbacks make no reference cycle.
TEST_P(ReleaseConformance, ShieldsOverAPendingFutureDoNotOutliveTheRun) {
  std::weak_ptr<int> watch;
  run([&]() -> Coro<void> {
    auto token = std::make_shared<int>(0);
    watch = token;
    tie_to_loop(std::move(token));
    Future<int> never = create_future<int>();
    Future<int> pending = shield(never);
    Future<int> cancelled = shield(never);
    cancelled.cancel();
    co_await sleep(kZero);
    co_await sleep(kZero);
  }());
  EXPECT_TRUE(watch.expired());
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(GatherConformance);
TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(WaitConformance);
TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(WaitForConformance);
TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(AsCompletedConformance);
TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(ShieldConformance);
TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(ReleaseConformance);

}  // namespace
}  // namespace twinloop::conformance
