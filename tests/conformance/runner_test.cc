// Cross-loop conformance: Runner and Ctrl-C (CPython 3.14
// Lib/asyncio/runners.py; cases from Lib/test/test_asyncio/test_runners.py),
// on the real and the simulated loop. A SIGINT reaches the simulated loop
// through SimBackend::raise_signal and the real loop as a real signal to this
// thread (interrupt_self).
#include <pthread.h>
#include <signal.h>

#include <atomic>
#include <csignal>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/future.h"
#include "twinloop/api/loop_backend.h"
#include "twinloop/api/runner.h"
#include "twinloop/api/task.h"
#include "gtest/gtest.h"
#include "twinloop/real/epoll_backend.h"
#include "twinloop/real/run.h"
#include "twinloop/sim/sim_backend.h"
#include "twinloop/sim/simulation.h"
#include "twinloop/tests/conformance/loop_fixture.h"

namespace twinloop::conformance {
namespace {

constexpr absl::Duration kMs = absl::Milliseconds(1);

// The process's SIGINT handler now (SIG_DFL, SIG_IGN or a function).
void (*sigint_handler_now())(int) {
  struct sigaction now {};
  if (sigaction(SIGINT, nullptr, &now) != 0) return SIG_ERR;
  return now.sa_handler;
}

// CPython test_runners.py interrupt_self (_thread.interrupt_main(): Ctrl-C
// for the main thread). On the simulated loop through its backend; on other
// loops a real SIGINT to this thread, sent only if something other than the
// default action will receive it (it would kill the test process): else the
// test fails and the loop stops.
void interrupt_self() {
  EventLoop& loop = get_running_loop();
  if (auto* simulated = dynamic_cast<sim::SimBackend*>(&loop.backend())) {
    simulated->raise_signal(SIGINT);
    return;
  }
  const auto handler = sigint_handler_now();
  if (handler == SIG_DFL || handler == SIG_IGN || handler == SIG_ERR) {
    ADD_FAILURE() << "SIGINT is not handled: the runner did not take it";
    loop.stop();
    return;
  }
  raise(SIGINT);
}

Coro<int> value_now(int v) { co_return v; }

// Counts every `period` until cancelled.
Coro<void> tick(absl::Duration period, int* ticks) {
  while (true) {
    co_await sleep(period);
    ++*ticks;
  }
}

// Starts `tick` as a task of its own and returns at once, leaving it behind.
Coro<void> leave_ticker(int* ticks) {
  create_task(tick(kMs, ticks));
  co_return;
}

// Starts sleep_noting_cancel(kNever) as a task and returns at once.
Coro<void> leave_sleeper(bool* cancelled) {
  create_task(sleep_noting_cancel(kNever, cancelled));
  co_return;
}

class RunnerConformance : public LoopTest {
 protected:
  // Runner's options for a loop of this case's kind.
  RunnerOptions options(int* factory_calls = nullptr) const {
    return RunnerOptions{.loop_factory = [p = GetParam(), factory_calls] {
      if (factory_calls) ++*factory_calls;
      return conformance::new_loop(p);
    }};
  }
};

// ---------------------------------------------------------------- Runner

// CPython test_runners.py test_run, and asyncio.Runner's reason to be: several
// runs on one loop; a task one run leaves behind goes on in the next.
TEST_P(RunnerConformance, RunsShareOneLoopAndItsTasks) {
  Runner runner(options());
  EventLoopRef loop(&runner.get_loop());
  int ticks = 0;
  runner.run(leave_ticker(&ticks));
  EXPECT_EQ(&runner.get_loop(), loop.get());
  EXPECT_EQ(runner.run(sleep(20 * kMs, 7)), 7);
  EXPECT_GT(ticks, 0) << "the ticker left by the first run ran during the second";
  EXPECT_EQ(&runner.get_loop(), loop.get());
  runner.close();
  const int after_close = ticks;
  EXPECT_TRUE(loop->is_closed());
  EXPECT_EQ(ticks, after_close);
}

// CPython test_runners.py test_run_keeps_context: one context, copied when
// the runner starts, is the context of every run: a value set in one run is
// seen by the next, and never by the code that made the runner.
TEST_P(RunnerConformance, RunsShareOneContext) {
  static ContextVar<int> counter("counter", 0);
  Runner runner(options());
  const auto bump = []() -> Coro<int> {
    counter.set(counter.get() + 1);
    co_return counter.get();
  };
  EXPECT_EQ(runner.run(bump()), 1);
  EXPECT_EQ(runner.run(bump()), 2);
  EXPECT_EQ(counter.get(), 0) << "the runner's context is a copy";
  runner.close();
}

// CPython test_runners.py test_custom_factory: the factory makes the loop,
// once, when it is first needed.
TEST_P(RunnerConformance, FactoryIsCalledOnceWhenTheLoopIsFirstNeeded) {
  int calls = 0;
  Runner runner(options(&calls));
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(runner.run(value_now(1)), 1);
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(runner.run(value_now(2)), 2);
  runner.get_loop();
  EXPECT_EQ(calls, 1);
}

// CPython test_runners.py test_debug / test_non_debug: debug is applied to
// the new loop; unset leaves the factory's choice.
TEST_P(RunnerConformance, DebugOptionIsAppliedToTheLoop) {
  RunnerOptions on = options();
  on.debug = true;
  EXPECT_TRUE(Runner(on).get_loop().get_debug());
  RunnerOptions off = options();
  off.debug = false;
  EXPECT_FALSE(Runner(off).get_loop().get_debug());
  Runner unset(RunnerOptions{.loop_factory = [p = GetParam()] {
    EventLoopRef loop = conformance::new_loop(p);
    loop->set_debug(true);
    return loop;
  }});
  EXPECT_TRUE(unset.get_loop().get_debug());
}

// CPython test_runners.py test_explicit_close / test_double_close /
// test_second_with_block_raises: close() closes the loop, a second close()
// does nothing, and the runner is then closed for good.
TEST_P(RunnerConformance, CloseClosesTheLoopOnceAndForGood) {
  Runner runner(options());
  EventLoopRef loop(&runner.get_loop());
  runner.close();
  EXPECT_TRUE(loop->is_closed());
  runner.close();
  EXPECT_TRUE(loop->is_closed());
  try {
    runner.get_loop();
    ADD_FAILURE() << "get_loop() after close() did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "Runner is closed");
  }
  bool ran = false;
  auto mark = [](bool* flag) -> Coro<void> {
    *flag = true;
    co_return;
  };
  try {
    runner.run(mark(&ran));
    ADD_FAILURE() << "run() after close() did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "Runner is closed");
  }
  EXPECT_FALSE(ran);
}

// CPython runners.py Runner.close: a runner that never made its loop has
// nothing to close, and stays usable.
TEST_P(RunnerConformance, CloseBeforeTheLoopExistsDoesNothing) {
  int calls = 0;
  Runner runner(options(&calls));
  runner.close();
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(runner.run(value_now(3)), 3);
}

// CPython test_runners.py test_recursive_run: run() from inside one of the
// runner's own runs raises, and the coroutine never runs.
TEST_P(RunnerConformance, RunFromInsideARunRaises) {
  Runner runner(options());
  bool inner_ran = false;
  auto inner = [](bool* flag) -> Coro<void> {
    *flag = true;
    co_return;
  };
  runner.run([&]() -> Coro<void> {
    try {
      runner.run(inner(&inner_ran));
      ADD_FAILURE() << "a recursive run() did not throw";
    } catch (const std::runtime_error& e) {
      EXPECT_STREQ(e.what(), "Runner.run() cannot be called from a running event loop");
    }
    co_return;
  }());
  EXPECT_FALSE(inner_ran);
}

// CPython runners.py Runner.run: "cannot be called from a running event
// loop" holds for any loop running on the thread, before the runner makes
// its own loop.
TEST_P(RunnerConformance, RunWhileAnotherLoopRunsRaisesBeforeMakingALoop) {
  int calls = 0;
  Runner runner(options(&calls));
  run([&]() -> Coro<void> {
    EXPECT_THROW(runner.run(value_now(1)), std::runtime_error);
    co_return;
  }());
  EXPECT_EQ(calls, 0);
}

// CPython test_runners.py test_asyncio_run_cancels_hanging_tasks /
// test_asyncio_run_reports_hanging_tasks_errors, for Runner.close: leftover
// tasks are cancelled and finished; an error other than the cancellation is
// reported to the exception handler.
TEST_P(RunnerConformance, CloseCancelsLeftoversAndReportsTheirErrors) {
  Runner runner(options());
  Reports reports;
  bool cancelled = false;
  runner.run([&]() -> Coro<void> {
    reports.install();
    create_task(sleep_noting_cancel(kNever, &cancelled));
    create_task(
        [](absl::Duration d) -> Coro<void> {
          bool was_cancelled = false;
          try {
            co_await sleep(d);
          } catch (const CancelledError&) {
            was_cancelled = true;
          }
          if (was_cancelled) throw std::runtime_error("cleanup failed");
        }(kNever),
        TaskOptions{.name = "cleaner"});
    co_return;
  }());
  EXPECT_FALSE(cancelled);
  EXPECT_EQ(reports.contexts.size(), 0u);
  runner.close();
  EXPECT_TRUE(cancelled);
  ASSERT_EQ(reports.contexts.size(), 1u);
  EXPECT_EQ(reports.contexts[0].message, "unhandled exception during twinloop run() shutdown");
  EXPECT_EQ(reports.contexts[0].task, "cleaner");
  EXPECT_EQ(runtime_error_message(reports.contexts[0].exception), "cleanup failed");
}

// asyncio's `with Runner() as runner:` closes on exit; the destructor here.
TEST_P(RunnerConformance, DestructorCloses) {
  bool cancelled = false;
  EventLoopRef loop;
  {
    Runner runner(options());
    loop = EventLoopRef(&runner.get_loop());
    runner.run(leave_sleeper(&cancelled));
    EXPECT_FALSE(cancelled);
  }
  EXPECT_TRUE(cancelled);
  EXPECT_TRUE(loop->is_closed());
}

// CPython base_events.py run_until_complete: a stop() before the main task
// is done raises RuntimeError('Event loop stopped before Future
// completed.'); the runner stays usable and close() finishes the task.
TEST_P(RunnerConformance, StopBeforeTheTaskIsDoneRaisesAndTheRunnerGoesOn) {
  Runner runner(options());
  bool cancelled = false;
  try {
    runner.run([&]() -> Coro<void> {
      get_running_loop().stop();
      co_await sleep_noting_cancel(kNever, &cancelled);
    }());
    ADD_FAILURE() << "run() did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "Event loop stopped before Future completed.");
  }
  EXPECT_EQ(runner.run(value_now(4)), 4);
  EXPECT_FALSE(cancelled);
  runner.close();
  EXPECT_TRUE(cancelled);
}

// run() hands back the task's result itself: a move-only one too.
TEST_P(RunnerConformance, RunReturnsAMoveOnlyResult) {
  Runner runner(options());
  std::unique_ptr<int> p = runner.run([]() -> Coro<std::unique_ptr<int>> {
    co_await sleep(kMs);
    co_return std::make_unique<int>(9);
  }());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 9);
}

// The main task's exception comes out of run(); the runner goes on.
TEST_P(RunnerConformance, RunRethrowsTheTasksException) {
  Runner runner(options());
  try {
    runner.run(fail_after(kMs, "boom"));
    ADD_FAILURE() << "run() did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "boom");
  }
  EXPECT_EQ(runner.run(value_now(5)), 5);
}

// ---------------------------------------------------------------- Ctrl-C

// CPython test_runners.py test_interrupt_wait: SIGINT while the main task
// waits on a future cancels the future and the task; run() raises
// KeyboardInterrupt.
TEST_P(RunnerConformance, InterruptWhileWaitingRaisesKeyboardInterrupt) {
  Runner runner(options());
  Future<void> fut = runner.get_loop().create_future<void>();
  runner.get_loop().call_later(10 * kMs, interrupt_self);
  bool saw_cancel = false;
  EXPECT_THROW(runner.run([&]() -> Coro<void> {
    try {
      co_await fut;
    } catch (const CancelledError&) {
      saw_cancel = true;
    }
    throw CancelledError();
  }()),
               KeyboardInterrupt);
  EXPECT_TRUE(saw_cancel);
  EXPECT_TRUE(fut.cancelled());
}

// Interrupts from another task after a few loop iterations.
Coro<void> interrupt_after_iterations(int n) {
  for (int i = 0; i < n; ++i) co_await sleep(absl::ZeroDuration());
  interrupt_self();
}

// CPython test_runners.py test_interrupt_call_soon: the main task is never
// waiting on a future (it is always ready: sleep(0) in a loop); SIGINT
// still cancels it, and run() raises KeyboardInterrupt.
TEST_P(RunnerConformance, InterruptOfAReadyTaskRaisesKeyboardInterrupt) {
  Runner runner(options());
  bool saw_cancel = false;
  EXPECT_THROW(runner.run([&]() -> Coro<void> {
    create_task(interrupt_after_iterations(3));
    try {
      // Bounded, so that a lost interrupt fails the test instead of hanging it.
      for (int i = 0; i < 1'000'000; ++i) co_await sleep(absl::ZeroDuration());
    } catch (const CancelledError&) {
      saw_cancel = true;
    }
    if (saw_cancel) throw CancelledError();
  }()),
               KeyboardInterrupt);
  EXPECT_TRUE(saw_cancel);
}

// Cancels `task`, then interrupts (test_interrupt_cancelled_task's subtask).
Coro<void> cancel_then_interrupt(TaskRef task) {
  co_await sleep(absl::ZeroDuration());
  task.cancel();
  interrupt_self();
}

// CPython test_runners.py test_interrupt_cancelled_task: a main task that
// user code cancelled as well ends in CancelledError, not KeyboardInterrupt
// (its uncancel() does not reach 0).
TEST_P(RunnerConformance, InterruptOfACancelledTaskRaisesCancelledError) {
  Runner runner(options());
  EXPECT_THROW(runner.run([]() -> Coro<void> {
    create_task(cancel_then_interrupt(*current_task()));
    co_await sleep(kNever);
  }()),
               CancelledError);
}

// CPython runners.py _on_sigint: a second SIGINT raises KeyboardInterrupt
// at once, without waiting for the main task (which here ignored the first
// one); close() then cancels and finishes it.
TEST_P(RunnerConformance, SecondInterruptRaisesAtOnce) {
  Runner runner(options());
  runner.get_loop().call_later(10 * kMs, interrupt_self);
  bool first_cancel = false;
  bool second_cancel = false;
  const absl::Time start = runner.get_loop().time();
  EXPECT_THROW(runner.run([&]() -> Coro<void> {
    try {
      co_await sleep(kNever);
    } catch (const CancelledError&) {
      first_cancel = true;  // and ignored
    }
    interrupt_self();
    co_await sleep_noting_cancel(kNever, &second_cancel);
  }()),
               KeyboardInterrupt);
  EXPECT_TRUE(first_cancel);
  EXPECT_FALSE(second_cancel) << "run() waited for the task";
  EXPECT_LT(runner.get_loop().time() - start, kNever);
  runner.close();
  EXPECT_TRUE(second_cancel);
}

// CPython runners.py Runner.run: a task that swallows the interrupt's
// cancellation and returns is not cancelled, so run() returns its result.
TEST_P(RunnerConformance, InterruptedTaskThatReturnsGivesItsResult) {
  Runner runner(options());
  runner.get_loop().call_later(10 * kMs, interrupt_self);
  EXPECT_EQ(runner.run([]() -> Coro<int> {
    bool cancelled = false;
    try {
      co_await sleep(kNever);
    } catch (const CancelledError&) {
      cancelled = true;
    }
    co_return cancelled ? 42 : 0;
  }()),
            42);
}

// asyncio.run (real::run, sim::run) handles Ctrl-C the same way, and its
// shutdown still runs: leftover tasks are cancelled.
TEST_P(RunnerConformance, RunFunctionRaisesKeyboardInterrupt) {
  bool leftover_cancelled = false;
  EXPECT_THROW(run([&]() -> Coro<void> {
    create_task(sleep_noting_cancel(kNever, &leftover_cancelled));
    get_running_loop().call_later(10 * kMs, interrupt_self);
    co_await sleep(kNever);
  }()),
               KeyboardInterrupt);
  EXPECT_TRUE(leftover_cancelled);
}

// CPython runners.py Runner.run: the runner handles SIGINT only while the
// program has not claimed it. A handler the program sets with
// add_signal_handler(SIGINT) during the run receives it instead, from the
// ready queue, and the main task is not cancelled.
TEST_P(RunnerConformance, ProgramsOwnSigintHandlerWins) {
  Runner runner(options());
  EXPECT_EQ(runner.run([]() -> Coro<int> {
    EventLoop& loop = get_running_loop();
    Future<int> handled = loop.create_future<int>();
    loop.add_signal_handler(SIGINT, [handled]() mutable { handled.set_result(1); });
    loop.call_soon(interrupt_self);
    const int v = co_await handled;
    EXPECT_EQ(current_task()->cancelling(), 0);
    EXPECT_TRUE(loop.remove_signal_handler(SIGINT));
    co_return v;
  }()),
            1);
  runner.close();
  EXPECT_EQ(sigint_handler_now(), SIG_DFL);
}

// CPython runners.py Runner.run restores SIGINT after each run. The real
// loop installs a process handler during a run; the simulated loop never
// does (its SIGINT is raise_signal's).
TEST_P(RunnerConformance, SigintDispositionIsRestoredAfterEachRun) {
  ASSERT_EQ(sigint_handler_now(), SIG_DFL);
  Runner runner(options());
  void (*during)(int) = SIG_ERR;
  runner.run([&]() -> Coro<void> {
    during = sigint_handler_now();
    co_return;
  }());
  if (on_real_loop()) {
    EXPECT_NE(during, SIG_DFL);
  } else if (GetParam().kind == LoopKind::kSim) {
    EXPECT_EQ(during, SIG_DFL) << "a simulated run installed a process signal handler";
  }
  EXPECT_EQ(sigint_handler_now(), SIG_DFL) << "after run(), before close()";
  runner.close();
  EXPECT_EQ(sigint_handler_now(), SIG_DFL);
}

// Forwards to another backend but refuses to watch signals.
class NoSignalsBackend final : public LoopBackend {
 public:
  explicit NoSignalsBackend(std::unique_ptr<LoopBackend> inner) : inner_(std::move(inner)) {}
  void attach(EventLoop& loop) override { inner_->attach(loop); }
  int64_t time_ns() override { return inner_->time_ns(); }
  void wait(int64_t deadline_ns) override { inner_->wait(deadline_ns); }
  void wake() override { inner_->wake(); }
  void submit(absl::AnyInvocable<void()> work, absl::AnyInvocable<void()> done) override {
    inner_->submit(std::move(work), std::move(done));
  }
  uint64_t choose(std::string_view site, uint64_t n) override { return inner_->choose(site, n); }
  bool buggify(std::string_view site) override { return inner_->buggify(site); }
  uint64_t task_key(uint64_t parent_key, std::string_view base) override { return inner_->task_key(parent_key, base); }
  bool signal_is_default(int sig) override { return inner_->signal_is_default(sig); }
  void watch_signal(int /*sig*/, bool on) override {
    if (on) throw std::runtime_error("signals are not supported here");
  }
  void close() override { inner_->close(); }
  LoopBackend& inner() { return *inner_; }

 private:
  std::unique_ptr<LoopBackend> inner_;
};

// CPython test_runners.py test_signal_install_not_supported_ok: when the
// handler cannot be installed, the run goes on without it.
TEST_P(RunnerConformance, BackendThatCannotWatchSigintRunsWithoutIt) {
  if (GetParam().kind == LoopKind::kCustom) GTEST_SKIP() << "wraps the built-in backends only";
  const LoopParam p = GetParam();
  Runner runner(RunnerOptions{.loop_factory = [p] {
    std::unique_ptr<LoopBackend> inner;
    if (p.kind == LoopKind::kReal) {
      inner = std::make_unique<real::EpollBackend>();
    } else {
      inner = std::make_unique<sim::SimBackend>(sim::Options{.seed = p.seed});
    }
    return EventLoopRef(new EventLoop(std::make_unique<NoSignalsBackend>(std::move(inner))));
  }});
  auto& backend = static_cast<NoSignalsBackend&>(runner.get_loop().backend());
  EXPECT_EQ(runner.run([&]() -> Coro<int> {
    EXPECT_EQ(sigint_handler_now(), SIG_DFL);
    if (auto* simulated = dynamic_cast<sim::SimBackend*>(&backend.inner())) {
      simulated->raise_signal(SIGINT);  // nobody watches it: nothing happens
    }
    co_await sleep(kMs);
    EXPECT_EQ(current_task()->cancelling(), 0);
    co_return 6;
  }()),
            6);
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(RunnerConformance);

// ---------------------------------------------------------------- one loop only

TEST(Runner, NeedsALoopFactory) {
  EXPECT_THROW(Runner(RunnerOptions{}), std::invalid_argument);
  EXPECT_THROW(Runner(RunnerOptions{.loop_factory = [] { return EventLoopRef(); }}).get_loop(),
               std::invalid_argument);
}

// real::Runner's default loop is the real one; sim::Runner's the simulated
// one, whose virtual time goes on from run to run.
TEST(Runner, RealAndSimRunnersSupplyTheirLoops) {
  real::Runner real_runner;
  EXPECT_NE(dynamic_cast<real::EpollBackend*>(&real_runner.get_loop().backend()), nullptr);
  sim::Runner sim_runner(sim::Options{.seed = 4});
  EXPECT_NE(dynamic_cast<sim::SimBackend*>(&sim_runner.get_loop().backend()), nullptr);
  sim_runner.run(sleep(absl::Seconds(5)));
  sim_runner.run(sleep(absl::Seconds(5)));
  EXPECT_EQ(sim_runner.get_loop().time(), absl::UnixEpoch() + absl::Seconds(10));
}

// A loop that fails (here a simulated deadlock) is closed at once, and the
// runner with it.
TEST(Runner, ALoopFailureClosesTheRunner) {
  sim::Runner runner;
  EventLoopRef loop(&runner.get_loop());
  EXPECT_THROW(runner.run([]() -> Coro<void> { co_await create_future<void>(); }()), sim::DeadlockError);
  EXPECT_TRUE(loop->is_closed());
  EXPECT_THROW(runner.run(value_now(1)), std::runtime_error);
}

// Cancelled at shutdown, it then waits for something that never happens.
Coro<void> refuse_to_finish() {
  bool cancelled = false;
  try {
    co_await sleep(kNever);
  } catch (const CancelledError&) {
    cancelled = true;
  }
  if (cancelled) co_await create_future<void>();
}

Coro<void> leave_refuser() {
  create_task(refuse_to_finish());
  co_return;
}

// A shutdown that fails (here a simulated deadlock) comes out of close();
// the loop is closed all the same, and so is the runner.
TEST(Runner, CloseLetsAShutdownFailureOut) {
  sim::Runner runner;
  EventLoopRef loop(&runner.get_loop());
  runner.run(leave_refuser());
  EXPECT_THROW(runner.close(), sim::DeadlockError);
  EXPECT_TRUE(loop->is_closed());
  runner.close();  // closed already: nothing to do
}

// The destructor cannot throw: it reports the failure to the loop's
// exception handler.
TEST(Runner, DestructorReportsAShutdownFailure) {
  std::vector<std::string> reports;
  {
    sim::Runner runner;
    runner.get_loop().set_exception_handler([&reports](EventLoop&, const ExceptionContext& c) {
      reports.push_back(c.message + ": " + describe_exception(c.exception));
    });
    runner.run(leave_refuser());
  }
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].rfind("Runner::close() failed in the Runner's destructor: ", 0), 0u) << reports[0];
}

// Simulation::run is asyncio.run: once per Simulation.
TEST(Runner, SimulationRunsOnce) {
  sim::Simulation simulation(sim::Options{.seed = 2});
  EXPECT_EQ(simulation.run(value_now(1)), 1);
  try {
    simulation.run(value_now(2));
    ADD_FAILURE() << "a second Simulation::run did not throw";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "Runner is closed");
  }
}

// Ctrl-C through SimBackend::raise_signal is part of the schedule: the same
// seed gives the same run.
TEST(Runner, SimulatedInterruptIsDeterministic) {
  auto once = [](uint64_t seed) {
    sim::Simulation simulation(sim::Options{.seed = seed, .time_limit = absl::Seconds(1)});
    simulation.loop().call_later(10 * kMs, interrupt_self);
    int ticks[4] = {};
    EXPECT_THROW(simulation.run([&]() -> Coro<void> {
      for (int& t : ticks) create_task(tick(kMs, &t));
      co_await sleep(kNever);
    }()),
                 KeyboardInterrupt);
    return simulation.event_hash();
  };
  EXPECT_EQ(once(5), once(5));
}

// CPython runners.py Runner.run: the handler is installed only if
// signal.getsignal(SIGINT) is default_int_handler. A program's own SIGINT
// handler stays in place (and receives the signal), on the real loop.
std::atomic<int> g_program_sigints{0};
void count_sigint(int) { g_program_sigints.fetch_add(1); }

TEST(RealRunner, LeavesTheProgramsOwnSigintHandlerAlone) {
  struct sigaction mine {};
  mine.sa_handler = count_sigint;
  sigemptyset(&mine.sa_mask);
  struct sigaction before {};
  ASSERT_EQ(sigaction(SIGINT, &mine, &before), 0);
  const int v = real::run([]() -> Coro<int> {
    EXPECT_EQ(sigint_handler_now(), &count_sigint);
    raise(SIGINT);
    co_await sleep(kMs);
    EXPECT_EQ(current_task()->cancelling(), 0);
    co_return 8;
  }());
  EXPECT_EQ(v, 8);
  EXPECT_EQ(g_program_sigints.load(), 1);
  EXPECT_EQ(sigint_handler_now(), &count_sigint);
  sigaction(SIGINT, &before, nullptr);
}

// asyncio's Runner handles SIGINT on the main thread only.
TEST(RealRunner, LeavesSigintAloneOffTheMainThread) {
  void (*during)(int) = SIG_ERR;
  std::thread other([&] {
    real::run([&]() -> Coro<void> {
      during = sigint_handler_now();
      co_return;
    }());
  });
  other.join();
  EXPECT_EQ(during, SIG_DFL);
}

}  // namespace
}  // namespace twinloop::conformance
