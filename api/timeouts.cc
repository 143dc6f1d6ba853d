#include "twinloop/api/timeouts.h"

#include <stdexcept>
#include <utility>

#include "twinloop/api/future.h"

namespace twinloop {

namespace internal {

void TimeoutState::enter() {
  if (state_ != Timeout::State::kCreated) throw std::runtime_error("Timeout has already been entered");
  TaskBase* task = current_task_or_throw("Timeout");
  task_ = task;
  state_ = Timeout::State::kEntered;
  cancelling_ = task->cancelling();
  arm();
}

// The timer callbacks hold `this` plainly: the destructor cancels them.
void TimeoutState::arm() {
  handle_.cancel();
  handle_ = TimerHandle();
  soon_.cancel();
  soon_ = Handle();
  if (when_ == absl::InfiniteFuture()) return;
  EventLoop& loop = get_running_loop();
  if (when_ <= loop.time()) {
    soon_ = loop.call_soon([this] { on_timeout(); });  // already due: asyncio's call_soon
  } else {
    handle_ = loop.call_at(when_, [this] { on_timeout(); });
  }
}

// CPython 3.14 timeouts.py Timeout.reschedule: outside ENTERED, "Timeout has
// not been entered" in CREATED, else f"Cannot change state of
// {self._state.value} Timeout".
void TimeoutState::reschedule(absl::Time when) {
  switch (state_) {
    case Timeout::State::kEntered:
      break;
    case Timeout::State::kCreated:
      throw std::runtime_error("Timeout has not been entered");
    case Timeout::State::kExpiring:
      throw std::runtime_error("Cannot change state of expiring Timeout");
    case Timeout::State::kExpired:
      throw std::runtime_error("Cannot change state of expired Timeout");
    case Timeout::State::kExited:
      throw std::runtime_error("Cannot change state of finished Timeout");
  }
  when_ = when;
  arm();
}

void TimeoutState::on_timeout() {
  task_->future().cancel();
  state_ = Timeout::State::kExpiring;
  handle_ = TimerHandle();
  soon_ = Handle();
}

void TimeoutState::exit(std::exception_ptr error) {
  handle_.cancel();
  handle_ = TimerHandle();
  soon_.cancel();
  soon_ = Handle();
  if (state_ == Timeout::State::kExpiring) {
    state_ = Timeout::State::kExpired;
    // Only if no new cancel request arrived since entry is this our doing.
    if (task_->uncancel() <= cancelling_ && error && is_cancelled_error(error)) {
      try {
        std::rethrow_exception(error);
      } catch (const CancelledError&) {
        std::throw_with_nested(TimeoutError());
      }
    }
  } else if (state_ == Timeout::State::kEntered) {
    state_ = Timeout::State::kExited;
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace internal

Timeout::Timeout(absl::Time when) : state_(internal::make_ref<internal::TimeoutState>(when)) {}

absl::Time Timeout::when() const { return state_->when_; }
void Timeout::reschedule(absl::Time when) { state_->reschedule(when); }
bool Timeout::expired() const {
  return state_->state_ == State::kExpiring || state_->state_ == State::kExpired;
}
Timeout::State Timeout::state() const { return state_->state_; }
void Timeout::enter() { state_->enter(); }
void Timeout::exit(std::exception_ptr error) { state_->exit(std::move(error)); }

Timeout timeout(absl::Duration delay) {
  EventLoop& loop = get_running_loop();
  if (delay == absl::InfiniteDuration()) return Timeout(absl::InfiniteFuture());
  return Timeout(loop.time() + delay);
}

Timeout timeout_at(absl::Time when) { return Timeout(when); }

namespace internal {

Coro<void> cancel_and_wait(Ref<FutureBase> f) {
  Future<void> waiter = create_future<void>();
  uint64_t token = f->add_done_callback([waiter](FutureBase&) mutable {
    if (!waiter.done()) waiter.set_result();
  });
  try {
    f->cancel();
    co_await waiter;
  } catch (...) {
    f->remove_done_callback(token);
    throw;
  }
  f->remove_done_callback(token);
}

}  // namespace internal
}  // namespace twinloop
