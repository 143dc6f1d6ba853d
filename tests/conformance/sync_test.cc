// Cross-loop conformance: asyncio's synchronization primitives (CPython 3.14
// Lib/asyncio/locks.py; cases mirror Lib/test/test_asyncio/test_locks.py and
// are named after the CPython test they follow), on the real and the
// simulated loop.
//
// Primitives and shared state live in the TEST body, outside the run, and
// tasks get them through pointers: they must outlive every task, including
// tasks that run()'s shutdown cancels after the main coroutine returned.
#include <algorithm>
#include <exception>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/future.h"
#include "twinloop/api/gather.h"
#include "twinloop/api/locks.h"
#include "twinloop/api/task.h"
#include "twinloop/api/timeouts.h"
#include "gtest/gtest.h"
#include "twinloop/sim/simulation.h"
#include "twinloop/tests/conformance/loop_fixture.h"

namespace twinloop::conformance {
namespace {

constexpr absl::Duration kZero = absl::ZeroDuration();
using Ints = std::vector<int>;

std::vector<int> sorted(std::vector<int> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::vector<int> iota(int n) {
  std::vector<int> v;
  for (int i = 0; i < n; ++i) v.push_back(i);
  return v;
}

// What a task is blocked on, as deadlock reports print it.
template <class T>
std::string waiting_on(const Task<T>& t) {
  return t.base().waiting_on();
}

// ---------------------------------------------------------------- Lock

class LockConformance : public LoopTest {};

Coro<bool> lock_and_record(Lock* lock, Ints* result, int tag) {
  const bool ok = co_await lock->acquire();
  result->push_back(tag);
  co_return ok;
}

Coro<void> lock_record_release(Lock* lock, Ints* result, int tag) {
  co_await lock->acquire();
  result->push_back(tag);
  lock->release();
}

// CPython test_acquire: release() wakes waiters one at a time in FIFO
// order; a task that queues later (c3) comes after them.
TEST_P(LockConformance, AcquireIsFifo) {
  Lock lock;
  Ints result;
  run([&]() -> Coro<void> {
    EXPECT_TRUE(co_await lock.acquire());
    Task<bool> t1 = create_task(lock_and_record(&lock, &result, 1));
    Task<bool> t2 = create_task(lock_and_record(&lock, &result, 2));
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{});
    lock.release();
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{1});
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{1});
    Task<bool> t3 = create_task(lock_and_record(&lock, &result, 3));
    lock.release();
    co_await sleep(kZero);
    EXPECT_EQ(result, (Ints{1, 2}));
    lock.release();
    co_await sleep(kZero);
    EXPECT_EQ(result, (Ints{1, 2, 3}));
    EXPECT_TRUE(t1.done() && t1.result());
    EXPECT_TRUE(t2.done() && t2.result());
    EXPECT_TRUE(t3.done() && t3.result());
  }());
}

// CPython test_acquire ("release() ... leaves the lock unlocked until that
// waiter runs") and asemantics 1.4: no barging. After release() the lock is
// unlocked, but a task calling acquire() before the woken waiter ran queues
// behind it instead of taking the lock.
TEST_P(LockConformance, ReleaseLeavesLockToWokenWaiter) {
  Lock lock;
  Ints result;
  run([&]() -> Coro<void> {
    co_await lock.acquire();
    Task<void> t1 = create_task(lock_record_release(&lock, &result, 1));
    co_await sleep(kZero);
    lock.release();
    EXPECT_FALSE(lock.locked());
    co_await lock.acquire();  // t1 was woken first: we queue behind it
    result.push_back(2);
    lock.release();
    co_await t1;
    EXPECT_EQ(result, (Ints{1, 2}));
    EXPECT_FALSE(lock.locked());
  }());
}

// CPython test_acquire_cancel: a waiter cancelled while queued raises
// CancelledError and leaves the queue; the lock stays with its holder.
TEST_P(LockConformance, AcquireCancel) {
  Lock lock;
  run([&]() -> Coro<void> {
    EXPECT_TRUE(co_await lock.acquire());
    Task<bool> task = create_task(lock.acquire());
    get_running_loop().call_soon([task]() mutable { task.cancel(); });
    EXPECT_THROW(co_await task, CancelledError);
    EXPECT_EQ(lock.describe(), "<Lock [locked]>");  // no waiters left
  }());
}

Coro<void> lockit(Lock* lock, Future<void> blocker) {
  co_await lock->acquire();
  std::exception_ptr error;
  try {
    if (blocker) co_await blocker;
  } catch (...) {
    error = std::current_exception();
  }
  lock->release();
  if (error) std::rethrow_exception(error);
}

// CPython test_cancel_race: B is cancelled while A releases; release() must
// not crash on B's cancelled waiter, and B's cancellation hands the lock to C.
TEST_P(LockConformance, CancelRace) {
  Lock lock;
  run([&]() -> Coro<void> {
    Future<void> fa = create_future<void>();
    Task<void> ta = create_task(lockit(&lock, fa));
    co_await sleep(kZero);
    EXPECT_TRUE(lock.locked());
    Task<void> tb = create_task(lockit(&lock, Future<void>()));
    co_await sleep(kZero);
    EXPECT_EQ(lock.describe(), "<Lock [locked, waiters:1]>");
    Task<void> tc = create_task(lockit(&lock, Future<void>()));
    co_await sleep(kZero);
    EXPECT_EQ(lock.describe(), "<Lock [locked, waiters:2]>");

    fa.set_result();
    tb.cancel();
    co_await sleep(kZero);
    EXPECT_FALSE(lock.locked());
    EXPECT_TRUE(ta.done());
    EXPECT_TRUE(tb.cancelled());
    co_await tc;
  }());
}

Coro<void> count_lockit(Lock* lock, int* calls, int* locks) {
  ++*calls;
  co_await lock->acquire();
  ++*locks;
}

// CPython test_cancel_release_race (bpo-32734): cancel the first waiter and
// release in the same callback: exactly one task gets the lock.
TEST_P(LockConformance, CancelReleaseRace) {
  Lock lock;
  int calls = 0;
  int locks = 0;
  run([&]() -> Coro<void> {
    co_await lock.acquire();
    Task<void> t1 = create_task(count_lockit(&lock, &calls, &locks));
    Task<void> t2 = create_task(count_lockit(&lock, &calls, &locks));
    Task<void> t3 = create_task(count_lockit(&lock, &calls, &locks));
    co_await sleep(kZero);
    get_running_loop().call_soon([t1, &lock]() mutable {
      t1.cancel();
      lock.release();
    });
    EXPECT_THROW(co_await t1, CancelledError);
    EXPECT_EQ(locks, 1);
    EXPECT_EQ(calls, 3);
    EXPECT_TRUE(t1.cancelled() && t2.done());
    t3.cancel();
    co_await sleep(kZero);
    EXPECT_TRUE(t3.cancelled());
  }());
}

// CPython test_finished_waiter_cancelled (bpo-27585): the first waiter is
// cancelled as the lock is released; the second must still get the lock.
TEST_P(LockConformance, FinishedWaiterCancelled) {
  Lock lock;
  run([&]() -> Coro<void> {
    co_await lock.acquire();
    EXPECT_TRUE(lock.locked());
    Task<bool> tb = create_task(lock.acquire());
    co_await sleep(kZero);
    EXPECT_EQ(lock.describe(), "<Lock [locked, waiters:1]>");
    Task<bool> tc = create_task(lock.acquire());
    tb.cancel();
    lock.release();
    co_await sleep(kZero);
    EXPECT_TRUE(lock.locked());
    EXPECT_TRUE(tb.cancelled());
    EXPECT_TRUE(co_await tc);
  }());
}

// bpo-27585 / bpo-32734, the other interleaving: the waiter is woken by
// release() and cancelled before it runs. It does not take the lock and
// passes the wake-up on, so the next waiter gets the lock exactly once.
TEST_P(LockConformance, WokenWaiterCancelledPassesWakeUpOn) {
  Lock lock;
  Ints result;
  run([&]() -> Coro<void> {
    co_await lock.acquire();
    Task<bool> t1 = create_task(lock_and_record(&lock, &result, 1));
    Task<bool> t2 = create_task(lock_and_record(&lock, &result, 2));
    Task<bool> t3 = create_task(lock_and_record(&lock, &result, 3));
    co_await sleep(kZero);
    lock.release();  // wakes t1...
    t1.cancel();     // ...which is cancelled before it runs
    co_await sleep(kZero);
    EXPECT_TRUE(t1.cancelled());
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{2});
    EXPECT_TRUE(lock.locked());
    EXPECT_FALSE(t3.done());
    lock.release();
    EXPECT_TRUE(co_await t3);
    EXPECT_EQ(result, (Ints{2, 3}));
    EXPECT_TRUE(t2.result());
  }());
}

// Lock.acquire's fast path (locks.py: "Jumping the queue if all are
// cancelled is an optimization"): when every queued waiter is cancelled, an
// unlocked lock is taken without waiting.
TEST_P(LockConformance, FastPathWhenAllWaitersCancelled) {
  Lock lock;
  run([&]() -> Coro<void> {
    co_await lock.acquire();
    Task<bool> t1 = create_task(lock.acquire());
    co_await sleep(kZero);
    t1.cancel();
    lock.release();
    EXPECT_EQ(lock.describe(), "<Lock [unlocked, waiters:1]>");
    co_await lock.acquire();  // no suspension: the only waiter is cancelled
    EXPECT_TRUE(lock.locked());
    EXPECT_FALSE(t1.done());
    EXPECT_THROW(co_await t1, CancelledError);
    EXPECT_EQ(lock.describe(), "<Lock [locked]>");
    lock.release();
  }());
}

// CPython test_release_not_acquired.
TEST_P(LockConformance, ReleaseNotAcquiredRaises) {
  Lock lock;
  run([&]() -> Coro<void> {
    std::string message;
    try {
      lock.release();
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
    EXPECT_EQ(message, "Lock is not acquired.");
    co_return;
  }());
}

// CPython test_release_no_waiters.
TEST_P(LockConformance, ReleaseNoWaiters) {
  Lock lock;
  run([&]() -> Coro<void> {
    co_await lock.acquire();
    EXPECT_TRUE(lock.locked());
    lock.release();
    EXPECT_FALSE(lock.locked());
  }());
}

// CPython test_context_manager: `async with lock` is scoped().
TEST_P(LockConformance, ScopedGuard) {
  Lock lock;
  run([&]() -> Coro<void> {
    EXPECT_FALSE(lock.locked());
    {
      LockGuard<Lock> held = co_await lock.scoped();
      EXPECT_TRUE(lock.locked());
      EXPECT_TRUE(held.owns_lock());
    }
    EXPECT_FALSE(lock.locked());
    // Moving the guard moves the duty to release.
    LockGuard<Lock> outer;
    {
      LockGuard<Lock> inner = co_await lock.scoped();
      outer = std::move(inner);
      EXPECT_FALSE(inner.owns_lock());
    }
    EXPECT_TRUE(lock.locked());
    outer.release();
    EXPECT_FALSE(lock.locked());
  }());
}

Coro<void> hold_then_throw(Lock* lock) {
  LockGuard<Lock> held = co_await lock->scoped();
  co_await sleep(absl::Milliseconds(1));
  throw std::runtime_error("boom");
}

Coro<void> hold_forever(Lock* lock) {
  LockGuard<Lock> held = co_await lock->scoped();
  co_await sleep(kNever);
}

// locks.py _ContextManagerMixin.__aexit__ runs on every exit: the guard
// releases when the body raises and when the task is cancelled, whether it
// held the lock or was still queued for it.
TEST_P(LockConformance, ScopedGuardReleasesOnExceptionAndCancellation) {
  Lock lock;
  run([&]() -> Coro<void> {
    Task<void> failing = create_task(hold_then_throw(&lock));
    bool raised = false;
    try {
      co_await failing;
    } catch (const std::runtime_error&) {
      raised = true;
    }
    EXPECT_TRUE(raised);
    EXPECT_FALSE(lock.locked());

    Task<void> holder = create_task(hold_forever(&lock));
    co_await sleep(kZero);
    EXPECT_TRUE(lock.locked());
    Task<void> queued = create_task(hold_forever(&lock));
    co_await sleep(kZero);
    queued.cancel();  // cancelled while queued: must not release the holder's lock
    EXPECT_THROW(co_await queued, CancelledError);
    EXPECT_TRUE(lock.locked());
    holder.cancel();  // cancelled while holding: the guard releases
    EXPECT_THROW(co_await holder, CancelledError);
    EXPECT_FALSE(lock.locked());
  }());
}

Coro<void> hold_and_release_by_hand(Lock* lock) {
  LockGuard<Lock> held = co_await lock->scoped();
  lock->release();  // the guard's own release will now fail
}

// A guard's destructor cannot throw: a failing release goes to the loop's
// exception handler (asyncio's __aexit__ would raise "Lock is not
// acquired."). Twinloop-specific, no CPython counterpart.
TEST_P(LockConformance, ScopedGuardReportsFailedRelease) {
  Lock lock;
  Reports reports;
  run([&]() -> Coro<void> {
    reports.install();
    co_await hold_and_release_by_hand(&lock);
    EXPECT_FALSE(lock.locked());
  }());
  ASSERT_EQ(reports.count_starting_with("exception releasing a primitive"), 1u);
  EXPECT_EQ(runtime_error_message(reports.contexts[0].exception), "Lock is not acquired.");
}

// CPython test_repr.
TEST_P(LockConformance, Describe) {
  Lock lock;
  Lock named("db");
  run([&]() -> Coro<void> {
    EXPECT_EQ(lock.describe(), "<Lock [unlocked]>");
    co_await lock.acquire();
    EXPECT_EQ(lock.describe(), "<Lock [locked]>");
    EXPECT_EQ(named.describe(), "<Lock 'db' [unlocked]>");
    lock.release();
  }());
}

// CPython test_ambiguous_loops / mixins._LoopBoundMixin: a lock that had to
// wait on one loop is bound to it; waiting on it from another loop raises.
TEST_P(LockConformance, BoundToTheFirstLoopItWaitsOn) {
  Lock lock("db");
  Ints result;
  run([&]() -> Coro<void> {
    co_await lock.acquire();
    Task<bool> t = create_task(lock_and_record(&lock, &result, 1));
    co_await sleep(kZero);
    lock.release();
    co_await t;
    lock.release();
  }());
  std::string message;
  run([&]() -> Coro<void> {
    co_await lock.acquire();  // the fast path does not look at the loop
    Task<bool> t = create_task(lock.acquire());
    try {
      co_await t;
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
    lock.release();
  }());
  EXPECT_EQ(message, "<Lock 'db' [locked]> is bound to a different event loop");
}

Coro<void> wait_event(Event* ev) { co_await ev->wait(); }
Coro<void> wait_condition(Condition* cond) {
  LockGuard<Condition> held = co_await cond->scoped();
  co_await cond->wait();
}

// Waiter futures are labelled with what they wait for, so deadlock reports
// and the call graph say it. Twinloop-specific, no CPython counterpart.
TEST_P(LockConformance, WaitersAreLabelled) {
  Lock lock("db");
  Event ev("ready");
  Condition cond("jobs");
  Semaphore sem(0, "pool");
  BoundedSemaphore bsem(0);
  Barrier barrier(2, "sync");
  run([&]() -> Coro<void> {
    co_await lock.acquire();
    Task<bool> t_lock = create_task(lock.acquire());
    Task<void> t_event = create_task(wait_event(&ev));
    Task<void> t_cond = create_task(wait_condition(&cond));
    Task<bool> t_sem = create_task(sem.acquire());
    Task<bool> t_bsem = create_task(bsem.acquire());
    Task<int> t_barrier = create_task(barrier.wait());
    co_await sleep(kZero);
    EXPECT_EQ(waiting_on(t_lock), "<Future pending Lock.acquire() on 'db'>");
    EXPECT_EQ(waiting_on(t_event), "<Future pending Event.wait() on 'ready'>");
    EXPECT_EQ(waiting_on(t_cond), "<Future pending Condition.wait() on 'jobs'>");
    EXPECT_EQ(waiting_on(t_sem), "<Future pending Semaphore.acquire() on 'pool'>");
    EXPECT_EQ(waiting_on(t_bsem), "<Future pending BoundedSemaphore.acquire()>");
    EXPECT_EQ(waiting_on(t_barrier), "<Future pending Barrier.wait() on 'sync'>");
    t_event.cancel();
    t_cond.cancel();
    t_lock.cancel();
    t_sem.cancel();
    t_bsem.cancel();
    t_barrier.cancel();
    lock.release();
  }());
}

// The simulated loop's deadlock report names what each task waits on.
TEST(SyncDeadlock, ReportNamesThePrimitive) {
  Lock lock("db");
  std::string report;
  try {
    sim::run([&]() -> Coro<void> {
      co_await lock.acquire();
      co_await lock.acquire();  // never released: deadlock
    }(), sim::Options{.seed = 1});
  } catch (const sim::DeadlockError& e) {
    report = e.what();
  }
  EXPECT_TRUE(absl::StrContains(report, "Lock.acquire() on 'db'")) << report;
}

// ---------------------------------------------------------------- Event

class EventConformance : public LoopTest {};

Coro<bool> wait_and_record(Event* ev, Ints* result, int tag) {
  const bool ok = co_await ev->wait();
  result->push_back(tag);
  co_return ok;
}

// CPython test_wait: set() wakes every waiter; they run in ready-queue
// order, after a task that was ready already ([3, 1, 2]).
TEST_P(EventConformance, WaitWakesAllInReadyQueueOrder) {
  Event ev;
  Ints result;
  run([&]() -> Coro<void> {
    EXPECT_FALSE(ev.is_set());
    Task<bool> t1 = create_task(wait_and_record(&ev, &result, 1));
    Task<bool> t2 = create_task(wait_and_record(&ev, &result, 2));
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{});
    Task<bool> t3 = create_task(wait_and_record(&ev, &result, 3));
    ev.set();
    co_await sleep(kZero);
    EXPECT_EQ(result, (Ints{3, 1, 2}));
    EXPECT_TRUE(t1.done() && t1.result());
    EXPECT_TRUE(t2.done() && t2.result());
    EXPECT_TRUE(t3.done() && t3.result());
  }());
}

// CPython test_wait_on_set.
TEST_P(EventConformance, WaitOnSetReturnsAtOnce) {
  Event ev;
  run([&]() -> Coro<void> {
    ev.set();
    EXPECT_TRUE(co_await ev.wait());
  }());
}

// CPython test_wait_cancel.
TEST_P(EventConformance, WaitCancel) {
  Event ev;
  run([&]() -> Coro<void> {
    Task<bool> wait = create_task(ev.wait());
    get_running_loop().call_soon([wait]() mutable { wait.cancel(); });
    EXPECT_THROW(co_await wait, CancelledError);
    EXPECT_EQ(ev.describe(), "<Event [unset]>");
  }());
}

// CPython test_clear.
TEST_P(EventConformance, Clear) {
  Event ev;
  run([&]() -> Coro<void> {
    EXPECT_FALSE(ev.is_set());
    ev.set();
    EXPECT_TRUE(ev.is_set());
    ev.clear();
    EXPECT_FALSE(ev.is_set());
    co_return;
  }());
}

// CPython test_clear_with_waiters: set(); clear() still wakes the waiters
// that were queued.
TEST_P(EventConformance, SetThenClearStillWakesWaiters) {
  Event ev;
  Ints result;
  run([&]() -> Coro<void> {
    Task<bool> t = create_task(wait_and_record(&ev, &result, 1));
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{});
    ev.set();
    ev.clear();
    EXPECT_FALSE(ev.is_set());
    ev.set();
    ev.set();
    EXPECT_EQ(ev.describe(), "<Event [set, waiters:1]>");
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{1});
    EXPECT_EQ(ev.describe(), "<Event [set]>");
    EXPECT_TRUE(t.done() && t.result());
  }());
}

// ---------------------------------------------------------------- Condition

class ConditionConformance : public LoopTest {};

// Acquires, waits, records; keeps the lock (CPython test_wait's c1..c3).
Coro<bool> cond_wait_keep(Condition* cond, Ints* result, int tag) {
  co_await cond->acquire();
  // (Not `if (co_await ...)`: GCC 12 then never runs the body.)
  const bool woken = co_await cond->wait();
  if (woken) result->push_back(tag);
  co_return true;
}

// Acquires, waits, records, releases (CPython test_notify's c1..c3).
Coro<bool> cond_wait_release(Condition* cond, Ints* result, int tag) {
  co_await cond->acquire();
  const bool woken = co_await cond->wait();
  if (woken) {
    result->push_back(tag);
    cond->release();
  }
  co_return true;
}

// CPython test_wait: a notified waiter returns only once it holds the lock
// again; waiters re-acquire in FIFO order.
TEST_P(ConditionConformance, Wait) {
  Condition cond;
  Ints result;
  run([&]() -> Coro<void> {
    Task<bool> t1 = create_task(cond_wait_keep(&cond, &result, 1));
    Task<bool> t2 = create_task(cond_wait_keep(&cond, &result, 2));
    Task<bool> t3 = create_task(cond_wait_keep(&cond, &result, 3));
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{});
    EXPECT_FALSE(cond.locked());

    EXPECT_TRUE(co_await cond.acquire());
    cond.notify();
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{});
    EXPECT_TRUE(cond.locked());

    cond.release();
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{1});
    EXPECT_TRUE(cond.locked());

    cond.notify(2);
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{1});
    EXPECT_TRUE(cond.locked());

    cond.release();
    co_await sleep(kZero);
    EXPECT_EQ(result, (Ints{1, 2}));
    EXPECT_TRUE(cond.locked());

    cond.release();
    co_await sleep(kZero);
    EXPECT_EQ(result, (Ints{1, 2, 3}));
    EXPECT_TRUE(cond.locked());
    EXPECT_TRUE(t1.done() && t1.result());
    EXPECT_TRUE(t2.done() && t2.result());
    EXPECT_TRUE(t3.done() && t3.result());
  }());
}

// CPython test_wait_cancel: a cancelled wait() still re-acquires the lock
// before raising, and leaves no waiter behind.
TEST_P(ConditionConformance, WaitCancelReacquires) {
  Condition cond;
  run([&]() -> Coro<void> {
    co_await cond.acquire();
    Task<bool> wait = create_task(cond.wait());
    get_running_loop().call_soon([wait]() mutable { wait.cancel(); });
    EXPECT_THROW(co_await wait, CancelledError);
    EXPECT_EQ(cond.describe(), "<Condition [locked]>");
  }());
}

// CPython test_wait_cancel_contested: notified, then cancelled while the
// lock is contended; wait() keeps re-acquiring and ends holding the lock.
TEST_P(ConditionConformance, WaitCancelContested) {
  Condition cond;
  run([&]() -> Coro<void> {
    co_await cond.acquire();
    EXPECT_TRUE(cond.locked());
    Task<bool> wait_task = create_task(cond.wait());
    co_await sleep(kZero);
    EXPECT_FALSE(cond.locked());

    co_await cond.acquire();
    EXPECT_TRUE(cond.locked());
    cond.notify();
    get_running_loop().call_soon([wait_task]() mutable { wait_task.cancel(); });
    get_running_loop().call_soon([&cond] { cond.release(); });
    try {
      co_await wait_task;
    } catch (const CancelledError&) {
    }
    EXPECT_TRUE(cond.locked());
  }());
}

Coro<void> wait_on_cond(Condition* cond, bool* waited) {
  LockGuard<Condition> held = co_await cond->scoped();
  *waited = true;
  co_await cond->wait();
}

// CPython test_wait_cancel_after_notify (bpo-32841): cancelled after being
// notified, while re-acquiring; the task ends cancelled.
TEST_P(ConditionConformance, WaitCancelAfterNotify) {
  Condition cond;
  bool waited = false;
  run([&]() -> Coro<void> {
    Task<void> waiter = create_task(wait_on_cond(&cond, &waited));
    co_await sleep(kZero);
    co_await cond.acquire();
    cond.notify();
    co_await sleep(kZero);  // the waiter gets to acquire()
    waiter.cancel();
    co_await sleep(kZero);  // the cancellation is delivered
    cond.release();
    co_await sleep(kZero);  // the waiter re-acquires, raises, releases
    EXPECT_TRUE(waiter.cancelled());
    EXPECT_TRUE(waited);
    EXPECT_FALSE(cond.locked());
  }());
}

// CPython test_wait_unacquired.
TEST_P(ConditionConformance, WaitUnacquiredRaises) {
  Condition cond;
  run([&]() -> Coro<void> {
    std::string message;
    try {
      co_await cond.wait();
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
    EXPECT_EQ(message, "cannot wait on un-acquired lock");
  }());
}

Coro<bool> cond_wait_for_flag(Condition* cond, const bool* flag, Ints* result) {
  co_await cond->acquire();
  auto predicate = [flag] { return *flag; };
  const bool holds = co_await cond->wait_for(predicate);
  if (holds) {
    result->push_back(1);
    cond->release();
  }
  co_return true;
}

// CPython test_wait_for: notify() without the predicate holding does not
// let the waiter through.
TEST_P(ConditionConformance, WaitFor) {
  Condition cond;
  bool presult = false;
  Ints result;
  run([&]() -> Coro<void> {
    Task<bool> t = create_task(cond_wait_for_flag(&cond, &presult, &result));
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{});

    co_await cond.acquire();
    cond.notify();
    cond.release();
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{});

    presult = true;
    co_await cond.acquire();
    cond.notify();
    cond.release();
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{1});
    EXPECT_TRUE(t.done() && t.result());
  }());
}

// CPython test_wait_for_unacquired: a predicate that holds at once needs no
// lock and its value is returned; otherwise wait() raises.
TEST_P(ConditionConformance, WaitForUnacquired) {
  Condition cond;
  run([&]() -> Coro<void> {
    auto answer = [] { return 123; };
    EXPECT_EQ(co_await cond.wait_for(answer), 123);
    auto never = [] { return false; };
    EXPECT_THROW(co_await cond.wait_for(never), std::runtime_error);
  }());
}

// CPython test_notify: notify(n) wakes up to n not-yet-woken waiters.
TEST_P(ConditionConformance, Notify) {
  Condition cond;
  Ints result;
  run([&]() -> Coro<void> {
    Task<bool> t1 = create_task(cond_wait_release(&cond, &result, 1));
    Task<bool> t2 = create_task(cond_wait_release(&cond, &result, 2));
    Task<bool> t3 = create_task(cond_wait_release(&cond, &result, 3));
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{});

    co_await cond.acquire();
    cond.notify(1);
    cond.release();
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{1});

    co_await cond.acquire();
    cond.notify(1);
    cond.notify(2048);
    cond.release();
    co_await sleep(kZero);
    EXPECT_EQ(result, (Ints{1, 2, 3}));
    EXPECT_TRUE(t1.done() && t1.result());
    EXPECT_TRUE(t2.done() && t2.result());
    EXPECT_TRUE(t3.done() && t3.result());
  }());
}

// CPython test_notify_all.
TEST_P(ConditionConformance, NotifyAll) {
  Condition cond;
  Ints result;
  run([&]() -> Coro<void> {
    Task<bool> t1 = create_task(cond_wait_release(&cond, &result, 1));
    Task<bool> t2 = create_task(cond_wait_release(&cond, &result, 2));
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{});
    co_await cond.acquire();
    cond.notify_all();
    cond.release();
    co_await sleep(kZero);
    EXPECT_EQ(result, (Ints{1, 2}));
    EXPECT_TRUE(t1.done() && t1.result());
    EXPECT_TRUE(t2.done() && t2.result());
  }());
}

// CPython test_notify_unacquired, test_notify_all_unacquired.
TEST_P(ConditionConformance, NotifyUnacquiredRaises) {
  Condition cond;
  run([&]() -> Coro<void> {
    std::string message;
    try {
      cond.notify();
    } catch (const std::runtime_error& e) {
      message = e.what();
    }
    EXPECT_EQ(message, "cannot notify on un-acquired lock");
    EXPECT_THROW(cond.notify_all(), std::runtime_error);
    co_return;
  }());
}

// CPython test_context_manager and test_explicit_lock: a Condition over a
// shared Lock acquires and reports exactly that lock.
TEST_P(ConditionConformance, ExplicitLock) {
  Lock lock;
  Condition cond(lock);
  Condition own;
  run([&]() -> Coro<void> {
    EXPECT_FALSE(lock.locked());
    EXPECT_FALSE(cond.locked());
    {
      LockGuard<Condition> held = co_await cond.scoped();
      EXPECT_TRUE(lock.locked());
      EXPECT_TRUE(cond.locked());
    }
    EXPECT_FALSE(lock.locked());
    EXPECT_FALSE(cond.locked());
    {
      LockGuard<Lock> held = co_await lock.scoped();
      EXPECT_TRUE(lock.locked());
      EXPECT_TRUE(cond.locked());
    }
    EXPECT_FALSE(cond.locked());
    {
      LockGuard<Condition> held = co_await own.scoped();
      EXPECT_TRUE(own.locked());
    }
    EXPECT_FALSE(own.locked());
  }());
}

// CPython test_timeout_in_block (bpo-33638): wait_for(cond.wait(), t)
// inside a held block times out and leaves the lock held.
TEST_P(ConditionConformance, TimeoutInBlock) {
  Condition cond;
  run([&]() -> Coro<void> {
    {
      LockGuard<Condition> held = co_await cond.scoped();
      bool timed_out = false;
      try {
        co_await wait_for(cond.wait(), absl::Milliseconds(5));
      } catch (const TimeoutError&) {
        timed_out = true;
      }
      EXPECT_TRUE(timed_out);
      EXPECT_TRUE(cond.locked());
    }
    EXPECT_FALSE(cond.locked());
  }());
}

// CPython test_cancelled_error_wakeup / test_cancelled_error_re_aquire's
// func(): waits inside `async with cond`; records what wait_for raised.
Coro<void> wait_for_flag_noting_cancel(Condition* cond, const bool* wake, std::string* seen, bool* held_lock) {
  LockGuard<Condition> held = co_await cond->scoped();
  std::exception_ptr error;
  auto predicate = [wake] { return *wake; };
  try {
    co_await cond->wait_for(predicate);
  } catch (const CancelledError& e) {
    *seen = e.what();
    error = std::current_exception();
  }
  *held_lock = cond->locked();
  if (error) std::rethrow_exception(error);
}

// CPython test_cancelled_error_wakeup: cancelled while waiting to be
// notified; the CancelledError (with its message) comes out of wait() once
// the lock is held again.
TEST_P(ConditionConformance, CancelledErrorWakeup) {
  Condition cond;
  bool wake = false;
  std::string seen;
  bool held_lock = false;
  run([&]() -> Coro<void> {
    Task<void> task = create_task(wait_for_flag_noting_cancel(&cond, &wake, &seen, &held_lock));
    co_await sleep(kZero);
    task.cancel("foo");
    std::string outside;
    try {
      co_await task;
    } catch (const CancelledError& e) {
      outside = e.what();
    }
    EXPECT_EQ(outside, "foo");
    EXPECT_EQ(seen, "foo");
    EXPECT_TRUE(held_lock);
    EXPECT_FALSE(cond.locked());
  }());
}

// CPython test_cancelled_error_re_aquire: notified, then cancelled while
// re-acquiring; wait() keeps re-acquiring and re-raises that cancellation.
TEST_P(ConditionConformance, CancelledErrorReacquire) {
  Condition cond;
  bool wake = false;
  std::string seen;
  bool held_lock = false;
  run([&]() -> Coro<void> {
    Task<void> task = create_task(wait_for_flag_noting_cancel(&cond, &wake, &seen, &held_lock));
    co_await sleep(kZero);
    co_await cond.acquire();
    wake = true;
    cond.notify();
    co_await sleep(kZero);  // the task now waits to re-acquire
    task.cancel("foo");
    cond.release();
    std::string outside;
    try {
      co_await task;
    } catch (const CancelledError& e) {
      outside = e.what();
    }
    EXPECT_EQ(outside, "foo");
    EXPECT_EQ(seen, "foo");
    EXPECT_TRUE(held_lock);
  }());
}

Coro<void> consumer(Condition* cond, int* state) {
  LockGuard<Condition> held = co_await cond->scoped();
  auto has_item = [state] { return *state != 0; };
  for (;;) {
    co_await cond->wait_for(has_item);
    if (*state < 0) co_return;
    --*state;
  }
}

// The producer side of test_cancelled_wakeup(_relock): waits (with a short
// timeout) for the item to be consumed.
Coro<void> wait_until_consumed(Condition* cond, int* state) {
  auto consumed = [state] { return *state == 0; };
  Timeout cm = timeout(absl::Milliseconds(10));
  try {
    co_await cm.run(cond->wait_for(consumed));
  } catch (const TimeoutError&) {
  }
}

// CPython test_cancelled_wakeup (gh-112202): a consumer notified and
// cancelled before it runs passes the notification on; the item is consumed.
TEST_P(ConditionConformance, CancelledWakeupIsNotLost) {
  Condition cond;
  int state = 0;
  run([&]() -> Coro<void> {
    Task<void> c0 = create_task(consumer(&cond, &state));
    Task<void> c1 = create_task(consumer(&cond, &state));
    co_await sleep(kZero);
    {
      LockGuard<Condition> held = co_await cond.scoped();
      state += 1;
      cond.notify(1);
      c0.cancel();  // cancelled while its wake-up is pending
      co_await wait_until_consumed(&cond, &state);
      EXPECT_EQ(state, 0);
      state = -1;
      cond.notify_all();
    }
    co_await c1;
    EXPECT_TRUE(c0.cancelled());
  }());
}

// CPython test_cancelled_wakeup_relock (gh-112202): the same, with the
// consumer cancelled while it re-acquires the lock.
TEST_P(ConditionConformance, CancelledWakeupWhileRelockingIsNotLost) {
  Condition cond;
  int state = 0;
  run([&]() -> Coro<void> {
    Task<void> c0 = create_task(consumer(&cond, &state));
    Task<void> c1 = create_task(consumer(&cond, &state));
    co_await sleep(kZero);
    {
      LockGuard<Condition> held = co_await cond.scoped();
      state += 1;
      cond.notify(1);
      co_await sleep(kZero);  // c0 wakes and queues for the lock
      c0.cancel();
      co_await wait_until_consumed(&cond, &state);
      EXPECT_EQ(state, 0);
      state = -1;
      cond.notify_all();
    }
    co_await c1;
    EXPECT_TRUE(c0.cancelled());
  }());
}

Coro<void> cond_hold_then_throw(Condition* cond) {
  LockGuard<Condition> held = co_await cond->scoped();
  co_await cond->wait();
  throw std::runtime_error("boom");
}

// `async with cond:` releases when the body raises after a wait().
TEST_P(ConditionConformance, ScopedGuardReleasesOnException) {
  Condition cond;
  run([&]() -> Coro<void> {
    Task<void> t = create_task(cond_hold_then_throw(&cond));
    co_await sleep(kZero);
    {
      LockGuard<Condition> held = co_await cond.scoped();
      cond.notify();
    }
    EXPECT_THROW(co_await t, std::runtime_error);
    EXPECT_FALSE(cond.locked());
  }());
}

// ---------------------------------------------------------------- Semaphore

class SemaphoreConformance : public LoopTest {};

Coro<bool> sem_acquire_record(Semaphore* sem, Ints* result, int tag) {
  co_await sem->acquire();
  result->push_back(tag);
  co_return true;
}

// CPython test_initial_value_zero, test_semaphore_value, test_semaphore.
TEST_P(SemaphoreConformance, InitialValue) {
  Semaphore zero(0);
  Semaphore one;
  run([&]() -> Coro<void> {
    EXPECT_TRUE(zero.locked());
    EXPECT_FALSE(one.locked());
    EXPECT_EQ(one.value(), 1);
    std::string message;
    try {
      Semaphore bad(-1);
    } catch (const std::invalid_argument& e) {
      message = e.what();
    }
    EXPECT_EQ(message, "Semaphore initial value must be >= 0");
    co_return;
  }());
}

// CPython test_repr.
TEST_P(SemaphoreConformance, Describe) {
  Semaphore sem;
  run([&]() -> Coro<void> {
    EXPECT_EQ(sem.describe(), "<Semaphore [unlocked, value:1]>");
    co_await sem.acquire();
    EXPECT_EQ(sem.describe(), "<Semaphore [locked]>");
    Task<bool> t = create_task(sem.acquire());
    co_await sleep(kZero);
    EXPECT_EQ(sem.describe(), "<Semaphore [locked, waiters:1]>");
    t.cancel();
    sem.release();
  }());
}

// CPython test_acquire: value 3; the wake-ups reserve slots, so value()
// stays 0 and exactly the woken tasks get through.
TEST_P(SemaphoreConformance, Acquire) {
  Semaphore sem(3);
  Ints result;
  run([&]() -> Coro<void> {
    EXPECT_TRUE(co_await sem.acquire());
    EXPECT_TRUE(co_await sem.acquire());
    EXPECT_FALSE(sem.locked());
    Task<bool> t1 = create_task(sem_acquire_record(&sem, &result, 1));
    Task<bool> t2 = create_task(sem_acquire_record(&sem, &result, 2));
    Task<bool> t3 = create_task(sem_acquire_record(&sem, &result, 3));
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{1});
    EXPECT_TRUE(sem.locked());
    EXPECT_EQ(sem.describe(), "<Semaphore [locked, waiters:2]>");
    EXPECT_EQ(sem.value(), 0);

    Task<bool> t4 = create_task(sem_acquire_record(&sem, &result, 4));
    sem.release();
    sem.release();
    EXPECT_EQ(sem.value(), 0);
    co_await sleep(kZero);
    EXPECT_EQ(sem.value(), 0);
    EXPECT_EQ(result.size(), 3u);
    EXPECT_TRUE(sem.locked());
    EXPECT_EQ(sem.describe(), "<Semaphore [locked, waiters:1]>");
    EXPECT_TRUE(t1.done() && t1.result());
    int done = 0;
    for (Task<bool>* t : {&t2, &t3, &t4}) done += t->done() ? 1 : 0;
    EXPECT_EQ(done, 2);
    EXPECT_FALSE(t4.done());  // FIFO: t2 and t3 were queued first
    sem.release();
    co_await gather(t2, t3, t4);
  }());
}

// CPython test_acquire_cancel.
TEST_P(SemaphoreConformance, AcquireCancel) {
  Semaphore sem;
  run([&]() -> Coro<void> {
    co_await sem.acquire();
    Task<bool> acquire = create_task(sem.acquire());
    get_running_loop().call_soon([acquire]() mutable { acquire.cancel(); });
    EXPECT_THROW(co_await acquire, CancelledError);
    EXPECT_EQ(sem.describe(), "<Semaphore [locked]>");
  }());
}

// CPython test_acquire_cancel_before_awoken: cancelled waiters are skipped;
// the one release() wakes exactly the first live waiter.
TEST_P(SemaphoreConformance, AcquireCancelBeforeAwoken) {
  Semaphore sem(0);
  run([&]() -> Coro<void> {
    Task<bool> t1 = create_task(sem.acquire());
    Task<bool> t2 = create_task(sem.acquire());
    Task<bool> t3 = create_task(sem.acquire());
    Task<bool> t4 = create_task(sem.acquire());
    co_await sleep(kZero);
    t1.cancel();
    t2.cancel();
    sem.release();
    co_await sleep(kZero);
    co_await sleep(kZero);
    EXPECT_TRUE(t3.done());
    EXPECT_FALSE(t4.done());
    t3.cancel();
    t4.cancel();
    co_await sleep(kZero);
    EXPECT_TRUE(t4.cancelled());
  }());
}

// CPython test_acquire_hang (bpo-45997): the first waiter is cancelled and a
// slot released in the same iteration; the second waiter must not hang.
TEST_P(SemaphoreConformance, AcquireHang) {
  Semaphore sem(0);
  run([&]() -> Coro<void> {
    Task<bool> t1 = create_task(sem.acquire());
    Task<bool> t2 = create_task(sem.acquire());
    co_await sleep(kZero);
    t1.cancel();
    sem.release();
    co_await sleep(kZero);
    co_await sleep(kZero);
    EXPECT_TRUE(sem.locked());
    EXPECT_TRUE(t2.done());
  }());
}

// bpo-45997 / gh-90155, the woken-then-cancelled interleaving (CPython
// locks.py Semaphore.acquire's `except CancelledError` branch): a waiter
// woken by release() and cancelled before it runs gives its reserved slot
// back, and the next waiter gets it: no wake-up lost, none duplicated.
TEST_P(SemaphoreConformance, WokenWaiterCancelledPassesSlotOn) {
  Semaphore sem(0);
  Ints result;
  run([&]() -> Coro<void> {
    Task<bool> t1 = create_task(sem_acquire_record(&sem, &result, 1));
    Task<bool> t2 = create_task(sem_acquire_record(&sem, &result, 2));
    Task<bool> t3 = create_task(sem_acquire_record(&sem, &result, 3));
    co_await sleep(kZero);
    sem.release();  // reserves the slot for t1
    EXPECT_EQ(sem.value(), 0);
    EXPECT_TRUE(sem.locked());
    t1.cancel();
    co_await sleep(kZero);  // t1 gives the slot back and wakes t2
    EXPECT_TRUE(t1.cancelled());
    co_await sleep(kZero);
    EXPECT_EQ(result, Ints{2});
    EXPECT_EQ(sem.value(), 0);
    EXPECT_FALSE(t3.done());
    sem.release();
    co_await t3;
    EXPECT_EQ(result, (Ints{2, 3}));
    EXPECT_EQ(sem.value(), 0);
  }());
}

// CPython test_acquire_fifo_order_4's "It is locked, because c1 hasn't woken
// up yet" and Semaphore.locked(): locked while a waiter that is not
// cancelled is queued, even with free slots; cancelled waiters do not count.
TEST_P(SemaphoreConformance, LockedWhileLiveWaitersQueued) {
  Semaphore sem(0);
  Ints result;
  run([&]() -> Coro<void> {
    Task<bool> t1 = create_task(sem_acquire_record(&sem, &result, 1));
    co_await sleep(kZero);
    sem.release();
    sem.release();
    EXPECT_EQ(sem.value(), 1);
    EXPECT_TRUE(sem.locked());  // t1 is woken but has not run
    co_await sem.acquire();     // so we queue behind it
    result.push_back(2);
    EXPECT_EQ(result, (Ints{1, 2}));
    EXPECT_EQ(sem.value(), 0);

    Task<bool> t3 = create_task(sem.acquire());
    co_await sleep(kZero);
    t3.cancel();
    sem.release();
    EXPECT_EQ(sem.value(), 1);
    EXPECT_FALSE(sem.locked());  // the only waiter is cancelled
    EXPECT_THROW(co_await t3, CancelledError);
  }());
}

Coro<void> hold_sem_and_cancel(Semaphore* sem, Task<void>* other) {
  LockGuard<Semaphore> held = co_await sem->scoped();
  co_await sleep(kZero);
  other->cancel();
}

Coro<void> hold_sem_unreachable(Semaphore* sem) {
  LockGuard<Semaphore> held = co_await sem->scoped();
  ADD_FAILURE() << "should have been cancelled while waiting";
}

// CPython test_acquire_no_hang: a waiter cancelled while its holder still
// holds the slot; afterwards the semaphore is free again.
TEST_P(SemaphoreConformance, AcquireNoHang) {
  Semaphore sem(1);
  run([&]() -> Coro<void> {
    Task<void> t2;
    Task<void> t1 = create_task(hold_sem_and_cancel(&sem, &t2));
    t2 = create_task(hold_sem_unreachable(&sem));
    auto [r1, r2] = co_await gather(return_exceptions, t1, t2);
    EXPECT_TRUE(r1.ok());
    EXPECT_TRUE(is_cancelled_error(r2.exception()));
    co_await wait_for(sem.acquire(), absl::Seconds(1));
    EXPECT_EQ(sem.value(), 0);
  }());
}

// CPython test_release_not_acquired (BoundedSemaphore).
TEST_P(SemaphoreConformance, BoundedReleaseTooManyTimesRaises) {
  BoundedSemaphore sem;
  BoundedSemaphore two(2);
  run([&]() -> Coro<void> {
    std::string message;
    try {
      sem.release();
    } catch (const std::invalid_argument& e) {
      message = e.what();
    }
    EXPECT_EQ(message, "BoundedSemaphore released too many times");
    co_await two.acquire();
    two.release();
    EXPECT_THROW(two.release(), std::invalid_argument);
    EXPECT_EQ(two.value(), 2);
    // Through the base class too (release() is virtual, as Python's).
    Semaphore& base = two;
    EXPECT_THROW(base.release(), std::invalid_argument);
    // A guard's explicit release() reports the error to its caller.
    LockGuard<Semaphore> held = co_await two.scoped();
    two.release();
    EXPECT_THROW(held.release(), std::invalid_argument);
    EXPECT_EQ(two.describe(), "<BoundedSemaphore [unlocked, value:2]>");
  }());
}

// CPython test_release_no_waiters.
TEST_P(SemaphoreConformance, ReleaseNoWaiters) {
  Semaphore sem;
  run([&]() -> Coro<void> {
    co_await sem.acquire();
    EXPECT_TRUE(sem.locked());
    sem.release();
    EXPECT_FALSE(sem.locked());
  }());
}

Coro<void> fifo_worker(Semaphore* sem, std::vector<std::string>* result, std::string tag) {
  for (int round = 1; round <= 2; ++round) {
    co_await sem->acquire();
    result->push_back(tag + "_" + std::to_string(round));
    co_await sleep(absl::Milliseconds(1));
    sem->release();
  }
}

// CPython test_acquire_fifo_order (gh-90155): a releasing task that
// acquires again queues behind the tasks already waiting.
TEST_P(SemaphoreConformance, AcquireFifoOrder) {
  Semaphore sem(1);
  std::vector<std::string> result;
  run([&]() -> Coro<void> {
    co_await gather(fifo_worker(&sem, &result, "c1"), fifo_worker(&sem, &result, "c2"),
                    fifo_worker(&sem, &result, "c3"));
    EXPECT_EQ(result, (std::vector<std::string>{"c1_1", "c2_1", "c3_1", "c1_2", "c2_2", "c3_2"}));
  }());
}

Coro<bool> fifo2_c2(Semaphore* sem, Ints* result) {
  co_await sem->acquire();
  result->push_back(2);
  sem->release();
  co_await sem->acquire();
  result->push_back(4);
  co_return true;
}

// CPython test_acquire_fifo_order_2.
TEST_P(SemaphoreConformance, AcquireFifoOrder2) {
  Semaphore sem(1);
  Ints result;
  run([&]() -> Coro<void> {
    Task<bool> t1 = create_task(sem_acquire_record(&sem, &result, 1));
    Task<bool> t2 = create_task(fifo2_c2(&sem, &result));
    Task<bool> t3 = create_task(sem_acquire_record(&sem, &result, 3));
    co_await sleep(kZero);
    sem.release();
    sem.release();
    co_await gather(t1, t2, t3);
    EXPECT_EQ(result, (Ints{1, 2, 3, 4}));
  }());
}

// CPython test_acquire_fifo_order_3: a cancelled waiter is skipped.
TEST_P(SemaphoreConformance, AcquireFifoOrder3) {
  Semaphore sem(0);
  Ints result;
  run([&]() -> Coro<void> {
    Task<bool> t1 = create_task(sem_acquire_record(&sem, &result, 1));
    Task<bool> t2 = create_task(sem_acquire_record(&sem, &result, 2));
    Task<bool> t3 = create_task(sem_acquire_record(&sem, &result, 3));
    co_await sleep(kZero);
    t1.cancel();
    co_await sleep(kZero);
    sem.release();
    sem.release();
    co_await gather(return_exceptions, t1, t2, t3);
    EXPECT_EQ(result, (Ints{2, 3}));
  }());
}

Coro<bool> fifo4_c4(Ints* result) {
  result->push_back(4);
  co_return true;
}

Coro<bool> fifo4_c1(Semaphore* sem, Ints* result, Task<bool>* t4) {
  EXPECT_EQ(sem->value(), 0);
  co_await sem->acquire();
  EXPECT_EQ(sem->value(), 0);  // every queued task was woken
  *t4 = create_task(fifo4_c4(result));  // runs after c3, not c2
  result->push_back(1);
  co_return true;
}

Coro<bool> fifo4_c2(Semaphore* sem, Ints* result) {
  sem->release();
  sem->release();
  sem->release();
  EXPECT_EQ(sem->value(), 2);
  EXPECT_TRUE(sem->locked());  // c1 has not woken up yet
  co_await sem->acquire();
  result->push_back(2);
  co_return true;
}

Coro<bool> fifo4_c3(Semaphore* sem, Ints* result) {
  co_await sem->acquire();
  EXPECT_TRUE(sem->locked());
  result->push_back(3);
  co_return true;
}

// CPython test_acquire_fifo_order_4: a successful acquire() wakes every
// task that queued behind it because of FIFO order.
TEST_P(SemaphoreConformance, AcquireFifoOrder4) {
  Semaphore sem(0);
  Ints result;
  run([&]() -> Coro<void> {
    Task<bool> t4;
    Task<bool> t1 = create_task(fifo4_c1(&sem, &result, &t4));
    Task<bool> t2 = create_task(fifo4_c2(&sem, &result));
    Task<bool> t3 = create_task(fifo4_c3(&sem, &result));
    co_await sleep(kZero);
    EXPECT_EQ(sem.value(), 2);
    EXPECT_EQ(sem.describe(), "<Semaphore [locked, waiters:3]>");
    co_await sleep(kZero);
    co_await gather(t1, t2, t3, t4);
    EXPECT_EQ(result, (Ints{1, 2, 3, 4}));
  }());
}

Coro<void> hold_sem_forever(Semaphore* sem) {
  LockGuard<Semaphore> held = co_await sem->scoped();
  co_await sleep(kNever);
}

// `async with sem:` gives the slot back when the holder is cancelled.
TEST_P(SemaphoreConformance, ScopedGuardReleasesOnCancellation) {
  BoundedSemaphore sem(2);
  run([&]() -> Coro<void> {
    Task<void> a = create_task(hold_sem_forever(&sem));
    Task<void> b = create_task(hold_sem_forever(&sem));
    Task<void> c = create_task(hold_sem_forever(&sem));
    co_await sleep(kZero);
    EXPECT_EQ(sem.value(), 0);
    EXPECT_EQ(sem.describe(), "<BoundedSemaphore [locked, waiters:1]>");
    a.cancel();
    EXPECT_THROW(co_await a, CancelledError);
    co_await sleep(kZero);  // c got a's slot
    EXPECT_EQ(sem.value(), 0);
    EXPECT_EQ(sem.describe(), "<BoundedSemaphore [locked]>");
    b.cancel();
    c.cancel();
    EXPECT_THROW(co_await b, CancelledError);
    EXPECT_THROW(co_await c, CancelledError);
    EXPECT_EQ(sem.value(), 2);  // never above the bound
  }());
}

// ---------------------------------------------------------------- Barrier

class BarrierConformance : public LoopTest {};

constexpr int kN = 5;

Coro<void> barrier_wait_ignoring(Barrier* barrier) {
  try {
    co_await barrier->wait();
  } catch (const BrokenBarrierError&) {
  }
}

// CPython test_barrier_parties, test_barrier.
TEST_P(BarrierConformance, Parties) {
  run([&]() -> Coro<void> {
    EXPECT_THROW(Barrier(0), std::invalid_argument);
    EXPECT_THROW(Barrier(-4), std::invalid_argument);
    Barrier barrier(kN);
    EXPECT_EQ(barrier.parties(), kN);
    EXPECT_EQ(barrier.describe(), "<Barrier [filling, waiters:0/5]>");
    co_return;
  }());
}

// CPython test_repr: filling -> draining -> resetting -> broken.
TEST_P(BarrierConformance, DescribeFollowsTheStates) {
  Barrier barrier(kN);
  run([&]() -> Coro<void> {
    std::vector<Task<void>> waiters;
    for (int i = 0; i < 2; ++i) waiters.push_back(create_task(barrier_wait_ignoring(&barrier)));
    co_await sleep(kZero);
    EXPECT_EQ(barrier.describe(), "<Barrier [filling, waiters:2/5]>");
    for (int i = barrier.n_waiting(); i < barrier.parties(); ++i)
      waiters.push_back(create_task(barrier_wait_ignoring(&barrier)));
    co_await sleep(kZero);
    EXPECT_TRUE(absl::StrContains(barrier.describe(), "draining")) << barrier.describe();
    for (int i = 0; i < 2; ++i) waiters.push_back(create_task(barrier_wait_ignoring(&barrier)));
    co_await sleep(kZero);
    co_await barrier.reset();
    EXPECT_TRUE(absl::StrContains(barrier.describe(), "resetting")) << barrier.describe();
    for (int i = 0; i < 2; ++i) waiters.push_back(create_task(barrier_wait_ignoring(&barrier)));
    co_await sleep(kZero);
    co_await barrier.abort();
    EXPECT_EQ(barrier.describe(), "<Barrier [broken]>");
    EXPECT_TRUE(barrier.broken());
    co_await gather(return_exceptions, std::move(waiters));
  }());
}

Coro<int> barrier_wait_index(Barrier* barrier) { co_return co_await barrier->wait(); }

// CPython test_context_manager: the indices are 0..parties-1; here, with
// every task arriving in creation order, index i goes to the i-th task.
TEST_P(BarrierConformance, ArrivalIndices) {
  Barrier barrier(3);
  run([&]() -> Coro<void> {
    std::vector<Coro<int>> waits;
    for (int i = 0; i < 3; ++i) waits.push_back(barrier_wait_index(&barrier));
    std::vector<int> indices = co_await gather(std::move(waits));
    EXPECT_EQ(indices, iota(3));
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
  }());
}

// CPython test_filling_one_task.
TEST_P(BarrierConformance, FillingOneTask) {
  Barrier barrier(1);
  run([&]() -> Coro<void> {
    EXPECT_EQ(co_await barrier.wait(), 0);
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
  }());
}

// CPython test_filling_one_task_twice.
TEST_P(BarrierConformance, FillingOneTaskTwice) {
  Barrier barrier(1);
  run([&]() -> Coro<void> {
    Task<int> t1 = create_task(barrier.wait());
    co_await sleep(kZero);
    EXPECT_EQ(barrier.n_waiting(), 0);
    Task<int> t2 = create_task(barrier.wait());
    co_await sleep(kZero);
    EXPECT_TRUE(t1.done() && t2.done());
    EXPECT_EQ(t1.result(), t2.result());
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
  }());
}

// CPython test_filling_task_by_task.
TEST_P(BarrierConformance, FillingTaskByTask) {
  Barrier barrier(3);
  run([&]() -> Coro<void> {
    Task<int> t1 = create_task(barrier.wait());
    co_await sleep(kZero);
    EXPECT_EQ(barrier.n_waiting(), 1);
    EXPECT_TRUE(absl::StrContains(barrier.describe(), "filling"));
    Task<int> t2 = create_task(barrier.wait());
    co_await sleep(kZero);
    EXPECT_EQ(barrier.n_waiting(), 2);
    Task<int> t3 = create_task(barrier.wait());
    co_await sleep(kZero);
    auto [i1, i2, i3] = co_await gather(t1, t2, t3);
    EXPECT_EQ(sorted({i1, i2, i3}), iota(3));
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
  }());
}

Coro<int> wait_cycles(Barrier* barrier, int cycles, std::vector<Ints>* per_cycle) {
  int last = -1;
  for (int c = 0; c < cycles; ++c) {
    last = co_await barrier->wait();
    (*per_cycle)[c].push_back(last);
  }
  co_return last;
}

// CPython test_filling_tasks_wait_twice and
// test_filling_tasks_check_return_value, over several cycles: the barrier
// is reusable and every cycle hands out the indices 0..parties-1.
TEST_P(BarrierConformance, ReuseOverSeveralCycles) {
  Barrier barrier(kN);
  constexpr int kCycles = 4;
  std::vector<Ints> per_cycle(kCycles);
  run([&]() -> Coro<void> {
    std::vector<Coro<int>> tasks;
    for (int i = 0; i < kN; ++i) tasks.push_back(wait_cycles(&barrier, kCycles, &per_cycle));
    std::vector<int> last = co_await gather(std::move(tasks));
    EXPECT_EQ(sorted(last), iota(kN));
    for (const Ints& cycle : per_cycle) EXPECT_EQ(sorted(cycle), iota(kN));
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
  }());
}

Coro<void> note_draining(Barrier* barrier, std::vector<bool>* results) {
  co_await barrier->wait();
  results->push_back(absl::StrContains(barrier->describe(), "draining"));
}

// CPython test_draining_state: all but the last task to leave see
// "draining"; the last leaver makes the barrier filling again.
TEST_P(BarrierConformance, DrainingState) {
  Barrier barrier(kN);
  std::vector<bool> results;
  run([&]() -> Coro<void> {
    std::vector<Coro<void>> tasks;
    for (int i = 0; i < kN; ++i) tasks.push_back(note_draining(&barrier, &results));
    co_await gather(std::move(tasks));
    std::vector<bool> expected(kN, true);
    expected.back() = false;
    EXPECT_EQ(results, expected);
    EXPECT_EQ(barrier.n_waiting(), 0);
  }());
}

Coro<void> rewait(Barrier* barrier, Barrier* nowaiting, int* rewait_n) {
  co_await barrier->wait();
  if (*rewait_n > 0) {
    --*rewait_n;
    co_await barrier->wait();  // waits again, with the other re-waiters
  } else {
    co_await nowaiting->wait();  // waits for the end of draining
    co_await barrier->wait();
  }
}

// CPython test_blocking_tasks_while_draining: arrivals during DRAINING
// block until the barrier is filling again.
TEST_P(BarrierConformance, BlockingTasksWhileDraining) {
  Barrier barrier(kN);
  Barrier nowaiting(kN - 2);
  int rewait_n = 2;
  run([&]() -> Coro<void> {
    std::vector<Coro<void>> tasks;
    for (int i = 0; i < kN; ++i) tasks.push_back(rewait(&barrier, &nowaiting, &rewait_n));
    co_await gather(std::move(tasks));
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
  }());
}

Coro<void> wait_and_note(Barrier* barrier, std::vector<bool>* results) {
  co_await barrier->wait();
  results->push_back(true);
}

// CPython test_filling_tasks_cancel_one: a cancelled filler is no longer
// counted.
TEST_P(BarrierConformance, FillingTasksCancelOne) {
  Barrier barrier(3);
  std::vector<bool> results;
  run([&]() -> Coro<void> {
    Task<void> t1 = create_task(wait_and_note(&barrier, &results));
    co_await sleep(kZero);
    EXPECT_EQ(barrier.n_waiting(), 1);
    Task<void> t2 = create_task(wait_and_note(&barrier, &results));
    co_await sleep(kZero);
    EXPECT_EQ(barrier.n_waiting(), 2);
    t1.cancel();
    co_await sleep(kZero);
    EXPECT_EQ(barrier.n_waiting(), 1);
    EXPECT_THROW(co_await t1, CancelledError);
    EXPECT_TRUE(t1.cancelled());
    Task<void> t3 = create_task(wait_and_note(&barrier, &results));
    co_await sleep(kZero);
    EXPECT_EQ(barrier.n_waiting(), 2);
    Task<void> t4 = create_task(wait_and_note(&barrier, &results));
    co_await gather(t2, t3, t4);
    EXPECT_EQ(results.size(), 3u);
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
  }());
}

// CPython test_reset_barrier: resetting an empty barrier.
TEST_P(BarrierConformance, ResetEmpty) {
  Barrier barrier(1);
  run([&]() -> Coro<void> {
    Task<void> t = create_task(barrier.reset());
    co_await sleep(kZero);
    EXPECT_TRUE(t.done());
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(barrier.broken());
  }());
}

Coro<void> wait_noting_broken(Barrier* barrier, std::vector<bool>* results) {
  try {
    co_await barrier->wait();
  } catch (const BrokenBarrierError&) {
    results->push_back(true);
  }
}

// CPython test_reset_barrier_while_tasks_waiting: waiters get
// BrokenBarrierError and the barrier is usable (filling) again.
TEST_P(BarrierConformance, ResetWhileTasksWaiting) {
  Barrier barrier(kN);
  std::vector<bool> results;
  run([&]() -> Coro<void> {
    std::vector<Task<void>> tasks;
    for (int i = 0; i < kN - 1; ++i) tasks.push_back(create_task(wait_noting_broken(&barrier, &results)));
    co_await sleep(kZero);
    create_task(barrier.reset());
    co_await gather(std::move(tasks));
    EXPECT_EQ(results.size(), static_cast<size_t>(kN - 1));
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(absl::StrContains(barrier.describe(), "resetting"));
    EXPECT_FALSE(barrier.broken());
    // Usable again: a full cycle goes through.
    std::vector<Coro<int>> again;
    for (int i = 0; i < kN; ++i) again.push_back(barrier.wait());
    EXPECT_EQ(sorted(co_await gather(std::move(again))), iota(kN));
  }());
}

Coro<void> half_draining(Barrier* barrier, std::vector<bool>* results1, int* drained, int rest) {
  try {
    co_await barrier->wait();
  } catch (const BrokenBarrierError&) {
    results1->push_back(true);  // still inside the barrier when it was reset
    co_return;
  }
  // CPython compares barrier._count (tasks still inside wait()) with rest;
  // that count is parties minus the tasks that have left.
  ++*drained;
  if (barrier->parties() - *drained == rest) co_await barrier->reset();
}

// CPython test_reset_barrier_when_tasks_half_draining.
TEST_P(BarrierConformance, ResetWhenTasksHalfDraining) {
  Barrier barrier(kN);
  std::vector<bool> results1;
  int drained = 0;
  const int rest = kN / 2;
  run([&]() -> Coro<void> {
    std::vector<Coro<void>> tasks;
    for (int i = 0; i < kN; ++i) tasks.push_back(half_draining(&barrier, &results1, &drained, rest));
    co_await gather(std::move(tasks));
    EXPECT_EQ(results1, std::vector<bool>(rest, true));
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(absl::StrContains(barrier.describe(), "resetting"));
    EXPECT_FALSE(barrier.broken());
  }());
}

struct HalfBlocking {
  Barrier* barrier;
  std::vector<bool> results1;
  std::vector<bool> results2;
  int count = 0;
  int blocking = 0;
};

Coro<void> half_draining_half_blocking(HalfBlocking* s) {
  bool broken = false;
  try {
    co_await s->barrier->wait();
  } catch (const BrokenBarrierError&) {
    broken = true;
  }
  if (broken) {
    s->results1.push_back(true);
    co_await s->barrier->wait();  // wait again to reach the parties
    co_return;
  }
  ++s->count;
  if (s->count > s->blocking) {
    co_await s->barrier->reset();  // waiting tasks raise BrokenBarrierError
    co_await s->barrier->wait();
  } else {
    try {
      co_await s->barrier->wait();
    } catch (const BrokenBarrierError&) {
      s->results2.push_back(true);  // blocked tasks are not broken
    }
  }
}

// CPython test_reset_barrier_when_tasks_half_draining_half_blocking.
TEST_P(BarrierConformance, ResetWhenTasksHalfDrainingHalfBlocking) {
  Barrier barrier(kN);
  HalfBlocking s{&barrier, {}, {}, 0, kN / 2};
  run([&]() -> Coro<void> {
    std::vector<Coro<void>> tasks;
    for (int i = 0; i < kN; ++i) tasks.push_back(half_draining_half_blocking(&s));
    co_await gather(std::move(tasks));
    EXPECT_EQ(s.results1, std::vector<bool>(kN / 2, true));
    EXPECT_TRUE(s.results2.empty());
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(absl::StrContains(barrier.describe(), "resetting"));
    EXPECT_FALSE(barrier.broken());
  }());
}

Coro<void> broken_then_wait_again(Barrier* barrier, std::vector<bool>* results1, std::vector<bool>* results2) {
  try {
    co_await barrier->wait();
  } catch (const BrokenBarrierError&) {
    results1->push_back(true);
  }
  co_await barrier->wait();
  results2->push_back(true);
}

Coro<void> wait_and_note2(Barrier* barrier, std::vector<bool>* results2) {
  co_await barrier->wait();
  results2->push_back(true);
}

// CPython test_reset_barrier_while_tasks_waiting_and_waiting_again.
TEST_P(BarrierConformance, ResetWhileTasksWaitingAndWaitingAgain) {
  Barrier barrier(kN);
  std::vector<bool> results1;
  std::vector<bool> results2;
  run([&]() -> Coro<void> {
    std::vector<Task<void>> tasks;
    for (int i = 0; i < kN - 1; ++i) tasks.push_back(create_task(broken_then_wait_again(&barrier, &results1, &results2)));
    create_task(barrier.reset());
    co_await sleep(kZero);
    Task<void> last = create_task(wait_and_note2(&barrier, &results2));
    co_await gather(std::move(tasks));
    co_await last;
    EXPECT_FALSE(barrier.broken());
    EXPECT_EQ(results1.size(), static_cast<size_t>(kN - 1));
    EXPECT_EQ(results2.size(), static_cast<size_t>(kN));
    EXPECT_EQ(barrier.n_waiting(), 0);
  }());
}

struct WhileDraining {
  Barrier* barrier;
  int count = 0;
  int results1 = 0;
  int results2 = 0;
  int results3 = 0;
};

Coro<void> reset_while_draining(WhileDraining* s) {
  co_await s->barrier->wait();
  ++s->count;
  if (s->count == kN) {
    co_await s->barrier->reset();  // the last task out resets...
    co_await s->barrier->wait();   // ...and waits to reach the parties
  } else {
    try {
      co_await s->barrier->wait();  // second wait
      ++s->results1;
    } catch (const std::exception&) {
      ++s->results2;  // never
    }
  }
  co_await s->barrier->wait();  // and pass once more
  ++s->results3;
}

// CPython test_reset_barrier_while_tasks_draining.
TEST_P(BarrierConformance, ResetWhileTasksDraining) {
  Barrier barrier(kN);
  WhileDraining s{&barrier};
  run([&]() -> Coro<void> {
    std::vector<Coro<void>> tasks;
    for (int i = 0; i < kN; ++i) tasks.push_back(reset_while_draining(&s));
    co_await gather(std::move(tasks));
    EXPECT_FALSE(barrier.broken());
    EXPECT_EQ(s.results1, kN - 1);
    EXPECT_EQ(s.results2, 0);
    EXPECT_EQ(s.results3, kN);
    EXPECT_EQ(barrier.n_waiting(), 0);
  }());
}

// CPython test_abort_barrier.
TEST_P(BarrierConformance, Abort) {
  Barrier barrier(1);
  run([&]() -> Coro<void> {
    create_task(barrier.abort());
    co_await sleep(kZero);
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_TRUE(barrier.broken());
    // Later arrivals raise at once, until reset().
    EXPECT_THROW(co_await barrier.wait(), BrokenBarrierError);
    co_await barrier.reset();
    EXPECT_FALSE(barrier.broken());
    EXPECT_EQ(co_await barrier.wait(), 0);
  }());
}

struct AbortHalf {
  Barrier* barrier;
  int results1 = 0;
  int results2 = 0;
  int count = 0;
  int blocking = 0;
};

Coro<void> abort_half_draining_half_blocking(AbortHalf* s) {
  bool broken = false;
  try {
    co_await s->barrier->wait();
  } catch (const BrokenBarrierError&) {
    broken = true;
  }
  if (broken) {
    ++s->results1;  // tasks waiting to drain
    co_return;
  }
  ++s->count;
  if (s->count > s->blocking) {
    co_await s->barrier->abort();
  } else {
    try {
      co_await s->barrier->wait();
    } catch (const BrokenBarrierError&) {
      ++s->results2;  // blocked tasks (already drained)
    }
  }
}

// CPython test_abort_barrier_when_tasks_half_draining_half_blocking.
TEST_P(BarrierConformance, AbortWhenTasksHalfDrainingHalfBlocking) {
  Barrier barrier(kN);
  AbortHalf s{&barrier, 0, 0, 0, kN / 2};
  run([&]() -> Coro<void> {
    std::vector<Coro<void>> tasks;
    for (int i = 0; i < kN; ++i) tasks.push_back(abort_half_draining_half_blocking(&s));
    co_await gather(std::move(tasks));
    EXPECT_TRUE(barrier.broken());
    EXPECT_EQ(s.results1, kN / 2);
    EXPECT_EQ(s.results2, kN - kN / 2 - 1);
    EXPECT_EQ(barrier.n_waiting(), 0);
    EXPECT_FALSE(absl::StrContains(barrier.describe(), "resetting"));
  }());
}

Coro<void> abort_on_exception(Barrier* barrier, int* results1, int* results2) {
  bool failed = false;
  try {
    const int i = co_await barrier->wait();
    if (i == kN / 2) throw std::logic_error("boom");
    co_await barrier->wait();
    ++*results1;
  } catch (const BrokenBarrierError&) {
    ++*results2;
  } catch (const std::logic_error&) {
    failed = true;
  }
  if (failed) co_await barrier->abort();
}

// CPython test_abort_barrier_when_exception (threading's
// lock_tests.test_reset).
TEST_P(BarrierConformance, AbortWhenException) {
  Barrier barrier(kN);
  int results1 = 0;
  int results2 = 0;
  run([&]() -> Coro<void> {
    std::vector<Coro<void>> tasks;
    for (int i = 0; i < kN; ++i) tasks.push_back(abort_on_exception(&barrier, &results1, &results2));
    co_await gather(std::move(tasks));
    EXPECT_TRUE(barrier.broken());
    EXPECT_EQ(results1, 0);
    EXPECT_EQ(results2, kN - 1);
    EXPECT_EQ(barrier.n_waiting(), 0);
  }());
}

struct AbortReset {
  Barrier* barrier1;
  Barrier* barrier2;
  int results1 = 0;
  int results2 = 0;
  int results3 = 0;
};

Coro<void> abort_then_reset(AbortReset* s) {
  bool failed = false;
  try {
    const int i = co_await s->barrier1->wait();
    if (i == kN / 2) throw std::logic_error("boom");
    co_await s->barrier1->wait();
    ++s->results1;
  } catch (const BrokenBarrierError&) {
    ++s->results2;
  } catch (const std::logic_error&) {
    failed = true;
  }
  if (failed) co_await s->barrier1->abort();
  // Synchronize, reset, synchronize again, then pass barrier1 once more.
  const int i = co_await s->barrier2->wait();
  if (i == kN / 2) co_await s->barrier1->reset();
  co_await s->barrier2->wait();
  co_await s->barrier1->wait();
  ++s->results3;
}

// CPython test_abort_barrier_when_exception_then_resetting (threading's
// lock_tests.test_abort_and_reset): reset() makes a broken barrier usable.
TEST_P(BarrierConformance, AbortThenReset) {
  Barrier barrier1(kN);
  Barrier barrier2(kN);
  AbortReset s{&barrier1, &barrier2};
  run([&]() -> Coro<void> {
    std::vector<Coro<void>> tasks;
    for (int i = 0; i < kN; ++i) tasks.push_back(abort_then_reset(&s));
    co_await gather(std::move(tasks));
    EXPECT_FALSE(barrier1.broken());
    EXPECT_EQ(s.results1, 0);
    EXPECT_EQ(s.results2, kN - 1);
    EXPECT_EQ(s.results3, kN);
    EXPECT_EQ(barrier1.n_waiting(), 0);
  }());
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(LockConformance);
TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(EventConformance);
TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(ConditionConformance);
TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(SemaphoreConformance);
TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(BarrierConformance);

}  // namespace
}  // namespace twinloop::conformance
