#include "twinloop/api/event_loop.h"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <utility>

#include "absl/strings/str_format.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/future.h"
#include "twinloop/api/internal/loop_access.h"
#include "twinloop/api/task.h"

namespace twinloop {
namespace {

// While callbacks keep the loop busy, it polls the backend (I/O, signals)
// without blocking at most once per kPollInterval of the backend's clock; it
// reads the clock once every kClockCheckEvery iterations to find out.
// asyncio polls on every iteration; a system call per iteration (~1 us on a
// VM) would cost far more than an iteration (~40 ns), and polling every 32
// iterations still spent a third of a busy loop in epoll. I/O waits at most
// kPollInterval plus kClockCheckEvery iterations while the loop is busy.
constexpr uint64_t kClockCheckEvery = 32;
constexpr int64_t kPollInterval = 50'000;  // ns

// asyncio rebuilds the timer heap when more than this many timers are
// scheduled and more than half are cancelled (_MIN_SCHEDULED_TIMER_HANDLES,
// _MIN_CANCELLED_TIMER_HANDLES_FRACTION).
constexpr size_t kMinTimersForRebuild = 100;

}  // namespace

namespace internal {
void throw_no_running_loop() { throw std::runtime_error("no running event loop"); }

bool parse_debug_variable(const char* value) {
  // asyncio's PYTHONASYNCIODEBUG turns debug mode on for any non-empty
  // value; we take 1 and 0 only, so that a typo ("yes", "true", "01") is an
  // error rather than a silent guess.
  if (value == nullptr || value[0] == '\0' || std::strcmp(value, "0") == 0) return false;
  if (std::strcmp(value, "1") == 0) return true;
  throw std::invalid_argument(
      absl::StrFormat("TWINLOOP_DEBUG='%s': expected 1 (debug mode on) or 0 (off)", value));
}

namespace {
// TWINLOOP_DEBUG, read once: its value, or the error its value gives.
struct DebugVariable {
  bool value = false;
  std::optional<std::string> error;
};
const DebugVariable& debug_variable() {
  static const DebugVariable v = [] {
    DebugVariable d;
    try {
      d.value = parse_debug_variable(std::getenv("TWINLOOP_DEBUG"));
    } catch (const std::invalid_argument& e) {
      d.error = e.what();
    }
    return d;
  }();
  return v;
}
}  // namespace

bool debug_mode_default() {
  const DebugVariable& v = debug_variable();
  if (v.error) throw std::invalid_argument(*v.error);
  return v.value;
}

bool debug_mode_default_or_false() noexcept { return debug_variable().value; }

RunningLoopScope::RunningLoopScope(EventLoop* loop) : prev_(internal::tls_running_loop) {
  internal::tls_running_loop = loop;
}
RunningLoopScope::~RunningLoopScope() { internal::tls_running_loop = prev_; }

void HandleState::run() {
  Ref<HandleState> self = Ref<HandleState>::adopt(this);  // the queue's reference
  TWINLOOP_DCHECK(!in_heap_, "a timer runs only once it left the timer heap");
  if (cancelled_) return;
  EventLoop& loop = *loop_;
  // The clock is read before the event is noted: the simulated loop charges
  // a callback's virtual CPU time (step jitter) when it sees the event.
  const bool timing = LoopAccess::debug_timing(loop);
  const int64_t t0 = timing ? loop.time_ns() : 0;
  LoopAccess::note(loop, EventKind::kCallback, id_);
  try {
    // asyncio's Handle._run: self._context.run(self._callback, ...).
    ContextScope context_scope(context_);
    callback_();
  } catch (...) {
    ExceptionContext c = ExceptionContext::of(absl::StrFormat("Exception in callback <Handle #%d>", id_),
                                              std::current_exception());
    c.handle = absl::StrFormat("<Handle #%d>", id_);
    loop.call_exception_handler(c);
  }
  if (timing) LoopAccess::report_slow(loop, absl::StrFormat("<Handle #%d>", id_), loop.time_ns() - t0);
}

void HandleState::cancel() {
  if (cancelled_) return;
  cancelled_ = true;
  if (in_heap_) LoopAccess::timer_cancelled(*loop_);
  // Release what the callback holds now, as asyncio drops its references.
  callback_ = nullptr;
}

}  // namespace internal

absl::Time TimerHandle::when() const {
  // On the clock the caller sees (loop.time()'s), as call_at was given it.
  const internal::ClockView* view = internal::LoopAccess::clock_view(*state_->loop_);
  return absl::UnixEpoch() + absl::Nanoseconds(view ? view->local_ns(state_->when_ns_) : state_->when_ns_);
}

EventLoop::EventLoop(std::unique_ptr<LoopBackend> backend)
    : backend_(std::move(backend)), debug_(internal::debug_mode_default()) {
  backend_->attach(*this);
}

EventLoop::~EventLoop() {
  if (!closed_) {
    running_ = false;
    close_now();
  }
}

void EventLoop::check_open() const {
  if (closed_) throw std::runtime_error("Event loop is closed");
}

namespace {
// A counted reference to `context` for a handle to take over.
internal::ContextState* share(const Context& context) {
  internal::ContextState* c = internal::ContextAccess::state(context).get();
  c->add_ref();
  return c;
}
// Saturates: a delay past the end of time is a timer that never fires.
int64_t deadline_after(int64_t now, absl::Duration delay) {
  const int64_t d = absl::ToInt64Nanoseconds(delay);
  return d > 0 && now > LoopBackend::kNoDeadline - d ? LoopBackend::kNoDeadline - 1 : now + d;
}
}  // namespace

void EventLoop::check_thread() const {
  // CPython 3.14 base_events.py BaseEventLoop._check_thread.
  const std::thread::id owner = owner_.load(std::memory_order_relaxed);
  if (owner == std::thread::id() || owner == std::this_thread::get_id()) return;
  throw std::runtime_error("Non-thread-safe operation invoked on an event loop other than the current one");
}

Handle EventLoop::call_soon(absl::AnyInvocable<void()> callback) {
  return call_soon_in(std::move(callback), internal::capture_context());
}

Handle EventLoop::call_soon(absl::AnyInvocable<void()> callback, const Context& context) {
  return call_soon_in(std::move(callback), share(context));
}

Handle EventLoop::call_soon_in(absl::AnyInvocable<void()> callback, internal::ContextState* context) {
  internal::Ref<internal::ContextState> owned = internal::Ref<internal::ContextState>::adopt(context);
  check_open();
  check_thread_if_debug();
  auto* h = new internal::HandleState(*this, std::move(callback), ++handle_ids_);
  h->context_ = std::move(owned);
  h->add_ref();  // the ready queue's reference
  ready_.push(h);
  return Handle(internal::Ref<internal::HandleState>(h));
}

int64_t EventLoop::deadline_after_ns(absl::Duration delay) const {
  const int64_t now = backend_->time_ns();
  if (!clock_view_) return deadline_after(now, delay);
  return clock_view_->loop_ns(deadline_after(clock_view_->local_ns(now), delay), now);
}

int64_t EventLoop::deadline_at_ns(int64_t local_ns) const {
  if (!clock_view_) return local_ns;
  return clock_view_->loop_ns(local_ns, backend_->time_ns());
}

TimerHandle EventLoop::call_later(absl::Duration delay, absl::AnyInvocable<void()> callback) {
  return call_at_ns(deadline_after_ns(delay), std::move(callback), internal::capture_context());
}

TimerHandle EventLoop::call_later(absl::Duration delay, absl::AnyInvocable<void()> callback, const Context& context) {
  return call_at_ns(deadline_after_ns(delay), std::move(callback), share(context));
}

TimerHandle EventLoop::call_at(absl::Time when, absl::AnyInvocable<void()> callback) {
  return call_at_ns(deadline_at_ns(absl::ToInt64Nanoseconds(when - absl::UnixEpoch())), std::move(callback),
                    internal::capture_context());
}

TimerHandle EventLoop::call_at(absl::Time when, absl::AnyInvocable<void()> callback, const Context& context) {
  return call_at_ns(deadline_at_ns(absl::ToInt64Nanoseconds(when - absl::UnixEpoch())), std::move(callback),
                    share(context));
}

TimerHandle EventLoop::call_at_ns(int64_t when_ns, absl::AnyInvocable<void()> callback) {
  return call_at_ns(when_ns, std::move(callback), internal::capture_context());
}

TimerHandle EventLoop::call_at_ns(int64_t when_ns, absl::AnyInvocable<void()> callback,
                                  internal::ContextState* context) {
  internal::Ref<internal::ContextState> owned = internal::Ref<internal::ContextState>::adopt(context);
  check_open();
  check_thread_if_debug();
  auto* h = new internal::HandleState(*this, std::move(callback), ++handle_ids_);
  h->context_ = std::move(owned);
  h->add_ref();  // the heap's reference
  add_timer(h, when_ns);
  return TimerHandle(internal::Ref<internal::HandleState>(h));
}

void EventLoop::add_timer(internal::TimerTarget* t, int64_t when_ns) {
  TWINLOOP_CHECK(!t->in_heap_, "a timer is in the timer heap at most once");
  t->when_ns_ = when_ns;
  t->in_heap_ = true;
  if (task_keys_) t->owner_key_ = current_task_ ? current_task_->key() : 0;
  t->seq_ = ++timer_seq_;
  timers_.push_back(TimerEntry{when_ns, t->seq_, t});
  std::push_heap(timers_.begin(), timers_.end(), Later{});
}

void EventLoop::rearm_timer(internal::TimerTarget* t, int64_t when_ns) {
  TWINLOOP_CHECK(t->in_heap_ && t->cancelled_, "a timer is re-armed only while cancelled in the heap");
  // Its entry becomes stale, and stays counted in timers_cancelled_.
  t->in_heap_ = false;
  t->cancelled_ = false;
  add_timer(t, when_ns);
}

void EventLoop::cancel_timer_in_heap(internal::TimerTarget* t) {
  TWINLOOP_DCHECK(t->in_heap_ && !t->cancelled_, "a timer is cancelled in the heap once");
  t->cancelled_ = true;
  if (timers_.back().handle == t && timers_.back().seq == t->seq_) {
    timers_.pop_back();
    t->in_heap_ = false;
    t->release_timer();
    return;
  }
  ++timers_cancelled_;
}

void internal::TimerTarget::release_stale_entry() {
  TWINLOOP_CHECK(false, "only a timer that is re-armed has stale heap entries");
}

bool EventLoop::dead(const TimerEntry& e) { return e.seq != e.handle->seq_ || e.handle->cancelled(); }

void EventLoop::release_dead(const TimerEntry& e) {
  if (e.seq != e.handle->seq_) {
    e.handle->release_stale_entry();
    return;
  }
  e.handle->in_heap_ = false;
  e.handle->release_timer();
}

void EventLoop::move_due_timers(int64_t now) {
  due_.clear();
  while (!timers_.empty() && timers_.front().when <= now) {
    std::pop_heap(timers_.begin(), timers_.end(), Later{});
    const TimerEntry e = timers_.back();
    internal::TimerTarget* h = e.handle;
    timers_.pop_back();
    if (e.seq != h->seq_) [[unlikely]] {  // a stale entry of a re-armed timer
      TWINLOOP_CHECK(timers_cancelled_ != 0, "the heap counts its cancelled timers");
      --timers_cancelled_;
      h->release_stale_entry();
      continue;
    }
    TWINLOOP_DCHECK(h->in_heap_, "a timer in the timer heap is marked in_heap_");
    h->in_heap_ = false;
    if (h->cancelled()) {
      TWINLOOP_CHECK(timers_cancelled_ != 0, "the heap counts its cancelled timers");
      --timers_cancelled_;
      h->release_timer();
      continue;
    }
    due_.push_back(h);
  }
  // Runs of equal deadlines (in scheduling order so far): their order is a
  // decision, drawn only when deadlines actually tie.
  for (size_t i = 0; i < due_.size();) {
    size_t j = i + 1;
    while (j < due_.size() && due_[j]->when_ns_ == due_[i]->when_ns_) ++j;
    if (j - i > 1) order_tie(i, j);
    i = j;
  }
  for (internal::TimerTarget* h : due_) {
    note(internal::EventKind::kTimerDue, h->id());
    ready_.push(h);  // the heap's reference moves to the queue
  }
}

void EventLoop::order_tie(size_t first, size_t last) {
  // A Fisher-Yates shuffle whose draws are all 0 keeps scheduling order.
  // The draws belong to the task that scheduled the first of the tied
  // timers, so that in a replay they keep their keys when unrelated timers
  // are added elsewhere or every deadline moves by the same amount.
  tie_context_set_ = true;
  tie_context_ = due_[first]->owner_key_;
  for (size_t i = first; i + 1 < last; ++i) {
    const uint64_t pick = backend_->choose(draw_sites::kTimerTie, last - i);
    if (pick != 0) std::swap(due_[i], due_[i + pick]);
  }
  tie_context_set_ = false;
}

uint64_t EventLoop::decision_context() const {
  if (tie_context_set_) return tie_context_;
  return current_task_ ? current_task_->key() : 0;
}

void EventLoop::call_soon_threadsafe(absl::AnyInvocable<void()> callback) {
  {
    std::lock_guard<std::mutex> lock(threadsafe_mu_);
    if (closed_) throw std::runtime_error("Event loop is closed");
    // The calling thread's context, as asyncio's Handle copies it there.
    threadsafe_.emplace_back(std::move(callback),
                             internal::Ref<internal::ContextState>::adopt(internal::capture_context()));
    threadsafe_pending_.store(true, std::memory_order_release);
  }
  backend_->wake();
}

void EventLoop::drain_threadsafe() {
  std::vector<std::pair<absl::AnyInvocable<void()>, internal::Ref<internal::ContextState>>> batch;
  {
    std::lock_guard<std::mutex> lock(threadsafe_mu_);
    batch.swap(threadsafe_);
    threadsafe_pending_.store(false, std::memory_order_relaxed);
  }
  for (auto& [cb, context] : batch) call_soon_in(std::move(cb), context.detach());
}

void EventLoop::purge_cancelled_timers() {
  if (timers_.size() > kMinTimersForRebuild && timers_cancelled_ * 2 > timers_.size()) {
    std::vector<TimerEntry> kept;
    kept.reserve(timers_.size() - timers_cancelled_);
    for (TimerEntry& e : timers_) {
      if (dead(e)) {
        release_dead(e);
      } else {
        kept.push_back(e);
      }
    }
    TWINLOOP_DCHECK(timers_.size() - kept.size() == timers_cancelled_, "the heap counts its cancelled timers");
    timers_.swap(kept);
    std::make_heap(timers_.begin(), timers_.end(), Later{});
    timers_cancelled_ = 0;
    return;
  }
  while (!timers_.empty() && dead(timers_.front())) {
    std::pop_heap(timers_.begin(), timers_.end(), Later{});
    const TimerEntry e = timers_.back();
    timers_.pop_back();
    TWINLOOP_CHECK(timers_cancelled_ != 0, "the heap counts its cancelled timers");
    --timers_cancelled_;
    release_dead(e);
  }
}

int64_t EventLoop::next_deadline_ns() {
  purge_timers();
  return timers_.empty() ? LoopBackend::kNoDeadline : timers_.front().when;
}

void EventLoop::run_once() {
  check_thread_if_debug();
  if (internal::tls_running_loop && internal::tls_running_loop != this)
    throw std::runtime_error("Cannot run the event loop while another loop is running");
  // Outside run_forever this thread owns the loop for the iteration (inside,
  // it owns it already).
  std::thread::id none;
  const bool claimed = owner_.compare_exchange_strong(none, std::this_thread::get_id(), std::memory_order_relaxed);
  struct Release {
    EventLoop* loop;
    bool claimed;
    ~Release() {
      if (claimed) loop->owner_.store(std::thread::id(), std::memory_order_relaxed);
    }
  } release{this, claimed};
  internal::RunningLoopScope scope(this);
  run_once_here();
}

void EventLoop::run_once_here() {
  purge_timers();
  if (threadsafe_pending_.load(std::memory_order_acquire)) drain_threadsafe();

  if (ready_.empty() && !stopping_) {
    backend_->wait(timers_.empty() ? LoopBackend::kNoDeadline : timers_.front().when);
    if (threadsafe_pending_.load(std::memory_order_acquire)) drain_threadsafe();
    last_poll_ns_ = backend_->time_ns();
  } else if (++busy_iterations_ % kClockCheckEvery == 0) {
    const int64_t now = backend_->time_ns();
    if (now - last_poll_ns_ >= kPollInterval) {
      last_poll_ns_ = now;
      backend_->wait(LoopBackend::kPollOnly);
      if (threadsafe_pending_.load(std::memory_order_acquire)) drain_threadsafe();
    }
  }

  // Timers that fell due join the ready queue, in deadline order.
  if (!timers_.empty()) {
    const int64_t now = backend_->time_ns();
    if (timers_.front().when <= now) move_due_timers(now);
  }

  // Run exactly what is ready now; what these schedule runs next iteration.
  for (size_t n = ready_.size(); n > 0; --n) ready_.pop()->run();
}

void EventLoop::run_forever() {
  check_open();
  // Before running_ is read: another thread must not read it while we run.
  check_thread_if_debug();
  if (running_) throw std::runtime_error("This event loop is already running");
  if (internal::tls_running_loop && internal::tls_running_loop != this)
    throw std::runtime_error("Cannot run the event loop while another loop is running");
  internal::RunningLoopScope scope(this);
  running_ = true;
  owner_.store(std::this_thread::get_id(), std::memory_order_relaxed);
  struct Reset {
    EventLoop* loop;
    ~Reset() {
      loop->owner_.store(std::thread::id(), std::memory_order_relaxed);
      loop->running_ = false;
      loop->stopping_ = false;
    }
  } reset{this};
  while (true) {
    run_once_here();
    if (stopping_) break;
  }
}

void EventLoop::run_until_done(internal::FutureBase& future) {
  internal::Ref<internal::FutureBase> keep(&future);
  if (!future.done()) {
    uint64_t token = future.add_done_callback([this](internal::FutureBase&) { stop(); });
    try {
      run_forever();
    } catch (...) {
      future.remove_done_callback(token);
      throw;
    }
    future.remove_done_callback(token);
  }
  if (!future.done()) throw std::runtime_error("Event loop stopped before Future completed.");
}

void EventLoop::close() {
  check_thread_if_debug();
  if (running_) throw std::runtime_error("Cannot close a running event loop");
  if (closed_) return;
  // Keep ourselves alive while tasks (which hold references to us) go away.
  internal::Ref<EventLoop> keep(this);
  close_now();
}

void EventLoop::close_now() {
  if (debug_) report_open_at_close();
  // What destroying the tasks' frames reports (a coroutine never awaited)
  // goes to this loop's handler when no loop runs on this thread.
  struct ClosingScope {
    EventLoop* prev = internal::tls_closing_loop;
    explicit ClosingScope(EventLoop* loop) { internal::tls_closing_loop = loop; }
    ~ClosingScope() { internal::tls_closing_loop = prev; }
  } closing(this);
  // What is still open is unregistered and releases what it holds, before
  // the tasks' frames (which may hold its last users) are destroyed.
  while (resources_head_) {
    internal::LoopResource* r = resources_head_;
    close_resource(r);
    r->on_loop_close();
  }
  {
    std::lock_guard<std::mutex> lock(threadsafe_mu_);
    closed_ = true;
    threadsafe_.clear();
  }
  while (!ready_.empty()) ready_.pop()->drop();
  for (TimerEntry& e : timers_) release_dead(e);  // every entry's reference goes now
  timers_.clear();
  timers_cancelled_ = 0;
  // Unfinished tasks are destroyed, in creation order, with their frames.
  std::vector<internal::Ref<internal::FutureBase>> tasks;
  while (tasks_head_) {
    internal::TaskBase* t = tasks_head_;
    tasks.push_back(internal::Ref<internal::FutureBase>::adopt(&t->future()));
    tasks_head_ = t->registry_next_;
    t->registry_prev_ = t->registry_next_ = nullptr;
  }
  tasks_tail_ = nullptr;
  task_count_ = 0;
  // Callbacks on unfinished tasks (gather, TaskGroup, as_completed, shield)
  // may hold the very objects that hold these tasks: drop them first.
  for (auto& t : tasks) t->clear_callbacks();
  // Then their frames, in creation order, even where something in a frame
  // still holds its own task (a cycle that refcounting cannot free).
  for (auto& t : tasks) t->as_task()->destroy_frame_at_close();
  tasks.clear();
  abandoned_.clear();
  task_origins_.clear();
  for (auto& [sig, cb] : signal_handlers_) backend_->watch_signal(sig, false);
  if (sigint_hook_ && signal_handlers_.count(SIGINT) == 0) backend_->watch_signal(SIGINT, false);
  sigint_hook_ = nullptr;
  signal_handlers_.clear();
  backend_->close();
}

size_t EventLoop::abandon(const std::function<bool(const Context&)>& in_scope) {
  TWINLOOP_CHECK(!current_task_ || !in_scope(internal::ContextAccess::of(current_task_->context_slot())),
                 "a task cannot abandon itself (it is running)");
  const auto in = [&](const internal::Ref<internal::ContextState>& c) {
    return in_scope(internal::ContextAccess::of(c));
  };
  // Callbacks first: what the tasks' frames do when destroyed is not
  // theirs to cancel.
  const auto cancel_if_in = [&](internal::Runnable* r) {
    auto* h = dynamic_cast<internal::HandleState*>(r);
    if (h && !h->cancelled_ && in(h->context_)) h->cancel();
  };
  ready_.for_each(cancel_if_in);
  for (const TimerEntry& e : timers_) cancel_if_in(e.handle);
  size_t ended = 0;
  for (internal::TaskBase* t : registered_tasks()) {
    if (t->future().done() || !in(t->context_slot())) continue;
    abandoned_.push_back(internal::Ref<internal::FutureBase>(&t->future()));
    t->abandon();
    ++ended;
  }
  return ended;
}

void EventLoop::register_task(internal::TaskBase* t) {
  t->future().add_ref();
  t->registry_prev_ = tasks_tail_;
  t->registry_next_ = nullptr;
  if (tasks_tail_) {
    tasks_tail_->registry_next_ = t;
  } else {
    tasks_head_ = t;
  }
  tasks_tail_ = t;
  ++task_count_;
  if (debug_) [[unlikely]] record_task_origin(t);
}

void EventLoop::record_task_origin(const internal::TaskBase* t) {
  // The task is not running yet: the code running is its creator's.
  task_origins_[t->id()] = internal::describe_running_code();
}

void EventLoop::forget_task_origin(internal::TaskBase* t) {
  task_origins_.erase(t->id());
  t->future().release();
}

void EventLoop::unregister_task(internal::TaskBase* t) {
  if (!t->registry_prev_ && tasks_head_ != t) return;  // not registered (closed)
  if (t->registry_prev_) t->registry_prev_->registry_next_ = t->registry_next_;
  else tasks_head_ = t->registry_next_;
  if (t->registry_next_) t->registry_next_->registry_prev_ = t->registry_prev_;
  else tasks_tail_ = t->registry_prev_;
  t->registry_prev_ = t->registry_next_ = nullptr;
  --task_count_;
  // A tail call, so that the common path needs no stack frame.
  if (!task_origins_.empty()) [[unlikely]] return forget_task_origin(t);
  t->future().release();
}

void EventLoop::report_open_at_close() {
  // asyncio reports a pending task when it is garbage collected (Task.__del__,
  // always: with weak references from the loop, that means the program lost
  // it). Here the loop keeps its tasks until it closes, and the runners
  // close a loop that failed (a simulated deadlock, a time limit) with all
  // of its tasks pending, where these reports would bury the error: so only
  // debug mode reports them, with unclosed resources (which asyncio reports
  // as a ResourceWarning, shown in its development mode).
  for (internal::TaskBase* t : registered_tasks()) {
    ExceptionContext c = ExceptionContext::of("Task was destroyed but it is pending!");
    c.task = t->get_name();
    if (auto it = task_origins_.find(t->id()); it != task_origins_.end()) c.source_traceback = it->second;
    call_exception_handler(c);
  }
  for (internal::LoopResource* r = resources_head_; r; r = r->resource_next_) {
    call_exception_handler(ExceptionContext::of("unclosed " + r->describe()));
  }
}

void EventLoop::open_resource(internal::LoopResource* r) {
  if (r->resource_loop_) throw std::logic_error("LoopResource registered twice");
  r->resource_loop_ = this;
  r->resource_prev_ = resources_tail_;
  r->resource_next_ = nullptr;
  if (resources_tail_) {
    resources_tail_->resource_next_ = r;
  } else {
    resources_head_ = r;
  }
  resources_tail_ = r;
}

void EventLoop::close_resource(internal::LoopResource* r) {
  if (r->resource_loop_ != this) return;  // never registered, or forgotten at close
  if (r->resource_prev_) r->resource_prev_->resource_next_ = r->resource_next_;
  else resources_head_ = r->resource_next_;
  if (r->resource_next_) r->resource_next_->resource_prev_ = r->resource_prev_;
  else resources_tail_ = r->resource_prev_;
  r->resource_loop_ = nullptr;
  r->resource_prev_ = r->resource_next_ = nullptr;
}

std::vector<internal::TaskBase*> EventLoop::registered_tasks() const {
  std::vector<internal::TaskBase*> out;
  out.reserve(task_count_);
  for (internal::TaskBase* t = tasks_head_; t; t = t->registry_next_) out.push_back(t);
  return out;
}

void EventLoop::call_exception_handler(const ExceptionContext& context) {
  if (!exception_handler_) {
    default_exception_handler(context);
    return;
  }
  try {
    exception_handler_(*this, context);
  } catch (...) {
    default_exception_handler(
        ExceptionContext::of("Unhandled error in exception handler", std::current_exception()));
    default_exception_handler(context);
  }
}

void EventLoop::default_exception_handler(const ExceptionContext& context) {
  std::string line = context.message.empty() ? "Unhandled exception in event loop" : context.message;
  if (!context.task.empty()) line += absl::StrFormat(" [task %s]", context.task);
  if (!context.future.empty()) line += absl::StrFormat(" [future %s]", context.future);
  if (!context.source_traceback.empty()) line += absl::StrFormat(" [created in %s]", context.source_traceback);
  if (context.exception) line += ": " + describe_exception(context.exception);
  log(line);
}

void EventLoop::log(std::string_view line) {
  if (logger_) {
    logger_(line);
  } else {
    std::fprintf(stderr, "twinloop: %.*s\n", static_cast<int>(line.size()), line.data());
  }
}

void EventLoop::report_slow(std::string_view what, int64_t took_ns) {
  if (took_ns < slow_callback_ns_) return;
  log(absl::StrFormat("Executing %s took %.3f seconds", what, took_ns / 1e9));
}

namespace {
// CPython 3.14 unix_events.py _check_signal: ValueError(f'invalid signal
// number {sig}') unless sig is in signal.valid_signals(), which on Linux is
// what sigfillset() fills (1 to NSIG - 1 without the C library's reserved
// real-time signals).
void check_signal(int sig) {
  sigset_t valid;
  sigfillset(&valid);
  if (sig <= 0 || sig >= NSIG || sigismember(&valid, sig) != 1) {
    throw std::invalid_argument(absl::StrFormat("invalid signal number %d", sig));
  }
}
}  // namespace

void EventLoop::add_signal_handler(int sig, std::function<void()> callback) {
  check_signal(sig);  // before check_open, as asyncio
  check_open();
  check_thread_if_debug();
  if (sig == SIGKILL || sig == SIGSTOP) throw std::runtime_error(absl::StrFormat("sig %d cannot be caught", sig));
  // Watch first: if the backend refuses, no handler is left behind. SIGINT
  // may be watched already, for a Runner (take_sigint).
  if (signal_handlers_.count(sig) == 0 && !(sig == SIGINT && sigint_hook_)) backend_->watch_signal(sig, true);
  // asyncio makes the handler's Handle here: every delivery runs in this
  // one copy of the current context.
  if (internal::ContextState* c = internal::capture_context()) {
    callback = [context = internal::Ref<internal::ContextState>::adopt(c), callback = std::move(callback)]() mutable {
      internal::ContextScope scope(context);
      callback();
    };
  }
  signal_handlers_[sig] = std::move(callback);
}

bool EventLoop::remove_signal_handler(int sig) {
  check_signal(sig);
  check_thread_if_debug();
  auto it = signal_handlers_.find(sig);
  if (it == signal_handlers_.end()) return false;
  signal_handlers_.erase(it);
  // A Runner's SIGINT watch outlives the handler.
  if (!closed_ && !(sig == SIGINT && sigint_hook_)) backend_->watch_signal(sig, false);
  return true;
}

void EventLoop::deliver_signal(int sig) {
  auto it = signal_handlers_.find(sig);
  if (it == signal_handlers_.end()) {
    if (sig == SIGINT && sigint_hook_) {
      note(internal::EventKind::kSignal, static_cast<uint64_t>(sig));
      // At once, not from the ready queue: asyncio's Runner handler runs as
      // soon as Python sees the signal, between two bytecodes, so that the
      // main task is cancelled before anything else runs.
      sigint_hook_();
    }
    return;
  }
  note(internal::EventKind::kSignal, static_cast<uint64_t>(sig));
  call_soon_in(it->second, nullptr);
}

bool EventLoop::take_sigint(absl::AnyInvocable<void()> hook) {
  if (closed_ || sigint_hook_ || signal_handlers_.count(SIGINT) != 0) return false;
  if (!backend_->signal_is_default(SIGINT)) return false;
  try {
    backend_->watch_signal(SIGINT, true);
  } catch (const std::exception&) {
    // asyncio's Runner runs without its handler when signal.signal refuses
    // (test_signal_install_not_supported_ok).
    return false;
  }
  sigint_hook_ = std::move(hook);
  return true;
}

void EventLoop::release_sigint() {
  if (!sigint_hook_) return;
  sigint_hook_ = nullptr;
  if (!closed_ && signal_handlers_.count(SIGINT) == 0) backend_->watch_signal(SIGINT, false);
}

void EventLoop::submit_to_executor(absl::AnyInvocable<void()> work, absl::AnyInvocable<void()> done) {
  check_open();
  backend_->submit(std::move(work), std::move(done));
}

void LoopBackend::deliver_signal(EventLoop& loop, int sig) { loop.deliver_signal(sig); }
void LoopBackend::observe_steps(EventLoop& loop, internal::StepObserver* observer) { loop.observer_ = observer; }
void LoopBackend::enable_task_keys(EventLoop& loop) { loop.task_keys_ = true; }
uint64_t LoopBackend::decision_context(const EventLoop& loop) { return loop.decision_context(); }
size_t LoopBackend::task_count(const EventLoop& loop) { return loop.task_count_; }
void LoopBackend::schedule_io(EventLoop& loop, internal::Runnable* r) { loop.ready_.push(r); }
void LoopBackend::add_timer(EventLoop& loop, internal::TimerTarget* t, int64_t when_ns) { loop.add_timer(t, when_ns); }

void LoopBackend::set_clock_view(EventLoop& loop, const internal::ClockView* view) { loop.clock_view_ = view; }

size_t LoopBackend::abandon(EventLoop& loop, const std::function<bool(const Context&)>& in_scope) {
  return loop.abandon(in_scope);
}

}  // namespace twinloop
