// twinloop/api/locks.h: synchronization primitives for the tasks of one loop
// (asyncio.Lock, Event, Condition, Semaphore, BoundedSemaphore, Barrier;
// CPython 3.14 Lib/asyncio/locks.py, followed line by line).
//
//   twinloop::Lock lock("db");
//
//   // asyncio's `async with lock:` -- the guard releases on every exit path
//   // (return, exception, cancellation):
//   {
//     twinloop::LockGuard<twinloop::Lock> held = co_await lock.scoped();
//     co_await write_row();
//   }
//
//   // or by hand, as `await lock.acquire(); try: ... finally: lock.release()`:
//   co_await lock.acquire();
//   lock.release();
//
// Common rules (asyncio's):
//  - Waiting is FIFO. Every waiter is a future made with create_future() and
//    labelled with what it waits for ("Lock.acquire() on 'db'"), so a
//    deadlock report or the call graph says what a task is blocked on.
//  - Wake-ups go through the ready queue (the woken task runs one loop
//    iteration later at the earliest), so ordering is the same on the real
//    and the simulated loop and draws nothing from the choice source: a
//    primitive's behaviour does not depend on the seed, only the schedule of
//    the tasks that use it does.
//  - A primitive belongs to one loop and is used on that loop's thread. It
//    binds to the running loop the first time it has to wait (asyncio's
//    _LoopBoundMixin); waiting on it from another loop later raises
//    std::runtime_error("<Lock ...> is bound to a different event loop").
//    Like asyncio, an uncontended fast path does not check the binding.
//  - Primitives are neither copyable nor movable: waiters refer to them.
//    One must outlive every coroutine that uses it.
//  - acquire(), wait() and friends return Coro<...>: they run inside the
//    awaiting task, and compose with create_task, wait_for and timeout like
//    any coroutine (`co_await wait_for(lock.acquire(), absl::Seconds(1))`).
//
// Mapping of asyncio's exceptions: RuntimeError -> std::runtime_error,
// ValueError -> std::invalid_argument, BrokenBarrierError ->
// twinloop::BrokenBarrierError (a std::runtime_error, as asyncio's derives
// from RuntimeError). `await lock` (a TypeError in asyncio) does not compile.
#ifndef TWINLOOP_API_LOCKS_H_
#define TWINLOOP_API_LOCKS_H_

#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

#include "twinloop/api/coro.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/future.h"
#include "twinloop/api/internal/ref.h"

namespace twinloop {

// A Barrier was aborted, or reset while the task waited at it
// (asyncio.BrokenBarrierError, a RuntimeError).
class BrokenBarrierError : public std::runtime_error {
 public:
  explicit BrokenBarrierError(const std::string& message) : std::runtime_error(message) {}
};

namespace internal {

// asyncio's _LoopBoundMixin: the loop a primitive belongs to, bound on the
// first call of get() (which primitives make only when they must wait).
class LoopBinding {
 public:
  // The running loop. std::runtime_error("no running event loop") outside
  // one; std::runtime_error("<describe()> is bound to a different event
  // loop") if bound to another.
  template <class Describe>
  EventLoop& get(const Describe& describe) {
    EventLoop& running = get_running_loop();
    if (!loop_) {
      loop_ = Ref<EventLoop>(&running);
    } else if (loop_.get() != &running) {
      throw std::runtime_error(describe() + " is bound to a different event loop");
    }
    return running;
  }

 private:
  Ref<EventLoop> loop_;
};

// Waiter futures in arrival order.
using WaiterQueue = std::deque<Future<void>>;

// Removes `fut` from `q` (asyncio's `self._waiters.remove(fut)`).
void remove_waiter(WaiterQueue& q, const Future<void>& fut);
// "<Kind 'name' [extra]>" / "<Kind [extra]>".
std::string describe_primitive(const char* kind, const std::string& name, const std::string& extra);
// "Lock.acquire() on 'db'" / "Lock.acquire()".
std::string waiter_label(const std::string& what, const std::string& name);
// A LockGuard could not release in its destructor: tell the loop's
// exception handler (a destructor cannot throw).
void report_guard_release_failure(EventLoop* loop, std::exception_ptr error) noexcept;

}  // namespace internal

// Holds an acquired Lock, Semaphore, BoundedSemaphore or Condition and
// releases it when destroyed: asyncio's `async with lock:`. Made by
// `co_await x.scoped()`; move-only.
//
//   {
//     LockGuard<Semaphore> slot = co_await sem.scoped();
//     co_await fetch(url);        // an exception or a cancellation here...
//   }                             // ...still releases the semaphore
//
// The destructor runs on every exit path, cancellation included (a
// CancelledError unwinds the coroutine like any exception). release() gives
// the primitive back early and rethrows what the primitive's release()
// throws; the destructor cannot throw, so an error there (say, the lock was
// released by hand meanwhile: "Lock is not acquired.") goes to the loop's
// exception handler instead (asyncio's __aexit__ would raise it). When the
// loop has closed (a run that ended with tasks still suspended, whose
// frames the loop destroys), the destructor does nothing: the primitive may
// be gone already and nothing could run again on that loop anyway.
template <class P>
class [[nodiscard]] LockGuard {
 public:
  LockGuard() = default;
  // Adopts a primitive the current task has acquired.
  explicit LockGuard(P& acquired) : p_(&acquired), loop_(running_loop_or_null()) {}
  LockGuard(LockGuard&& o) noexcept : p_(std::exchange(o.p_, nullptr)), loop_(std::move(o.loop_)) {}
  LockGuard& operator=(LockGuard&& o) noexcept {
    if (this != &o) {
      release_quietly();
      p_ = std::exchange(o.p_, nullptr);
      loop_ = std::move(o.loop_);
    }
    return *this;
  }
  LockGuard(const LockGuard&) = delete;
  LockGuard& operator=(const LockGuard&) = delete;
  ~LockGuard() { release_quietly(); }

  // Releases now; afterwards the guard holds nothing. No-op if empty.
  void release() {
    P* p = std::exchange(p_, nullptr);
    loop_.reset();
    if (p) p->release();
  }
  bool owns_lock() const { return p_ != nullptr; }
  explicit operator bool() const { return owns_lock(); }

 private:
  void release_quietly() noexcept {
    P* p = std::exchange(p_, nullptr);
    internal::Ref<EventLoop> loop = std::move(loop_);
    if (!p || (loop && loop->is_closed())) return;
    try {
      p->release();
    } catch (...) {
      internal::report_guard_release_failure(loop.get(), std::current_exception());
    }
  }

  P* p_ = nullptr;
  internal::Ref<EventLoop> loop_;
};

// asyncio.Lock: a mutual-exclusion lock for tasks. Not owned by a task:
// any task may release it.
//
//  - acquire() returns true once the caller holds the lock. It takes the
//    lock at once only if it is unlocked and every queued waiter has been
//    cancelled (asyncio's fast path); otherwise the task queues.
//  - release() unlocks and wakes the first queued waiter, but the lock stays
//    unlocked until that waiter runs and takes it; a task that calls
//    acquire() in between queues behind the woken waiter (no barging,
//    CPython test_acquire). Releasing an unlocked lock raises
//    std::runtime_error("Lock is not acquired.").
//  - Cancellation: a waiter cancelled while queued leaves the queue with
//    CancelledError. A waiter cancelled after release() woke it but before it
//    ran does not take the lock: it passes the wake-up to the next waiter
//    (asyncio's _wake_up_first in `except CancelledError`; bpo-27585,
//    bpo-32734), so a wake-up is never lost nor duplicated.
//  - Order: strict FIFO among waiters that are not cancelled.
//  - Simulated loop: identical behaviour; no draws.
// Each acquire() that has to wait allocates its coroutine frame and one
// future; the uncontended path allocates only the frame.
class Lock {
 public:
  Lock() : Lock(std::string()) {}
  // `name` appears in waiter labels ("Lock.acquire() on 'db'") and describe().
  explicit Lock(std::string name);
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  // Waits until the lock is free, takes it, returns true.
  Coro<bool> acquire();
  // See the class comment.
  void release();
  bool locked() const { return locked_; }
  // acquire(), then a guard that releases (asyncio's `async with lock`).
  Coro<LockGuard<Lock>> scoped();
  // "<Lock 'db' [locked, waiters:2]>" (asyncio's repr).
  std::string describe() const;

 private:
  friend class Condition;
  // A lock whose waiters carry `label` (a Condition's or Barrier's own lock).
  Lock(std::string name, std::string label);
  // Makes sure the first waiter will run, unless it is woken already.
  void wake_up_first();

  std::string name_;
  internal::Ref<internal::Label> label_;  // shared by every waiter
  bool locked_ = false;
  internal::WaiterQueue waiters_;
  internal::LoopBinding loop_;
};

// asyncio.Event: a flag tasks can wait for.
//
//  - wait() returns true at once if the flag is set, else when set() sets it.
//  - set() wakes every waiter queued at that moment, in FIFO order; clear()
//    does not take a wake-up back: `set(); clear();` still wakes the waiters
//    that were queued (CPython test_clear_with_waiters), while later wait()
//    calls block again.
//  - The woken tasks run in ready-queue order: FIFO among themselves, after
//    tasks that were ready already (CPython test_wait: [3, 1, 2]).
//  - Cancellation: a cancelled waiter leaves the queue with CancelledError.
//  - Simulated loop: identical behaviour; no draws.
class Event {
 public:
  Event() : Event(std::string()) {}
  explicit Event(std::string name);
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  Coro<bool> wait();
  void set();
  void clear() { value_ = false; }
  bool is_set() const { return value_; }
  // "<Event 'ready' [unset, waiters:1]>".
  std::string describe() const;

 private:
  std::string name_;
  internal::Ref<internal::Label> label_;  // shared by every waiter
  bool value_ = false;
  internal::WaiterQueue waiters_;
  internal::LoopBinding loop_;
};

// asyncio.Condition: a condition variable over a Lock (its own, or one
// shared with other conditions or code).
//
//  - acquire() / release() / locked() / scoped() are the lock's.
//  - wait() needs the lock (else std::runtime_error("cannot wait on
//    un-acquired lock")). It releases the lock, waits to be notified, then
//    re-acquires the lock and returns true. It re-acquires the lock on every
//    exit path, cancellation included: a task cancelled while waiting (or
//    while re-acquiring) keeps trying to re-acquire, and once it holds the
//    lock it raises that same CancelledError (the same exception object,
//    re-thrown; CPython test_wait_cancel_contested,
//    test_cancelled_error_re_aquire). On any exception it also notifies one
//    other waiter, so a notification that raced with the cancellation is
//    not lost (gh-112202, test_cancelled_wakeup); spurious wake-ups are allowed, as in
//    every condition-variable protocol, so re-check the state after wait()
//    or use wait_for().
//  - wait_for(predicate) returns the predicate's value once it is truthy,
//    calling wait() while it is not; it does not need the lock if the
//    predicate holds at once (CPython test_wait_for_unacquired).
//  - notify(n) wakes up to n waiters, FIFO, skipping those already woken or
//    cancelled; notify_all() wakes all. Both need the lock (else
//    std::runtime_error("cannot notify on un-acquired lock")). A notified
//    task returns from wait() only once it holds the lock again, so
//    `co_await wait_for(cond.wait(), t)` inside a held block is safe
//    (bpo-33638).
//  - Simulated loop: identical behaviour; no draws.
class Condition {
 public:
  Condition() : Condition(std::string()) {}
  // A condition with its own lock.
  explicit Condition(std::string name);
  // A condition over `lock`, which must outlive it.
  explicit Condition(Lock& lock, std::string name = {});
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  Coro<bool> acquire() { return lock_->acquire(); }
  void release() { lock_->release(); }
  bool locked() const { return lock_->locked(); }
  Coro<LockGuard<Condition>> scoped();

  Coro<bool> wait();
  // `predicate` is called with the lock held and returns something testable
  // as a bool; wait_for returns its last value. Name a lambda with captures
  // that need destruction before passing it (the GCC 12 co_await bug).
  template <class Predicate>
  Coro<std::decay_t<std::invoke_result_t<Predicate&>>> wait_for(Predicate predicate);
  // Wakes up to `n` waiters (none if n <= 0).
  void notify(int n = 1);
  void notify_all();
  // "<Condition 'jobs' [locked, waiters:1]>".
  std::string describe() const;

 private:
  friend class Barrier;
  // A condition with its own lock whose waiters carry these labels.
  Condition(std::string name, std::string wait_label, std::string lock_label);
  // asyncio's _notify: no lock check.
  void notify_waiters(int n);
  // lock_->acquire(), returning what it raised instead of raising it.
  Coro<std::exception_ptr> reacquire();

  std::string name_;
  internal::Ref<internal::Label> label_;  // shared by every waiter
  std::unique_ptr<Lock> own_lock_;
  Lock* lock_;
  internal::WaiterQueue waiters_;
  internal::LoopBinding loop_;
};

template <class Predicate>
Coro<std::decay_t<std::invoke_result_t<Predicate&>>> Condition::wait_for(Predicate predicate) {
  auto result = predicate();
  while (!result) {
    co_await wait();
    result = predicate();
  }
  co_return result;
}

// asyncio.Semaphore: a counter of free slots (value() of them), taken by
// acquire() and given back by release().
//
//  - acquire() returns true once it took a slot. It takes one at once only
//    if locked() is false; locked() is true when no slot is free OR any
//    waiter that is not cancelled is queued (strict FIFO: a newcomer never
//    overtakes a queued task, even when value() > 0).
//  - release() adds a slot and wakes the first waiter not yet woken; the
//    wake-up reserves the slot for it (value() drops at once), so nobody
//    can take it in between (gh-90155).
//  - Cancellation: a waiter cancelled while queued leaves with
//    CancelledError; one cancelled after being woken gives its reserved slot
//    back. Either way, on leaving, acquire() wakes as many queued waiters as
//    there are free slots, so no wake-up is lost (bpo-45997,
//    test_acquire_hang, test_acquire_cancel_before_awoken) nor doubled.
//  - Semaphore(value < 0) raises std::invalid_argument. release() may raise
//    the count above its initial value (BoundedSemaphore forbids that).
//  - Simulated loop: identical behaviour; no draws.
// (CPython 3.11's `_wakeup_scheduled` flag is gone since gh-90155 / 3.12:
// the reservation in _wake_up_next replaces it; we follow 3.14.)
class Semaphore {
 public:
  explicit Semaphore(int value = 1, std::string name = {});
  virtual ~Semaphore() = default;
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  Coro<bool> acquire();
  virtual void release();
  // True if acquire() would wait.
  bool locked() const;
  // acquire(), then a guard that releases (asyncio's `async with sem`).
  Coro<LockGuard<Semaphore>> scoped();
  // The free-slot count (asyncio's private _value), for tests and
  // introspection: it already excludes slots reserved for woken waiters.
  int value() const { return value_; }
  // "<Semaphore 'pool' [unlocked, value:2]>", "<Semaphore [locked, waiters:1]>".
  std::string describe() const;

 protected:
  Semaphore(int value, std::string name, const char* kind);
  // Wakes the first waiter not yet woken, reserving a slot for it; false if
  // there was none (asyncio's _wake_up_next).
  bool wake_up_next();

  const char* kind_;
  std::string name_;
  internal::Ref<internal::Label> label_;  // shared by every waiter
  int value_;
  internal::WaiterQueue waiters_;
  internal::LoopBinding loop_;
};

// asyncio.BoundedSemaphore: a Semaphore whose release() raises
// std::invalid_argument("BoundedSemaphore released too many times") when it
// would raise the count above the initial value. Everything else is
// Semaphore's; scoped() gives a LockGuard<Semaphore> whose release is this
// checked one.
class BoundedSemaphore : public Semaphore {
 public:
  explicit BoundedSemaphore(int value = 1, std::string name = {});
  void release() override;

 private:
  int bound_value_;
};

// asyncio.Barrier: `parties` tasks meet; each wait() returns once all have
// arrived.
//
//  - wait() returns the caller's arrival index in the current cycle,
//    0..parties-1 (the last arrival gets parties-1 and releases the others).
//  - States (asyncio's): FILLING (arrivals counted; n_waiting() is their
//    number) -> the parties-th arrival -> DRAINING (the released tasks leave;
//    tasks calling wait() now block until the barrier is FILLING again) ->
//    the last leaver -> FILLING. reset() with tasks inside -> RESETTING
//    (they raise BrokenBarrierError as they leave; the last one makes it
//    FILLING) or, empty, straight to FILLING. abort() -> BROKEN: current and
//    future waiters raise BrokenBarrierError until reset().
//  - Cancellation: a waiter cancelled while FILLING leaves and is no longer
//    counted (CPython test_filling_tasks_cancel_one).
//  - reset() and abort() are coroutines, as asyncio's: they take the
//    barrier's internal condition lock, so they order behind tasks that are
//    re-acquiring it.
//  - Barrier(parties < 1) raises std::invalid_argument.
//  - Simulated loop: identical behaviour; no draws.
// Built, as asyncio's, on a Condition whose waiters are labelled
// "Barrier.wait()". asyncio's `async with barrier as i` is `int i = co_await
// barrier.wait()`.
class Barrier {
 public:
  enum class State { kFilling, kDraining, kResetting, kBroken };

  explicit Barrier(int parties, std::string name = {});
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  Coro<int> wait();
  Coro<void> reset();
  Coro<void> abort();
  int parties() const { return parties_; }
  // Tasks waiting in the FILLING state; 0 in any other state.
  int n_waiting() const { return state_ == State::kFilling ? count_ : 0; }
  bool broken() const { return state_ == State::kBroken; }
  State state() const { return state_; }
  // "<Barrier [filling, waiters:2/5]>", "<Barrier 'sync' [broken]>".
  std::string describe() const;

 private:
  // Blocks while DRAINING or RESETTING; BrokenBarrierError if BROKEN.
  Coro<void> block();
  // The last arrival: DRAINING, wake everyone.
  void release_waiters();
  // Waits until the barrier leaves FILLING; BrokenBarrierError on reset/abort.
  Coro<void> wait_released();
  // The last task out makes a draining or resetting barrier FILLING again.
  void leave();

  std::string name_;
  Condition cond_;
  int parties_;
  State state_ = State::kFilling;
  int count_ = 0;  // tasks inside wait(), past block()
};

}  // namespace twinloop

#endif  // TWINLOOP_API_LOCKS_H_
