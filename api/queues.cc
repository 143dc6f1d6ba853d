#include "twinloop/api/queues.h"

#include "twinloop/api/locks.h"

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>

#include "absl/strings/str_cat.h"

namespace twinloop::internal {

QueueCore::~QueueCore() = default;

void QueueCore::throw_put_refused() const {
  if (is_shutdown_) throw QueueShutDown();
  throw QueueFull();
}

void QueueCore::overfull() {
  std::fprintf(stderr, "twinloop: queue invariant broken: a bounded queue holds more than maxsize items\n");
  std::abort();
}

void QueueCore::throw_empty() const {
  if (is_shutdown_) throw QueueShutDown();
  throw QueueEmpty();
}

void QueueCore::task_done() {
  if (unfinished_tasks_ <= 0) throw std::invalid_argument("task_done() called too many times");
  if (--unfinished_tasks_ == 0) set_finished();
}

void QueueCore::shutdown(bool immediate) {
  is_shutdown_ = true;
  if (immediate) {
    while (size() != 0) {
      drop_one();
      if (unfinished_tasks_ > 0) --unfinished_tasks_;
    }
    if (unfinished_tasks_ == 0) set_finished();
  }
  // Every getter re-checks for emptiness (and raises QueueShutDown); every
  // putter re-checks and raises.
  while (!getters_.empty()) {
    Future<void> getter = std::move(getters_.front());
    getters_.pop_front();
    if (!getter.done()) getter.set_result();
  }
  while (!putters_.empty()) {
    Future<void> putter = std::move(putters_.front());
    putters_.pop_front();
    if (!putter.done()) putter.set_result();
  }
}

std::string QueueCore::describe() const {
  std::string out = absl::StrCat("<", kind_);
  if (!name_.empty()) absl::StrAppend(&out, " '", name_, "'");
  absl::StrAppend(&out, " maxsize=", maxsize_);
  if (size() != 0) absl::StrAppend(&out, " qsize=", size());
  if (!getters_.empty()) absl::StrAppend(&out, " _getters[", getters_.size(), "]");
  if (!putters_.empty()) absl::StrAppend(&out, " _putters[", putters_.size(), "]");
  if (unfinished_tasks_ != 0) absl::StrAppend(&out, " tasks=", unfinished_tasks_);
  if (is_shutdown_) absl::StrAppend(&out, " shutdown");
  absl::StrAppend(&out, ">");
  return out;
}

void QueueCore::make_label(Op op) {
  const char* what = op == Op::kGet ? ".get()" : op == Op::kPut ? ".put()" : ".join()";
  labels_[static_cast<int>(op)] =
      make_ref<Label>(name_.empty() ? absl::StrCat(kind_, what) : absl::StrCat(kind_, what, " on '", name_, "'"));
}

void QueueCore::throw_other_loop() const {
  throw std::runtime_error(absl::StrCat(describe(), " is bound to a different event loop"));
}

Future<void> QueueCore::add_waiter(Op op) {
  EventLoop& loop = get_running_loop();
  if (!loop_) [[unlikely]] {
    loop_ = Ref<EventLoop>(&loop);
  } else if (loop_.get() != &loop) [[unlikely]] {
    throw_other_loop();
  }
  Future<void> waiter = create_future<void>(loop);
  waiter.set_label(label(op));
  (op == Op::kGet ? getters_ : op == Op::kPut ? putters_ : joiners_).push_back(waiter);
  return waiter;
}

void QueueCore::abandon_waiter(Op op, Future<void>& waiter) {
  if (op == Op::kJoin) {
    remove_waiter(joiners_, waiter);  // Event.wait's `finally`
    return;
  }
  waiter.cancel();  // in case it is still pending
  // It may be gone already: popped by _wakeup_next or by shutdown.
  Waiters& waiters = op == Op::kGet ? getters_ : putters_;
  remove_waiter(waiters, waiter);
  // Woken (not cancelled) but leaving: the wake-up must go to the next in
  // line, or an item (or a free slot) would wait with nobody told.
  const bool can_proceed = op == Op::kGet ? size() != 0 : !full();
  if (can_proceed && !waiter.cancelled()) wakeup_next(waiters);
}

void QueueCore::wakeup_next(Waiters& waiters) {
  while (!waiters.empty()) {
    Future<void> waiter = std::move(waiters.front());
    waiters.pop_front();
    if (!waiter.done()) {
      waiter.set_result();
      break;
    }
  }
}


void QueueCore::forget_joiner(const Future<void>& waiter) { remove_waiter(joiners_, waiter); }

void QueueCore::set_finished() {
  // Event.set(): wake every waiter; each removes itself when it resumes.
  for (Future<void>& joiner : joiners_) {
    if (!joiner.done()) joiner.set_result();
  }
}

Coro<void> join_queue(Ref<QueueCore> s) {
  if (s->unfinished_tasks() == 0) co_return;
  Future<void> waiter = s->add_waiter(QueueCore::Op::kJoin);
  std::exception_ptr error;
  try {
    co_await waiter;
  } catch (...) {
    error = std::current_exception();
  }
  if (error) {
    s->abandon_waiter(QueueCore::Op::kJoin, waiter);
    std::rethrow_exception(error);
  }
  s->forget_joiner(waiter);
}

}  // namespace twinloop::internal
