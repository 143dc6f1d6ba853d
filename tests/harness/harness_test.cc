// The GoogleTest harness (sim/testing.h), in process: simulated tests that
// pass over the whole seed range, and run_once's verdict on bodies that fail
// in every way a seed can fail. tests/harness/harness_driver_test.cc runs
// failing tests as subprocesses and checks their reports.
#include "sim/testing.h"

#include <cstdlib>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/time/time.h"
#include "api/twinloop.h"
#include "gmock/gmock.h"

namespace twinloop::sim::testing {
namespace {

using ::testing::HasSubstr;

// ---------------------------------------------------------------- passing simulated tests

TWINLOOP_SIM_TEST(HarnessPasses, BodyIsACoroutineWithAssertions) {
  Lock lock;
  int inside = 0;
  int max_inside = 0;
  std::vector<Task<void>> tasks;
  for (int i = 0; i < 4; ++i) {
    tasks.push_back(create_task([](Lock* lock, int* inside, int* max_inside) -> Coro<void> {
      auto guard = co_await lock->scoped();
      ++*inside;
      *max_inside = std::max(*max_inside, *inside);
      co_await sleep(absl::Milliseconds(1));
      --*inside;
    }(&lock, &inside, &max_inside)));
  }
  for (Task<void>& t : tasks) co_await t;
  ASSERT_EQ(max_inside, 1);
  EXPECT_FALSE(lock.locked());
}

TWINLOOP_SIM_TEST_WITH_OPTIONS(HarnessPasses, OptionsReachTheSimulator,
                               (Options{.executor_latency_max = absl::Microseconds(3)})) {
  const absl::Time t0 = get_running_loop().time();
  co_await to_thread([] {});
  EXPECT_LE(get_running_loop().time() - t0, absl::Microseconds(3));
}

// ---------------------------------------------------------------- run_once

Coro<void> expect_fails() {
  co_await sleep(absl::Seconds(2));
  EXPECT_EQ(1, 2) << "one is not two";
  co_await sleep(absl::Seconds(1));
}

TEST(RunOnce, ExpectFailureFailsTheSeedWithoutFailingThisTest) {
  SeedOutcome o = run_once(&expect_fails, Options{.seed = 3});
  EXPECT_TRUE(o.failed);
  EXPECT_EQ(o.kind, "assertion");
  EXPECT_THAT(o.what, HasSubstr("one is not two"));
  EXPECT_THAT(o.what, HasSubstr("harness_test.cc:"));
  EXPECT_EQ(o.virtual_time_ns, absl::ToInt64Nanoseconds(absl::Seconds(3)));  // EXPECT does not stop the body
  ASSERT_EQ(o.failures.size(), 1u);
  EXPECT_FALSE(o.last_events.empty());
}

int g_after_assert = 0;

Coro<void> assert_fails() {
  co_await sleep(absl::Seconds(2));
  ASSERT_TRUE(false) << "stop here";
  ++g_after_assert;
}

TEST(RunOnce, AssertStopsTheBodyAndFailsTheSeed) {
  g_after_assert = 0;
  SeedOutcome o = run_once(&assert_fails, Options{.seed = 1});
  EXPECT_TRUE(o.failed);
  EXPECT_EQ(o.kind, "assertion");
  EXPECT_THAT(o.what, HasSubstr("stop here"));
  EXPECT_EQ(g_after_assert, 0);
  EXPECT_EQ(o.virtual_time_ns, absl::ToInt64Nanoseconds(absl::Seconds(2)));
}

// The task holds the lock by shared_ptr: the failing ASSERT ends the body
// (destroying its locals) while the task still waits, until the harness
// cancels it at shutdown.
Coro<void> waits_for_a_lock(std::shared_ptr<Lock> lock) {
  auto guard = co_await lock->scoped();
  co_await sleep(absl::Hours(1));
}

Coro<void> assert_with_live_tasks() {
  auto lock = std::make_shared<Lock>("accounts");
  co_await lock->acquire();
  Task<void> waiter = create_task(waits_for_a_lock(lock), {.name = "transfer"});
  co_await sleep(absl::Milliseconds(5));
  ASSERT_FALSE(lock->locked());
}

TEST(RunOnce, ReportsWhatEveryLiveTaskAwaitsAtTheFailure) {
  SeedOutcome o = run_once(&assert_with_live_tasks, Options{.seed = 1});
  EXPECT_TRUE(o.failed);
  EXPECT_THAT(o.tasks, HasSubstr("Task 'transfer' waits on"));
  EXPECT_THAT(o.tasks, HasSubstr("Lock.acquire() on 'accounts'"));
  EXPECT_THAT(o.tasks, HasSubstr("waits_for_a_lock"));
}

Coro<void> throws() {
  co_await sleep(absl::Milliseconds(1));
  throw std::logic_error("boom");
}

TEST(RunOnce, AnEscapingExceptionFailsTheSeed) {
  SeedOutcome o = run_once(&throws, Options{.seed = 1});
  EXPECT_TRUE(o.failed);
  EXPECT_EQ(o.kind, "exception");
  EXPECT_THAT(o.what, HasSubstr("boom"));
}

Coro<void> deadlocks() {
  twinloop::Event never("never");
  co_await never.wait();
}

TEST(RunOnce, DeadlockIsAFailureOfItsOwn) {
  SeedOutcome o = run_once(&deadlocks, Options{.seed = 1});
  EXPECT_TRUE(o.failed);
  EXPECT_EQ(o.kind, "deadlock");
  EXPECT_THAT(o.what, HasSubstr("Event.wait() on 'never'"));
}

Coro<void> spins_in_virtual_time() {
  for (;;) co_await sleep(absl::Seconds(1));
}

TEST(RunOnce, TimeLimitIsAFailureOfItsOwn) {
  SeedOutcome o = run_once(&spins_in_virtual_time, Options{.seed = 1, .time_limit = absl::Seconds(10)});
  EXPECT_TRUE(o.failed);
  EXPECT_EQ(o.kind, "time limit");
  EXPECT_THAT(o.what, HasSubstr("virtual time limit exceeded"));
  EXPECT_THAT(o.what, HasSubstr("spins_in_virtual_time"));
}

Coro<void> failing_child() {
  co_await sleep(absl::Milliseconds(1));
  throw std::runtime_error("lost in a task nobody awaits");
}

Coro<void> leaks_a_failed_task() {
  Task<void> t = create_task(failing_child());
  co_await sleep(absl::Milliseconds(5));
}

TEST(RunOnce, AnErrorNobodyRetrievedFailsTheSeed) {
  SeedOutcome o = run_once(&leaks_a_failed_task, Options{.seed = 1});
  EXPECT_TRUE(o.failed);
  EXPECT_EQ(o.kind, "unhandled error");
  EXPECT_THAT(o.what, HasSubstr("lost in a task nobody awaits"));
}

Coro<void> passes() {
  co_await sleep(absl::Milliseconds(1));
  EXPECT_TRUE(true);
}

TEST(RunOnce, APassingBodyPassesAndCanRecord) {
  SeedOutcome o = run_once(&passes, Options{.seed = 9, .record = true});
  EXPECT_FALSE(o.failed) << o.what;
  EXPECT_EQ(o.recording.seed, 9u);
  EXPECT_FALSE(o.recording.events.empty());
}

// ---------------------------------------------------------------- config

TEST(Config, DefaultsFlagsAndEnvironment) {
  unsetenv("TWINLOOP_SEEDS");
  unsetenv("TWINLOOP_JOBS");
  Config d = config_from_flags_and_env({"bin"});
  EXPECT_EQ(d.seeds, 100u);
  EXPECT_EQ(d.first_seed, 0u);
  EXPECT_FALSE(d.seed.has_value());
  EXPECT_EQ(d.max_failures, 1);

  setenv("TWINLOOP_SEEDS", "500", 1);
  setenv("TWINLOOP_JOBS", "2", 1);
  Config e = config_from_flags_and_env({"bin", "--twinloop_seeds=700", "--twinloop_shrink", "--twinloop_seed=42",
                                        "--twinloop_check_determinism=0.5", "--twinloop_replay=/tmp/x.replay"});
  EXPECT_EQ(e.seeds, 700u);  // the flag wins over the environment
  EXPECT_EQ(e.jobs, 2);      // from the environment
  EXPECT_TRUE(e.shrink);
  ASSERT_TRUE(e.seed.has_value());
  EXPECT_EQ(*e.seed, 42u);
  EXPECT_DOUBLE_EQ(e.check_determinism, 0.5);
  EXPECT_EQ(e.replay, "/tmp/x.replay");
  unsetenv("TWINLOOP_SEEDS");
  unsetenv("TWINLOOP_JOBS");
}

TEST(Config, BadValuesAreClearErrors) {
  try {
    config_from_flags_and_env({"bin", "--twinloop_seeds=many"});
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("--twinloop_seeds"));
    EXPECT_THAT(e.what(), HasSubstr("'many'"));
  }
  EXPECT_THROW(config_from_flags_and_env({"bin", "--twinloop_seeds=0"}), std::invalid_argument);
  EXPECT_THROW(config_from_flags_and_env({"bin", "--twinloop_check_determinism=2"}), std::invalid_argument);
  EXPECT_THROW(config_from_flags_and_env({"bin", "--twinloop_shrink=maybe"}), std::invalid_argument);
}

}  // namespace
}  // namespace twinloop::sim::testing
