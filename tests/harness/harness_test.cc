// The GoogleTest harness (sim/harness/testing.h), in process: simulated tests that
// pass over the whole seed range, and run_once's verdict on bodies that fail
// in every way a seed can fail. tests/harness/harness_driver_test.cc runs
// failing tests as subprocesses and checks their reports.
#include "twinloop/sim/harness/testing.h"

#include <cstdlib>
#include <memory>
#include <ostream>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "gmock/gmock.h"
#include "gtest/gtest-spi.h"
#include "twinloop/sim/harness/sweep.h"
#include "twinloop/sim/network.h"

namespace twinloop::sim::harness {

// GoogleTest prints a failing EXPECT_EQ on kinds by their names.
void PrintTo(SeedOutcome::Kind kind, std::ostream* os) { *os << '"' << SeedOutcome::kind_name(kind) << '"'; }

namespace {

using ::testing::HasSubstr;
using ::testing::Not;

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
  EXPECT_EQ(o.kind, SeedOutcome::Kind::kAssertion);
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
  EXPECT_EQ(o.kind, SeedOutcome::Kind::kAssertion);
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
  EXPECT_EQ(o.kind, SeedOutcome::Kind::kException);
  EXPECT_THAT(o.what, HasSubstr("boom"));
}

Coro<void> deadlocks() {
  twinloop::Event never("never");
  co_await never.wait();
}

TEST(RunOnce, DeadlockIsAFailureOfItsOwn) {
  SeedOutcome o = run_once(&deadlocks, Options{.seed = 1});
  EXPECT_TRUE(o.failed);
  EXPECT_EQ(o.kind, SeedOutcome::Kind::kDeadlock);
  EXPECT_THAT(o.what, HasSubstr("Event.wait() on 'never'"));
}

Coro<void> spins_in_virtual_time() {
  for (;;) co_await sleep(absl::Seconds(1));
}

TEST(RunOnce, TimeLimitIsAFailureOfItsOwn) {
  SeedOutcome o = run_once(&spins_in_virtual_time, Options{.seed = 1, .time_limit = absl::Seconds(10)});
  EXPECT_TRUE(o.failed);
  EXPECT_EQ(o.kind, SeedOutcome::Kind::kTimeLimit);
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
  EXPECT_EQ(o.kind, SeedOutcome::Kind::kUnhandledError);
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

TEST(RunOnce, KindNamesAreTheTextsReportsAndReplayFilesPrint) {
  // Replay files record "<kind>: <what>" and a replay compares it: the
  // texts must stay as they were when kind was a string.
  EXPECT_STREQ(SeedOutcome::kind_name(SeedOutcome::Kind::kNone), "");
  EXPECT_STREQ(SeedOutcome::kind_name(SeedOutcome::Kind::kAssertion), "assertion");
  EXPECT_STREQ(SeedOutcome::kind_name(SeedOutcome::Kind::kException), "exception");
  EXPECT_STREQ(SeedOutcome::kind_name(SeedOutcome::Kind::kDeadlock), "deadlock");
  EXPECT_STREQ(SeedOutcome::kind_name(SeedOutcome::Kind::kTimeLimit), "time limit");
  EXPECT_STREQ(SeedOutcome::kind_name(SeedOutcome::Kind::kUnhandledError), "unhandled error");
  EXPECT_STREQ(SeedOutcome::kind_name(SeedOutcome::Kind::kNondeterminism), "nondeterminism");
  SeedOutcome o = run_once(&deadlocks, Options{.seed = 1});
  EXPECT_STREQ(o.kind_name(), "deadlock");
  EXPECT_EQ(run_once(&passes, Options{.seed = 1}).kind, SeedOutcome::Kind::kNone);
}

// ---------------------------------------------------------------- the network in reports

// A database on host "db" that accepts and stops reading; a client on host
// "app" that connects and, 10 ms later, writes "hello".
constexpr uint16_t kDbPort = 5432;

Coro<void> never_reads(StreamReader, StreamWriter writer) {
  writer.transport()->pause_reading();
  twinloop::Event never("never");
  co_await never.wait();
}

Coro<Server> start_db() {
  ClientConnected handler = &never_reads;
  Server server = co_await start_server(std::move(handler), "0.0.0.0", kDbPort);
  co_return server;
}

Coro<StreamWriter> connect_and_write() {
  std::pair<StreamReader, StreamWriter> conn = co_await open_connection("db", kDbPort);
  co_await sleep(absl::Milliseconds(10));
  conn.second.write("hello");
  co_return conn.second;
}

// Two hosts, a listener, and a connection with 5 bytes unread at the
// server, a second after the write.
Coro<StreamWriter> open_a_connection_with_unread_bytes() {
  Network& net = Network::of(get_running_loop());
  net.add_host("db", "10.0.0.1");
  net.add_host("app", "10.0.0.2");
  Task<Server> db = spawn_on("db", start_db());
  co_await db;
  Task<StreamWriter> app = spawn_on("app", connect_and_write());
  StreamWriter writer = co_await app;
  co_await sleep(absl::Seconds(1));
  co_return writer;
}

// Fails with the connection open, closes it, fails again.
Coro<void> fails_with_an_open_connection() {
  StreamWriter writer = co_await open_a_connection_with_unread_bytes();
  EXPECT_EQ(1, 2) << "the first failure";
  writer.close();
  co_await writer.wait_closed();
  co_await sleep(absl::Seconds(1));
  EXPECT_EQ(3, 4) << "a later failure";
}

TEST(RunOnce, AFailureReportsTheNetworkAtTheFirstFailure) {
  SeedOutcome o = run_once(&fails_with_an_open_connection, Options{.seed = 1});
  EXPECT_EQ(o.kind, SeedOutcome::Kind::kAssertion);
  EXPECT_THAT(o.network, HasSubstr("simulated network at t=1."));
  EXPECT_THAT(o.network, HasSubstr("host db: 127.0.0.1 ::1 10.0.0.1"));
  EXPECT_THAT(o.network, HasSubstr("host app: 127.0.0.1 ::1 10.0.0.2"));
  EXPECT_THAT(o.network, HasSubstr(absl::StrCat("listener #1 on db 0.0.0.0:", kDbPort)));
  // The connection as it was at the first failure, though closed by the end.
  EXPECT_THAT(o.network, HasSubstr("1 connection"));
  EXPECT_THAT(o.network, HasSubstr("connector -> acceptor: 5 unread at the receiver"));
  EXPECT_THAT(o.what, HasSubstr("a later failure"));
}

Coro<void> throws_with_an_open_connection() {
  StreamWriter writer = co_await open_a_connection_with_unread_bytes();
  throw std::logic_error("boom");
}

TEST(RunOnce, AnExceptionReportsTheNetwork) {
  SeedOutcome o = run_once(&throws_with_an_open_connection, Options{.seed = 1});
  EXPECT_EQ(o.kind, SeedOutcome::Kind::kException);
  EXPECT_THAT(o.network, HasSubstr("connector -> acceptor: 5 unread at the receiver"));
}

Coro<void> fails_in_a_task_nobody_awaits(StreamWriter) {
  co_await sleep(absl::Milliseconds(1));
  throw std::runtime_error("lost in a task nobody awaits");
}

Coro<void> leaks_a_failed_task_with_an_open_connection() {
  StreamWriter writer = co_await open_a_connection_with_unread_bytes();
  Task<void> t = create_task(fails_in_a_task_nobody_awaits(writer));
  co_await sleep(absl::Milliseconds(5));
}

TEST(RunOnce, AnUnhandledErrorReportsTheNetwork) {
  SeedOutcome o = run_once(&leaks_a_failed_task_with_an_open_connection, Options{.seed = 1});
  EXPECT_EQ(o.kind, SeedOutcome::Kind::kUnhandledError);
  EXPECT_THAT(o.network, HasSubstr("connector -> acceptor: 5 unread at the receiver"));
}

TEST(RunOnce, ARunWithoutTheNetworkReportsNone) {
  EXPECT_EQ(run_once(&expect_fails, Options{.seed = 3}).network, "");
  EXPECT_EQ(run_once(&throws, Options{.seed = 1}).network, "");
  EXPECT_EQ(run_once(&leaks_a_failed_task, Options{.seed = 1}).network, "");
}

Coro<void> spins_with_an_open_connection() {
  StreamWriter writer = co_await open_a_connection_with_unread_bytes();
  for (;;) co_await sleep(absl::Seconds(1));
}

Coro<void> deadlocks_with_an_open_connection() {
  StreamWriter writer = co_await open_a_connection_with_unread_bytes();
  twinloop::Event never("never");
  co_await never.wait();
}

// Deadlock and time-limit messages carry the network themselves.
TEST(RunOnce, DeadlockAndTimeLimitMessagesIncludeTheNetwork) {
  SeedOutcome stuck = run_once(&deadlocks_with_an_open_connection, Options{.seed = 1});
  EXPECT_EQ(stuck.kind, SeedOutcome::Kind::kDeadlock);
  EXPECT_THAT(stuck.what, HasSubstr("connector -> acceptor: 5 unread at the receiver"));
  EXPECT_EQ(stuck.network, "");
  SeedOutcome spun =
      run_once(&spins_with_an_open_connection, Options{.seed = 1, .time_limit = absl::Seconds(10)});
  EXPECT_EQ(spun.kind, SeedOutcome::Kind::kTimeLimit);
  EXPECT_THAT(spun.what, HasSubstr("virtual time limit exceeded"));
  EXPECT_THAT(spun.what, HasSubstr("host db: 127.0.0.1 ::1 10.0.0.1"));
  EXPECT_THAT(spun.what, HasSubstr("connector -> acceptor: 5 unread at the receiver"));
  EXPECT_EQ(spun.network, "");
  // Without the network, neither mentions it.
  EXPECT_THAT(run_once(&deadlocks, Options{.seed = 1}).what, Not(HasSubstr("simulated network")));
  EXPECT_THAT(run_once(&spins_in_virtual_time, Options{.seed = 1, .time_limit = absl::Seconds(10)}).what,
              Not(HasSubstr("simulated network")));
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
                                        "--twinloop_check_determinism=0.5"});
  EXPECT_EQ(e.seeds, 700u);  // the flag wins over the environment
  EXPECT_EQ(e.jobs, 2);      // from the environment
  EXPECT_TRUE(e.shrink);
  ASSERT_TRUE(e.seed.has_value());
  EXPECT_EQ(*e.seed, 42u);
  EXPECT_DOUBLE_EQ(e.check_determinism, 0.5);
  EXPECT_EQ(config_from_flags_and_env({"bin", "--twinloop_replay=/tmp/x.replay"}).replay, "/tmp/x.replay");
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

// The error config_from_flags_and_env reports for `argv`.
std::string config_error(const std::vector<std::string>& argv) {
  try {
    config_from_flags_and_env(argv);
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Config, ValuesFollowAnEqualsSignOrASpace) {
  Config c = config_from_flags_and_env({"bin", "--twinloop_seeds", "1000", "-twinloop_first_seed=5",
                                        "--twinloop_replay_dir", "/tmp/r", "--twinloop_shrink=false"});
  EXPECT_EQ(c.seeds, 1000u);
  EXPECT_EQ(c.first_seed, 5u);
  EXPECT_EQ(c.replay_dir, "/tmp/r");
  EXPECT_FALSE(c.shrink);
  EXPECT_THAT(config_error({"bin", "--twinloop_seed"}), HasSubstr("--twinloop_seed needs a value"));
  EXPECT_THAT(config_error({"bin", "--twinloop_seed="}), HasSubstr("--twinloop_seed needs a value"));
  EXPECT_THAT(config_error({"bin", "--twinloop_replay", "--twinloop_seeds=3"}),
              HasSubstr("--twinloop_replay needs a value"));
  EXPECT_THAT(config_error({"bin", "--twinloop_progress", "1"}), HasSubstr("write --twinloop_progress=1"));
}

TEST(Config, UnknownFlagsAndVariablesNameTheClosestKnownOne) {
  EXPECT_THAT(config_error({"bin", "--twinloop_sed=4"}), HasSubstr("did you mean --twinloop_seed?"));
  EXPECT_THAT(config_error({"bin", "--twinloop-seed=4"}), HasSubstr("did you mean --twinloop_seed?"));
  EXPECT_THAT(config_error({"bin", "--twinloop_max_failure=4"}), HasSubstr("did you mean --twinloop_max_failures?"));
  EXPECT_THAT(config_error({"bin", "--TwinLoop_seed=4"}), HasSubstr("did you mean --twinloop_seed?"));
  setenv("TWINLOOP_REPLAYDIR", "/tmp", 1);
  EXPECT_THAT(config_error({"bin"}), HasSubstr("did you mean TWINLOOP_REPLAY_DIR?"));
  unsetenv("TWINLOOP_REPLAYDIR");
  EXPECT_THAT(config_error({"bin", "--twinloopish"}), HasSubstr("unknown flag '--twinloopish'"));
  // Other flags and arguments are not the harness's: ignored.
  EXPECT_EQ(config_error({"bin", "--gtest_filter=x", "-v", "twinloop_seed"}), "(no error)");
}

TEST(Config, ContradictoryFlags) {
  EXPECT_THAT(config_error({"bin", "--twinloop_seed=1", "--twinloop_replay=/x"}),
              HasSubstr("--twinloop_seed=1 and --twinloop_replay=/x"));
  EXPECT_THAT(config_error({"bin", "--twinloop_shrink", "--twinloop_replay=/x"}), HasSubstr("--twinloop_shrink"));
  Config c = config_from_flags_and_env({"bin", "--twinloop_seed=3", "--twinloop_seeds=50"});
  ASSERT_EQ(c.notes.size(), 1u);
  EXPECT_THAT(c.notes[0], HasSubstr("only seed 3 runs"));
  EXPECT_THAT(config_error({"bin", "--twinloop_first_seed=18446744073709551615", "--twinloop_seeds=2"}),
              HasSubstr("passes the largest seed"));
}

// ---------------------------------------------------------------- the sweep ran every seed

Coro<void> trivially_passes() { co_await sleep(absl::Milliseconds(1)); }

TEST(SweepCheck, ASweepThatRanFewerSeedsThanAskedFailsTheTest) {
  const uint64_t seeds = config().seeds;
  if (seeds < 8) GTEST_SKIP() << "needs a range of at least 8 seeds";
  // A sweep that stops after 1 seed without a failure.
  internal::set_sweep_runner_for_testing([](const SweepOptions& o, const std::function<bool(uint64_t)>& run_seed) {
    SweepResult r;
    r.failed_seeds.clear();
    static_cast<void>(run_seed(o.first_seed + static_cast<uint64_t>(o.shard.index)));
    r.seeds_run = 1;
    return r;
  });
  const std::string whole = absl::StrCat("the sweep ran 1 of the ", seeds, " seeds");
  EXPECT_NONFATAL_FAILURE(run_sim_test("Short.Sweep", Options{}, &trivially_passes, 0, 1), whole);
  const std::string part = absl::StrCat("the sweep ran 1 of the ", (seeds - 2) / 4 + 1, " seeds");
  EXPECT_NONFATAL_FAILURE(run_sim_test("Short.Sweep", Options{}, &trivially_passes, 1, 4), part);
  // A complete sweep passes.
  internal::set_sweep_runner_for_testing(nullptr);
  run_sim_test("Short.Sweep", Options{}, &trivially_passes, 0, 1);
}

}  // namespace
}  // namespace twinloop::sim::harness
