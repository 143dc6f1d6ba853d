// twinloop/api/runner.h: Runner, one event loop for several runs
// (asyncio.Runner, CPython 3.14 Lib/asyncio/runners.py), and the body of
// real::run and sim::run (asyncio.run).
//
//   twinloop::real::Runner runner;            // the real loop (real/run.h)
//   int a = runner.run(first());              // makes the loop, runs first()
//   int b = runner.run(second());             // on the same loop
//   runner.close();                           // or let the destructor do it
//
//   // Any loop, through its factory (asyncio's loop_factory):
//   twinloop::Runner r({.loop_factory = [] { return twinloop::sim::new_event_loop({.seed = 7}); }});
//
// The loop. Runner makes it with options.loop_factory on first use (run or
// get_loop) and keeps it until close(). api/ knows no loop implementation,
// so the factory is required here (std::invalid_argument without one);
// real::Runner (real/run.h) defaults it to real::new_event_loop, asyncio's
// default loop, and sim::Runner (sim/simulation.h) to sim::new_event_loop
// with the given sim::Options. options.debug, if set, is applied to the
// new loop (EventLoop::set_debug); unset leaves the loop's own default.
//
// run(coro) wraps `coro` in a task on the runner's loop, runs the loop until
// the task is done, and returns its result or rethrows its exception
// (CancelledError if it was cancelled). std::runtime_error("Runner.run()
// cannot be called from a running event loop") if any loop runs on this
// thread, the runner's included (a run from inside a run); then
// std::runtime_error("Runner is closed") after close(). Tasks the coroutine
// left behind stay on the loop, for the next run or for close().
// std::runtime_error("Event loop stopped before Future completed.") if
// loop.stop() ended the run first, as asyncio's run_until_complete.
//
// close() does what asyncio.run does after main: it cancels every task
// still unfinished, runs the loop until they have all finished, reports
// their errors other than cancellation to the exception handler
// ("unhandled exception during twinloop run() shutdown"), and closes the
// loop, which stops its executor (EventLoop::close). Idempotent; a runner
// that never made its loop has nothing to close. std::runtime_error if
// called while the loop runs. The destructor closes (asyncio's `with
// Runner() as runner:`); since a destructor cannot throw, an error there
// goes to the loop's exception handler: call close() to receive it.
//
// Ctrl-C (asyncio's Runner._on_sigint). While run() runs, if the program has
// not claimed SIGINT (no add_signal_handler(SIGINT) on the loop, and the
// backend's LoopBackend::signal_is_default: for the real loop, the main
// thread and a SIG_DFL disposition), the runner watches SIGINT itself:
//  - the first SIGINT cancels the main task (it wakes with CancelledError
//    wherever it waits). If the task then ends cancelled and that request
//    was its only one (uncancel() == 0), run() throws KeyboardInterrupt
//    instead of CancelledError; a task that user code had cancelled as well
//    ends in CancelledError (test_interrupt_cancelled_task);
//  - a SIGINT after that (or one that finds the main task done) makes
//    run() throw KeyboardInterrupt at once, without waiting for the task:
//    close() then cancels and finishes it.
// After run() the previous SIGINT disposition is back. On the real loop a
// SIGINT is seen when the loop next polls (at once if it is waiting;
// within about 50 us of loop time if callbacks keep it busy); on the
// simulated loop SimBackend::raise_signal(SIGINT) delivers it at once,
// and no process signal handler is ever installed. A backend that cannot
// watch SIGINT runs without this (test_signal_install_not_supported_ok).
//
// Differences from asyncio: run() takes a Coro (or what converts to one,
// such as sleep()); there is no set_event_loop (twinloop has no event loop
// policy); a loop that fails (a simulated deadlock or time limit, an epoll
// error) is closed at once, without the shutdown, and the runner with it,
// since nothing more can run on it in order.
//
// Threads: a Runner is used on one thread, which its runs make the loop's.
#ifndef TWINLOOP_API_RUNNER_H_
#define TWINLOOP_API_RUNNER_H_

#include <functional>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "twinloop/api/contextvars.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/task.h"

namespace twinloop {

// asyncio.Runner's keyword arguments.
struct RunnerOptions {
  // EventLoop::set_debug on the new loop; unset: the loop's default.
  std::optional<bool> debug = std::nullopt;
  // Makes the runner's loop: real::new_event_loop, or a lambda calling
  // sim::new_event_loop(options), or a loop on a backend of your own
  // (docs/extending.md). Required.
  std::function<EventLoopRef()> loop_factory = nullptr;
};

class Runner {
 public:
  // std::invalid_argument if options.loop_factory is empty.
  explicit Runner(RunnerOptions options);
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;
  // Closes (see close()).
  ~Runner();

  // Runs `coro` as a task on the runner's loop until it is done.
  template <class T>
  T run(Coro<T> coro);
  // sleep(), queue operations and other awaitables that become a Coro.
  template <CoroConvertible A>
  auto run(A a) {
    return run(std::move(a).as_coro());
  }

  // The runner's loop, made now if need be. std::runtime_error("Runner is
  // closed") after close().
  EventLoop& get_loop();

  // Cancels and finishes leftover tasks, reports their errors, closes the
  // loop. Idempotent.
  void close();

 private:
  enum class State : uint8_t { kCreated, kInitialized, kClosed };

  void lazy_init();
  // The one place the main task is made (asyncio: self._loop.create_task(
  // coro, context=self._context)): where the runner's contextvars context,
  // copied once in lazy_init, is given to every run's task.
  template <class T>
  Task<T> create_main_task(Coro<T> coro) {
    TaskOptions options;
    options.context = *context_;
    return loop_->create_task(std::move(coro), std::move(options));
  }
  // Runs the loop until `main` (a task) is done, with Ctrl-C handled; throws
  // KeyboardInterrupt as asyncio's Runner.run does.
  void run_main_task(internal::FutureBase& main);
  void on_sigint(internal::FutureBase& main);

  // The context every run's task runs in (copied once, in lazy_init).
  std::optional<Context> context_;
  RunnerOptions options_;
  State state_ = State::kCreated;
  EventLoopRef loop_;
  // SIGINTs seen during this run (asyncio's _interrupt_count).
  int interrupt_count_ = 0;
  // A SIGINT asked run() to raise KeyboardInterrupt at once.
  bool interrupt_now_ = false;
};

template <class T>
T Runner::run(Coro<T> coro) {
  if (running_loop_or_null()) throw std::runtime_error("Runner.run() cannot be called from a running event loop");
  lazy_init();
  Task<T> task = create_main_task(std::move(coro));
  run_main_task(*task.state());
  task.state()->check_result();
  if constexpr (!std::is_void_v<T>) return T(std::move(task.state()->value()));
}

namespace internal {

// Cancels and finishes leftover tasks, reports their errors, closes `loop`
// (Runner::close's body).
void shutdown_loop(EventLoop& loop);

// asyncio.run: `with Runner(...) as runner: return runner.run(main)`. The
// runner is closed also when run() throws; an error of close() then
// replaces run()'s, as an exception raised in __exit__ does in Python.
template <class T>
T run_main(Runner& runner, Coro<T> main) {
  if (running_loop_or_null()) throw std::runtime_error("run() cannot be called from a running event loop");
  if constexpr (std::is_void_v<T>) {
    try {
      runner.run(std::move(main));
    } catch (...) {
      runner.close();
      throw;
    }
    runner.close();
  } else {
    std::optional<T> result;
    try {
      result.emplace(runner.run(std::move(main)));
    } catch (...) {
      runner.close();
      throw;
    }
    runner.close();
    return std::move(*result);
  }
}

// asyncio.run on a given, not running loop, which it closes.
template <class T>
T run_main(EventLoop& loop, Coro<T> main) {
  Runner runner(RunnerOptions{.loop_factory = [&loop] { return EventLoopRef(&loop); }});
  return run_main(runner, std::move(main));
}

}  // namespace internal

}  // namespace twinloop

#endif  // TWINLOOP_API_RUNNER_H_
