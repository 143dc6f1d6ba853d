#include "twinloop/api/task.h"
#include "twinloop/api/internal/loop_access.h"

#include <cstddef>
#include <stdexcept>

#include "absl/strings/str_cat.h"

namespace twinloop {
namespace internal {

TaskBase::TaskBase(FutureBase& self, EventLoop& loop, std::coroutine_handle<> root, std::string name,
                   const char* function)
    : root_(root),
      self_(&self),
      resume_point_(root),
      // asyncio's Task.__init__: self._context = contextvars.copy_context().
      context_(Ref<ContextState>::adopt(capture_context())),
      id_(internal::LoopAccess::next_task_id(loop)) {
  if (internal::LoopAccess::task_keys(loop)) {
    const TaskBase* parent = internal::LoopAccess::current_task(loop);
    key_ = loop.backend().task_key(parent ? parent->key_ : 0,
                                   name.empty() ? coroutine_function_name(function) : std::string_view(name));
  }
  if (!name.empty()) rare().name = std::move(name);
  internal::LoopAccess::register_task(loop, this);
}

std::string TaskBase::get_name() const { return rare_ && rare_->name ? *rare_->name : absl::StrCat("Task-", id_); }

void TaskBase::set_name(std::string name) { rare().name = std::move(name); }

std::string TaskBase::waiting_on() const {
  if (self_->done()) return "nothing (done)";
  if (sleeping_) return sleep_description(timer_.when_ns_);
  if (fut_waiter_) {
    if (TaskBase* t = fut_waiter_->as_task()) return absl::StrCat("task '", t->get_name(), "'");
    return fut_waiter_->describe();
  }
  if (!started_) return "its first step";
  return yielded_ ? "the next loop iteration" : "nothing";
}

bool TaskBase::cancel_task(std::string msg) {
  if (self_->done()) return false;
  ++num_cancels_requested_;
  // Keep fut_waiter_ after a successful cancel: if it is a task that ignores
  // the cancellation we may have to cancel it again (asyncio does the same).
  if (fut_waiter_ && fut_waiter_->cancel(msg)) return true;
  if (sleeping_ && !sleep_woken_) {
    // As SleepState::cancel: the sleep ends cancelled (the task wakes with
    // CancelledError(msg) next iteration) and its timer is cancelled.
    sleep_woken_ = true;
    sleep_cancelled_ = true;
    if (!msg.empty()) {
      rare().sleep_cancel_message = std::move(msg);
    } else if (rare_) {
      rare_->sleep_cancel_message.clear();
    }
    if (!timer_.cancelled_) cancel_own_timer();
    if (!loop().is_closed()) internal::LoopAccess::schedule(loop(), this);
    return true;
  }
  must_cancel_ = true;
  self_->set_cancel_message(std::move(msg));
  return true;
}

int TaskBase::uncancel() {
  if (num_cancels_requested_ > 0) {
    --num_cancels_requested_;
    // asyncio (3.13+): dropping the last request also withdraws a pending
    // throw-in (test_uncancel_resets_must_cancel).
    if (num_cancels_requested_ == 0) must_cancel_ = false;
  }
  return num_cancels_requested_;
}

void TaskBase::run() {
  if (self_->done()) return;
  // parked_ starts true, so that one flag covers the first step as well
  // (a compare and a branch per step, not two).
  TWINLOOP_CHECK(parked_, "a task steps only while parked (never while it runs)");
  TWINLOOP_DCHECK(!started_ || yielded_ || (fut_waiter_ && fut_waiter_->done()) || (sleeping_ && sleep_woken_),
                  "a task is resumed at most once per wake-up");
  bool throw_cancel = false;
  if (must_cancel_) {
    throw_cancel = true;
    must_cancel_ = false;
  }
  fut_waiter_.reset();
  sleeping_ = false;
  yielded_ = false;
  Ref<FutureBase> keep(self_);  // finishing drops the loop's reference
  EventLoop& loop = this->loop();
  TaskBase* prev = internal::LoopAccess::current_task(loop);
  // Current before the event is noted: a draw made by the observer (step
  // jitter) belongs to this task.
  internal::LoopAccess::set_current_task(loop, this);
  if (internal::LoopAccess::debug_timing(loop)) [[unlikely]] {
    run_timed(loop, throw_cancel);
  } else {
    internal::LoopAccess::note(loop, EventKind::kTaskStep, id_);
    step_in_context(throw_cancel);
  }
  internal::LoopAccess::set_current_task(loop, prev);
}

void TaskBase::abandon() {
  if (self_->done()) return;
  Ref<FutureBase> keep(self_);
  fut_waiter_.reset();
  wake_filter_ = nullptr;  // it lives in the frame
  if (root_) {
    // A crashed host's code never runs again, nor reports what it dropped
    // (a coroutine it created and never awaited).
    AbandoningScope abandoning;
    std::exchange(root_, nullptr).destroy();
  }
  must_cancel_ = false;
  self_->cancel_future("abandoned: its host crashed");
  internal::LoopAccess::unregister_task(loop(), this);
}

void TaskBase::destroy_frame_at_close() {
  fut_waiter_.reset();
  wake_filter_ = nullptr;  // it lives in the frame
  if (root_) std::exchange(root_, nullptr).destroy();
}

void TaskBase::run_timed(EventLoop& loop, bool throw_cancel) {
  // From before the event is noted: the simulated loop charges a step's
  // virtual CPU time (step jitter) when it sees the event.
  const int64_t t0 = loop.time_ns();
  internal::LoopAccess::note(loop, EventKind::kTaskStep, id_);
  step_in_context(throw_cancel);
  internal::LoopAccess::report_slow(loop, absl::StrCat("<Task name='", get_name(), "'>"), loop.time_ns() - t0);
}

void TaskBase::eager_start() {
  Ref<FutureBase> keep(self_);
  EventLoop& loop = this->loop();
  TaskBase* prev = internal::LoopAccess::current_task(loop);
  internal::LoopAccess::set_current_task(loop, this);
  internal::LoopAccess::note(loop, EventKind::kTaskStep, id_);
  step_in_context(false);
  internal::LoopAccess::set_current_task(loop, prev);
}

void TaskBase::step_switching_context(bool throw_cancel) {
  ContextScope context_scope(context_);
  step(throw_cancel);
}

[[gnu::always_inline]] inline void TaskBase::step(bool throw_cancel) {
  if (!started_) [[unlikely]] {
    started_ = true;
    if (throw_cancel) {
      cancel_before_first_step();
      return;
    }
  } else {
    pending_throw_ = throw_cancel;
  }
  if (wake_filter_) [[unlikely]] {
    if (!ask_wake_filter(throw_cancel)) return;  // parked again
  }
  parked_ = false;
  resume_point_.resume();
  if (root_.done()) {
    on_root_done();
    internal::LoopAccess::unregister_task(loop(), this);
    return;
  }
  if (!parked_) [[unlikely]] bad_yield();
}

bool TaskBase::ask_wake_filter(bool throw_cancel) {
  // A throw-in resumes at once: the awaitable's resume raises it.
  if (!throw_cancel && !wake_filter_->resume_now()) return false;
  wake_filter_ = nullptr;
  return true;
}

void TaskBase::cancel_before_first_step() {
  // Cancelled before its first step. Python throws CancelledError in at
  // the coroutine's first line, so its body never runs; we do the same by
  // not starting it.
  root_.destroy();
  root_ = nullptr;
  self_->cancel_future(self_->cancel_message());
  internal::LoopAccess::unregister_task(loop(), this);
}

void TaskBase::bad_yield() {
  // The coroutine suspended on something that is not a twinloop awaitable:
  // nothing would ever resume it (asyncio: "Task got bad yield").
  root_.destroy();
  root_ = nullptr;
  self_->set_exception(std::make_exception_ptr(
      std::runtime_error("Task got bad yield: a coroutine awaited something that is not a twinloop awaitable")));
  internal::LoopAccess::unregister_task(loop(), this);
}

void TaskBase::finish_with_exception(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const CancelledError& c) {
    // asyncio's Task.__step: `self._cancelled_exc = exc`, so awaiting the
    // task raises this very instance.
    self_->cancel_with_error(e, c.what());
  } catch (...) {
    self_->set_exception(std::move(e));
  }
}

bool TaskBase::consume_must_cancel_at_end() {
  if (!must_cancel_) return false;
  // Cancelled right before the coroutine returned (test_cancel_at_end).
  must_cancel_ = false;
  self_->cancel_future(self_->cancel_message());
  return true;
}

void TaskBase::block_on(FutureBase& f, std::coroutine_handle<> h) {
  resume_point_ = h;
  parked_ = true;
  fut_waiter_ = Ref<FutureBase>(&f);
  f.add_task_waiter(this);
  if (must_cancel_) [[unlikely]] cancel_what_it_awaits(f);
}

void TaskBase::cancel_what_it_awaits(FutureBase& f) {
  // A cancel requested while the task ran cancels what it awaits next
  // (test_cancel_awaited_task).
  if (f.cancel(self_->cancel_message())) must_cancel_ = false;
}

void TaskBase::sleep_on_own_timer(int64_t when_ns, std::coroutine_handle<> h) {
  EventLoop& loop = this->loop();
  resume_point_ = h;
  parked_ = true;
  sleeping_ = true;
  sleep_woken_ = false;
  sleep_cancelled_ = false;
  deadline_mode_ = false;
  timer_.id_ = internal::LoopAccess::next_handle_id(loop);
  arm_own_timer(when_ns);
}

void TaskBase::arm_own_timer(int64_t when_ns) {
  EventLoop& loop = this->loop();
  self_->add_ref();  // the heap's reference
  if (timer_busy_) [[unlikely]] {
    // Cancelled in the heap (own_timer_free): its old entry goes stale.
    internal::LoopAccess::rearm_timer(loop, &timer_, when_ns);
    return;
  }
  timer_busy_ = true;
  timer_.cancelled_ = false;
  internal::LoopAccess::add_timer(loop, &timer_, when_ns);
}

void TaskBase::cancel_own_timer() {
  if (timer_.in_heap_ && !loop().is_closed()) {
    internal::LoopAccess::cancel_timer_in_heap(loop(), &timer_);
  } else {
    timer_.cancelled_ = true;
  }
}

void TaskBase::after_own_sleep() {
  if (sleep_cancelled_) [[unlikely]] {
    sleep_cancelled_ = false;
    throw CancelledError(rare_ ? std::exchange(rare_->sleep_cancel_message, std::string()) : std::string());
  }
}

void TaskBase::arm_deadline(int64_t when_ns) {
  TWINLOOP_DCHECK(can_arm_deadline(), "a deadline is armed only on a free own timer");
  deadline_mode_ = true;
  deadline_expired_ = false;
  // The id the timeout's call_at handle would take, at the same point.
  timer_.id_ = internal::LoopAccess::next_handle_id(loop());
  arm_own_timer(when_ns);
}

bool TaskBase::disarm_deadline() {
  // Still armed: in the heap, or fired and queued but not yet run (then
  // run() finds it cancelled and does nothing, as a cancelled handle).
  if (deadline_mode_ && timer_busy_ && !timer_.cancelled_) cancel_own_timer();
  deadline_mode_ = false;
  return std::exchange(deadline_expired_, false);
}

// The timer is TaskBase::timer_: its task is at a fixed offset from it
// (no pointer back, 8 bytes less per task). offsetof on TaskBase, which is
// not standard-layout, is conditionally supported; g++ and clang support it
// for a class without virtual bases.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Winvalid-offsetof"
TaskBase* TaskSleepTimer::task() {
  return reinterpret_cast<TaskBase*>(reinterpret_cast<char*>(this) - offsetof(TaskBase, timer_));
}
#pragma GCC diagnostic pop

void TaskSleepTimer::run() {
  TaskBase* task = this->task();
  Ref<FutureBase> self = Ref<FutureBase>::adopt(task->self_);  // the queue's reference
  TWINLOOP_DCHECK(!in_heap_, "a timer runs only once it left the timer heap");
  task->timer_busy_ = false;
  if (cancelled_) return;
  EventLoop& loop = task->loop();
  if (task->deadline_mode_) [[unlikely]] {
    // As the timeout's handle: its callback (Timeout.on_timeout) cancels
    // the task and marks the deadline expired.
    internal::LoopAccess::note(loop, EventKind::kCallback, id_);
    task->deadline_expired_ = true;
    task->self_->cancel();
    return;
  }
  if (task->sleep_woken_) return;
  internal::LoopAccess::note(loop, EventKind::kCallback, id_);
  // As the SleepState's set_value: the task wakes next iteration (asyncio).
  task->sleep_woken_ = true;
  if (!loop.is_closed()) internal::LoopAccess::schedule(loop, task);
}

void TaskSleepTimer::drop() { release_timer(); }

void TaskSleepTimer::release_timer() {
  TaskBase* task = this->task();
  task->timer_busy_ = false;
  task->self_->release();
}

void TaskSleepTimer::release_stale_entry() { task()->self_->release(); }

std::string sleep_description(int64_t when_ns) {
  return absl::StrCat("sleep() until ", absl::FormatDuration(absl::Nanoseconds(when_ns)), " on the loop clock");
}

void TaskBase::yield_now(std::coroutine_handle<> h) {
  resume_point_ = h;
  parked_ = true;
  yielded_ = true;
  internal::LoopAccess::schedule(loop(), this);
}

namespace {
[[noreturn, gnu::noinline]] void throw_outside_task(const char* what) {
  throw std::runtime_error(absl::StrCat(what, " must be awaited inside a task"));
}
}  // namespace

TaskBase* current_task_or_throw(const char* what) {
  EventLoop* loop = running_loop_or_null();
  TaskBase* t = loop ? internal::LoopAccess::current_task(*loop) : nullptr;
  if (!t) [[unlikely]] throw_outside_task(what);
  return t;
}

TaskFlags* suspend_on(FutureBase& f, std::coroutine_handle<> h) {
  TaskBase* t = current_task_or_throw("a future");
  if (&t->future() == &f) [[unlikely]] throw std::runtime_error("Task cannot await on itself");
  t->block_on(f, h);
  return t;
}

void throw_pending_cancel(TaskFlags* flag) {
  TaskBase* task = static_cast<TaskBase*>(flag);
  task->pending_throw_ = false;
  throw CancelledError(task->cancel_message());
}

}  // namespace internal

TaskCoro::~TaskCoro() {
  if (root_) root_.destroy();
}

TaskRef new_task(EventLoop& loop, TaskCoro& coro, TaskOptions options) {
  if (coro.task_ || !coro.root_) throw std::logic_error("new_task: this coroutine is a task already");
  internal::TaskBase* t = coro.make_(loop, std::exchange(coro.root_, nullptr), std::move(options.name));
  coro.task_ = internal::Ref<internal::FutureBase>(&t->future());
  if (options.context) t->use_context(*options.context);
  if (options.eager_start.value_or(false) && loop.is_running()) {
    t->eager_start();
  } else {
    internal::LoopAccess::schedule(loop, t);
  }
  return TaskRef{t};
}

TaskRef eager_task_factory(EventLoop& loop, TaskCoro& coro, TaskOptions options) {
  // asyncio's create_eager_task_factory: `eager_start=True` is the default
  // of the factory's keyword argument, so an explicit False wins.
  if (!options.eager_start.has_value()) options.eager_start = true;
  return new_task(loop, coro, std::move(options));
}

namespace internal {

TaskBase* call_task_factory(EventLoop& loop, TaskCoro& coro, TaskOptions options) {
  // A copy: the factory may set another factory while it runs.
  const TaskFactory factory = loop.get_task_factory();
  const TaskRef made = factory(loop, coro, std::move(options));
  TaskBase* t = coro.task();
  if (!t) throw std::logic_error("the task factory returned without making the task (it must call twinloop::new_task)");
  if (made.task != t) throw std::logic_error("the task factory returned a task other than the one it made");
  return t;
}

}  // namespace internal

std::optional<TaskRef> current_task() {
  internal::TaskBase* t = internal::LoopAccess::current_task(get_running_loop());
  if (!t) return std::nullopt;
  return TaskRef{t};
}

std::vector<TaskRef> all_tasks() {
  std::vector<TaskRef> out;
  for (internal::TaskBase* t : internal::LoopAccess::registered_tasks(get_running_loop())) out.push_back(TaskRef{t});
  return out;
}

namespace internal {

void SleepState::run() {
  Ref<SleepState> self = Ref<SleepState>::adopt(this);  // the queue's reference
  TWINLOOP_DCHECK(!in_heap_, "a timer runs only once it left the timer heap");
  if (cancelled_ || done()) return;
  internal::LoopAccess::note(loop(), EventKind::kCallback, id_);
  set_value(std::monostate{});  // wakes the sleeping task next iteration, as asyncio
}

bool SleepState::cancel(std::string msg) {
  if (!cancel_future(std::move(msg))) return false;
  // asyncio's sleep cancels its timer handle when cancelled.
  if (in_heap_ && !cancelled_) {
    cancelled_ = true;
    internal::LoopAccess::timer_cancelled(loop());
  }
  return true;
}

std::string SleepState::describe() const { return sleep_description(when_ns_); }

}  // namespace internal

void SleepAwaitable::await_suspend(std::coroutine_handle<> h) {
  internal::TaskBase* task = internal::current_task_or_throw("sleep()");
  const absl::Duration delay = delay_;
  task_bits_ = reinterpret_cast<uintptr_t>(task);  // delay_ is gone from here
  if (delay <= absl::ZeroDuration()) {
    task->yield_now(h);
    return;
  }
  EventLoop& loop = task->future().loop();
  if (delay != absl::InfiniteDuration() && task->can_sleep_on_own_timer()) [[likely]] {
    task_bits_ |= kOwnTimer;
    task->sleep_on_own_timer(internal::LoopAccess::deadline_after_ns(loop, delay), h);
    return;
  }
  if (delay == absl::InfiniteDuration()) {
    state_ = internal::make_ref<internal::ValueHolder<void>>(loop);  // until cancelled
  } else {
    auto* s = new internal::SleepState(loop);
    state_ = internal::Ref<internal::FutureBase>(s);
    s->id_ = internal::LoopAccess::next_handle_id(loop);
    s->add_ref();  // the heap's reference
    internal::LoopAccess::add_timer(loop, s, internal::LoopAccess::deadline_after_ns(loop, delay));
  }
  task->block_on(*state_, h);
}

void SleepAwaitable::await_resume() {
  internal::TaskBase* task = this->task();
  internal::after_resume(task);
  if (task_bits_ & kOwnTimer) {
    task->after_own_sleep();
    return;
  }
  if (state_) state_->check_result();
}

namespace {
// A free function, not a member coroutine: the coroutine must own its
// argument, not refer to a temporary SleepAwaitable.
Coro<void> sleep_coro(absl::Duration delay) { co_await SleepAwaitable(delay); }
}  // namespace

Coro<void> SleepAwaitable::as_coro() && { return sleep_coro(delay_); }

}  // namespace twinloop
