// twinloop/api/runner.h: the shared body of real::run and sim::run
// (asyncio.run / asyncio.Runner, CPython 3.14 Lib/asyncio/runners.py).
//
// run_main(loop, main) wraps `main` in a task, runs the loop until it is
// done, then shuts down as asyncio.run does: it cancels every task still
// unfinished, runs the loop until they have all finished, reports their
// non-cancellation errors to the exception handler ("unhandled exception
// during twinloop run() shutdown"), and closes the loop (which stops the
// executor). It returns the main task's result or rethrows its exception
// (CancelledError if it was cancelled).
//
// Users call twinloop::real::run(coro) or twinloop::sim::run(coro, options);
// this header is for loop implementations.
#ifndef TWINLOOP_API_RUNNER_H_
#define TWINLOOP_API_RUNNER_H_

#include <stdexcept>
#include <utility>

#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/internal/loop_access.h"
#include "twinloop/api/task.h"

namespace twinloop::internal {

// Cancels and finishes leftover tasks, reports their errors, closes `loop`.
void shutdown_loop(EventLoop& loop);

// Wraps `main` in a task on `loop` (which must not be running).
template <class T>
Task<T> start_main(EventLoop& loop, Coro<T> main) {
  if (running_loop_or_null())
    throw std::runtime_error("run() cannot be called from a running event loop");
  RunningLoopScope scope(&loop);
  return create_task(std::move(main));
}

template <class T>
T run_main(EventLoop& loop, Coro<T> main) {
  Task<T> task = start_main(loop, std::move(main));
  try {
    LoopAccess::run_until_done(loop, *task.state());
  } catch (...) {
    // The loop itself failed (e.g. a simulated deadlock): drop everything.
    loop.close();
    throw;
  }
  shutdown_loop(loop);
  return task.result();
}

}  // namespace twinloop::internal

#endif  // TWINLOOP_API_RUNNER_H_
