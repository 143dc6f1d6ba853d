#include "api/timeouts.h"

#include "api/future.h"

namespace twinloop {

Timeout timeout(absl::Duration delay) {
  EventLoop& loop = get_running_loop();
  if (delay == absl::InfiniteDuration()) return Timeout(absl::InfiniteFuture());
  return Timeout(loop.time() + delay);
}

Timeout timeout_at(absl::Time when) { return Timeout(when); }

void Timeout::enter() {
  if (state_ != State::kCreated) throw std::runtime_error("Timeout has already been entered");
  internal::TaskBase* task = internal::current_task_or_throw("Timeout");
  task_ = task;
  state_ = State::kEntered;
  cancelling_ = task->cancelling();
  arm();
}

void Timeout::arm() {
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

void Timeout::reschedule(absl::Time when) {
  switch (state_) {
    case State::kEntered:
      break;
    case State::kCreated:
      throw std::runtime_error("Timeout has not been entered");
    case State::kExpiring:
    case State::kExpired:
      throw std::runtime_error("Cannot change state of expiring Timeout");
    case State::kExited:
      throw std::runtime_error("Cannot change state of finished Timeout");
  }
  when_ = when;
  arm();
}

void Timeout::on_timeout() {
  task_->future().cancel();
  state_ = State::kExpiring;
  handle_ = TimerHandle();
  soon_ = Handle();
}

void Timeout::exit(std::exception_ptr error) {
  handle_.cancel();
  handle_ = TimerHandle();
  soon_.cancel();
  soon_ = Handle();
  if (state_ == State::kExpiring) {
    state_ = State::kExpired;
    // Only if no new cancel request arrived since entry is this our doing.
    if (task_->uncancel() <= cancelling_ && error && is_cancelled_error(error)) {
      try {
        std::rethrow_exception(error);
      } catch (const CancelledError&) {
        std::throw_with_nested(TimeoutError());
      }
    }
  } else if (state_ == State::kEntered) {
    state_ = State::kExited;
  }
  if (error) std::rethrow_exception(error);
}

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
