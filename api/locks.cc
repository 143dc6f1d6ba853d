#include "twinloop/api/locks.h"

#include <algorithm>
#include <exception>
#include <limits>
#include <stdexcept>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"

// Each coroutine below follows its CPython 3.14 Lib/asyncio/locks.py
// counterpart statement by statement. C++ cannot co_await inside a catch
// handler, so `try: await fut finally: ...` becomes "catch into an
// exception_ptr, do the finally part, rethrow".

namespace twinloop {

namespace internal {

void remove_waiter(WaiterQueue& q, const Future<void>& fut) {
  if (!q.empty() && q.front() == fut) {  // the common case: FIFO wake-ups
    q.pop_front();
    return;
  }
  for (auto it = q.begin(); it != q.end(); ++it) {
    if (*it == fut) {
      q.erase(it);
      return;
    }
  }
}

std::string describe_primitive(const char* kind, const std::string& name, const std::string& extra) {
  if (name.empty()) return absl::StrCat("<", kind, " [", extra, "]>");
  return absl::StrCat("<", kind, " '", name, "' [", extra, "]>");
}

std::string waiter_label(const std::string& what, const std::string& name) {
  if (name.empty()) return what;
  return absl::StrCat(what, " on '", name, "'");
}

void report_guard_release_failure(EventLoop* loop, std::exception_ptr error) noexcept {
  try {
    if (!loop) loop = running_loop_or_null();
    if (!loop) return;
    loop->call_exception_handler(
        ExceptionContext::of("exception releasing a primitive in LockGuard's destructor", std::move(error)));
  } catch (...) {
    // Nothing sensible is left to do in a destructor.
  }
}

namespace {

bool all_cancelled(const WaiterQueue& q) {
  for (const Future<void>& f : q) {
    if (!f.cancelled()) return false;
  }
  return true;
}

std::string with_waiters(std::string extra, size_t waiters) {
  if (waiters > 0) absl::StrAppend(&extra, ", waiters:", waiters);
  return extra;
}

}  // namespace
}  // namespace internal

// ---- Lock

Lock::Lock(std::string name) : Lock(name, internal::waiter_label("Lock.acquire()", name)) {}

Lock::Lock(std::string name, std::string label) : name_(std::move(name)), label_(internal::make_ref<internal::Label>(std::move(label))) {}

Coro<bool> Lock::acquire() {
  // Fair scheduling: jumping the queue is allowed only when every queued
  // waiter was cancelled.
  if (!locked_ && internal::all_cancelled(waiters_)) {
    locked_ = true;
    co_return true;
  }
  EventLoop& loop = loop_.get([this] { return describe(); });
  Future<void> fut = create_future<void>(loop);
  fut.set_label(label_);
  waiters_.push_back(fut);
  std::exception_ptr error;
  try {
    co_await fut;
  } catch (...) {
    error = std::current_exception();
  }
  internal::remove_waiter(waiters_, fut);
  if (error) {
    // If the lock is not claimed (nor about to be claimed by us) and tasks
    // are queued, make sure the one at the head will run: we may have been
    // woken and then cancelled.
    if (is_cancelled_error(error) && !locked_) wake_up_first();
    std::rethrow_exception(error);
  }
  locked_ = true;
  co_return true;
}

void Lock::release() {
  if (!locked_) throw std::runtime_error("Lock is not acquired.");
  locked_ = false;
  wake_up_first();
}

void Lock::wake_up_first() {
  if (waiters_.empty()) return;
  Future<void>& fut = waiters_.front();
  // done() means the waiter is already set to wake up (or cancelled).
  if (!fut.done()) fut.set_result();
}

Coro<LockGuard<Lock>> Lock::scoped() {
  if (!locked_ && internal::all_cancelled(waiters_)) {
    locked_ = true;  // acquire()'s fast path, without its coroutine frame
  } else {
    co_await acquire();
  }
  co_return LockGuard<Lock>(*this);
}

std::string Lock::describe() const {
  return internal::describe_primitive("Lock", name_,
                                      internal::with_waiters(locked_ ? "locked" : "unlocked", waiters_.size()));
}

// ---- Event

Event::Event(std::string name) : name_(std::move(name)), label_(internal::make_ref<internal::Label>(internal::waiter_label("Event.wait()", name_))) {}

Coro<bool> Event::wait() {
  if (value_) co_return true;
  EventLoop& loop = loop_.get([this] { return describe(); });
  Future<void> fut = create_future<void>(loop);
  fut.set_label(label_);
  waiters_.push_back(fut);
  std::exception_ptr error;
  try {
    co_await fut;
  } catch (...) {
    error = std::current_exception();
  }
  internal::remove_waiter(waiters_, fut);
  if (error) std::rethrow_exception(error);
  co_return true;
}

void Event::set() {
  if (value_) return;
  value_ = true;
  for (Future<void>& fut : waiters_) {
    if (!fut.done()) fut.set_result();
  }
}

std::string Event::describe() const {
  return internal::describe_primitive("Event", name_,
                                      internal::with_waiters(value_ ? "set" : "unset", waiters_.size()));
}

// ---- Condition

Condition::Condition(std::string name)
    : Condition(name, internal::waiter_label("Condition.wait()", name),
                internal::waiter_label("Condition.acquire()", name)) {}

Condition::Condition(std::string name, std::string wait_label, std::string lock_label)
    : name_(std::move(name)),
      label_(internal::make_ref<internal::Label>(std::move(wait_label))),
      own_lock_(new Lock(name_, std::move(lock_label))),
      lock_(own_lock_.get()) {}

Condition::Condition(Lock& lock, std::string name)
    : name_(std::move(name)), label_(internal::make_ref<internal::Label>(internal::waiter_label("Condition.wait()", name_))), lock_(&lock) {}

Coro<LockGuard<Condition>> Condition::scoped() {
  co_await acquire();
  co_return LockGuard<Condition>(*this);
}

Coro<bool> Condition::wait() {
  if (!locked()) throw std::runtime_error("cannot wait on un-acquired lock");
  EventLoop& loop = loop_.get([this] { return describe(); });
  Future<void> fut = create_future<void>(loop);
  fut.set_label(label_);
  release();
  // What wait() raises: the wait's exception, replaced by one raised while
  // re-acquiring (Python's `finally` semantics).
  std::exception_ptr error;
  waiters_.push_back(fut);
  try {
    co_await fut;
  } catch (...) {
    error = std::current_exception();
  }
  internal::remove_waiter(waiters_, fut);
  // Re-acquire the lock even if cancelled. Only CancelledError makes us
  // retry: any other error must not make us spin.
  for (;;) {
    std::exception_ptr acquire_error = co_await reacquire();
    if (!acquire_error) break;
    error = acquire_error;  // the most recent one is re-raised
    if (!is_cancelled_error(error)) break;
  }
  if (error) {
    // The error may have arrived after this task was notified: pass the
    // notification on. This may cause a spurious wake-up, which the
    // condition-variable protocol allows.
    notify_waiters(1);
    std::rethrow_exception(error);
  }
  co_return true;
}

Coro<std::exception_ptr> Condition::reacquire() {
  std::exception_ptr error;
  try {
    co_await lock_->acquire();
  } catch (...) {
    error = std::current_exception();
  }
  co_return error;
}

void Condition::notify(int n) {
  if (!locked()) throw std::runtime_error("cannot notify on un-acquired lock");
  notify_waiters(n);
}

void Condition::notify_waiters(int n) {
  int woken = 0;
  for (Future<void>& fut : waiters_) {
    if (woken >= n) break;
    if (!fut.done()) {
      ++woken;
      fut.set_result();
    }
  }
}

void Condition::notify_all() {
  notify(static_cast<int>(std::min<size_t>(waiters_.size(), std::numeric_limits<int>::max())));
}

std::string Condition::describe() const {
  return internal::describe_primitive("Condition", name_,
                                      internal::with_waiters(locked() ? "locked" : "unlocked", waiters_.size()));
}

// ---- Semaphore

Semaphore::Semaphore(int value, std::string name) : Semaphore(value, std::move(name), "Semaphore") {}

Semaphore::Semaphore(int value, std::string name, const char* kind)
    : kind_(kind),
      name_(std::move(name)),
      label_(internal::make_ref<internal::Label>(internal::waiter_label(absl::StrCat(kind, ".acquire()"), name_))),
      value_(value) {
  if (value < 0) throw std::invalid_argument("Semaphore initial value must be >= 0");
}

bool Semaphore::locked() const {
  // Due to the count, or to FIFO order (queued tasks go first).
  return value_ == 0 || !internal::all_cancelled(waiters_);
}

Coro<bool> Semaphore::acquire() {
  if (!locked()) {
    // FIFO: taken at once only when nobody (not cancelled) is queued.
    --value_;
    co_return true;
  }
  EventLoop& loop = loop_.get([this] { return describe(); });
  Future<void> fut = create_future<void>(loop);
  fut.set_label(label_);
  waiters_.push_back(fut);
  std::exception_ptr error;
  try {
    co_await fut;
  } catch (...) {
    error = std::current_exception();
  }
  internal::remove_waiter(waiters_, fut);
  if (error && is_cancelled_error(error) && fut.done() && !fut.cancelled()) {
    // wake_up_next() reserved a slot for us, but we are not taking it:
    // give it back (the loop below hands it to someone else).
    ++value_;
  }
  // New waiters may have queued behind us because of FIFO order: wake as
  // many as there are free slots.
  while (value_ > 0) {
    if (!wake_up_next()) break;
  }
  if (error) std::rethrow_exception(error);
  co_return true;
}

void Semaphore::release() {
  ++value_;
  wake_up_next();
}

bool Semaphore::wake_up_next() {
  for (Future<void>& fut : waiters_) {
    if (!fut.done()) {
      --value_;
      fut.set_result();
      return true;
    }
  }
  return false;
}

Coro<LockGuard<Semaphore>> Semaphore::scoped() {
  co_await acquire();
  co_return LockGuard<Semaphore>(*this);
}

std::string Semaphore::describe() const {
  std::string extra = locked() ? std::string("locked") : absl::StrCat("unlocked, value:", value_);
  return internal::describe_primitive(kind_, name_, internal::with_waiters(std::move(extra), waiters_.size()));
}

// ---- BoundedSemaphore

BoundedSemaphore::BoundedSemaphore(int value, std::string name)
    : Semaphore(value, std::move(name), "BoundedSemaphore"), bound_value_(value) {}

void BoundedSemaphore::release() {
  if (value_ >= bound_value_) throw std::invalid_argument("BoundedSemaphore released too many times");
  Semaphore::release();
}

// ---- Barrier

namespace {
const char* state_name(Barrier::State s) {
  switch (s) {
    case Barrier::State::kFilling:
      return "filling";
    case Barrier::State::kDraining:
      return "draining";
    case Barrier::State::kResetting:
      return "resetting";
    case Barrier::State::kBroken:
      return "broken";
  }
  return "?";
}
}  // namespace

Barrier::Barrier(int parties, std::string name)
    : name_(std::move(name)),
      cond_(name_, internal::waiter_label("Barrier.wait()", name_), internal::waiter_label("Barrier.wait()", name_)),
      parties_(parties) {
  if (parties < 1) throw std::invalid_argument("parties must be > 0");
}

Coro<int> Barrier::wait() {
  LockGuard<Condition> held = co_await cond_.scoped();
  co_await block();  // while the barrier drains or resets
  const int index = count_++;
  std::exception_ptr error;
  try {
    if (index + 1 == parties_) {
      release_waiters();
    } else {
      co_await wait_released();
    }
  } catch (...) {
    error = std::current_exception();
  }
  --count_;
  leave();  // wakes tasks waiting for the barrier to drain
  if (error) std::rethrow_exception(error);
  co_return index;
}

Coro<void> Barrier::block() {
  auto ready = [this] { return state_ != State::kDraining && state_ != State::kResetting; };
  co_await cond_.wait_for(ready);
  if (state_ == State::kBroken) throw BrokenBarrierError("Barrier aborted");
}

void Barrier::release_waiters() {
  // Tasks arriving from now on block until the barrier has drained.
  state_ = State::kDraining;
  cond_.notify_all();
}

Coro<void> Barrier::wait_released() {
  auto filled = [this] { return state_ != State::kFilling; };
  co_await cond_.wait_for(filled);
  if (state_ == State::kBroken || state_ == State::kResetting)
    throw BrokenBarrierError("Abort or reset of barrier");
}

void Barrier::leave() {
  if (count_ == 0) {
    if (state_ == State::kResetting || state_ == State::kDraining) state_ = State::kFilling;
    cond_.notify_all();
  }
}

Coro<void> Barrier::reset() {
  LockGuard<Condition> held = co_await cond_.scoped();
  if (count_ > 0) {
    // Waiting tasks raise BrokenBarrierError as they leave; the last one
    // makes the barrier FILLING again.
    if (state_ != State::kResetting) state_ = State::kResetting;
  } else {
    state_ = State::kFilling;
  }
  cond_.notify_all();
}

Coro<void> Barrier::abort() {
  LockGuard<Condition> held = co_await cond_.scoped();
  state_ = State::kBroken;
  cond_.notify_all();
}

std::string Barrier::describe() const {
  std::string extra = state_name(state_);
  if (!broken()) absl::StrAppend(&extra, ", waiters:", n_waiting(), "/", parties_);
  return internal::describe_primitive("Barrier", name_, extra);
}

}  // namespace twinloop
