#include "twinloop/real/epoll_backend.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/executor.h"
#include "twinloop/api/future.h"
#include "twinloop/api/runner.h"
#include "twinloop/api/task.h"
#include "twinloop/api/internal/loop_access.h"
#include "gtest/gtest.h"
#include "twinloop/real/run.h"

namespace twinloop::real {
namespace {

using ::twinloop::internal::Ref;
using Clock = std::chrono::steady_clock;

constexpr auto kPatience = std::chrono::seconds(10);

Ref<EventLoop> make_loop(const EpollBackendOptions& options) {
  return Ref<EventLoop>(new EventLoop(std::make_unique<EpollBackend>(options)));
}

EpollBackend& epoll_of(EventLoop& loop) { return static_cast<EpollBackend&>(loop.backend()); }

// Closes the loop before the test drops its last reference.
class CloseAtExit {
 public:
  explicit CloseAtExit(EventLoop& loop) : loop_(loop) {}
  ~CloseAtExit() { loop_.close(); }

 private:
  EventLoop& loop_;
};

// Waits until `flag` is set, for at most kPatience; returns whether it was.
bool await_flag(const std::atomic<bool>& flag) {
  const Clock::time_point give_up = Clock::now() + kPatience;
  while (!flag.load()) {
    if (Clock::now() > give_up) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// A latch whose wait gives up, so that a missing worker fails the test
// instead of hanging it.
class Rendezvous {
 public:
  explicit Rendezvous(int parties) : waiting_for_(parties) {}
  bool arrive_and_wait() {
    std::unique_lock<std::mutex> lock(mu_);
    if (--waiting_for_ == 0) cv_.notify_all();
    return cv_.wait_for(lock, kPatience, [this] { return waiting_for_ <= 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int waiting_for_;
};

// ---------------------------------------------------------------- timers

class TimerTest : public ::testing::TestWithParam<bool> {};

TEST_P(TimerTest, FireInDeadlineOrderAndNeverEarly) {
  EpollBackendOptions options;
  options.nanosecond_timeouts = GetParam();
  Ref<EventLoop> loop = make_loop(options);
  CloseAtExit closer(*loop);

  struct Fired {
    std::string name;
    absl::Time when;           // the TimerHandle's deadline
    absl::Time at;             // loop.time() inside the callback
    Clock::duration elapsed;   // wall time since before scheduling
    absl::Duration delay;      // what was asked for, at least
  };
  std::vector<Fired> fired;
  std::map<std::string, TimerHandle> handles;
  const Clock::time_point t0 = Clock::now();
  auto record = [&](const std::string& name, absl::Duration delay) {
    return [&, name, delay] {
      fired.push_back(Fired{name, handles[name].when(), loop->time(), Clock::now() - t0, delay});
    };
  };
  for (int ms : {30, 10, 20}) {
    const std::string name = std::to_string(ms);
    handles[name] = loop->call_later(absl::Milliseconds(ms), record(name, absl::Milliseconds(ms)));
  }
  // Equal deadlines keep scheduling order on the real loop.
  const absl::Time at = loop->time() + absl::Milliseconds(15);
  for (const char* name : {"15a", "15b", "15c"}) {
    handles[name] = loop->call_at(at, record(name, absl::Milliseconds(15)));
  }
  loop->call_later(absl::Milliseconds(40), [&] { loop->stop(); });
  loop->run_forever();

  std::vector<std::string> order;
  for (const Fired& f : fired) order.push_back(f.name);
  EXPECT_EQ(order, (std::vector<std::string>{"10", "15a", "15b", "15c", "20", "30"}));
  for (const Fired& f : fired) {
    EXPECT_GE(f.at, f.when) << f.name << " fired early on the loop clock";
    EXPECT_GE(f.elapsed, absl::ToChronoNanoseconds(f.delay)) << f.name << " fired early on the wall clock";
  }
}

INSTANTIATE_TEST_SUITE_P(Timeouts, TimerTest, ::testing::Values(true, false),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Nanoseconds" : "Milliseconds";
                         });

TEST(EpollBackend, WaitReturnsAtTheDeadlineNotBefore) {
  for (bool ns : {true, false}) {
    EpollBackendOptions options;
    options.nanosecond_timeouts = ns;
    Ref<EventLoop> loop = make_loop(options);
    CloseAtExit closer(*loop);
    LoopBackend& backend = loop->backend();

    const int64_t deadline = backend.time_ns() + 15'000'000 + 123;
    backend.wait(deadline);
    EXPECT_GE(backend.time_ns(), deadline) << (ns ? "epoll_pwait2" : "epoll_wait");

    const Clock::time_point t0 = Clock::now();
    backend.wait(LoopBackend::kPollOnly);
    backend.wait(backend.time_ns() - 1'000'000);  // a deadline in the past
    EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(500));
  }
}

TEST(EpollBackend, ChooseAlwaysTakesTheDefault) {
  EventLoopRef loop = new_event_loop();
  CloseAtExit closer(*loop);
  EXPECT_EQ(loop->backend().choose(draw_sites::kTimerTie, uint64_t{1} << 32), 0u);
  EXPECT_EQ(loop->backend().choose("anything", 1), 0u);
}

// ---------------------------------------------------------------- threads

// Forwards to an EpollBackend, counting the waits with no deadline.
class CountingBackend final : public LoopBackend {
 public:
  explicit CountingBackend(std::atomic<int>* blocking_waits) : blocking_waits_(blocking_waits) {}
  void attach(EventLoop& loop) override { inner_.attach(loop); }
  int64_t time_ns() override { return inner_.time_ns(); }
  void wait(int64_t deadline_ns) override {
    if (deadline_ns == kNoDeadline) ++*blocking_waits_;
    inner_.wait(deadline_ns);
  }
  void wake() override { inner_.wake(); }
  void submit(absl::AnyInvocable<void()> work, absl::AnyInvocable<void()> done) override {
    inner_.submit(std::move(work), std::move(done));
  }
  uint64_t choose(std::string_view site, uint64_t n) override { return inner_.choose(site, n); }
  void watch_signal(int sig, bool on) override { inner_.watch_signal(sig, on); }
  void close() override { inner_.close(); }

 private:
  EpollBackend inner_;
  std::atomic<int>* blocking_waits_;
};

TEST(EpollBackend, CallSoonThreadsafeFromFourThreadsRunsAllOnTheLoopThread) {
  constexpr int kThreads = 4;
  constexpr int kEach = 1000;
  std::atomic<int> blocking_waits{0};
  Ref<EventLoop> loop(new EventLoop(std::make_unique<CountingBackend>(&blocking_waits)));
  CloseAtExit closer(*loop);
  EventLoop* raw = loop.get();  // Ref is loop-thread only; threads get a pointer
  const std::thread::id loop_thread = std::this_thread::get_id();

  int ran = 0;  // loop thread only
  int wrong_thread = 0;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::condition_variable cv;
  bool finished = false;

  // The threads start sending once the loop blocks in wait() with nothing
  // ready and no timer: only their wake-ups can get it going again.
  loop->call_soon([&] {
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, raw] {
        const Clock::time_point give_up = Clock::now() + kPatience;
        while (blocking_waits.load() == 0 && Clock::now() < give_up) {
          std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        for (int i = 0; i < kEach; ++i) {
          raw->call_soon_threadsafe([&, raw] {
            if (std::this_thread::get_id() != loop_thread) ++wrong_thread;
            if (++ran == kThreads * kEach) raw->stop();
          });
        }
      });
    }
  });
  // Stops a loop that lost callbacks, so the test fails instead of hanging.
  std::thread watchdog([&, raw] {
    std::unique_lock<std::mutex> lock(mu);
    if (!cv.wait_for(lock, kPatience, [&] { return finished; })) raw->call_soon_threadsafe([raw] { raw->stop(); });
  });
  EXPECT_EQ(internal::LoopAccess::timer_count(*loop), 0u);
  loop->run_forever();
  {
    std::lock_guard<std::mutex> lock(mu);
    finished = true;
  }
  cv.notify_all();
  watchdog.join();
  for (std::thread& t : threads) t.join();

  EXPECT_EQ(ran, kThreads * kEach);
  EXPECT_EQ(wrong_thread, 0);
  EXPECT_GE(blocking_waits.load(), 1) << "the loop never blocked without a deadline";
}

// ---------------------------------------------------------------- executor

Coro<std::thread::id> worker_thread_id() {
  co_return co_await to_thread([] { return std::this_thread::get_id(); });
}

TEST(Executor, ToThreadRunsOnAnotherThread) {
  EXPECT_NE(run(worker_thread_id()), std::this_thread::get_id());
}

Coro<int> add_on_thread(int a, int b) {
  co_return co_await to_thread([](int x, int y) { return x + y; }, a, b);
}

TEST(Executor, ToThreadReturnsTheResult) { EXPECT_EQ(run(add_on_thread(2, 3)), 5); }

Coro<int> run_in_executor_void() {
  int value = 0;  // written by the worker, read after the future completes
  co_await run_in_executor([&value] { value = 7; });
  Future<std::string> f = run_in_executor([] { return std::string("text"); });
  std::string s = co_await f;
  co_return value + static_cast<int>(s.size());
}

TEST(Executor, RunInExecutorReturnsVoidAndValues) { EXPECT_EQ(run(run_in_executor_void()), 11); }

Coro<std::string> thrown_on_thread() {
  try {
    co_await to_thread([]() -> int { throw std::runtime_error("boom"); });
  } catch (const std::runtime_error& e) {
    co_return e.what();
  }
  co_return "no exception";
}

TEST(Executor, ExceptionPropagatesToTheAwaiter) { EXPECT_EQ(run(thrown_on_thread()), "boom"); }

Coro<bool> two_at_once() {
  // Each function waits for the other: only two workers finish this.
  auto rendezvous = std::make_shared<Rendezvous>(2);
  Future<bool> a = run_in_executor([rendezvous] { return rendezvous->arrive_and_wait(); });
  Future<bool> b = run_in_executor([rendezvous] { return rendezvous->arrive_and_wait(); });
  const bool a_met = co_await a;
  const bool b_met = co_await b;
  co_return a_met && b_met;
}

TEST(Executor, CallsRunConcurrently) { EXPECT_TRUE(run(two_at_once())); }

struct Gate {
  std::atomic<bool> started{false};
  std::atomic<bool> release{false};
  std::atomic<bool> finished{false};
};

Coro<bool> cancel_while_running(std::shared_ptr<Gate> gate) {
  Task<int> t = create_task(to_thread([gate] {
    gate->started = true;
    bool released = await_flag(gate->release);
    gate->finished = true;
    return released ? 1 : 0;
  }));
  while (!gate->started) co_await sleep(absl::Milliseconds(1));
  t.cancel();
  bool cancelled = false;
  try {
    co_await t;
  } catch (const CancelledError&) {
    cancelled = true;
  }
  EXPECT_FALSE(gate->finished) << "cancellation waited for the function";
  gate->release = true;
  // The started function still runs to completion.
  const Clock::time_point give_up = Clock::now() + kPatience;
  while (!gate->finished && Clock::now() < give_up) co_await sleep(absl::Milliseconds(1));
  co_return cancelled && t.cancelled();
}

TEST(Executor, CancellingTheAwaiterLeavesAStartedFunctionRunning) {
  auto gate = std::make_shared<Gate>();
  EXPECT_TRUE(run(cancel_while_running(gate)));
  EXPECT_TRUE(gate->finished);
}

Coro<void> cancel_before_start(std::shared_ptr<Gate> gate, std::shared_ptr<std::atomic<bool>> second_ran) {
  // One worker: the second function waits behind the first.
  Future<void> first = run_in_executor([gate] {
    gate->started = true;
    await_flag(gate->release);
  });
  Future<void> second = run_in_executor([second_ran] { *second_ran = true; });
  while (!gate->started) co_await sleep(absl::Milliseconds(1));
  EXPECT_TRUE(second.cancel());
  co_await sleep(absl::ZeroDuration());  // the cancellation reaches the job
  gate->release = true;
  co_await first;
  co_await run_in_executor([] {});  // FIFO: the second job has been handled
}

TEST(Executor, CancellingBeforeStartSkipsTheFunction) {
  EpollBackendOptions options;
  options.max_workers = 1;
  Ref<EventLoop> loop = make_loop(options);
  auto gate = std::make_shared<Gate>();
  auto second_ran = std::make_shared<std::atomic<bool>>(false);
  ::twinloop::internal::run_main(*loop, cancel_before_start(gate, second_ran));
  EXPECT_FALSE(*second_ran);
  EXPECT_EQ(epoll_of(*loop).worker_count(), 1u);
}

TEST(Executor, WorkersStartLazilyUpToTheLimit) {
  EventLoopRef loop = new_event_loop();
  CloseAtExit closer(*loop);
  EpollBackend& backend = epoll_of(*loop);
  const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  EXPECT_EQ(backend.max_workers(), std::min<size_t>(32, cores + 4));
  EXPECT_EQ(backend.worker_count(), 0u);

  int done = 0;
  internal::LoopAccess::submit_to_executor(*loop, [] {}, [&] {
    ++done;
    loop->stop();
  });
  loop->run_forever();
  EXPECT_EQ(done, 1);
  EXPECT_EQ(backend.worker_count(), 1u);
  // The worker is idle again: the next job reuses it.
  internal::LoopAccess::submit_to_executor(*loop, [] {}, [&] {
    ++done;
    loop->stop();
  });
  loop->run_forever();
  EXPECT_EQ(done, 2);
  EXPECT_EQ(backend.worker_count(), 1u);
}

// Records the thread that destroys it.
struct DestroyedOn {
  std::thread::id* where;
  ~DestroyedOn() { *where = std::this_thread::get_id(); }
};

TEST(Executor, CloseDropsQueuedWorkAndWaitsForRunningWork) {
  EpollBackendOptions options;
  options.max_workers = 1;
  Ref<EventLoop> loop = make_loop(options);
  Gate gate;
  std::atomic<int> second_ran{0};
  int done_ran = 0;
  std::thread::id first_destroyed_on, second_destroyed_on;
  {
    std::shared_ptr<DestroyedOn> probe1(new DestroyedOn{&first_destroyed_on});
    std::shared_ptr<DestroyedOn> probe2(new DestroyedOn{&second_destroyed_on});
    internal::LoopAccess::submit_to_executor(*loop, 
        [&gate] {
          gate.started = true;
          await_flag(gate.release);
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          gate.finished = true;
        },
        [&done_ran, probe1] { ++done_ran; });
    internal::LoopAccess::submit_to_executor(*loop, [&second_ran] { ++second_ran; }, [&done_ran, probe2] { ++done_ran; });
  }
  ASSERT_TRUE(await_flag(gate.started));
  gate.release = true;
  loop->close();  // the first job is running, the second still queued

  EXPECT_TRUE(gate.finished) << "close() returned before running work finished";
  EXPECT_EQ(second_ran, 0);
  EXPECT_EQ(done_ran, 0);
  EXPECT_EQ(first_destroyed_on, std::this_thread::get_id());
  EXPECT_EQ(second_destroyed_on, std::this_thread::get_id());
  EXPECT_THROW(internal::LoopAccess::submit_to_executor(*loop, [] {}, [] {}), std::runtime_error);
}

// ---------------------------------------------------------------- signals

class KindRecorder final : public ::twinloop::internal::StepObserver {
 public:
  void on_event(::twinloop::internal::EventKind kind, uint64_t /*id*/) override { kinds.push_back(kind); }
  std::vector<::twinloop::internal::EventKind> kinds;
};

TEST(Signals, HandlerRunsFromTheReadyQueueOnTheLoopThread) {
  using ::twinloop::internal::EventKind;
  EventLoopRef loop = new_event_loop();
  CloseAtExit closer(*loop);
  KindRecorder recorder;
  internal::LoopAccess::set_step_observer(*loop, &recorder);
  const std::thread::id loop_thread = std::this_thread::get_id();

  int calls = 0;
  std::thread::id ran_on;
  bool inside_loop = false;
  loop->add_signal_handler(SIGUSR1, [&] {
    ++calls;
    ran_on = std::this_thread::get_id();
    inside_loop = running_loop_or_null() == loop.get();
    loop->stop();
  });
  // Fails the test instead of hanging it if the signal is lost.
  TimerHandle watchdog = loop->call_later(absl::Seconds(10), [&] { loop->stop(); });
  std::thread killer([] {
    // Keep the signal off this thread: it is the loop's to handle.
    sigset_t usr1;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, nullptr);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    kill(getpid(), SIGUSR1);
  });
  loop->run_forever();
  killer.join();
  watchdog.cancel();
  internal::LoopAccess::set_step_observer(*loop, nullptr);

  EXPECT_EQ(calls, 1);
  EXPECT_EQ(ran_on, loop_thread);
  EXPECT_TRUE(inside_loop);
  // Delivered first, then run as an ordinary callback.
  size_t signal_at = recorder.kinds.size();
  for (size_t i = 0; i < recorder.kinds.size(); ++i) {
    if (recorder.kinds[i] == EventKind::kSignal) {
      signal_at = i;
      break;
    }
  }
  ASSERT_LT(signal_at + 1, recorder.kinds.size());
  EXPECT_EQ(recorder.kinds[signal_at + 1], EventKind::kCallback);

  EXPECT_TRUE(loop->remove_signal_handler(SIGUSR1));
  EXPECT_FALSE(loop->remove_signal_handler(SIGUSR1));
  struct sigaction now {};
  ASSERT_EQ(sigaction(SIGUSR1, nullptr, &now), 0);
  EXPECT_EQ(now.sa_handler, SIG_DFL) << "removing the handler restores the old disposition";
}

TEST(Signals, InvalidSignalsAreRejected) {
  EventLoopRef loop = new_event_loop();
  CloseAtExit closer(*loop);
  for (int sig : {0, -1, NSIG, 1000}) {
    EXPECT_THROW(loop->add_signal_handler(sig, [] {}), std::invalid_argument) << sig;
  }
  EXPECT_THROW(loop->add_signal_handler(SIGKILL, [] {}), std::runtime_error);
  EXPECT_THROW(loop->add_signal_handler(SIGSTOP, [] {}), std::runtime_error);
}

TEST(Signals, OneLoopPerSignal) {
  EventLoopRef first = new_event_loop();
  CloseAtExit close_first(*first);
  EventLoopRef second = new_event_loop();
  CloseAtExit close_second(*second);
  EpollBackend& second_backend = epoll_of(*second);

  first->add_signal_handler(SIGUSR2, [] {});
  EXPECT_THROW(second_backend.watch_signal(SIGUSR2, true), std::runtime_error);
  struct sigaction now {};
  ASSERT_EQ(sigaction(SIGUSR2, nullptr, &now), 0);
  EXPECT_NE(now.sa_handler, SIG_DFL);

  // Once the first loop lets go, the second may watch it.
  EXPECT_TRUE(first->remove_signal_handler(SIGUSR2));
  ASSERT_EQ(sigaction(SIGUSR2, nullptr, &now), 0);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
  second_backend.watch_signal(SIGUSR2, true);
  ASSERT_EQ(sigaction(SIGUSR2, nullptr, &now), 0);
  EXPECT_NE(now.sa_handler, SIG_DFL);
  second_backend.watch_signal(SIGUSR2, false);
  ASSERT_EQ(sigaction(SIGUSR2, nullptr, &now), 0);
  EXPECT_EQ(now.sa_handler, SIG_DFL);
}

// A handler the backend refused to watch leaves nothing behind: the loop
// neither claims it (remove returns false) nor skips installing it later.
TEST(Signals, RefusedHandlerLeavesNoStaleEntry) {
  EventLoopRef first = new_event_loop();
  CloseAtExit close_first(*first);
  EventLoopRef second = new_event_loop();
  CloseAtExit close_second(*second);

  first->add_signal_handler(SIGUSR2, [] {});
  EXPECT_THROW(second->add_signal_handler(SIGUSR2, [] {}), std::runtime_error);
  EXPECT_FALSE(second->remove_signal_handler(SIGUSR2));
  EXPECT_TRUE(first->remove_signal_handler(SIGUSR2));
  second->add_signal_handler(SIGUSR2, [] {});
  struct sigaction now {};
  ASSERT_EQ(sigaction(SIGUSR2, nullptr, &now), 0);
  EXPECT_NE(now.sa_handler, SIG_DFL);
  EXPECT_TRUE(second->remove_signal_handler(SIGUSR2));
}

// Dropping a loop without close() closes it once (no double free: the
// destructor must not take a reference to a loop whose count is zero) and
// releases what its queue held.
TEST(Lifecycle, LoopDroppedWithoutCloseReleasesItsCallbacks) {
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> watch = token;
  {
    EventLoopRef loop = new_event_loop();
    loop->call_soon([token = std::move(token)] {});
    loop->call_later(absl::Hours(1), [] {});
  }
  EXPECT_TRUE(watch.expired());
}

// ---------------------------------------------------------------- debug mode

TEST(DebugMode, ReportsASlowCallback) {
  EventLoopRef loop = new_event_loop();
  CloseAtExit closer(*loop);
  loop->set_debug(true);
  loop->set_slow_callback_duration(absl::Milliseconds(10));
  std::vector<std::string> lines;
  loop->set_logger([&](std::string_view line) { lines.emplace_back(line); });
  loop->call_soon([] {
    const Clock::time_point until = Clock::now() + std::chrono::milliseconds(30);
    while (Clock::now() < until) {
    }
  });
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();

  bool reported = false;
  for (const std::string& line : lines) reported |= line.find("took") != std::string::npos;
  EXPECT_TRUE(reported) << "no slow-callback line among " << lines.size() << " lines";
}

// ---------------------------------------------------------------- run()

Coro<int> answer() {
  co_await sleep(absl::Milliseconds(1));
  co_return 42;
}

Coro<int> fails() {
  co_await sleep(absl::Milliseconds(1));
  throw std::runtime_error("main failed");
}

TEST(Run, ReturnsTheResult) { EXPECT_EQ(run(answer()), 42); }

TEST(Run, RethrowsTheMainException) {
  try {
    run(fails());
    ADD_FAILURE() << "run() returned";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "main failed");
  }
}

Coro<bool> nested_run() {
  try {
    run(answer());
  } catch (const std::runtime_error&) {
    co_return true;
  }
  co_return false;
}

TEST(Run, RefusesToRunInsideARunningLoop) { EXPECT_TRUE(run(nested_run())); }

Coro<bool> options_applied() {
  EventLoop& loop = get_running_loop();
  co_return loop.get_debug() && loop.slow_callback_duration() == absl::Milliseconds(7);
}

TEST(Run, AppliesTheOptions) {
  RunOptions options;
  options.debug = true;
  options.slow_callback_duration = absl::Milliseconds(7);
  EXPECT_TRUE(run(options_applied(), options));
}

Coro<int64_t> sleep_50ms() {
  const Clock::time_point t0 = Clock::now();
  co_await sleep(absl::Milliseconds(50));
  co_return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count();
}

TEST(Run, SleepWakesAfterTheDelay) { EXPECT_GE(run(sleep_50ms()), 50'000'000); }

}  // namespace
}  // namespace twinloop::real
