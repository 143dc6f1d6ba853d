// twinloop/real/run.h: run a coroutine on the real (epoll) event loop
// (asyncio.run, asyncio.new_event_loop).
//
//   twinloop::Coro<int> main_coro() {
//     co_await twinloop::sleep(absl::Milliseconds(10));
//     co_return 42;
//   }
//   int main() { return twinloop::real::run(main_coro()) == 42 ? 0 : 1; }
//
// run() is asyncio.run: `with Runner() as r: return r.run(main)` on a new
// real loop (api/runner.h). It runs `main` as a task until it finishes, then
// shuts down: leftover tasks are cancelled and finished, the executor is
// stopped, the loop is closed. It returns main's result or rethrows its
// exception (CancelledError if it was cancelled). Calling run() while a loop
// is running on this thread throws std::runtime_error.
//
// Ctrl-C: on the main thread, if the program left SIGINT at its default,
// the first SIGINT cancels `main` and run() then throws KeyboardInterrupt
// (api/errors.h); a second one makes run() throw it at once. The previous
// disposition is restored afterwards (Runner, api/runner.h).
//
// Several runs on one loop: real::Runner, asyncio.Runner with the real loop
// as its default loop factory.
//
//   twinloop::real::Runner runner;
//   runner.run(connect());
//   runner.run(serve());
//
// The same coroutine runs unchanged on the simulated loop (sim/simulation.h); the
// real loop takes the default branch of every decision the simulated loop
// explores (LoopBackend::choose answers 0).
//
// Threads: run() uses the calling thread as the loop thread; executor work
// (run_in_executor, to_thread) runs on the loop's thread pool.
#ifndef TWINLOOP_REAL_RUN_H_
#define TWINLOOP_REAL_RUN_H_

#include <optional>
#include <utility>

#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/internal/ref.h"
#include "twinloop/api/runner.h"
#include "twinloop/api/task.h"

namespace twinloop::real {

// asyncio.run's keyword arguments.
struct RunOptions {
  // EventLoop::set_debug (asyncio.run's debug=None|True|False): debug mode
  // on or off; unset (nullopt) keeps the loop's default, which is
  // TWINLOOP_DEBUG's (api/event_loop.h, "Debug mode").
  std::optional<bool> debug = std::nullopt;
  // What debug mode considers slow (asyncio's loop.slow_callback_duration).
  absl::Duration slow_callback_duration = absl::Milliseconds(100);
};

// A new, not running, real event loop (asyncio.new_event_loop). Close it
// (EventLoop::close) when done, which stops its executor; the last
// EventLoopRef to go closes it otherwise.
EventLoopRef new_event_loop();

// asyncio.Runner whose loop factory defaults to real::new_event_loop.
class Runner : public ::twinloop::Runner {
 public:
  Runner() : Runner(RunnerOptions{}) {}
  explicit Runner(RunnerOptions options) : ::twinloop::Runner(with_default_loop(std::move(options))) {}

 private:
  static RunnerOptions with_default_loop(RunnerOptions options) {
    if (!options.loop_factory) options.loop_factory = new_event_loop;
    return options;
  }
};

// Runs `main` to completion on a new real loop and returns its result.
template <class T>
T run(Coro<T> main, RunOptions options = {}) {
  Runner runner(RunnerOptions{
      .debug = options.debug,
      .loop_factory =
          [slow = options.slow_callback_duration] {
            EventLoopRef loop = new_event_loop();
            loop->set_slow_callback_duration(slow);
            return loop;
          },
  });
  return ::twinloop::internal::run_main(runner, std::move(main));
}

// What converts to a Coro (sleep(), wait_for(), a queue's get()) runs as it:
// run(sleep(d)), run(wait_for(main(), d)).
template <CoroConvertible A>
auto run(A main, RunOptions options = {}) {
  return run(std::move(main).as_coro(), options);
}

}  // namespace twinloop::real

#endif  // TWINLOOP_REAL_RUN_H_
