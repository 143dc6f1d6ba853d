#include "twinloop/api/task_group.h"

namespace twinloop::internal {

void TaskGroupState::enter() {
  if (entered_) throw std::runtime_error("TaskGroup has already been entered");
  parent_ = current_task_or_throw("TaskGroup");
  entered_ = true;
}

void TaskGroupState::check_can_create() const {
  if (!entered_) throw std::runtime_error("TaskGroup has not been entered");
  if (exiting_ && tasks_.empty()) throw std::runtime_error("TaskGroup is finished");
  if (aborting_) throw std::runtime_error("TaskGroup is shutting down");
}

void TaskGroupState::adopt(FutureBase& task) {
  tasks_.emplace_back(&task);
  task.add_awaited_by(parent_->id());  // call graph: children awaited by the parent
  // Always via the callback, even for a task that finished eagerly
  // (gh-128550): its error must still abort the group.
  Ref<TaskGroupState> self(this);
  task.add_done_callback([self](FutureBase& t) { self->on_task_done(t); });
}

void TaskGroupState::abort() {
  aborting_ = true;
  for (auto& t : tasks_) {
    if (!t->done()) t->cancel();
  }
}

void TaskGroupState::on_task_done(FutureBase& task) {
  task.discard_awaited_by(parent_->id());
  for (auto it = tasks_.begin(); it != tasks_.end(); ++it) {
    if (it->get() == &task) {
      tasks_.erase(it);
      break;
    }
  }
  if (on_completed_ && tasks_.empty() && !on_completed_->done()) on_completed_->set_result();
  if (task.cancelled()) return;
  std::exception_ptr e = task.exception();
  if (!e) return;
  errors_.push_back(e);
  if (parent_->future().done()) {
    ExceptionContext c = ExceptionContext::of(
        "Task has errored out but its parent task is already completed", e);
    c.task = task.as_task() ? task.as_task()->get_name() : std::string();
    task.loop().call_exception_handler(c);
    return;
  }
  if (!aborting_ && !parent_cancel_requested_) {
    // Cancel the parent to interrupt the body; exit() takes this back.
    abort();
    parent_cancel_requested_ = true;
    parent_->future().cancel();
  }
}

Coro<void> TaskGroupState::exit(std::exception_ptr error) {
  Ref<TaskGroupState> keep(this);
  exiting_ = true;
  std::exception_ptr propagate_cancel = is_cancelled_error(error) ? error : nullptr;
  if (error && !aborting_) abort();
  while (!tasks_.empty()) {
    if (!on_completed_) on_completed_ = create_future<void>();
    bool cancelled = false;
    std::exception_ptr cancel;
    try {
      co_await *on_completed_;
    } catch (const CancelledError&) {
      cancelled = true;
      cancel = std::current_exception();
    }
    if (cancelled && !aborting_) {
      // The parent task is being cancelled from outside while children run.
      propagate_cancel = cancel;
      abort();
    }
    on_completed_.reset();
  }
  if (parent_cancel_requested_) {
    // We cancelled the parent: take it back; swallow it if it was the only one.
    if (parent_->uncancel() == 0) propagate_cancel = nullptr;
  }
  if (propagate_cancel && errors_.empty()) std::rethrow_exception(propagate_cancel);
  if (error && !is_cancelled_error(error)) errors_.push_back(error);
  if (!errors_.empty()) {
    // Keep the parent's cancel count stable if it is also cancelled from outside.
    if (parent_->cancelling() > 0) {
      parent_->uncancel();
      parent_->future().cancel();
    }
    std::vector<std::exception_ptr> errors = std::move(errors_);
    errors_.clear();
    throw ExceptionGroup("unhandled errors in a TaskGroup", std::move(errors));
  }
}

}  // namespace twinloop::internal
