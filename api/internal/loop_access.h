// twinloop/api/internal/loop_access.h: the event loop's internals, for
// twinloop's own code (tasks, futures, primitives, the runner). Not part of
// the public API: user code and backends never include this header (backends
// have LoopBackend's protected helpers, api/loop_backend.h).
#ifndef TWINLOOP_API_INTERNAL_LOOP_ACCESS_H_
#define TWINLOOP_API_INTERNAL_LOOP_ACCESS_H_

#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "twinloop/api/event_loop.h"

namespace twinloop::internal {

struct LoopAccess {
  // Runner's shutdown (asyncio.run after its main coroutine: the remaining
  // tasks are cancelled and run to their end): set when it begins, so that
  // machinery that would start new work then (the simulated hosts'
  // restarts, sim/world.h) does not.
  static void begin_shutdown(EventLoop& loop) { loop.shutting_down_ = true; }
  static bool shutting_down(const EventLoop& loop) { return loop.shutting_down_; }
  // The ready queue: `r` runs in the next iteration (FIFO).
  static void schedule(EventLoop& loop, Runnable* r) { loop.ready_.push(r); }
  static TaskBase* current_task(const EventLoop& loop) { return loop.current_task_; }
  static void set_current_task(EventLoop& loop, TaskBase* t) { loop.current_task_ = t; }
  static uint64_t next_task_id(EventLoop& loop) { return ++loop.task_ids_; }
  static uint64_t next_token(EventLoop& loop) { return ++loop.tokens_; }
  static uint64_t next_handle_id(EventLoop& loop) { return ++loop.handle_ids_; }
  static void register_task(EventLoop& loop, TaskBase* t) { loop.register_task(t); }
  static void unregister_task(EventLoop& loop, TaskBase* t) { loop.unregister_task(t); }
  // Unfinished tasks in creation order.
  static std::vector<TaskBase*> registered_tasks(const EventLoop& loop) { return loop.registered_tasks(); }
  static size_t registered_task_count(const EventLoop& loop) { return loop.task_count_; }
  static void note(EventLoop& loop, EventKind kind, uint64_t id) { loop.note(kind, id); }
  static void set_step_observer(EventLoop& loop, StepObserver* observer) { loop.observer_ = observer; }
  static bool debug_timing(const EventLoop& loop) { return loop.debug_; }
  static void report_slow(EventLoop& loop, std::string_view what, int64_t took_ns) {
    loop.report_slow(what, took_ns);
  }
  // A timer of the heap was cancelled (the heap purges it lazily).
  static void timer_cancelled(EventLoop& loop) { ++loop.timers_cancelled_; }
  static void add_timer(EventLoop& loop, TimerTarget* t, int64_t when_ns) { loop.add_timer(t, when_ns); }
  static void rearm_timer(EventLoop& loop, TimerTarget* t, int64_t when_ns) { loop.rearm_timer(t, when_ns); }
  static void cancel_timer_in_heap(EventLoop& loop, TimerTarget* t) { loop.cancel_timer_in_heap(t); }
  static TimerHandle call_at_ns(EventLoop& loop, int64_t when_ns, absl::AnyInvocable<void()> callback) {
    return loop.call_at_ns(when_ns, std::move(callback));
  }
  // call_soon running the callback in `context` (null: an empty one), whose
  // reference the handle takes over (done callbacks: the context of
  // add_done_callback).
  static Handle call_soon_in(EventLoop& loop, absl::AnyInvocable<void()> callback, ContextState* context) {
    return loop.call_soon_in(std::move(callback), context);
  }
  // Whether tasks get identity keys (TaskBase::key; LoopBackend::task_key).
  static bool task_keys(const EventLoop& loop) { return loop.task_keys_; }
  static void submit_to_executor(EventLoop& loop, absl::AnyInvocable<void()> work,
                                 absl::AnyInvocable<void()> done) {
    loop.submit_to_executor(std::move(work), std::move(done));
  }
  static void run_until_done(EventLoop& loop, FutureBase& future) { loop.run_until_done(future); }
  // Ctrl-C for a Runner (EventLoop::take_sigint / release_sigint).
  static bool take_sigint(EventLoop& loop, absl::AnyInvocable<void()> hook) {
    return loop.take_sigint(std::move(hook));
  }
  static void release_sigint(EventLoop& loop) { loop.release_sigint(); }
  // The registry of resources open on the loop (servers, transports): see
  // LoopResource in api/event_loop.h.
  static void open_resource(EventLoop& loop, LoopResource* r) { loop.open_resource(r); }
  // The backend's clock view (null: loop.time() is the loop's clock).
  static const ClockView* clock_view(const EventLoop& loop) { return loop.clock_view_; }
  // The loop-clock deadline `delay` from now on the running code's clock.
  static int64_t deadline_after_ns(const EventLoop& loop, absl::Duration delay) {
    return loop.deadline_after_ns(delay);
  }
  static void close_resource(EventLoop& loop, LoopResource* r) { loop.close_resource(r); }
  static size_t ready_count(const EventLoop& loop) { return loop.ready_.size(); }
  static size_t timer_count(const EventLoop& loop) { return loop.timers_.size() - loop.timers_cancelled_; }
};

}  // namespace twinloop::internal

#endif  // TWINLOOP_API_INTERNAL_LOOP_ACCESS_H_
