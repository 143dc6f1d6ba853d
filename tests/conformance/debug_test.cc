// Cross-loop conformance: asyncio's debug mode (CPython 3.14
// Lib/asyncio/base_events.py, coroutines.py, tasks.py), on the real and the
// simulated loop: coroutines never awaited, thread affinity, what is still
// open when a loop closes, slow callbacks and steps, TWINLOOP_DEBUG.
#include <chrono>
#include <csignal>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/functional/any_invocable.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/time.h"
#include "twinloop/api/awaitable.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/future.h"
#include "twinloop/api/gather.h"
#include "twinloop/api/internal/loop_access.h"
#include "twinloop/api/task.h"
#include "twinloop/api/task_group.h"
#include "twinloop/api/timeouts.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/real/run.h"
#include "twinloop/sim/simulation.h"
#include "twinloop/tests/conformance/loop_fixture.h"
#include "twinloop/tests/subprocess.h"

namespace twinloop::conformance {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr absl::Duration kMs = absl::Milliseconds(1);
constexpr char kThreadError[] = "Non-thread-safe operation invoked on an event loop other than the current one";

// The messages of what the exception handler received.
std::vector<std::string> messages(const Reports& r) {
  std::vector<std::string> out;
  for (const ExceptionContext& c : r.contexts) out.push_back(c.message);
  return out;
}

Coro<int> forty_two() { co_return 42; }

// Creates a coroutine and drops it without awaiting it.
Coro<void> create_and_drop() {
  Coro<int> c = forty_two();
  co_return;
}

// ---------------------------------------------------------------- never awaited

class NeverAwaitedConformance : public LoopTest {};

// CPython Objects/genobject.c _PyErr_WarnUnawaitedCoroutine: a coroutine
// object finalized without having started warns "coroutine 'forty_two' was
// never awaited" (test_coroutines.py CoroutineTest.test_func_2 and friends).
// twinloop reports it through the running loop's exception handler, in every
// mode, and without an origin outside debug mode.
TEST_P(NeverAwaitedConformance, DroppedCoroutineIsReportedWithItsName) {
  Reports reports;
  run([&]() -> Coro<void> {
    reports.install();
    { Coro<int> c = forty_two(); }
    EXPECT_THAT(messages(reports), ElementsAre("coroutine 'forty_two' was never awaited"));
    co_return;
  }());
  ASSERT_EQ(reports.contexts.size(), 1u);
  EXPECT_EQ(reports.contexts[0].exception, nullptr);
}

// The same when the Coro is replaced by another (move assignment destroys
// the one it held).
TEST_P(NeverAwaitedConformance, OverwrittenCoroutineIsReported) {
  Reports reports;
  run([&]() -> Coro<void> {
    reports.install();
    Coro<int> c = forty_two();
    c = value_after(kMs, 1);
    EXPECT_EQ(co_await std::move(c), 1);
  }());
  EXPECT_THAT(messages(reports), ElementsAre("coroutine 'forty_two' was never awaited"));
}

// Awaited, wrapped in a task (create_task, gather, wait_for, run_until's
// main), or closed on purpose: no report. A coroutine that TaskGroup refuses
// (asyncio 3.14 taskgroups.py: coro.close() before raising) or that a
// Timeout refuses on re-entry is closed, not reported.
TEST_P(NeverAwaitedConformance, AwaitedWrappedClosedOrRefusedCoroutinesAreNotReported) {
  Reports reports;
  run([&]() -> Coro<void> {
    reports.install();
    EXPECT_EQ(co_await forty_two(), 42);
    Coro<int> kept = forty_two();
    EXPECT_EQ(co_await kept, 42);
    Task<int> t = create_task(forty_two());
    EXPECT_EQ(co_await t, 42);
    auto [a, b] = co_await gather(forty_two(), forty_two());
    EXPECT_EQ(a + b, 84);
    EXPECT_EQ(co_await wait_for(forty_two(), absl::Seconds(10)), 42);
    Coro<int> closed = forty_two();
    closed.close();
    EXPECT_FALSE(closed.valid());

    TaskGroup finished;
    co_await finished.run([](TaskGroup&) -> Coro<void> { co_return; });
    bool refused = false;
    try {
      finished.create_task(forty_two());
    } catch (const std::runtime_error&) {
      refused = true;
    }
    EXPECT_TRUE(refused);

    Timeout exited = timeout(kNever);
    EXPECT_EQ(co_await exited.run(forty_two()), 42);
    bool reentry_refused = false;
    try {
      co_await exited.run(forty_two());
    } catch (const std::runtime_error&) {
      reentry_refused = true;
    }
    EXPECT_TRUE(reentry_refused);
  }());
  EXPECT_THAT(messages(reports), IsEmpty());
}

// A task whose coroutine was cancelled before its first step never runs its
// body (as asyncio throws CancelledError in at the first line), but it was
// handed to a task: not "never awaited".
TEST_P(NeverAwaitedConformance, TaskCancelledBeforeItsFirstStepIsNotReported) {
  Reports reports;
  run([&]() -> Coro<void> {
    reports.install();
    Task<int> t = create_task(forty_two());
    t.cancel();
    bool cancelled = false;
    try {
      co_await t;
    } catch (const CancelledError&) {
      cancelled = true;
    }
    EXPECT_TRUE(cancelled);
  }());
  EXPECT_THAT(messages(reports), IsEmpty());
}

// The report names the task that dropped the coroutine (asyncio's warning
// points at the code that created it, in debug mode; twinloop does not
// record creation sites of coroutines: see api/coro.h).
TEST_P(NeverAwaitedConformance, TheReportNamesTheTaskThatDroppedTheCoroutine) {
  Reports reports;
  run([&]() -> Coro<void> {
    reports.install();
    // Named before the co_await: a TaskOptions temporary inside one is a
    // g++ 12 trap (docs/design.md, "Compilers").
    Task<void> creator = create_task(create_and_drop(), TaskOptions{.name = "creator"});
    co_await creator;
    get_running_loop().call_soon([] { Coro<int> c = forty_two(); });
    co_await sleep(absl::ZeroDuration());
  }());
  ASSERT_THAT(messages(reports), ElementsAre("coroutine 'forty_two' was never awaited",
                                             "coroutine 'forty_two' was never awaited"));
  EXPECT_EQ(reports.contexts[0].task, "creator");
  EXPECT_EQ(reports.contexts[1].task, "");  // dropped by a callback
}

// A coroutine frame destroyed with its task when the loop closes takes its
// never-awaited Coro with it: reported to the closing loop's handler.
TEST_P(NeverAwaitedConformance, CoroutineDroppedWhenTheLoopClosesIsReportedToIt) {
  EventLoopRef loop = new_loop();
  Reports reports;
  loop->set_exception_handler([&](EventLoop&, const ExceptionContext& c) { reports.contexts.push_back(c); });
  loop->create_task([]() -> Coro<void> {
    Coro<int> later = forty_two();
    co_await sleep(kNever);
    co_await std::move(later);
  }());
  loop->run_until_complete(sleep(kMs));
  EXPECT_THAT(messages(reports), IsEmpty());
  loop->close();
  EXPECT_THAT(messages(reports), ElementsAre("coroutine 'forty_two' was never awaited"));
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(NeverAwaitedConformance);

// ---------------------------------------------------------------- threads

class ThreadAffinityConformance : public LoopTest {};

// What `call` raises on another thread while this one, the loop's, waits
// for it ("" if nothing). The loop thread blocks in join(), so the call
// cannot race with the loop even when debug mode lets it through.
std::string raised_on_another_thread(const std::function<void()>& call) {
  std::string what;
  std::thread other([&] {
    try {
      call();
    } catch (const std::runtime_error& e) {
      what = e.what();
    }
  });
  other.join();
  return what;
}

// CPython base_events.py BaseEventLoop._check_thread (debug mode only):
// call_soon, call_at (and so call_later) raise RuntimeError when called
// from a thread other than the loop's (test_base_events.py
// test_check_thread). create_task schedules its first step with call_soon,
// so it raises too; twinloop also checks create_future, run_forever,
// run_until_complete, run_once, add/remove_signal_handler and close.
// call_soon_threadsafe is the thread-safe way in.
TEST_P(ThreadAffinityConformance, NonThreadSafeCallsFromAnotherThreadRaiseInDebugMode) {
  int ran = 0;
  run([&]() -> Coro<void> {
    EventLoop& loop = get_running_loop();
    loop.set_debug(true);
    EXPECT_EQ(raised_on_another_thread([&] { loop.call_soon([&] { ++ran; }); }), kThreadError);
    EXPECT_EQ(raised_on_another_thread([&] { loop.call_later(kMs, [&] { ++ran; }); }), kThreadError);
    EXPECT_EQ(raised_on_another_thread([&] { loop.call_at(loop.time(), [&] { ++ran; }); }), kThreadError);
    EXPECT_EQ(raised_on_another_thread([&] { loop.create_task(forty_two()); }), kThreadError);
    EXPECT_EQ(raised_on_another_thread([&] { loop.create_task(forty_two(), TaskOptions{.name = "x"}); }),
              kThreadError);
    EXPECT_EQ(raised_on_another_thread([&] { loop.create_future<int>(); }), kThreadError);
    EXPECT_EQ(raised_on_another_thread([&] { loop.run_forever(); }), kThreadError);
    EXPECT_EQ(raised_on_another_thread([&] { loop.run_until_complete(forty_two()); }), kThreadError);
    EXPECT_EQ(raised_on_another_thread([&] { loop.run_once(); }), kThreadError);
    EXPECT_EQ(raised_on_another_thread([&] { loop.add_signal_handler(SIGUSR2, [] {}); }), kThreadError);
    EXPECT_EQ(raised_on_another_thread([&] { loop.remove_signal_handler(SIGUSR2); }), kThreadError);
    EXPECT_EQ(raised_on_another_thread([&] { loop.close(); }), kThreadError);

    // The thread-safe way in works, and the loop is intact.
    Future<int> f = loop.create_future<int>();
    // Made here: copying `f` on the other thread would race on its count.
    absl::AnyInvocable<void()> set = [f]() mutable { f.set_result(7); };
    std::thread other([&] { loop.call_soon_threadsafe(std::move(set)); });
    other.join();  // before the simulated loop could find nothing to do (a deadlock)
    EXPECT_EQ(co_await f, 7);
    // On its own thread nothing is refused.
    loop.call_soon([&] { ++ran; });
    EXPECT_EQ(co_await create_task(forty_two()), 42);
  }());
  EXPECT_EQ(ran, 1);
}

// Outside debug mode asyncio does not check (the check is behind `if
// self._debug`), and neither do we: the call goes through. set_debug
// switches the check on and off on a running loop.
TEST_P(ThreadAffinityConformance, OutsideDebugModeNothingIsCheckedAndSetDebugToggles) {
  std::vector<std::string> log;
  run([&]() -> Coro<void> {
    EventLoop& loop = get_running_loop();
    loop.set_debug(false);
    EXPECT_FALSE(loop.get_debug());
    EXPECT_EQ(raised_on_another_thread([&] { loop.call_soon([&] { log.push_back("off"); }); }), "");
    loop.set_debug(true);
    EXPECT_TRUE(loop.get_debug());
    EXPECT_EQ(raised_on_another_thread([&] { loop.call_soon([&] { log.push_back("on"); }); }), kThreadError);
    loop.set_debug(false);
    EXPECT_EQ(raised_on_another_thread([&] { loop.call_soon([&] { log.push_back("off again"); }); }), "");
    co_await sleep(absl::ZeroDuration());
  }());
  EXPECT_THAT(log, ElementsAre("off", "off again"));
}

// asyncio's _thread_id is None until run_forever starts and again after it
// returns: a loop that is not running belongs to no thread.
TEST_P(ThreadAffinityConformance, ALoopThatIsNotRunningAcceptsCallsFromAnyThread) {
  EventLoopRef loop = new_loop();
  loop->set_debug(true);
  std::vector<std::string> log;
  EXPECT_EQ(raised_on_another_thread([&] { loop->call_soon([&] { log.push_back("before"); }); }), "");
  EXPECT_EQ(loop->run_until_complete(forty_two()), 42);
  EXPECT_EQ(raised_on_another_thread([&] { loop->call_soon([&] { log.push_back("after"); }); }), "");
  loop->run_until_complete(sleep(absl::ZeroDuration()));
  EXPECT_THAT(log, ElementsAre("before", "after"));
  loop->close();
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(ThreadAffinityConformance);

// ---------------------------------------------------------------- open at close

class OpenAtCloseConformance : public LoopTest {};

// Reports for `loop` collected from now on.
Reports& collect(EventLoop& loop, Reports& reports) {
  loop.set_exception_handler([&reports](EventLoop&, const ExceptionContext& c) { reports.contexts.push_back(c); });
  return reports;
}

// CPython tasks.py Task.__del__: a task destroyed while pending reports
// "Task was destroyed but it is pending!" through the exception handler
// (test_tasks.py test_task_destroyed_pending... / test_destroy_pending). A
// loop closed by hand with unfinished tasks destroys them; debug mode
// reports each, in creation order, also one that never started.
TEST_P(OpenAtCloseConformance, PendingTasksAtAManualCloseAreReportedInDebugMode) {
  EventLoopRef loop = new_loop();
  loop->set_debug(true);
  Reports reports;
  collect(*loop, reports);
  loop->create_task(value_after(kNever, 1), TaskOptions{.name = "sleeper"});
  loop->run_until_complete(sleep(kMs));
  loop->create_task(forty_two(), TaskOptions{.name = "finished"});
  loop->run_until_complete(sleep(kMs));
  loop->create_task(forty_two(), TaskOptions{.name = "never started"});
  EXPECT_THAT(messages(reports), IsEmpty());
  loop->close();
  ASSERT_THAT(messages(reports), ElementsAre("Task was destroyed but it is pending!",
                                             "Task was destroyed but it is pending!"));
  EXPECT_EQ(reports.contexts[0].task, "sleeper");
  EXPECT_EQ(reports.contexts[1].task, "never started");
  // Created by no task (before the loop ran): asyncio's source_traceback.
  EXPECT_EQ(reports.contexts[0].source_traceback, "no task (a callback, or the code that started the loop)");
}

Coro<void> spawn_sleeper() {
  create_task(value_after(kNever, 1), TaskOptions{.name = "sleeper"});
  co_return;
}

// In debug mode a task remembers where it was created (asyncio's
// Task._source_traceback): the creating task and its coroutines.
TEST_P(OpenAtCloseConformance, APendingTaskReportSaysWhereTheTaskWasCreated) {
  EventLoopRef loop = new_loop();
  loop->set_debug(true);
  Reports reports;
  collect(*loop, reports);
  loop->run_until_complete([]() -> Coro<void> {
    Task<void> spawner = create_task(spawn_sleeper(), TaskOptions{.name = "spawner"});
    co_await spawner;
  }());
  loop->close();
  ASSERT_THAT(messages(reports), ElementsAre("Task was destroyed but it is pending!"));
  EXPECT_EQ(reports.contexts[0].task, "sleeper");
  EXPECT_EQ(reports.contexts[0].source_traceback, "task 'spawner', in spawn_sleeper");
}

// Outside debug mode the loop destroys them silently (see EventLoop's
// report_open_at_close for why), and run() leaves nothing pending: it
// cancels and finishes leftover tasks before it closes the loop.
TEST_P(OpenAtCloseConformance, NoReportOutsideDebugModeNorAfterRun) {
  EventLoopRef loop = new_loop();
  loop->set_debug(false);
  Reports reports;
  collect(*loop, reports);
  loop->create_task(value_after(kNever, 1), TaskOptions{.name = "sleeper"});
  loop->run_until_complete(sleep(kMs));
  loop->close();
  EXPECT_THAT(messages(reports), IsEmpty());

  Reports run_reports;
  run([&]() -> Coro<void> {
    run_reports.install();
    get_running_loop().set_debug(true);
    create_task(value_after(kNever, 1), TaskOptions{.name = "left over"});
    co_return;
  }());
  EXPECT_THAT(messages(run_reports), IsEmpty());
}

// A stand-in for a transport: the streams register theirs the same way.
class FakeTransport final : public internal::LoopResource {
 public:
  FakeTransport(EventLoop& loop, int fd) : loop_(loop), fd_(fd) { internal::LoopAccess::open_resource(loop_, this); }
  ~FakeTransport() { close(); }
  void close() { internal::LoopAccess::close_resource(loop_, this); }
  std::string describe() const override { return absl::StrCat("transport <FakeTransport fd=", fd_, ">"); }

 private:
  EventLoop& loop_;
  int fd_;
};

// asyncio's transports warn "unclosed transport <...>" (ResourceWarning,
// selector_events.py _SelectorTransport.__del__) when dropped open. Here the
// loop keeps a registry of what is open on it and, in debug mode, reports
// what is still open when it closes, in the order it was opened.
TEST_P(OpenAtCloseConformance, ResourcesStillOpenAtCloseAreReportedInDebugMode) {
  EventLoopRef loop = new_loop();
  loop->set_debug(true);
  Reports reports;
  collect(*loop, reports);
  FakeTransport a(*loop, 5);
  FakeTransport b(*loop, 6);
  FakeTransport c(*loop, 7);
  b.close();
  b.close();  // idempotent
  loop->run_until_complete(forty_two());
  loop->close();
  EXPECT_THAT(messages(reports), ElementsAre("unclosed transport <FakeTransport fd=5>",
                                             "unclosed transport <FakeTransport fd=7>"));
  // The closed loop forgot them: closing them now is harmless.
  a.close();
}

TEST_P(OpenAtCloseConformance, ResourcesStillOpenAtCloseAreNotReportedOutsideDebugMode) {
  EventLoopRef loop = new_loop();
  loop->set_debug(false);
  Reports reports;
  collect(*loop, reports);
  FakeTransport a(*loop, 5);
  loop->close();
  EXPECT_THAT(messages(reports), IsEmpty());
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(OpenAtCloseConformance);

// ---------------------------------------------------------------- slow callbacks

// The lines debug mode logged.
struct Lines {
  std::vector<std::string> lines;
  void install(EventLoop& loop) {
    loop.set_logger([this](std::string_view line) { lines.emplace_back(line); });
  }
  std::vector<std::string> starting_with(const std::string& prefix) const {
    std::vector<std::string> out;
    for (const std::string& l : lines) {
      if (absl::StartsWith(l, prefix)) out.push_back(l);
    }
    return out;
  }
};

// The seconds a line "Executing <what> took S seconds" gives, or -1.
double seconds_taken(const std::string& line, const std::string& what) {
  const std::string prefix = absl::StrCat("Executing ", what, " took ");
  if (!absl::StartsWith(line, prefix) || !absl::EndsWith(line, " seconds")) return -1;
  double s = -1;
  if (!absl::SimpleAtod(line.substr(prefix.size(), line.size() - prefix.size() - 8), &s)) return -1;
  return s;
}

// CPython base_events.py _run_once: in debug mode a callback that takes at
// least slow_callback_duration logs "Executing <Handle ...> took 0.030
// seconds"; on the real loop, time is the wall clock. (Whether a fast
// callback is left out is asserted on the simulated loop below, where time
// is exact; here a loaded machine may preempt any callback.)
TEST(SlowCallbacks, ABusyCallbackIsLoggedOnTheRealLoop) {
  Lines lines;
  real::run(
      [&]() -> Coro<void> {
        lines.install(get_running_loop());
        get_running_loop().call_soon([] { std::this_thread::sleep_for(std::chrono::milliseconds(30)); });
        co_await sleep(absl::ZeroDuration());
      }(),
      {.debug = true, .slow_callback_duration = 20 * kMs});
  const std::vector<std::string> slow = lines.starting_with("Executing <Handle #1>");
  ASSERT_EQ(slow.size(), 1u) << absl::StrJoin(lines.lines, "\n");
  EXPECT_GE(seconds_taken(slow[0], "<Handle #1>"), 0.030) << slow[0];
}

// Debug mode off: nothing is measured.
TEST(SlowCallbacks, NothingIsLoggedOutsideDebugMode) {
  Lines lines;
  real::run(
      [&]() -> Coro<void> {
        lines.install(get_running_loop());
        get_running_loop().call_soon([] { std::this_thread::sleep_for(std::chrono::milliseconds(30)); });
        co_await sleep(absl::ZeroDuration());
      }(),
      {.debug = false, .slow_callback_duration = 20 * kMs});
  EXPECT_THAT(lines.starting_with("Executing"), IsEmpty());
}

// A coroutine of `steps` task steps (sleep(0) between them).
Coro<void> stepper(int steps) {
  for (int i = 1; i < steps; ++i) co_await sleep(absl::ZeroDuration());
}

// The simulated loop's step jitter charges each task step and callback a
// drawn amount of virtual time; debug mode measures steps on the virtual
// clock, so a step is slow exactly when its charge reaches
// slow_callback_duration, and logs it as the real loop does. The chooser
// fixes every charge: `jitter_us` for each draw.
std::vector<std::string> slow_steps_of_sim_run(uint64_t jitter_us, std::optional<bool> debug) {
  Lines lines;
  sim::Options options{.seed = 1,
                       .step_jitter_max = absl::Milliseconds(5),
                       .debug = debug,
                       .slow_callback_duration = absl::Milliseconds(2),
                       .chooser = [jitter_us](std::string_view site, uint64_t) -> uint64_t {
                         return site == "loop.step_jitter_us" ? jitter_us : 0;
                       }};
  sim::run(
      [&]() -> Coro<void> {
        lines.install(get_running_loop());
        Task<void> t = create_task(stepper(3), TaskOptions{.name = "stepper"});
        co_await t;
      }(),
      options);
  return lines.starting_with("Executing <Task");
}

TEST(SlowSteps, TheSimulatedLoopLogsStepsWhoseChargedVirtualTimeIsSlow) {
  // At the threshold: every step of both tasks is logged, in order.
  const std::vector<std::string> at = slow_steps_of_sim_run(2000, true);
  EXPECT_THAT(at, ElementsAre("Executing <Task name='Task-1'> took 0.002 seconds",
                              "Executing <Task name='stepper'> took 0.002 seconds",
                              "Executing <Task name='stepper'> took 0.002 seconds",
                              "Executing <Task name='stepper'> took 0.002 seconds",
                              "Executing <Task name='Task-1'> took 0.002 seconds"));
  EXPECT_EQ(slow_steps_of_sim_run(4500, true).size(), at.size());
  // Deterministic: the same run logs the same lines.
  EXPECT_EQ(slow_steps_of_sim_run(2000, true), at);
}

TEST(SlowSteps, FastStepsAreNotLoggedNorAnyOutsideDebugMode) {
  EXPECT_THAT(slow_steps_of_sim_run(1999, true), IsEmpty());
  EXPECT_THAT(slow_steps_of_sim_run(0, true), IsEmpty());
  EXPECT_THAT(slow_steps_of_sim_run(4500, false), IsEmpty());
}

// A callback is charged too (asyncio measures Handles and task steps alike).
TEST(SlowSteps, ASlowCallbackIsLoggedOnTheSimulatedLoop) {
  Lines lines;
  sim::run(
      [&]() -> Coro<void> {
        lines.install(get_running_loop());
        get_running_loop().call_soon([] {});
        co_await sleep(absl::ZeroDuration());
      }(),
      sim::Options{.seed = 1,
                   .step_jitter_max = absl::Milliseconds(5),
                   .debug = true,
                   .slow_callback_duration = absl::Milliseconds(3),
                   .chooser = [](std::string_view site, uint64_t) -> uint64_t {
                     return site == "loop.step_jitter_us" ? 3000 : 0;
                   }});
  // Handle #1 is ours (then run()'s callbacks).
  EXPECT_THAT(lines.starting_with("Executing <Handle"),
              ::testing::Contains("Executing <Handle #1> took 0.003 seconds"));
}

// ---------------------------------------------------------------- TWINLOOP_DEBUG

// asyncio's PYTHONASYNCIODEBUG (coroutines._is_debug_mode) turns debug mode
// on for any non-empty value; TWINLOOP_DEBUG takes 1 and 0 (empty is off)
// and rejects anything else, naming itself.
TEST(DebugVariable, ParsesOneAndZeroAndRejectsAnythingElse) {
  EXPECT_FALSE(internal::parse_debug_variable(nullptr));
  EXPECT_FALSE(internal::parse_debug_variable(""));
  EXPECT_FALSE(internal::parse_debug_variable("0"));
  EXPECT_TRUE(internal::parse_debug_variable("1"));
  for (const char* bad : {"yes", "true", "on", "01", " 1", "1 ", "2", "-1"}) {
    SCOPED_TRACE(bad);
    try {
      internal::parse_debug_variable(bad);
      ADD_FAILURE() << "accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_THAT(e.what(), HasSubstr("TWINLOOP_DEBUG"));
      EXPECT_THAT(e.what(), HasSubstr(absl::StrCat("'", bad, "'")));
    }
  }
}

// debug_env_probe, from the BUILD target's env (tests/subprocess.h).
const std::string kProbe = test_util::runfile_from_env("DEBUG_ENV_PROBE");

TEST(DebugVariable, SetsTheDefaultOfNewLoopsAndTheOptionsWin) {
  test_util::CommandResult on = test_util::run_command(kProbe, "TWINLOOP_DEBUG=1");
  EXPECT_EQ(on.exit_code, 0) << on.output;
  EXPECT_THAT(on.output, HasSubstr("real=1 sim=1 real_off=0 sim_off=0"));
  // Outside any loop a dropped coroutine goes to standard error, in debug
  // mode only.
  EXPECT_THAT(on.output, HasSubstr("twinloop: coroutine 'dropped_outside_any_loop' was never awaited"));

  for (const char* off : {"TWINLOOP_DEBUG=0", "TWINLOOP_DEBUG=", ""}) {
    SCOPED_TRACE(off);
    test_util::CommandResult r = test_util::run_command(kProbe, absl::StrCat("-u TWINLOOP_DEBUG ", off));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("real=0 sim=0 real_off=0 sim_off=0"));
    EXPECT_THAT(r.output, ::testing::Not(HasSubstr("never awaited")));
  }
}

TEST(DebugVariable, ABadValueIsAnErrorNamingTheVariable) {
  test_util::CommandResult r = test_util::run_command(kProbe, "TWINLOOP_DEBUG=yes");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("error: TWINLOOP_DEBUG='yes': expected 1 (debug mode on) or 0 (off)"));
}

}  // namespace
}  // namespace twinloop::conformance
