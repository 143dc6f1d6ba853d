// Simulated-loop behaviour: virtual time, the choice source, event hashes,
// deadlock and time-limit failures. Cross-loop behaviour is in tests/.
#include "twinloop/sim/simulation.h"

#include <algorithm>
#include <chrono>
#include <set>
#include <string>
#include <vector>

#include "twinloop/api/twinloop.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/sim/choice.h"

namespace twinloop::sim {
namespace {

using ::testing::HasSubstr;

absl::Duration virtual_now() { return get_running_loop().time() - absl::UnixEpoch(); }

TEST(VirtualTime, StartsAtZeroAndStandsStillWhileTasksRun) {
  Coro<absl::Duration> body = []() -> Coro<absl::Duration> {
    absl::Duration t0 = virtual_now();
    for (int i = 0; i < 100; ++i) co_await sleep(absl::ZeroDuration());
    EXPECT_EQ(virtual_now(), t0);
    co_return t0;
  }();
  EXPECT_EQ(run(std::move(body)), absl::ZeroDuration());
}

TEST(VirtualTime, SleepsLandOnExactTimestamps) {
  std::vector<absl::Duration> seen;
  run([](std::vector<absl::Duration>& seen) -> Coro<void> {
    co_await sleep(absl::Milliseconds(1500));
    seen.push_back(virtual_now());
    co_await sleep(absl::Microseconds(250));
    seen.push_back(virtual_now());
    auto a = create_task(sleep(absl::Seconds(3)));
    auto b = create_task(sleep(absl::Seconds(2)));
    co_await b;
    seen.push_back(virtual_now());
    co_await a;
    seen.push_back(virtual_now());
  }(seen));
  EXPECT_THAT(seen, ::testing::ElementsAre(absl::Milliseconds(1500), absl::Microseconds(1500250),
                                           absl::Microseconds(3500250), absl::Microseconds(4500250)));
}

TEST(VirtualTime, TimeoutFiresExactlyAtTheDeadline) {
  absl::Duration fired;
  run([](absl::Duration& fired) -> Coro<void> {
    try {
      co_await wait_for(sleep(absl::Hours(1)), absl::Seconds(7));
    } catch (const TimeoutError&) {
      fired = virtual_now();
    }
  }(fired));
  EXPECT_EQ(fired, absl::Seconds(7));
}

TEST(VirtualTime, CallLaterAndCallAtUseVirtualTime) {
  std::vector<absl::Duration> at;
  run([](std::vector<absl::Duration>& at) -> Coro<void> {
    EventLoop& loop = get_running_loop();
    loop.call_later(absl::Seconds(2), [&] { at.push_back(virtual_now()); });
    loop.call_at(absl::UnixEpoch() + absl::Seconds(1), [&] { at.push_back(virtual_now()); });
    co_await sleep(absl::Seconds(5));
  }(at));
  EXPECT_THAT(at, ::testing::ElementsAre(absl::Seconds(1), absl::Seconds(2)));
}

TEST(VirtualTime, AnHourOfSleepCostsWellUnderAMillisecondOfWallTime) {
  // Best of five, so a descheduled test process does not fail the test.
  auto best = std::chrono::nanoseconds::max();
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    Simulation s;
    s.run(sleep(absl::Hours(1)));
    const auto wall = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(s.elapsed(), absl::Hours(1));
    best = std::min(best, std::chrono::duration_cast<std::chrono::nanoseconds>(wall));
  }
  EXPECT_LT(best, std::chrono::milliseconds(1)) << "best wall time " << best.count() << " ns";
}

Coro<std::vector<int>> equal_deadline_order() {
  std::vector<int> order;
  EventLoop& loop = get_running_loop();
  for (int i = 0; i < 8; ++i) loop.call_later(absl::Seconds(1), [&order, i] { order.push_back(i); });
  co_await sleep(absl::Seconds(2));
  co_return order;
}

TEST(Choices, EqualDeadlinesKeepSchedulingOrderWhenShufflingIsOff) {
  Options o;
  o.shuffle_equal_timers = false;
  for (uint64_t seed : {1, 2, 3}) {
    o.seed = seed;
    EXPECT_THAT(run(equal_deadline_order(), o), ::testing::ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));
  }
}

TEST(Choices, EqualDeadlineOrderIsASeededChoice) {
  std::set<std::vector<int>> orders;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Options o;
    o.seed = seed;
    std::vector<int> order = run(equal_deadline_order(), o);
    std::vector<int> sorted = order;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_THAT(sorted, ::testing::ElementsAre(0, 1, 2, 3, 4, 5, 6, 7));  // a permutation
    EXPECT_EQ(run(equal_deadline_order(), o), order) << "seed " << seed << " is not reproducible";
    orders.insert(order);
  }
  EXPECT_GT(orders.size(), 10u);
}

TEST(Choices, ExecutorLatencyIsDrawnWithinTheBound) {
  std::set<absl::Duration> latencies;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    Options o;
    o.seed = seed;
    o.executor_latency_max = absl::Milliseconds(3);
    absl::Duration took = run(
        []() -> Coro<absl::Duration> {
          absl::Duration t0 = virtual_now();
          int v = co_await to_thread([] { return 7; });
          EXPECT_EQ(v, 7);
          co_return virtual_now() - t0;
        }(),
        o);
    EXPECT_GE(took, absl::ZeroDuration());
    EXPECT_LE(took, absl::Milliseconds(3));
    latencies.insert(took);
  }
  EXPECT_GT(latencies.size(), 5u);
}

TEST(Choices, ExecutorFunctionRunsOnTheLoopThread) {
  const auto loop_thread = std::this_thread::get_id();
  std::thread::id ran_on;
  run(to_thread([&ran_on] { ran_on = std::this_thread::get_id(); }));
  EXPECT_TRUE(ran_on == loop_thread);
}

TEST(Choices, StepJitterIsOffByDefaultAndAdvancesTimeWhenOn) {
  auto spin = []() -> Coro<absl::Duration> {
    for (int i = 0; i < 50; ++i) co_await sleep(absl::ZeroDuration());
    co_return virtual_now();
  };
  EXPECT_EQ(run(spin()), absl::ZeroDuration());
  Options o;
  o.step_jitter_max = absl::Microseconds(100);
  const absl::Duration with_jitter = run(spin(), o);
  EXPECT_GT(with_jitter, absl::ZeroDuration());
  EXPECT_LE(with_jitter, absl::Microseconds(100) * 51 * 2);  // steps and callbacks
}

TEST(ChoiceSource, ValueIsAFunctionOfSeedAndKeyAndStaysInRange) {
  ChoiceSource a(123), b(123), c(124);
  bool differs_by_seed = false;
  bool differs_by_key = false;
  for (uint64_t i = 0; i < 1000; ++i) {
    const uint64_t n = 2 + i % 97;
    const uint64_t key = draw_key(0, "t", i);
    const uint64_t x = a.value(key, n);
    EXPECT_EQ(x, b.value(key, n));
    EXPECT_EQ(x, a.value(key, n));  // no state: the same key, the same value
    EXPECT_LT(x, n);
    if (c.value(key, n) != x) differs_by_seed = true;
    if (a.value(draw_key(0, "u", i), n) != x) differs_by_key = true;
  }
  EXPECT_TRUE(differs_by_seed);
  EXPECT_TRUE(differs_by_key);
  EXPECT_EQ(a.value(draw_key(0, "only-one", 0), 1), 0u);
}

TEST(ChoiceSource, ValuesAreRoughlyUniform) {
  ChoiceSource c(9);
  std::vector<int> counts(10);
  for (uint64_t i = 0; i < 100000; ++i) ++counts[c.value(draw_key(0, "u", i), 10)];
  for (int k : counts) {
    EXPECT_GT(k, 9000);
    EXPECT_LT(k, 11000);
  }
}

TEST(ChoiceSource, KeysComposeFromTaskPaths) {
  // A task's key is its parent's key combined with its base (name or
  // function) and its index, and a replay file's path text gives the same key.
  const uint64_t main = child_key(0, text_hash("guarded"), 0);
  const uint64_t deposit1 = child_key(main, text_hash("deposit"), 1);
  EXPECT_EQ(deposit1, task_key_of_path("/guarded#0/deposit#1"));
  EXPECT_NE(deposit1, task_key_of_path("/guarded#0/deposit#0"));
  EXPECT_NE(deposit1, task_key_of_path("/guarded#1/deposit#1"));
  EXPECT_EQ(task_key_of_path("/"), 0u);
  EXPECT_EQ(task_key_of_path(""), 0u);
  EXPECT_EQ(child_key(0, text_hash("a/b c#d"), 12),
            task_key_of_path("/" + escape_path_component("a/b c#d") + "#12"));
  EXPECT_THROW(task_key_of_path("guarded#0"), std::invalid_argument);
  EXPECT_THROW(task_key_of_path("/guarded"), std::invalid_argument);
  EXPECT_THROW(task_key_of_path("/guarded#x"), std::invalid_argument);
  EXPECT_THROW(task_key_of_path("/guarded#"), std::invalid_argument);
  EXPECT_THROW(task_key_of_path("/guarded#+1"), std::invalid_argument);
}

TEST(ChoiceSource, TextHashReadsEveryByte) {
  // Lengths around the 8-byte words, and a difference in each position.
  const std::string base = "abcdefghijklmnopqrstu";
  for (size_t len = 0; len <= base.size(); ++len) {
    const std::string a = base.substr(0, len);
    EXPECT_NE(text_hash(a), text_hash(a + "x"));
    for (size_t i = 0; i < len; ++i) {
      std::string b = a;
      b[i] = '#';
      EXPECT_NE(text_hash(a), text_hash(b)) << len << " " << i;
    }
  }
  EXPECT_NE(text_hash(std::string("a\0", 2)), text_hash("a"));
}

Coro<int> choice_heavy() {
  std::vector<Task<int>> ts;
  for (int i = 0; i < 6; ++i) {
    ts.push_back(create_task([](int i) -> Coro<int> {
      co_await sleep(absl::Milliseconds(10));
      co_return co_await to_thread([i] { return i; });
    }(i)));
  }
  int sum = 0;
  for (auto& t : ts) sum += co_await t;
  co_return sum;
}

TEST(EventHash, SameSeedGivesTheSameHash) {
  for (uint64_t seed : {0, 1, 77}) {
    RunStats a, b;
    Options o;
    o.seed = seed;
    run(choice_heavy(), o, &a);
    run(choice_heavy(), o, &b);
    EXPECT_EQ(a.event_hash, b.event_hash);
    EXPECT_EQ(a.events, b.events);
    EXPECT_EQ(a.virtual_time, b.virtual_time);
    EXPECT_GT(a.choices, 0u);
  }
}

TEST(EventHash, DifferentSeedsDifferWhereChoicesExist) {
  std::set<uint64_t> hashes;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    RunStats s;
    Options o;
    o.seed = seed;
    EXPECT_EQ(run(choice_heavy(), o, &s), 15);
    hashes.insert(s.event_hash);
  }
  EXPECT_EQ(hashes.size(), 10u);
}

TEST(EventHash, ChoiceFreeProgramsHashTheSameForEverySeed) {
  std::set<uint64_t> hashes;
  for (uint64_t seed = 0; seed < 5; ++seed) {
    RunStats s;
    Options o;
    o.seed = seed;
    run([]() -> Coro<void> {
      co_await sleep(absl::Seconds(1));
      co_await sleep(absl::Seconds(2));
    }(), o, &s);
    hashes.insert(s.event_hash);
  }
  EXPECT_EQ(hashes.size(), 1u);
}

TEST(Failures, DeadlockNamesEveryWaitingTask) {
  auto body = []() -> Coro<void> {
    Future<int> never = create_future<int>();
    never.set_label("Queue.get() on 'answers'");
    Task<int> a = create_task([](Future<int> f) -> Coro<int> { co_return co_await f; }(never), {.name = "reader"});
    Task<void> b = create_task([](Task<int> a) -> Coro<void> { co_await a; }(a), {.name = "joiner"});
    co_await b;
  };
  try {
    run(body());
    FAIL() << "expected a deadlock";
  } catch (const DeadlockError& e) {
    EXPECT_THAT(e.what(), HasSubstr("3 task(s)"));
    EXPECT_THAT(e.what(), HasSubstr("Task 'reader' waits on <Future pending Queue.get() on 'answers'>"));
    EXPECT_THAT(e.what(), HasSubstr("Task 'joiner' waits on task 'reader'"));
    EXPECT_THAT(e.what(), HasSubstr("Task 'Task-1' waits on task 'joiner'"));
    // ...and prints every waiting task's await graph (asyncio 3.14 format).
    EXPECT_THAT(e.what(), HasSubstr("The await graph of every waiting task:"));
    EXPECT_THAT(e.what(), HasSubstr("* Task(name='reader', id=2)\n    + Call stack:"));
    EXPECT_THAT(e.what(), HasSubstr("+ Awaited by:\n      * Task(name='joiner', id=3)"));
  }
}

TEST(Failures, SleepingForeverIsADeadlockNotAHang) {
  EXPECT_THROW(run(sleep(absl::InfiniteDuration())), DeadlockError);
}

TEST(Failures, VirtualTimeLimitIsEnforced) {
  Options o;
  o.time_limit = absl::Minutes(1);
  try {
    run(sleep(absl::Minutes(2)), o);
    FAIL() << "expected TimeLimitError";
  } catch (const TimeLimitError& e) {
    EXPECT_THAT(e.what(), HasSubstr("virtual time limit exceeded"));
  }
  EXPECT_NO_THROW(run(sleep(absl::Seconds(59)), o));
}

TEST(Signals, RaisedSignalRunsTheHandlerFromTheReadyQueue) {
  Simulation s;
  int calls = 0;
  s.run([](Simulation& s, int& calls) -> Coro<void> {
    EventLoop& loop = get_running_loop();
    loop.add_signal_handler(SIGUSR1, [&calls] { ++calls; });
    s.backend().raise_signal(SIGUSR1);
    EXPECT_EQ(calls, 0);  // not in "signal context": via call_soon
    co_await sleep(absl::ZeroDuration());
    EXPECT_EQ(calls, 1);
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
    s.backend().raise_signal(SIGUSR1);
    co_await sleep(absl::ZeroDuration());
    EXPECT_EQ(calls, 1);
  }(s, calls));
}

TEST(Runner, LeftoverTasksAreCancelledAtShutdownAndErrorsReported) {
  Simulation s;
  std::vector<std::string> reported;
  bool cleaned_up = false;
  int v = s.run([](std::vector<std::string>& reported, bool& cleaned_up) -> Coro<int> {
    get_running_loop().set_exception_handler(
        [&reported](EventLoop&, const ExceptionContext& c) { reported.push_back(c.message); });
    create_task([](bool& cleaned_up) -> Coro<void> {
      try {
        co_await sleep(absl::Hours(1));
      } catch (const CancelledError&) {
        cleaned_up = true;
        throw;
      }
    }(cleaned_up));
    create_task([]() -> Coro<void> {
      try {
        co_await sleep(absl::Hours(1));
      } catch (const CancelledError&) {
      }
      throw std::runtime_error("failed during shutdown");
    }());
    co_await sleep(absl::ZeroDuration());
    co_return 5;
  }(reported, cleaned_up));
  EXPECT_EQ(v, 5);
  EXPECT_TRUE(cleaned_up);
  EXPECT_THAT(reported, ::testing::Contains(HasSubstr("unhandled exception during twinloop run() shutdown")));
  EXPECT_EQ(s.elapsed(), absl::ZeroDuration());  // cancelled, not slept
}

}  // namespace
}  // namespace twinloop::sim
