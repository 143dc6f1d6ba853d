// twinloop/api/executor.h: run blocking functions off the loop
// (loop.run_in_executor(None, fn) and asyncio.to_thread).
//
//   twinloop::Coro<void> handler() {
//     std::string text = co_await twinloop::to_thread(read_whole_file, path);
//     twinloop::Future<int> f = twinloop::run_in_executor([] { return crunch(); });
//     int n = co_await f;
//   }
//
// Contract (asyncio's, with the default ThreadPoolExecutor):
//  - The function runs once, on the loop's executor; its result or exception
//    completes the returned future on the loop thread.
//  - Cancelling the future (or the task awaiting it, which cancels the
//    future) completes it at once with CancelledError. A function that has
//    not started yet is skipped; one that has started runs to completion
//    and its result is discarded (threads cannot be interrupted).
//  - No ordering between concurrent calls: they run in parallel.
//  - Context variables (api/contextvars.h): to_thread runs the function in a
//    copy of the caller's context, so ContextVar::get sees the caller's
//    values and the function's sets stay in the copy (asyncio.to_thread:
//    copy_context().run). run_in_executor does not copy the context, as
//    asyncio's does not: the function starts in an empty context, and what it
//    sets is dropped when it returns. (asyncio's runs in the worker thread's
//    own context, which a pool thread keeps from one job to the next; a fresh
//    one per call behaves the same on the simulated loop, which has no
//    worker threads.)
//
// Real loop (real/): the function runs on a worker of a thread pool of at
// most min(32, cores + 4) threads. Simulated loop (sim/): it runs on the loop
// thread, as one step at a virtual time the simulation chooses, so a
// simulated run stays deterministic.
//
// Threads: call run_in_executor / to_thread on the loop thread. The function
// (and what it captures) is moved to the worker and must not touch
// loop-thread objects (futures, tasks, handles). It is destroyed by the
// loop's executor; the real loop destroys it on the loop thread.
#ifndef TWINLOOP_API_EXECUTOR_H_
#define TWINLOOP_API_EXECUTOR_H_

#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <type_traits>
#include <utility>

#include "twinloop/api/contextvars.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/future.h"
#include "twinloop/api/internal/loop_access.h"

namespace twinloop {

namespace internal {

// What the worker hands back to the loop thread. Shared by the two halves of
// a job (work on the worker, done on the loop thread); std::shared_ptr's
// count is atomic, so either may be destroyed last, on any thread.
template <class R>
struct ExecutorBox {
  std::optional<Stored<R>> value;  // written by work, read by done
  std::exception_ptr error;        // written by work, read by done
  std::atomic<bool> cancelled{false};  // set on the loop thread, read by work
  uint64_t cancel_token = 0;       // loop thread only
};

template <class F>
using ExecutorResult = std::remove_cvref_t<std::invoke_result_t<F&>>;

}  // namespace internal

// Runs `fn()` on the running loop's executor; the future completes with its
// result (or exception). std::runtime_error without a running loop or if the
// loop is closed.
template <class F>
Future<internal::ExecutorResult<F>> run_in_executor(F fn) {
  using R = internal::ExecutorResult<F>;
  using Box = internal::ExecutorBox<R>;
  EventLoop& loop = get_running_loop();
  Future<R> future = create_future<R>(loop);
  auto box = std::make_shared<Box>();

  // Cancelling the future skips the function if it has not started. The
  // callback holds no reference to the future (it receives it).
  box->cancel_token = future.state()->add_done_callback([box](internal::FutureBase& f) {
    if (f.cancelled()) box->cancelled.store(true, std::memory_order_relaxed);
  });

  absl::AnyInvocable<void()> work = [fn = std::move(fn), box]() mutable {
    if (box->cancelled.load(std::memory_order_relaxed)) return;
    internal::Ref<internal::ContextState> empty;
    internal::ContextScope context_scope(empty);
    try {
      if constexpr (std::is_void_v<R>) {
        std::invoke(fn);
        box->value.emplace();
      } else {
        box->value.emplace(std::invoke(fn));
      }
    } catch (...) {
      box->error = std::current_exception();
    }
  };
  // Created here, on the loop thread, and only ever moved: the future's
  // reference count is not atomic.
  absl::AnyInvocable<void()> done = [future, box]() mutable {
    if (future.done()) return;  // cancelled meanwhile
    future.remove_done_callback(box->cancel_token);
    if (box->error) {
      future.set_exception(box->error);
    } else if constexpr (std::is_void_v<R>) {
      future.set_result();
    } else {
      future.set_result(std::move(*box->value));
    }
  };
  internal::LoopAccess::submit_to_executor(loop, std::move(work), std::move(done));
  return future;
}

// Runs `fn(args...)` on the executor and returns its result
// (asyncio.to_thread). The arguments are moved into the call. Like any
// coroutine it does nothing until awaited.
template <class F, class... A>
Coro<std::remove_cvref_t<std::invoke_result_t<F&, A...>>> to_thread(F fn, A... args) {
  // asyncio.to_thread: ctx = contextvars.copy_context(), then ctx.run(func)
  // on the worker; taken when the coroutine runs, in the awaiting task.
  // Named, not a temporary inside the co_await expression: GCC 12 destroys
  // such a lambda's captures twice.
  auto call = [context = internal::Ref<internal::ContextState>::adopt(internal::capture_context()),
               fn = std::move(fn), ... args = std::move(args)]() mutable -> decltype(auto) {
    internal::ContextScope context_scope(context);
    return std::invoke(fn, std::move(args)...);
  };
  co_return co_await run_in_executor(std::move(call));
}

}  // namespace twinloop

#endif  // TWINLOOP_API_EXECUTOR_H_
