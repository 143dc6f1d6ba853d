// Cross-loop conformance: asyncio's queues (CPython 3.14
// Lib/asyncio/queues.py, tests in Lib/test/test_asyncio/test_queues.py) on
// the real and the simulated loop. Each case names the CPython test it
// mirrors; cases marked "twinloop" check a documented refinement.
#include <algorithm>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/future.h"
#include "twinloop/api/graph.h"
#include "twinloop/api/queues.h"
#include "twinloop/api/task.h"
#include "twinloop/api/timeouts.h"
#include "gtest/gtest.h"
#include "twinloop/sim/simulation.h"
#include "twinloop/tests/conformance/loop_fixture.h"

namespace twinloop::conformance {
namespace {

constexpr absl::Duration kZero = absl::ZeroDuration();

class QueueConformance : public LoopTest {};

// Whether `f()` throws an E.
template <class E, class F>
bool throws(F&& f) {
  try {
    f();
  } catch (const E&) {
    return true;
  }
  return false;
}

// Whether awaiting `aw` raises an E.
template <class E, class A>
Coro<bool> raises(A aw) {
  try {
    co_await std::move(aw);
  } catch (const E&) {
    co_return true;
  }
  co_return false;
}

Coro<void> yield_times(int n) {
  for (int i = 0; i < n; ++i) co_await sleep(kZero);
}

// What `t` waits on, as deadlock reports show it.
template <class T>
std::string waiting_on(const Task<T>& t) {
  return t.base().waiting_on();
}

// ---------------------------------------------------------------- basics

// test_empty
// put() and get() are lazy, as asyncio's coroutine objects: nothing happens
// until they are awaited or their task runs (api/queues.h, QueuePut/QueueGet).
TEST_P(QueueConformance, PutAndGetAreLazyUntilAwaited) {
  run([]() -> Coro<void> {
    Queue<int> q;
    {
      auto never = q.put(1);  // dropped without being awaited
    }
    EXPECT_EQ(q.qsize(), 0u);
    Coro<void> later = q.put(2);  // as a coroutine: still nothing
    EXPECT_EQ(q.qsize(), 0u);
    co_await std::move(later);
    EXPECT_EQ(q.qsize(), 1u);
    Task<void> put3 = create_task(q.put(3));  // runs at the task's first step
    EXPECT_EQ(q.qsize(), 1u);
    co_await put3;
    EXPECT_EQ(q.qsize(), 2u);
    Coro<int> get = q.get();
    EXPECT_EQ(q.qsize(), 2u);
    const int first = co_await std::move(get);
    EXPECT_EQ(first, 2);
    const int second = co_await q.get();  // an item is there: no suspension
    EXPECT_EQ(second, 3);
  }());
}

// A get() that must wait shows up in the waiting task's call graph as a
// coroutine frame awaiting the queue (the awaitable runs its coroutine as a
// tracked child).
TEST_P(QueueConformance, WaitingGetIsInTheCallGraph) {
  run([]() -> Coro<void> {
    Queue<int> q(0, "jobs");
    Task<int> getter = create_task(q.get(), {.name = "getter"});
    co_await sleep(kZero);
    const std::string graph = format_call_graph(getter);
    EXPECT_NE(graph.find("queue_get"), std::string::npos) << graph;
    EXPECT_EQ(waiting_on(getter), "<Future pending Queue.get() on 'jobs'>");
    q.put_nowait(7);
    const int got = co_await getter;
    EXPECT_EQ(got, 7);
  }());
}

TEST_P(QueueConformance, EmptyAndQsize) {
  run([]() -> Coro<void> {
    Queue<int> q;
    EXPECT_TRUE(q.empty());
    EXPECT_EQ(q.qsize(), 0u);
    co_await q.put(1);
    EXPECT_FALSE(q.empty());
    EXPECT_EQ(q.qsize(), 1u);
    EXPECT_EQ(co_await q.get(), 1);
    EXPECT_TRUE(q.empty());
  }());
}

// test_full, test_float_maxsize's point (maxsize <= 0 is unbounded).
TEST_P(QueueConformance, FullOnlyWhenBounded) {
  run([]() -> Coro<void> {
    Queue<int> unbounded;
    for (int i = 0; i < 100; ++i) unbounded.put_nowait(i);
    EXPECT_FALSE(unbounded.full());
    EXPECT_EQ(unbounded.maxsize(), 0);

    Queue<int> negative(-3);
    for (int i = 0; i < 10; ++i) co_await negative.put(i);
    EXPECT_FALSE(negative.full());
    EXPECT_EQ(negative.maxsize(), -3);

    Queue<int> q(1);
    EXPECT_FALSE(q.full());
    co_await q.put(1);
    EXPECT_TRUE(q.full());
    EXPECT_EQ(q.maxsize(), 1);
  }());
}

// test_order (Queue)
TEST_P(QueueConformance, FifoOrder) {
  run([]() -> Coro<void> {
    Queue<int> q;
    for (int i : {1, 3, 2}) co_await q.put(i);
    std::vector<int> items;
    for (int i = 0; i < 3; ++i) items.push_back(co_await q.get());
    EXPECT_EQ(items, (std::vector<int>{1, 3, 2}));
  }());
}

// LifoQueueTests.test_order
TEST_P(QueueConformance, LifoOrder) {
  run([]() -> Coro<void> {
    LifoQueue<int> q;
    for (int i : {1, 3, 2}) co_await q.put(i);
    std::vector<int> items;
    for (int i = 0; i < 3; ++i) items.push_back(co_await q.get());
    EXPECT_EQ(items, (std::vector<int>{2, 3, 1}));
  }());
}

// PriorityQueueTests.test_order
TEST_P(QueueConformance, PriorityOrderLowestFirst) {
  run([]() -> Coro<void> {
    PriorityQueue<int> q;
    for (int i : {1, 3, 2}) co_await q.put(i);
    std::vector<int> items;
    for (int i = 0; i < 3; ++i) items.push_back(co_await q.get());
    EXPECT_EQ(items, (std::vector<int>{1, 2, 3}));
  }());
}

struct ByPriority {
  bool operator()(const std::pair<int, std::string>& a, const std::pair<int, std::string>& b) const {
    return a.first < b.first;
  }
};

// PriorityQueueTests.test_order with a comparator; twinloop: equal
// priorities come out in put order (heapq leaves that to the heap).
TEST_P(QueueConformance, PriorityCustomComparatorAndTiesInPutOrder) {
  run([]() -> Coro<void> {
    PriorityQueue<int, std::greater<int>> highest_first;
    for (int i : {1, 3, 2, 5, 4}) highest_first.put_nowait(i);
    std::vector<int> items;
    while (!highest_first.empty()) items.push_back(highest_first.get_nowait());
    EXPECT_EQ(items, (std::vector<int>{5, 4, 3, 2, 1}));

    PriorityQueue<std::pair<int, std::string>, ByPriority> jobs;
    const std::vector<std::pair<int, std::string>> in = {
        {2, "a"}, {1, "b"}, {2, "c"}, {1, "d"}, {0, "e"}, {2, "f"}, {1, "g"}, {2, "h"}};
    for (const auto& job : in) co_await jobs.put(job);
    std::string order;
    while (!jobs.empty()) order += (co_await jobs.get()).second;
    EXPECT_EQ(order, "ebdgacfh");
  }());
}

// test_maxsize
TEST_P(QueueConformance, MaxsizeBlocksThePutterUntilAGet) {
  run([]() -> Coro<void> {
    Queue<int> q(2);
    EXPECT_EQ(q.maxsize(), 2);
    std::vector<int> have_been_put;
    auto putter = [](Queue<int>* q, std::vector<int>* have_been_put) -> Coro<bool> {
      for (int i = 0; i < 3; ++i) {
        co_await q->put(i);
        have_been_put->push_back(i);
      }
      co_return true;
    };
    Task<bool> t = create_task(putter(&q, &have_been_put));
    co_await yield_times(2);
    // The putter is blocked after putting two items.
    EXPECT_EQ(have_been_put, (std::vector<int>{0, 1}));
    EXPECT_EQ(co_await q.get(), 0);
    // Let the putter resume and put the last item.
    co_await sleep(kZero);
    EXPECT_EQ(have_been_put, (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(co_await q.get(), 1);
    EXPECT_EQ(co_await q.get(), 2);
    EXPECT_TRUE(t.done());
    EXPECT_TRUE(t.result());
  }());
}

// test_repr, test_str, test_format (describe() is asyncio's str(), with
// qsize=N instead of the items).
TEST_P(QueueConformance, DescribeShowsWaitersTasksAndShutdown) {
  run([]() -> Coro<void> {
    Queue<int> q;
    EXPECT_EQ(q.describe(), "<Queue maxsize=0>");
    Task<int> getter = create_task(q.get());
    co_await sleep(kZero);
    EXPECT_TRUE(absl::StrContains(q.describe(), "_getters[1]")) << q.describe();
    q.put_nowait(0);
    EXPECT_EQ(co_await getter, 0);

    Queue<int> bounded(1);
    bounded.put_nowait(1);
    Task<void> putter = create_task(bounded.put(2));
    co_await sleep(kZero);
    EXPECT_TRUE(absl::StrContains(bounded.describe(), "_putters[1]")) << bounded.describe();
    bounded.get_nowait();
    co_await putter;
    EXPECT_TRUE(putter.done());

    Queue<int> named(0, "jobs");
    named.put_nowait(1);
    named.put_nowait(2);
    EXPECT_EQ(named.describe(), "<Queue 'jobs' maxsize=0 qsize=2 tasks=2>");
    EXPECT_EQ(named.name(), "jobs");
    named.shutdown();
    EXPECT_EQ(named.describe(), "<Queue 'jobs' maxsize=0 qsize=2 tasks=2 shutdown>");
    EXPECT_EQ(LifoQueue<int>(3).describe(), "<LifoQueue maxsize=3>");
    EXPECT_EQ(PriorityQueue<int>().describe(), "<PriorityQueue maxsize=0>");
  }());
}

// ---------------------------------------------------------------- get

// test_blocking_get, test_nonblocking_get, test_nonblocking_get_exception
TEST_P(QueueConformance, GetAndGetNowait) {
  run([]() -> Coro<void> {
    Queue<int> q;
    q.put_nowait(1);
    EXPECT_EQ(co_await q.get(), 1);
    q.put_nowait(2);
    EXPECT_EQ(q.get_nowait(), 2);
    EXPECT_TRUE(throws<QueueEmpty>([&] { q.get_nowait(); }));
    EXPECT_TRUE(throws<std::runtime_error>([&] { q.get_nowait(); }));  // an Exception
  }());
}

Coro<int> note_then_get(Queue<int>* q, bool* started, bool* finished) {
  *started = true;
  int v = co_await q->get();
  *finished = true;
  co_return v;
}

// test_blocking_get_wait
TEST_P(QueueConformance, GetWaitsForALaterPut) {
  run([]() -> Coro<void> {
    Queue<int> q;
    bool started = false;
    bool finished = false;
    Task<int> t = create_task(note_then_get(&q, &started, &finished));
    co_await sleep(kZero);
    EXPECT_TRUE(started);
    EXPECT_FALSE(finished);
    get_running_loop().call_later(absl::Milliseconds(10), [&q] { q.put_nowait(1); });
    EXPECT_EQ(co_await t, 1);
    EXPECT_TRUE(finished);
  }());
}

// test_get_with_putters: a get wakes the blocked putter.
TEST_P(QueueConformance, GetWakesABlockedPutter) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    co_await q.put(1);
    Task<void> putter = create_task(q.put(2));
    co_await sleep(kZero);
    EXPECT_FALSE(putter.done());
    EXPECT_EQ(co_await q.get(), 1);
    co_await putter;
    EXPECT_EQ(q.get_nowait(), 2);
  }());
}

// test_get_cancelled_race
TEST_P(QueueConformance, CancelledGetterDoesNotTakeTheItem) {
  run([]() -> Coro<void> {
    Queue<std::string> q;
    Task<std::string> t1 = create_task(q.get());
    Task<std::string> t2 = create_task(q.get());
    co_await sleep(kZero);
    t1.cancel();
    co_await sleep(kZero);
    EXPECT_TRUE(t1.done());
    EXPECT_TRUE(t1.cancelled());
    co_await q.put("a");
    co_await sleep(kZero);
    EXPECT_EQ(co_await t2, "a");
  }());
}

// test_get_with_waiting_putters
TEST_P(QueueConformance, GetWithWaitingPutters) {
  run([]() -> Coro<void> {
    Queue<std::string> q(1);
    Task<void> a = create_task(q.put("a"));
    Task<void> b = create_task(q.put("b"));
    EXPECT_EQ(co_await q.get(), "a");
    EXPECT_EQ(co_await q.get(), "b");
    co_await a;
    co_await b;
  }());
}

Coro<void> consume(Queue<int>* q, int n, std::vector<int>* got) {
  for (int i = 0; i < n; ++i) got->push_back(co_await q->get());
}

Coro<void> produce(Queue<int>* q, int n) {
  for (int i = 0; i < n; ++i) co_await q->put(i);
}

// test_why_are_getters_waiting
TEST_P(QueueConformance, ProducerAndConsumerThroughASizeOneQueue) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    std::vector<int> got;
    Task<void> producer = create_task(produce(&q, 5));
    Task<void> consumer = create_task(consume(&q, 5, &got));
    co_await producer;
    co_await consumer;
    EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4}));
  }());
}

// test_cancelled_getters_not_being_held_in_self_getters
TEST_P(QueueConformance, TimedOutGetterIsRemoved) {
  run([]() -> Coro<void> {
    Queue<int> q(5);
    EXPECT_TRUE(co_await raises<TimeoutError>(wait_for(q.get(), absl::Milliseconds(10))));
    EXPECT_FALSE(absl::StrContains(q.describe(), "_getters")) << q.describe();
    q.put_nowait(7);  // nobody took it
    EXPECT_EQ(q.get_nowait(), 7);
  }());
}

// test_get_cancel_drop_one_pending_reader
TEST_P(QueueConformance, WokenThenCancelledReaderDropsNoItem) {
  run([]() -> Coro<void> {
    Queue<int> q;
    Task<int> reader = create_task(q.get());
    co_await sleep(kZero);
    q.put_nowait(1);
    q.put_nowait(2);
    reader.cancel();
    bool cancelled = false;
    try {
      co_await reader;
    } catch (const CancelledError&) {
      cancelled = true;
    }
    EXPECT_TRUE(cancelled);
    if (cancelled) {
      // Try again.
      reader = create_task(q.get());
      co_await reader;
    }
    // Getting 2 would mean 1 got dropped.
    EXPECT_EQ(reader.result(), 1);
  }());
}

// test_get_cancel_drop_many_pending_readers: reader1 is woken, then
// cancelled; its wake-up passes on to reader3, so both items are taken.
TEST_P(QueueConformance, WokenThenCancelledReaderPassesTheWakeupOn) {
  run([]() -> Coro<void> {
    Queue<int> q;
    Task<int> reader1 = create_task(q.get());
    Task<int> reader2 = create_task(q.get());
    Task<int> reader3 = create_task(q.get());
    co_await sleep(kZero);
    q.put_nowait(1);
    q.put_nowait(2);
    reader1.cancel();
    EXPECT_TRUE(co_await raises<CancelledError>(reader1));
    co_await reader3;
    co_await reader2;
    std::vector<int> got = {reader2.result(), reader3.result()};
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (std::vector<int>{1, 2}));
    EXPECT_TRUE(q.empty());
  }());
}

// ---------------------------------------------------------------- put

// test_blocking_put, test_nonblocking_put
TEST_P(QueueConformance, PutAndPutNowaitUnbounded) {
  run([]() -> Coro<void> {
    Queue<int> q;
    co_await q.put(1);  // no maxsize: does not block
    EXPECT_EQ(co_await q.get(), 1);
    q.put_nowait(2);
    EXPECT_EQ(q.get_nowait(), 2);
  }());
}

Coro<void> note_then_put_two(Queue<int>* q, bool* started, bool* finished) {
  *started = true;
  co_await q->put(1);
  co_await q->put(2);
  *finished = true;
}

// test_blocking_put_wait
TEST_P(QueueConformance, PutWaitsForALaterGet) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    bool started = false;
    bool finished = false;
    get_running_loop().call_later(absl::Milliseconds(10), [&q] { (void)q.get_nowait(); });
    Task<void> t = create_task(note_then_put_two(&q, &started, &finished));
    co_await sleep(kZero);
    EXPECT_TRUE(started);
    EXPECT_FALSE(finished);
    co_await t;
    EXPECT_TRUE(finished);
    EXPECT_EQ(q.get_nowait(), 2);
  }());
}

// test_nonblocking_put_exception
TEST_P(QueueConformance, PutNowaitOnAFullQueueRaisesQueueFull) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    q.put_nowait(1);
    EXPECT_TRUE(throws<QueueFull>([&] { q.put_nowait(2); }));
    EXPECT_EQ(q.qsize(), 1u);
    co_return;
  }());
}

// test_put_cancelled: a put into an unbounded queue does not wait.
TEST_P(QueueConformance, PutCompletesWithoutWaiting) {
  run([]() -> Coro<void> {
    Queue<int> q;
    auto put_one = [](Queue<int>* q) -> Coro<bool> {
      co_await q->put(1);
      co_return true;
    };
    Task<bool> t = create_task(put_one(&q));
    EXPECT_EQ(co_await q.get(), 1);
    EXPECT_TRUE(t.done());
    EXPECT_TRUE(t.result());
  }());
}

// test_put_cancelled_race
TEST_P(QueueConformance, CancelledPutterPutsNothing) {
  run([]() -> Coro<void> {
    Queue<std::string> q(1);
    Task<void> put_a = create_task(q.put("a"));
    Task<void> put_b = create_task(q.put("b"));
    Task<void> put_c = create_task(q.put("X"));
    co_await sleep(kZero);
    EXPECT_TRUE(put_a.done());
    EXPECT_FALSE(put_b.done());
    put_c.cancel();
    co_await sleep(kZero);
    EXPECT_TRUE(put_c.done());
    EXPECT_EQ(q.get_nowait(), "a");
    co_await sleep(kZero);
    EXPECT_EQ(q.get_nowait(), "b");
    co_await put_b;
    EXPECT_TRUE(q.empty());
  }());
}

// test_put_with_waiting_getters
TEST_P(QueueConformance, PutHandsTheItemToAWaitingGetter) {
  run([]() -> Coro<void> {
    Queue<std::string> q;
    Task<std::string> t = create_task(q.get());
    co_await sleep(kZero);
    co_await q.put("a");
    EXPECT_EQ(co_await t, "a");
  }());
}

Coro<void> drain_after_a_yield(Queue<int>* q) {
  co_await sleep(kZero);
  const size_t n = q->qsize();
  for (size_t i = 0; i < n; ++i) (void)q->get_nowait();
}

// test_why_are_putters_waiting
TEST_P(QueueConformance, EveryGetWakesOneBlockedPutter) {
  run([]() -> Coro<void> {
    Queue<int> q(2);
    std::vector<Task<void>> tasks;
    tasks.push_back(create_task(drain_after_a_yield(&q)));
    for (int i = 0; i < 4; ++i) tasks.push_back(create_task(q.put(i)));
    for (Task<void>& t : tasks) co_await t;
    EXPECT_EQ(q.qsize(), 2u);
    EXPECT_EQ(q.get_nowait(), 2);
    EXPECT_EQ(q.get_nowait(), 3);
  }());
}

// test_put_cancel_drop
TEST_P(QueueConformance, WokenThenCancelledWriterDoesNotPutTwice) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    q.put_nowait(1);
    // Putting a second item has to block (maxsize 1).
    Task<void> writer = create_task(q.put(2));
    co_await sleep(kZero);
    EXPECT_EQ(q.get_nowait(), 1);
    writer.cancel();
    bool cancelled = false;
    try {
      co_await writer;
    } catch (const CancelledError&) {
      cancelled = true;
    }
    EXPECT_TRUE(cancelled);
    if (cancelled) {
      // Try again.
      writer = create_task(q.put(2));
      co_await writer;
    }
    EXPECT_EQ(q.get_nowait(), 2);
    EXPECT_EQ(q.qsize(), 0u);
  }());
}

// test_put_cancel_drop with a second writer: the cancelled writer's wake-up
// goes to the next one in line.
TEST_P(QueueConformance, WokenThenCancelledWriterPassesTheWakeupOn) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    q.put_nowait(0);
    Task<void> w1 = create_task(q.put(1));
    Task<void> w2 = create_task(q.put(2));
    co_await sleep(kZero);
    EXPECT_EQ(q.get_nowait(), 0);  // wakes w1
    w1.cancel();
    EXPECT_TRUE(co_await raises<CancelledError>(w1));
    co_await w2;  // would hang if the wake-up were lost
    EXPECT_EQ(q.get_nowait(), 2);
    EXPECT_TRUE(q.empty());
  }());
}

// test_cancelled_puts_not_being_held_in_self_putters
TEST_P(QueueConformance, CancelledPutterIsRemoved) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    q.put_nowait(1);
    Task<void> put_task = create_task(q.put(1));
    co_await sleep(kZero);
    EXPECT_TRUE(absl::StrContains(q.describe(), "_putters[1]")) << q.describe();
    put_task.cancel();
    EXPECT_TRUE(co_await raises<CancelledError>(put_task));
    EXPECT_FALSE(absl::StrContains(q.describe(), "_putters")) << q.describe();
  }());
}

// test_cancelled_put_silence_value_error_exception: the putter was already
// removed by get_nowait(); the cancelled put still raises CancelledError
// (and puts nothing).
TEST_P(QueueConformance, CancelAfterGetNowaitRemovedThePutter) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    q.put_nowait(1);
    Task<void> put_task = create_task(q.put(1));
    co_await sleep(kZero);
    (void)q.get_nowait();
    put_task.cancel();
    EXPECT_TRUE(co_await raises<CancelledError>(put_task));
    EXPECT_TRUE(q.empty());
  }());
}

// twinloop (test_cancelled_getters_not_being_held_in_self_getters for put):
// a timed-out put leaves no putter and no item behind.
TEST_P(QueueConformance, TimedOutPutterPutsNothing) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    q.put_nowait(1);
    EXPECT_TRUE(co_await raises<TimeoutError>(wait_for(q.put(2), absl::Milliseconds(10))));
    EXPECT_FALSE(absl::StrContains(q.describe(), "_putters")) << q.describe();
    EXPECT_EQ(q.get_nowait(), 1);
    EXPECT_TRUE(q.empty());
  }());
}

// ---------------------------------------------------------------- wake-up order

Coro<void> get_into(Queue<int>* q, std::vector<int>* log, int who) {
  int v = co_await q->get();
  log->push_back(who * 100 + v);
}

// _wakeup_next: each put wakes exactly one getter, the longest waiting.
TEST_P(QueueConformance, EachPutWakesOneGetterInFifoOrder) {
  run([]() -> Coro<void> {
    Queue<int> q;
    std::vector<int> log;
    Task<void> g1 = create_task(get_into(&q, &log, 1));
    Task<void> g2 = create_task(get_into(&q, &log, 2));
    Task<void> g3 = create_task(get_into(&q, &log, 3));
    co_await sleep(kZero);
    q.put_nowait(10);
    co_await yield_times(3);
    EXPECT_TRUE(g1.done());
    EXPECT_FALSE(g2.done());
    EXPECT_FALSE(g3.done());
    EXPECT_TRUE(absl::StrContains(q.describe(), "_getters[2]")) << q.describe();
    q.put_nowait(20);
    q.put_nowait(30);
    co_await g2;
    co_await g3;
    EXPECT_EQ(log, (std::vector<int>{110, 220, 330}));
  }());
}

Coro<void> put_logging(Queue<int>* q, int v, std::vector<int>* log) {
  co_await q->put(v);
  log->push_back(v);
}

// _wakeup_next on putters: each get wakes exactly one putter, in FIFO order.
TEST_P(QueueConformance, EachGetWakesOnePutterInFifoOrder) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    q.put_nowait(0);
    std::vector<int> log;
    Task<void> p1 = create_task(put_logging(&q, 1, &log));
    Task<void> p2 = create_task(put_logging(&q, 2, &log));
    Task<void> p3 = create_task(put_logging(&q, 3, &log));
    co_await sleep(kZero);
    EXPECT_EQ(q.get_nowait(), 0);
    co_await yield_times(3);
    EXPECT_EQ(log, (std::vector<int>{1}));
    EXPECT_FALSE(p2.done());
    std::vector<int> got;
    for (int i = 0; i < 3; ++i) got.push_back(co_await q.get());
    EXPECT_EQ(got, (std::vector<int>{1, 2, 3}));
    co_await p1;
    co_await p2;
    co_await p3;
    EXPECT_EQ(log, (std::vector<int>{1, 2, 3}));
  }());
}

// ---------------------------------------------------------------- join / task_done

// _QueueJoinTestMixin.test_task_done_underflow, for the three kinds.
TEST_P(QueueConformance, TaskDoneUnderflowRaisesValueError) {
  run([]() -> Coro<void> {
    Queue<int> q;
    LifoQueue<int> lifo;
    PriorityQueue<int> prio;
    std::string message;
    try {
      q.task_done();
    } catch (const std::invalid_argument& e) {
      message = e.what();
    }
    EXPECT_EQ(message, "task_done() called too many times");
    EXPECT_TRUE(throws<std::invalid_argument>([&] { lifo.task_done(); }));
    EXPECT_TRUE(throws<std::invalid_argument>([&] { prio.task_done(); }));
    q.put_nowait(1);
    (void)q.get_nowait();
    q.task_done();
    EXPECT_TRUE(throws<std::invalid_argument>([&] { q.task_done(); }));
    co_return;
  }());
}

Coro<void> sum_worker(Queue<int>* q, const bool* running, int* accumulator) {
  while (*running) {
    int item = co_await q->get();
    *accumulator += item;
    q->task_done();
  }
}

template <class Q>
Coro<void> task_done_with_two_workers() {
  Q q;
  for (int i = 0; i < 100; ++i) q.put_nowait(i);
  int accumulator = 0;
  bool running = true;
  Task<void> w1 = create_task(sum_worker(&q, &running, &accumulator));
  Task<void> w2 = create_task(sum_worker(&q, &running, &accumulator));
  co_await q.join();
  EXPECT_EQ(accumulator, 4950);
  // Close the workers.
  running = false;
  q.put_nowait(0);
  q.put_nowait(0);
  co_await w1;
  co_await w2;
}

// _QueueJoinTestMixin.test_task_done, for the three kinds.
TEST_P(QueueConformance, JoinReturnsOnceEveryItemIsTaskDone) {
  run([]() -> Coro<void> {
    co_await task_done_with_two_workers<Queue<int>>();
    co_await task_done_with_two_workers<LifoQueue<int>>();
    co_await task_done_with_two_workers<PriorityQueue<int>>();
  }());
}

// _QueueJoinTestMixin.test_join_empty_queue
TEST_P(QueueConformance, JoinOnAnEmptyQueueReturnsAtOnce) {
  run([]() -> Coro<void> {
    Queue<int> q;
    co_await q.join();
    co_await q.join();
    LifoQueue<int> lifo;
    co_await lifo.join();
    PriorityQueue<int> prio;
    co_await prio.join();
  }());
}

// join counts task_done(), not emptiness (asyncio docs; test_task_done).
TEST_P(QueueConformance, JoinWaitsForTaskDoneNotForEmptiness) {
  run([]() -> Coro<void> {
    Queue<int> q;
    q.put_nowait(1);
    q.put_nowait(2);
    Task<void> joiner1 = create_task(q.join());
    Task<void> joiner2 = create_task(q.join());
    EXPECT_EQ(co_await q.get(), 1);
    EXPECT_EQ(co_await q.get(), 2);
    EXPECT_TRUE(q.empty());
    co_await yield_times(2);
    EXPECT_FALSE(joiner1.done());
    q.task_done();
    co_await yield_times(2);
    EXPECT_FALSE(joiner1.done());
    q.task_done();
    co_await sleep(kZero);
    // Every joiner is released (an Event).
    EXPECT_TRUE(joiner1.done());
    EXPECT_TRUE(joiner2.done());
  }());
}

// Event.wait's cancellation: a cancelled join stops waiting; the others and
// later joins are unaffected.
TEST_P(QueueConformance, CancelledJoinLeavesOtherJoinersWaiting) {
  run([]() -> Coro<void> {
    Queue<int> q;
    q.put_nowait(1);
    Task<void> joiner1 = create_task(q.join());
    Task<void> joiner2 = create_task(q.join());
    co_await sleep(kZero);
    joiner1.cancel();
    EXPECT_TRUE(co_await raises<CancelledError>(joiner1));
    EXPECT_FALSE(joiner2.done());
    (void)q.get_nowait();
    q.task_done();
    co_await joiner2;
    co_await q.join();
  }());
}

// ---------------------------------------------------------------- shutdown

template <class Q>
Coro<void> shutdown_empty() {
  Q q;
  Task<int> get_task = create_task(q.get());
  co_await sleep(kZero);  // the getter waits before the shutdown
  q.shutdown(false);      // unfinished tasks: 0 -> 0
  EXPECT_TRUE(q.is_shutdown());
  EXPECT_EQ(q.qsize(), 0u);
  co_await q.join();
  co_await sleep(kZero);
  EXPECT_TRUE(get_task.done());
  EXPECT_TRUE(co_await raises<QueueShutDown>(get_task));
  EXPECT_TRUE(co_await raises<QueueShutDown>(q.put(1)));
  EXPECT_TRUE(throws<QueueShutDown>([&] { q.put_nowait(1); }));
  EXPECT_TRUE(co_await raises<QueueShutDown>(q.get()));
  EXPECT_TRUE(throws<QueueShutDown>([&] { q.get_nowait(); }));
}

// _QueueShutdownTestMixin.test_shutdown_empty, for the three kinds.
TEST_P(QueueConformance, ShutdownEmptyWakesTheGetterWithQueueShutDown) {
  run([]() -> Coro<void> {
    co_await shutdown_empty<Queue<int>>();
    co_await shutdown_empty<LifoQueue<int>>();
    co_await shutdown_empty<PriorityQueue<int>>();
  }());
}

template <class Q>
Coro<void> shutdown_nonempty() {
  Q q(1);
  q.put_nowait(1);
  Task<void> join_task = create_task(q.join());
  Task<void> put_task = create_task(q.put(2));
  co_await sleep(kZero);
  EXPECT_FALSE(put_task.done());
  q.shutdown(false);  // unfinished tasks: 1 -> 1
  EXPECT_EQ(q.qsize(), 1u);
  // The blocked putter is woken and raises.
  co_await sleep(kZero);
  EXPECT_TRUE(put_task.done());
  EXPECT_TRUE(co_await raises<QueueShutDown>(put_task));
  // get() still drains the queue.
  EXPECT_EQ(co_await q.get(), 1);
  // A non-immediate shutdown does not release join().
  co_await sleep(kZero);
  EXPECT_FALSE(join_task.done());
  EXPECT_TRUE(co_await raises<QueueShutDown>(q.put(3)));
  EXPECT_TRUE(throws<QueueShutDown>([&] { q.put_nowait(3); }));
  EXPECT_TRUE(co_await raises<QueueShutDown>(q.get()));
  EXPECT_TRUE(throws<QueueShutDown>([&] { q.get_nowait(); }));
  // One unfinished task; task_done releases join.
  q.task_done();
  co_await sleep(kZero);
  EXPECT_TRUE(join_task.done());
  co_await join_task;
  EXPECT_TRUE(throws<std::invalid_argument>([&] { q.task_done(); }));
}

// _QueueShutdownTestMixin.test_shutdown_nonempty, for the three kinds.
TEST_P(QueueConformance, ShutdownNonemptyDrainsThenRaises) {
  run([]() -> Coro<void> {
    co_await shutdown_nonempty<Queue<int>>();
    co_await shutdown_nonempty<LifoQueue<int>>();
    co_await shutdown_nonempty<PriorityQueue<int>>();
  }());
}

template <class Q>
Coro<void> shutdown_immediate() {
  Q q;
  q.put_nowait(1);
  Task<void> join_task = create_task(q.join());
  q.shutdown(true);  // unfinished tasks: 1 -> 0
  EXPECT_EQ(q.qsize(), 0u);
  co_await sleep(kZero);
  EXPECT_TRUE(join_task.done());
  co_await join_task;
  EXPECT_TRUE(co_await raises<QueueShutDown>(q.put(2)));
  EXPECT_TRUE(throws<QueueShutDown>([&] { q.put_nowait(2); }));
  EXPECT_TRUE(co_await raises<QueueShutDown>(q.get()));
  EXPECT_TRUE(throws<QueueShutDown>([&] { q.get_nowait(); }));
  EXPECT_TRUE(throws<std::invalid_argument>([&] { q.task_done(); }));
}

// _QueueShutdownTestMixin.test_shutdown_immediate, for the three kinds.
TEST_P(QueueConformance, ShutdownImmediateDrainsAndReleasesJoin) {
  run([]() -> Coro<void> {
    co_await shutdown_immediate<Queue<int>>();
    co_await shutdown_immediate<LifoQueue<int>>();
    co_await shutdown_immediate<PriorityQueue<int>>();
  }());
}

template <class Q>
Coro<void> shutdown_immediate_with_unfinished() {
  Q q;
  q.put_nowait(1);
  q.put_nowait(1);
  Task<void> join_task = create_task(q.join());
  EXPECT_EQ(co_await q.get(), 1);
  q.shutdown(true);  // unfinished tasks: 2 -> 1 (the item taken still counts)
  EXPECT_EQ(q.qsize(), 0u);
  co_await sleep(kZero);
  EXPECT_FALSE(join_task.done());
  EXPECT_TRUE(co_await raises<QueueShutDown>(q.put(2)));
  EXPECT_TRUE(throws<QueueShutDown>([&] { q.put_nowait(2); }));
  EXPECT_TRUE(co_await raises<QueueShutDown>(q.get()));
  EXPECT_TRUE(throws<QueueShutDown>([&] { q.get_nowait(); }));
  q.task_done();
  EXPECT_TRUE(throws<std::invalid_argument>([&] { q.task_done(); }));
  co_await sleep(kZero);
  EXPECT_TRUE(join_task.done());
  co_await join_task;
}

// _QueueShutdownTestMixin.test_shutdown_immediate_with_unfinished.
TEST_P(QueueConformance, ShutdownImmediateKeepsItemsTakenButNotDone) {
  run([]() -> Coro<void> {
    co_await shutdown_immediate_with_unfinished<Queue<int>>();
    co_await shutdown_immediate_with_unfinished<LifoQueue<int>>();
    co_await shutdown_immediate_with_unfinished<PriorityQueue<int>>();
  }());
}

// shutdown(): "All blocked callers of put() and get() will be unblocked."
TEST_P(QueueConformance, ShutdownWakesEveryBlockedGetterAndPutter) {
  run([]() -> Coro<void> {
    Queue<int> empty(1);
    std::vector<Task<int>> getters;
    for (int i = 0; i < 3; ++i) getters.push_back(create_task(empty.get()));
    Queue<int> full(1);
    full.put_nowait(7);
    std::vector<Task<void>> putters;
    for (int i = 0; i < 3; ++i) putters.push_back(create_task(full.put(i)));
    co_await sleep(kZero);
    empty.shutdown();
    full.shutdown();
    for (Task<int>& g : getters) EXPECT_TRUE(co_await raises<QueueShutDown>(g));
    for (Task<void>& p : putters) EXPECT_TRUE(co_await raises<QueueShutDown>(p));
    EXPECT_FALSE(absl::StrContains(empty.describe(), "_getters")) << empty.describe();
    EXPECT_FALSE(absl::StrContains(full.describe(), "_putters")) << full.describe();
    // The item put before the shutdown is still there.
    EXPECT_EQ(full.get_nowait(), 7);
    // An immediate shutdown of a full queue also makes blocked putters raise.
    Queue<int> again(1);
    again.put_nowait(1);
    Task<void> putter = create_task(again.put(2));
    co_await sleep(kZero);
    again.shutdown(true);
    EXPECT_TRUE(co_await raises<QueueShutDown>(putter));
    EXPECT_TRUE(again.empty());
  }());
}

// test_shutdown_nonempty's get side: a getter woken by a put and a
// non-immediate shutdown in the same iteration still gets the item.
TEST_P(QueueConformance, GetterWokenByPutBeforeShutdownGetsTheItem) {
  run([]() -> Coro<void> {
    Queue<int> q;
    Task<int> g1 = create_task(q.get());
    Task<int> g2 = create_task(q.get());
    co_await sleep(kZero);
    q.put_nowait(5);
    q.shutdown();
    EXPECT_EQ(co_await g1, 5);
    EXPECT_TRUE(co_await raises<QueueShutDown>(g2));
  }());
}

// ---------------------------------------------------------------- items and labels

// twinloop: move-only items go in and come out by move; put_nowait(T&&)
// leaves the item with the caller when it raises.
TEST_P(QueueConformance, MoveOnlyItems) {
  run([]() -> Coro<void> {
    Queue<std::unique_ptr<int>> q(2);
    co_await q.put(std::make_unique<int>(1));
    auto two = std::make_unique<int>(2);
    q.put_nowait(std::move(two));
    EXPECT_TRUE(two == nullptr);
    auto three = std::make_unique<int>(3);
    EXPECT_TRUE(throws<QueueFull>([&] { q.put_nowait(std::move(three)); }));
    EXPECT_TRUE(three != nullptr && *three == 3);  // still ours
    std::unique_ptr<int> a = co_await q.get();
    std::unique_ptr<int> b = q.get_nowait();
    EXPECT_EQ(*a, 1);
    EXPECT_EQ(*b, 2);

    // Blocking on both sides.
    auto take_into = [](Queue<std::unique_ptr<int>>* q, int* out) -> Coro<void> {
      std::unique_ptr<int> p = co_await q->get();
      *out = *p;
    };
    int out = 0;
    Task<void> getter = create_task(take_into(&q, &out));
    co_await sleep(kZero);
    co_await q.put(std::move(three));
    co_await getter;
    EXPECT_EQ(out, 3);

    struct ByValue {
      bool operator()(const std::unique_ptr<int>& a, const std::unique_ptr<int>& b) const {
        return *a < *b;
      }
    };
    PriorityQueue<std::unique_ptr<int>, ByValue> prio;
    for (int v : {3, 1, 2}) prio.put_nowait(std::make_unique<int>(v));
    EXPECT_EQ(*prio.get_nowait(), 1);
    EXPECT_EQ(*(co_await prio.get()), 2);
    LifoQueue<std::unique_ptr<int>> lifo;
    for (int v : {3, 1, 2}) co_await lifo.put(std::make_unique<int>(v));
    EXPECT_EQ(*(co_await lifo.get()), 2);
    lifo.shutdown(true);  // drains (destroys) the rest
    EXPECT_TRUE(lifo.empty());
  }());
}

// twinloop: waiter futures are labelled, so deadlock reports and the call
// graph say what a task waits on.
TEST_P(QueueConformance, WaiterFuturesAreLabelled) {
  run([]() -> Coro<void> {
    Queue<int> jobs(1, "jobs");
    Queue<int> anonymous;
    LifoQueue<int> stack;
    Task<int> getter = create_task(anonymous.get());
    Task<int> lifo_getter = create_task(stack.get());
    jobs.put_nowait(1);
    Task<void> putter = create_task(jobs.put(2));
    Task<void> joiner = create_task(jobs.join());
    co_await sleep(kZero);
    EXPECT_EQ(waiting_on(getter), "<Future pending Queue.get()>");
    EXPECT_EQ(waiting_on(lifo_getter), "<Future pending LifoQueue.get()>");
    EXPECT_EQ(waiting_on(putter), "<Future pending Queue.put() on 'jobs'>");
    EXPECT_EQ(waiting_on(joiner), "<Future pending Queue.join() on 'jobs'>");
    getter.cancel();
    lifo_getter.cancel();
    putter.cancel();
    joiner.cancel();
    EXPECT_TRUE(co_await raises<CancelledError>(getter));
    EXPECT_TRUE(co_await raises<CancelledError>(lifo_getter));
    EXPECT_TRUE(co_await raises<CancelledError>(putter));
    EXPECT_TRUE(co_await raises<CancelledError>(joiner));
  }());
}

// _LoopBoundMixin: a queue that waited on one loop refuses to wait on
// another (RuntimeError "... is bound to a different event loop").
TEST_P(QueueConformance, QueueIsBoundToTheLoopItFirstWaitedOn) {
  Queue<int> q;
  run([](Queue<int>* q) -> Coro<void> {
    Task<int> t = create_task(q->get());  // binds the queue to this loop
    co_await sleep(kZero);
    q->put_nowait(1);
    EXPECT_EQ(co_await t, 1);
  }(&q));
  run([](Queue<int>* q) -> Coro<void> {
    // Non-waiting operations do not need the loop.
    q->put_nowait(2);
    EXPECT_EQ(q->get_nowait(), 2);
    std::string message;
    try {
      (void)co_await q->get();
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
    EXPECT_TRUE(absl::StrContains(message, "is bound to a different event loop")) << message;
  }(&q));
}

// twinloop: the state is shared with pending operations, so destroying the
// Queue object while a task waits on it is safe.
TEST_P(QueueConformance, DestroyingTheQueueWhileATaskWaitsIsSafe) {
  run([]() -> Coro<void> {
    auto q = std::make_unique<Queue<int>>(0, "gone");
    Task<int> getter = create_task(q->get());
    co_await sleep(kZero);
    q.reset();
    co_await sleep(kZero);
    EXPECT_FALSE(getter.done());
    getter.cancel();
    EXPECT_TRUE(co_await raises<CancelledError>(getter));
  }());
}

// ---------------------------------------------------------------- awaited directly
//
// `co_await q.get()` in a coroutine waits without a coroutine frame of its
// own (api/queues.h QueueOpBase); `create_task(q.get())` runs the get()
// coroutine. The cases above mostly use the second form; these run the
// waiting paths of the first, which must behave the same.

Coro<int> get_directly(Queue<int>* q) { co_return co_await q->get(); }
Coro<void> put_directly(Queue<int>* q, int item) { co_await q->put(item); }

// A getter woken for an item that another task takes before it runs waits
// again, at the back (asyncio's `while self.empty(): ... await getter`).
TEST_P(QueueConformance, AWokenGetterThatLostItsItemWaitsAgainAtTheBack) {
  for (bool direct : {true, false}) {
    run([direct]() -> Coro<void> {
      Queue<int> q(0, "jobs");
      Task<int> a = direct ? create_task(get_directly(&q)) : create_task(q.get());
      co_await sleep(kZero);
      Task<int> b = direct ? create_task(get_directly(&q)) : create_task(q.get());
      co_await sleep(kZero);
      q.put_nowait(1);                // wakes a
      EXPECT_EQ(q.get_nowait(), 1);   // and takes its item before it runs
      co_await sleep(kZero);          // a runs: empty, so it waits again, behind b
      EXPECT_FALSE(a.done());
      EXPECT_EQ(waiting_on(a), "<Future pending Queue.get() on 'jobs'>");
      q.put_nowait(2);  // wakes b, now first in line
      EXPECT_EQ(co_await b, 2);
      EXPECT_FALSE(a.done());
      q.put_nowait(3);
      EXPECT_EQ(co_await a, 3);
      EXPECT_TRUE(q.empty());
    }());
  }
}

TEST_P(QueueConformance, ADirectlyAwaitedGetIsInTheCallGraph) {
  run([]() -> Coro<void> {
    Queue<int> q(0, "jobs");
    Task<int> getter = create_task(get_directly(&q), {.name = "getter"});
    co_await sleep(kZero);
    const std::string graph = format_call_graph(getter);
    EXPECT_NE(graph.find("queue_get"), std::string::npos) << graph;
    EXPECT_NE(graph.find("get_directly"), std::string::npos) << graph;
    q.put_nowait(7);
    EXPECT_EQ(co_await getter, 7);
    // Once it returned, the coroutine awaits nothing any more.
    EXPECT_EQ(format_call_graph(getter).find("queue_get"), std::string::npos);
  }());
}

// test_get_cancel_drop_many_pending_readers, awaited directly.
TEST_P(QueueConformance, ADirectlyAwaitedGetWokenThenCancelledPassesTheWakeupOn) {
  run([]() -> Coro<void> {
    Queue<int> q;
    Task<int> reader1 = create_task(get_directly(&q));
    Task<int> reader2 = create_task(get_directly(&q));
    Task<int> reader3 = create_task(get_directly(&q));
    co_await sleep(kZero);
    q.put_nowait(1);
    q.put_nowait(2);
    reader1.cancel();
    EXPECT_TRUE(co_await raises<CancelledError>(reader1));
    // Named first: co_await inside a braced list is one of g++ 12's traps
    // (docs/design.md, "Compilers").
    const int got2 = co_await reader2;
    const int got3 = co_await reader3;
    std::vector<int> got = {got2, got3};
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, (std::vector<int>{1, 2}));
    EXPECT_TRUE(q.empty());
    EXPECT_FALSE(absl::StrContains(q.describe(), "_getters")) << q.describe();
  }());
}

// A cancel that arrives while the getter is woken but has not run yet (the
// task's throw-in, not the waiter's cancellation) takes nothing either.
TEST_P(QueueConformance, ADirectlyAwaitedGetCancelledAfterItsWakeupTakesNothing) {
  run([]() -> Coro<void> {
    Queue<int> q;
    Task<int> reader = create_task(get_directly(&q));
    co_await sleep(kZero);
    q.put_nowait(1);  // wakes the reader: its waiter future is done
    reader.cancel();  // so this cancel is thrown in at its resume
    EXPECT_TRUE(co_await raises<CancelledError>(reader));
    EXPECT_EQ(q.qsize(), 1u);
    EXPECT_EQ(q.get_nowait(), 1);
  }());
}

TEST_P(QueueConformance, ADirectlyAwaitedGetRaisesQueueShutDown) {
  run([]() -> Coro<void> {
    Queue<int> q;
    Task<int> reader = create_task(get_directly(&q));
    co_await sleep(kZero);
    q.shutdown();
    EXPECT_TRUE(co_await raises<QueueShutDown>(reader));
    // Woken by a put, then the queue shut down and was drained before it ran.
    Queue<int> r;
    Task<int> late = create_task(get_directly(&r));
    co_await sleep(kZero);
    r.put_nowait(1);
    r.shutdown(/*immediate=*/true);
    EXPECT_TRUE(co_await raises<QueueShutDown>(late));
  }());
}

// test_put_cancel_drop with a second writer, awaited directly.
TEST_P(QueueConformance, ADirectlyAwaitedPutWokenThenCancelledPassesTheWakeupOn) {
  run([]() -> Coro<void> {
    Queue<int> q(1);
    q.put_nowait(0);
    Task<void> writer1 = create_task(put_directly(&q, 1));
    Task<void> writer2 = create_task(put_directly(&q, 2));
    co_await sleep(kZero);
    EXPECT_EQ(q.get_nowait(), 0);  // wakes writer1
    writer1.cancel();
    EXPECT_TRUE(co_await raises<CancelledError>(writer1));
    co_await writer2;
    EXPECT_EQ(q.get_nowait(), 2);
    EXPECT_TRUE(q.empty());
  }());
}

// A loop that closes while a task waits in a directly awaited get():
// the task's frame (which holds the awaiter) is destroyed with it.
TEST_P(QueueConformance, AClosingLoopDestroysADirectlyAwaitedGet) {
  std::weak_ptr<int> token_seen;
  {
    EventLoopRef loop = new_loop();
    auto q = std::make_shared<Queue<int>>(0, "left");
    loop->run_until_complete([](std::shared_ptr<Queue<int>> q, std::weak_ptr<int>* seen) -> Coro<void> {
      auto token = std::make_shared<int>(1);
      *seen = token;
      Task<void> waiter = create_task([](std::shared_ptr<Queue<int>> q, std::shared_ptr<int> token) -> Coro<void> {
        const int got = co_await q->get();
        *token = got;
      }(q, std::move(token)));
      co_await sleep(kZero);
      EXPECT_FALSE(waiter.done());
    }(q, &token_seen));
    loop->close();
  }
  EXPECT_TRUE(token_seen.expired()) << "the waiting task's frame outlived its closed loop";
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(QueueConformance);

// ---------------------------------------------------------------- simulated loop only

// A task blocked forever on a queue is a deadlock, and the report names the
// queue operation it waits on.
TEST(QueueSimulated, DeadlockReportNamesTheQueueOperation) {
  std::string message;
  try {
    sim::run([]() -> Coro<void> {
      Queue<int> q(0, "answers");
      (void)co_await q.get();
    }(), {.seed = 1});
  } catch (const sim::DeadlockError& e) {
    message = e.what();
  }
  EXPECT_TRUE(absl::StrContains(message, "waits on <Future pending Queue.get() on 'answers'>"))
      << message;
}

// The same program and seed give the same schedule, queue included.
TEST(QueueSimulated, SameSeedSameEventHash) {
  auto program = []() -> Coro<void> {
    Queue<int> q(2);
    std::vector<int> got;
    std::vector<Task<void>> tasks;
    for (int i = 0; i < 3; ++i) tasks.push_back(create_task(produce(&q, 20)));
    tasks.push_back(create_task(consume(&q, 60, &got)));
    for (Task<void>& t : tasks) co_await t;
    EXPECT_EQ(got.size(), 60u);
  };
  sim::RunStats a;
  sim::RunStats b;
  sim::run(program(), {.seed = 9}, &a);
  sim::run(program(), {.seed = 9}, &b);
  EXPECT_EQ(a.event_hash, b.event_hash);
  EXPECT_EQ(a.events, b.events);
}

}  // namespace
}  // namespace twinloop::conformance
