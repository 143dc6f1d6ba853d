// twinloop/api/queues.h: Queue, PriorityQueue and LifoQueue (asyncio.Queue
// and friends, CPython 3.14 Lib/asyncio/queues.py), for handing items from
// producer tasks to consumer tasks on one loop.
//
//   twinloop::Queue<Job> jobs(/*maxsize=*/10, "jobs");
//
//   twinloop::Coro<void> worker(twinloop::Queue<Job>& jobs) {
//     while (true) {
//       Job job = co_await jobs.get();   // waits while the queue is empty
//       co_await handle(std::move(job));
//       jobs.task_done();                // join() counts these
//     }
//   }
//
//   co_await jobs.put(Job{1});           // waits while 10 items are queued
//   co_await jobs.join();                // until every item put is task_done()
//   jobs.shutdown();                     // puts raise; gets drain, then raise
//
// The code follows queues.py line by line: one FIFO deque of waiting getters
// and one of waiting putters, each holding a future per waiting task;
// `_wakeup_next` completes the first of them that is not done; a waiter that
// leaves with an exception removes its future and, if it had been woken
// already, passes the wake-up on. Everything happens on the loop's thread.
//
// Mapping to asyncio:
//   asyncio.Queue(maxsize)       -> twinloop::Queue<T>(maxsize [, name])
//   asyncio.PriorityQueue        -> twinloop::PriorityQueue<T, Compare>
//   asyncio.LifoQueue            -> twinloop::LifoQueue<T>
//   asyncio.QueueEmpty / QueueFull / QueueShutDown -> same names, each a
//                                   std::runtime_error (asyncio: Exception)
//   ValueError from task_done()  -> std::invalid_argument
//   RuntimeError (other loop)    -> std::runtime_error
//   str(queue)                   -> describe()
#ifndef TWINLOOP_API_QUEUES_H_
#define TWINLOOP_API_QUEUES_H_

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <coroutine>
#include <functional>
#include <optional>
#include <type_traits>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/future.h"
#include "twinloop/api/internal/ref.h"
#include "twinloop/api/task.h"

namespace twinloop {

// get_nowait() found the queue empty (asyncio.QueueEmpty).
class QueueEmpty : public std::runtime_error {
 public:
  explicit QueueEmpty(const std::string& message = "queue is empty")
      : std::runtime_error(message) {}
};

// put_nowait() found the queue full (asyncio.QueueFull).
class QueueFull : public std::runtime_error {
 public:
  explicit QueueFull(const std::string& message = "queue is full")
      : std::runtime_error(message) {}
};

// Putting on, or getting from an empty, queue that was shut down
// (asyncio.QueueShutDown, 3.13).
class QueueShutDown : public std::runtime_error {
 public:
  explicit QueueShutDown(const std::string& message = "queue is shut down")
      : std::runtime_error(message) {}
};

namespace internal {

// Everything of a queue that does not depend on the item type: the waiter
// deques, the unfinished-task count, shutdown, the loop binding. Shared
// (reference counted) between the Queue object and every put/get/join in
// progress, so a pending operation never refers to a destroyed queue.
class QueueCore : public RefCounted {
 public:
  enum class Op : uint8_t { kGet, kPut, kJoin };

  QueueCore(int64_t maxsize, std::string name, const char* kind)
      : maxsize_(maxsize), name_(std::move(name)), kind_(kind) {}
  ~QueueCore() override;

  // asyncio's len(self._queue). The subclass owns the items and keeps this
  // count (not a virtual call: it is on every put and get).
  size_t size() const { return size_; }
  // Removes one item and destroys it (shutdown(immediate=True)).
  virtual void drop_one() = 0;

  int64_t maxsize() const { return maxsize_; }
  const std::string& name() const { return name_; }
  bool full() const { return maxsize_ > 0 && size() >= static_cast<uint64_t>(maxsize_); }
  bool is_shutdown() const { return is_shutdown_; }
  int64_t unfinished_tasks() const { return unfinished_tasks_; }

  // put_nowait's checks, in asyncio's order: QueueShutDown, then QueueFull.
  void check_put() const {
    if (is_shutdown_ || full()) [[unlikely]] throw_put_refused();
  }
  // QueueShutDown if shut down, else QueueFull.
  [[noreturn]] void throw_put_refused() const;
  // get_nowait on an empty queue: QueueShutDown if shut down, else QueueEmpty.
  [[noreturn]] void throw_empty() const;
  // After an item went in: count it unfinished and wake one getter.
  void on_put() {
    // On in release builds: a breach means items or wake-ups were lost.
    if (maxsize_ > 0 && size_ > static_cast<uint64_t>(maxsize_)) [[unlikely]] overfull();
    ++unfinished_tasks_;
    if (!getters_.empty()) wakeup_next(getters_);
  }
  [[noreturn]] static void overfull();
  // After an item came out: wake one putter.
  void on_get() {
    if (!putters_.empty()) wakeup_next(putters_);
  }

  void task_done();
  void shutdown(bool immediate);
  std::string describe() const;

  // A new waiter future for `op`, labelled ("Queue.get() on 'jobs'") and
  // appended to its deque. Binds the queue to the running loop on first use
  // (std::runtime_error if it is bound to another one).
  Future<void> add_waiter(Op op);
  // asyncio's `except:` block of get()/put() (and Event.wait's `finally`):
  // cancel the waiter in case it is pending, remove it from its deque, and,
  // if it had been woken but cannot take the wake-up, pass it on.
  void abandon_waiter(Op op, Future<void>& waiter);
  // Removes a join waiter that finished normally.
  void forget_joiner(const Future<void>& waiter);

 private:
  using Waiters = std::deque<Future<void>>;

  // Completes the first waiter that is not done (asyncio's _wakeup_next).
  static void wakeup_next(Waiters& waiters);
  // Wakes every join() waiter (asyncio's self._finished.set()).
  void set_finished();
  // The label of `op`'s waiters, made on first use and shared by all of them.
  const Ref<Label>& label(Op op) {
    Ref<Label>& l = labels_[static_cast<int>(op)];
    if (!l) [[unlikely]] make_label(op);
    return l;
  }
  void make_label(Op op);
  // add_waiter's error, out of line (no message built on its common path).
  [[noreturn, gnu::noinline]] void throw_other_loop() const;

  const int64_t maxsize_;

 protected:
  size_t size_ = 0;  // items held by the subclass

 private:
  const std::string name_;
  const char* const kind_;  // "Queue", "PriorityQueue", "LifoQueue"
  Waiters getters_;
  Waiters putters_;
  Waiters joiners_;  // the waiters of the `_finished` Event
  int64_t unfinished_tasks_ = 0;
  bool is_shutdown_ = false;
  Ref<EventLoop> loop_;  // bound on the first wait, as asyncio's _LoopBoundMixin
  Ref<Label> labels_[3];  // by Op
};

// The typed part: where the items live (asyncio's _init/_put/_get).
template <class T>
class QueueState : public QueueCore {
 public:
  using QueueCore::QueueCore;
  virtual void put_item(T&& item) = 0;
  virtual T get_item() = 0;
  void drop_one() override {
    (void)get_item();
    --this->size_;
  }

  template <class U>
  void put_nowait(U&& item) {
    check_put();
    put_item(T(std::forward<U>(item)));
    ++this->size_;
    on_put();
  }
  T get_nowait() {
    if (size() == 0) throw_empty();
    T item = get_item();
    --this->size_;
    on_get();
    return item;
  }
};

template <class T>
class FifoState final : public QueueState<T> {
 public:
  using QueueState<T>::QueueState;
  void put_item(T&& item) override { items_.push_back(std::move(item)); }
  T get_item() override {
    T item = std::move(items_.front());
    items_.pop_front();
    return item;
  }

 private:
  std::deque<T> items_;
};

template <class T>
class LifoState final : public QueueState<T> {
 public:
  using QueueState<T>::QueueState;
  void put_item(T&& item) override { items_.push_back(std::move(item)); }
  T get_item() override {
    T item = std::move(items_.back());
    items_.pop_back();
    return item;
  }

 private:
  std::vector<T> items_;
};

template <class T, class Compare>
class PriorityState final : public QueueState<T> {
 public:
  PriorityState(int64_t maxsize, std::string name, Compare compare)
      : QueueState<T>(maxsize, std::move(name), "PriorityQueue"), later_{std::move(compare)} {}
  void put_item(T&& item) override {
    heap_.push_back(Entry{std::move(item), next_seq_++});
    std::push_heap(heap_.begin(), heap_.end(), later_);
  }
  T get_item() override {
    std::pop_heap(heap_.begin(), heap_.end(), later_);
    T item = std::move(heap_.back().item);
    heap_.pop_back();
    return item;
  }

 private:
  struct Entry {
    T item;
    uint64_t seq;  // insertion order, to break ties
  };
  // std::*_heap keep the greatest element first; "greatest" here is the one
  // to come out first: the lowest by `compare`, then the earliest put.
  struct Later {
    Compare compare;
    bool operator()(const Entry& a, const Entry& b) const {
      if (compare(b.item, a.item)) return true;
      if (compare(a.item, b.item)) return false;
      return a.seq > b.seq;
    }
  };
  std::vector<Entry> heap_;
  Later later_;
  uint64_t next_seq_ = 0;
};

// The coroutines behind get/put/join; each holds a reference to the state.
// The waiting loops are written out in each (not a shared nested coroutine:
// one coroutine frame per get/put is the cost of a hand-off).
Coro<void> join_queue(Ref<QueueCore> s);

template <class T>
Coro<T> queue_get(Ref<QueueState<T>> s) {
  // asyncio's `while self.empty(): ... await getter`.
  while (s->size() == 0) {
    if (s->is_shutdown()) throw QueueShutDown();
    Future<void> getter = s->add_waiter(QueueCore::Op::kGet);
    std::exception_ptr error;
    try {
      co_await getter;
    } catch (...) {
      error = std::current_exception();
    }
    if (error) {
      s->abandon_waiter(QueueCore::Op::kGet, getter);
      std::rethrow_exception(error);
    }
  }
  co_return s->get_nowait();
}

template <class T>
Coro<void> queue_put(Ref<QueueState<T>> s, T item) {
  // asyncio's `while self.full(): ... await putter`.
  while (s->full()) {
    if (s->is_shutdown()) throw QueueShutDown();
    Future<void> putter = s->add_waiter(QueueCore::Op::kPut);
    std::exception_ptr error;
    try {
      co_await putter;
    } catch (...) {
      error = std::current_exception();
    }
    if (error) {
      s->abandon_waiter(QueueCore::Op::kPut, putter);
      std::rethrow_exception(error);
    }
  }
  s->put_nowait(std::move(item));
}

// What get() and put() return: awaited directly, an operation that need not
// wait completes in await_ready, and one that must wait does asyncio's
// `while self.empty(): getter = ...; await getter` (or full() for put())
// itself, without a coroutine frame: the awaiting task waits on the waiter
// future, and when it wakes this object (its TaskBase::WakeFilter) decides
// whether to resume it (an item is there, or the waiter was cancelled, or
// the queue shut down) or to wait again, at the back, with a new waiter (the
// item it was woken for went to another task meanwhile). Event for event the
// same as the coroutine above. The call graph still shows a `queue_get` /
// `queue_put` frame: the awaiter holds a promise-shaped record of it.
// Anywhere a Coro is taken (create_task, gather, wait_for, ...) it becomes
// the coroutine above, which runs only when awaited: lazy, as asyncio's
// coroutine objects.
template <class Derived, class T>
class QueueOpBase : private WakeFilter {
 public:
  QueueOpBase() = default;
  QueueOpBase(const QueueOpBase&) = delete;
  QueueOpBase& operator=(const QueueOpBase&) = delete;
  // Moved only before it is awaited (into a Coro, a WaitFor): nothing to move.
  QueueOpBase(QueueOpBase&&) noexcept {}
  ~QueueOpBase() {
    // Destroyed while waiting (its frame destroyed by a closing loop):
    // the task must not ask it any more.
    if (task_ && task_->wake_filter() == this) task_->set_wake_filter(nullptr);
  }

  template <class P>
  void await_suspend(std::coroutine_handle<P> h) {
    QueueCore& s = derived().core();
    if (s.is_shutdown()) throw QueueShutDown();
    if constexpr (std::is_base_of_v<PromiseBase, P>) {
      parent_ = &h.promise();
      frame_.emplace(Derived::kFrameFunction);
      frame_->site_.file = __FILE__;
      frame_->site_.line = __LINE__;
      parent_->child_ = &*frame_;
    }
    h_ = h;
    wait();
  }

 protected:
  T resume_waited() {
    if (parent_) parent_->child_ = nullptr;
    if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
    QueueCore& s = derived().core();
    try {
      after_resume(task_);
      waiter_.state()->check_result();
    } catch (...) {
      s.abandon_waiter(Derived::kOp, waiter_);
      throw;
    }
    // resume_now() let the task go on with the queue still empty (full):
    // it was shut down meanwhile.
    if (derived().blocked()) throw QueueShutDown();
    return derived().finish();
  }
  bool waited() const { return task_ != nullptr; }

 private:
  Derived& derived() { return *static_cast<Derived*>(this); }

  // A new waiter at the back, and the task parked on it.
  void wait() {
    QueueCore& s = derived().core();
    waiter_ = s.add_waiter(Derived::kOp);
    try {
      task_ = static_cast<TaskBase*>(suspend_on(*waiter_.state(), h_));
    } catch (...) {
      s.abandon_waiter(Derived::kOp, waiter_);  // not in a task: nobody waits
      throw;
    }
    task_->set_wake_filter(this);
  }

  // The task woke (its step is about to resume the awaiting coroutine):
  // the coroutine version's loop condition, evaluated where its `co_await
  // waiter` returns.
  bool resume_now() override {
    if (!waiter_.done() || waiter_.cancelled()) return true;  // resume_waited raises
    if (!derived().blocked() || derived().core().is_shutdown()) return true;
    try {
      wait();
    } catch (...) {
      error_ = std::current_exception();  // raised when the coroutine resumes
      return true;
    }
    return false;
  }

  std::coroutine_handle<> h_;
  TaskBase* task_ = nullptr;
  Future<void> waiter_;
  std::exception_ptr error_;
  PromiseBase* parent_ = nullptr;
  std::optional<PromiseBase> frame_;  // what the call graph shows while it waits
};

template <class T>
class [[nodiscard]] QueueGet : public QueueOpBase<QueueGet<T>, T> {
 public:
  explicit QueueGet(Ref<QueueState<T>> s) : s_(std::move(s)) {}
  bool await_ready() const noexcept { return s_->size() != 0; }
  T await_resume() {
    if (!this->waited()) return s_->get_nowait();
    return this->resume_waited();
  }
  Coro<T> as_coro() && { return queue_get<T>(std::move(s_)); }
  operator Coro<T>() && { return std::move(*this).as_coro(); }

 private:
  friend class QueueOpBase<QueueGet<T>, T>;
  static constexpr QueueCore::Op kOp = QueueCore::Op::kGet;
  static constexpr const char* kFrameFunction = "queue_get";
  QueueCore& core() { return *s_; }
  bool blocked() const { return s_->size() == 0; }
  T finish() { return s_->get_nowait(); }
  Ref<QueueState<T>> s_;
};

template <class T>
class [[nodiscard]] QueuePut : public QueueOpBase<QueuePut<T>, void> {
 public:
  QueuePut(Ref<QueueState<T>> s, T item) : s_(std::move(s)), item_(std::move(item)) {}
  bool await_ready() {
    if (s_->full() || s_->is_shutdown()) return false;  // it waits or raises
    s_->put_nowait(std::move(*item_));
    item_.reset();
    return true;
  }
  void await_resume() {
    if (this->waited()) this->resume_waited();
  }
  Coro<void> as_coro() && { return queue_put<T>(std::move(s_), std::move(*item_)); }
  operator Coro<void>() && { return std::move(*this).as_coro(); }

 private:
  friend class QueueOpBase<QueuePut<T>, void>;
  static constexpr QueueCore::Op kOp = QueueCore::Op::kPut;
  static constexpr const char* kFrameFunction = "queue_put";
  QueueCore& core() { return *s_; }
  bool blocked() const { return s_->full(); }
  void finish() {
    s_->put_nowait(std::move(*item_));
    item_.reset();
  }
  Ref<QueueState<T>> s_;
  std::optional<T> item_;
};

}  // namespace internal

// A FIFO queue of T (asyncio.Queue).
//
//   twinloop::Queue<int> q(/*maxsize=*/2, "numbers");
//   co_await q.put(1);
//   int v = co_await q.get();
//
// maxsize <= 0 means unbounded (the one unbounded buffer in twinloop, as in
// asyncio: bound it when producers can outrun consumers). T must be
// move-constructible; get() returns the item moved out, so move-only types
// work. put()/get()/join() are lazy, like asyncio's coroutines: nothing
// happens until they are awaited or their task runs, so
// `create_task(q.get())` starts waiting at the task's first step. put() and
// get() return awaitables (QueuePut / QueueGet) that, awaited directly,
// complete without a coroutine frame when they need not wait, and convert
// to Coro<void> / Coro<T> wherever a Coro is taken (`Coro<T> c = q.get();`,
// create_task, gather, wait_for, shield, TaskGroup::create_task).
//
// Ordering: items come out in put order. Waiters wake in FIFO order: every
// put wakes exactly one waiting getter (the longest waiting), every get wakes
// exactly one waiting putter. A woken waiter runs one loop iteration later,
// and then re-checks the queue (another task may have taken the item or the
// slot meanwhile; it then waits again, at the back).
//
// Cancellation: a get() or put() cancelled while it waits raises
// CancelledError, removes its waiter, and takes nothing: no item is lost and
// nothing is put. If it had already been woken when the cancellation
// arrived, it passes the wake-up on to the next waiter (asyncio's
// test_get_cancel_drop_*, test_put_cancel_drop). A join() cancelled while it
// waits just stops waiting.
//
// join()/task_done(): the unfinished count goes up by one per successful put
// and down by one per task_done(); join() returns once it is 0 (at once if it
// already is), regardless of whether the queue is empty.
//
// shutdown(immediate): afterwards put()/put_nowait() raise QueueShutDown, and
// blocked putters wake and raise it; blocked getters wake, and get() raises
// only once the queue is empty (immediately with immediate=true, which drains
// the queue, counts each drained item done, and releases join() if the count
// reaches 0; items taken but not task_done'd still count). A non-immediate
// shutdown does not release join().
//
// Simulated loop: a queue makes no choices of its own; the order in which
// woken tasks run is the ready queue's FIFO order, so a run is a function of
// the seed. A task blocked forever on a queue shows up in DeadlockError as
// waiting on "<Future pending Queue.get() on 'name'>" (or put()/join()).
//
// Deliberate differences from asyncio:
//  - an optional name, shown in waiter labels and describe();
//  - put_nowait(T&&) moves the item only once it is accepted, so on
//    QueueFull/QueueShutDown a move-only item stays with the caller;
//  - describe() (asyncio's str()) shows qsize=N, not the items;
//  - the queue's state is shared with its pending operations: destroying
//    the Queue object while tasks wait on it is safe (they wait on until
//    cancelled).
// The Queue object itself must be used on its loop's thread only. Copying
// is disabled; a moved-from queue may only be destroyed or assigned to.
template <class T>
class Queue {
 public:
  using value_type = T;

  explicit Queue(int64_t maxsize = 0, std::string name = {})
      : Queue(internal::make_ref<internal::FifoState<T>>(maxsize, std::move(name), "Queue")) {}
  virtual ~Queue() = default;
  Queue(const Queue&) = delete;
  Queue& operator=(const Queue&) = delete;
  Queue(Queue&&) noexcept = default;
  Queue& operator=(Queue&&) noexcept = default;

  // Puts `item`, first waiting while the queue is full. QueueShutDown if
  // the queue is (or, while waiting, gets) shut down. Returns an awaitable
  // that converts to Coro<void> (see QueueOpBase): `co_await q.put(x)`,
  // `create_task(q.put(x))`, `wait_for(q.put(x), t)` all work; nothing is
  // put until it is awaited or its task runs.
  internal::QueuePut<T> put(T item) { return internal::QueuePut<T>(state_, std::move(item)); }
  // Removes and returns an item, first waiting while the queue is empty.
  // QueueShutDown if the queue is shut down and empty. An awaitable that
  // converts to Coro<T>, as put().
  internal::QueueGet<T> get() { return internal::QueueGet<T>(state_); }

  // QueueShutDown if shut down, else QueueFull if full. The rvalue overload
  // leaves `item` untouched when it throws.
  void put_nowait(const T& item) { state_->put_nowait(item); }
  void put_nowait(T&& item) { state_->put_nowait(std::move(item)); }
  // QueueShutDown if shut down and empty, else QueueEmpty if empty.
  T get_nowait() { return state_->get_nowait(); }

  size_t qsize() const { return state_->size(); }
  bool empty() const { return state_->size() == 0; }
  // Never true when unbounded.
  bool full() const { return state_->full(); }
  int64_t maxsize() const { return state_->maxsize(); }

  // Waits until every item put has been task_done()'d.
  Coro<void> join() { return internal::join_queue(internal::Ref<internal::QueueCore>(state_)); }
  // std::invalid_argument("task_done() called too many times") below 0.
  void task_done() { state_->task_done(); }
  void shutdown(bool immediate = false) { state_->shutdown(immediate); }
  bool is_shutdown() const { return state_->is_shutdown(); }

  const std::string& name() const { return state_->name(); }
  // "<Queue 'jobs' maxsize=2 qsize=1 _getters[1] tasks=3 shutdown>"
  // (asyncio's str(), with qsize instead of the items).
  std::string describe() const { return state_->describe(); }

 protected:
  explicit Queue(internal::Ref<internal::QueueState<T>> state) : state_(std::move(state)) {}

 private:
  internal::Ref<internal::QueueState<T>> state_;
};

// A queue that hands out the lowest item first (asyncio.PriorityQueue):
// `compare(a, b)` true means a comes out before b. std::greater<T> makes it
// highest first; `PriorityQueue<std::pair<int, Job>, ByFirst>` orders by a
// priority field only.
//
// Equal items (neither compares before the other) come out in put order.
// asyncio's heapq leaves their order to the heap algorithm; breaking ties by
// insertion order is a deliberate, deterministic refinement. `compare` must
// not throw. Everything else (blocking, cancellation, join, shutdown,
// simulated-loop behaviour) is Queue's.
template <class T, class Compare = std::less<T>>
class PriorityQueue : public Queue<T> {
 public:
  explicit PriorityQueue(int64_t maxsize = 0, std::string name = {}, Compare compare = Compare())
      : Queue<T>(internal::make_ref<internal::PriorityState<T, Compare>>(maxsize, std::move(name),
                                                                         std::move(compare))) {}
};

// A queue that hands out the most recently put item first
// (asyncio.LifoQueue). Waiters still wake in FIFO order; everything but the
// item order is Queue's.
template <class T>
class LifoQueue : public Queue<T> {
 public:
  explicit LifoQueue(int64_t maxsize = 0, std::string name = {})
      : Queue<T>(internal::make_ref<internal::LifoState<T>>(maxsize, std::move(name), "LifoQueue")) {}
};

}  // namespace twinloop

#endif  // TWINLOOP_API_QUEUES_H_
