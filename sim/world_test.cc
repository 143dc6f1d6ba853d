#include "twinloop/sim/world.h"

#include <functional>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/real/run.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::sim {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

absl::Duration loop_now() {
  // The loop's own clock: the implicit host never gets a clock here.
  return absl::Nanoseconds(get_running_loop().backend().time_ns());
}
absl::Duration host_now() { return get_running_loop().time() - absl::UnixEpoch(); }

void add_hosts() {
  Network& net = Network::of(get_running_loop());
  net.add_host("a", "10.0.0.1");
  net.add_host("b", "10.0.0.2");
}

World& world() { return World::of(get_running_loop()); }

// ---- clocks

Coro<void> sleeper(absl::Duration d, std::vector<std::string>* log, std::string who) {
  co_await sleep(d);
  log->push_back(absl::StrCat(who, " woke at loop ", absl::FormatDuration(loop_now()), ", its clock ",
                              absl::FormatDuration(host_now())));
}

TEST(WorldClocks, AHostSeesItsOwnClockInLoopTime) {
  run([]() -> Coro<void> {
    add_hosts();
    world().set_clock("b", HostClock{.offset = absl::Seconds(3)});
    co_await sleep(absl::Seconds(1));
    absl::Duration on_a;
    absl::Duration on_b;
    const auto read_a = [&]() -> Coro<void> { on_a = host_now(); co_return; };
    const auto read_b = [&]() -> Coro<void> { on_b = host_now(); co_return; };
    co_await spawn_on("a", read_a());
    co_await spawn_on("b", read_b());
    EXPECT_EQ(on_a, absl::Seconds(1));
    EXPECT_EQ(on_b, absl::Seconds(4));
    EXPECT_EQ(world().clock_time("b") - absl::UnixEpoch(), absl::Seconds(4));
    EXPECT_EQ(host_now(), absl::Seconds(1));  // the implicit host's clock is the loop's
  }());
}

TEST(WorldClocks, SleepsAndTimeoutsRunByTheHostsClock) {
  run([]() -> Coro<void> {
    add_hosts();
    // b's clock runs 10% fast: its second passes in 1/1.1 s of loop time.
    world().set_clock("b", HostClock{.drift_ppm = 100'000});
    std::vector<std::string> log;
    Task<void> a = spawn_on("a", sleeper(absl::Seconds(11), &log, "a"));
    Task<void> b = spawn_on("b", sleeper(absl::Seconds(11), &log, "b"));
    co_await a;
    co_await b;
    EXPECT_THAT(log, ElementsAre("b woke at loop 10s, its clock 11s", "a woke at loop 11s, its clock 11s"));

    // A timeout on b: wait_for(11 s of b's clock) gives up at loop 10 s.
    const auto waits = [&]() -> Coro<void> {
      Future<void> never = get_running_loop().create_future<void>();
      const absl::Duration start = loop_now();
      bool timed_out = false;
      try {
        co_await wait_for(never, absl::Seconds(11));
      } catch (const TimeoutError&) {
        timed_out = true;
      }
      EXPECT_TRUE(timed_out);
      EXPECT_EQ(loop_now() - start, absl::Seconds(10));
    };
    co_await spawn_on("b", waits());
  }());
}

TEST(WorldClocks, CallAtUsesTheHostsClock) {
  run([]() -> Coro<void> {
    add_hosts();
    world().set_clock("b", HostClock{.offset = absl::Hours(1), .drift_ppm = -500'000});  // half speed
    absl::Duration fired_at = absl::ZeroDuration();
    absl::Time when;
    const auto schedule = [&]() -> Coro<void> {
      EventLoop& loop = get_running_loop();
      // 2 s from now on b's clock: 4 s of loop time at half speed.
      TimerHandle h = loop.call_at(loop.time() + absl::Seconds(2), [&] { fired_at = loop_now(); });
      when = h.when();
      co_return;
    };
    co_await spawn_on("b", schedule());
    EXPECT_EQ(when - absl::UnixEpoch(), absl::Hours(1) + absl::Seconds(2));
    co_await sleep(absl::Seconds(5));
    EXPECT_EQ(fired_at, absl::Seconds(4));
  }());
}

TEST(WorldClocks, AClockIsMonotonic) {
  run([]() -> Coro<void> {
    add_hosts();
    world().set_clock("a", HostClock{.offset = absl::Seconds(10)});
    co_await sleep(absl::Seconds(1));
    EXPECT_EQ(world().clock_time("a") - absl::UnixEpoch(), absl::Seconds(11));
    // Forward: a jump, allowed.
    world().set_clock("a", HostClock{.offset = absl::Seconds(20)});
    EXPECT_EQ(world().clock_time("a") - absl::UnixEpoch(), absl::Seconds(21));
    // Back: refused, and the clock is unchanged.
    EXPECT_THROW(world().set_clock("a", HostClock{.offset = absl::Seconds(5)}), std::invalid_argument);
    EXPECT_EQ(world().clock_time("a") - absl::UnixEpoch(), absl::Seconds(21));
    EXPECT_THROW(world().set_clock("a", HostClock{.offset = absl::Seconds(30), .drift_ppm = -1e6}),
                 std::invalid_argument);
    EXPECT_THROW(world().set_clock("nowhere", HostClock{}), std::invalid_argument);
  }());
}

TEST(WorldClocks, ADriftingClockNeverGoesBackAcrossManyReads) {
  run([]() -> Coro<void> {
    add_hosts();
    world().set_clock("a", HostClock{.offset = absl::Milliseconds(7), .drift_ppm = -333'333.3});
    const auto reads = [&]() -> Coro<void> {
      absl::Duration last = host_now();
      for (int i = 0; i < 1000; ++i) {
        co_await sleep(absl::Microseconds(i % 7));
        const absl::Duration t = host_now();
        EXPECT_GE(t, last);
        last = t;
      }
    };
    co_await spawn_on("a", reads());
  }());
}

// ---- crashes

struct Probe {
  std::vector<std::string> log;
};

struct Noisy {
  Probe* p;
  ~Noisy() { p->log.push_back("destructor"); }
};

Coro<void> victim(Probe* p) {
  Noisy noisy{p};
  try {
    co_await sleep(absl::Seconds(10));
    p->log.push_back("after sleep");
  } catch (const CancelledError&) {
    p->log.push_back("caught CancelledError");
    throw;
  }
}

TEST(WorldCrash, EndsTheHostsTasksWithoutRunningTheirCode) {
  run([]() -> Coro<void> {
    add_hosts();
    Probe p;
    Task<void> v = spawn_on("a", victim(&p));
    Task<void> survivor = spawn_on("b", victim(&p));
    co_await sleep(absl::Seconds(1));
    const std::string what = world().crash("a");
    EXPECT_THAT(what, HasSubstr("crash host 'a': 1 task(s) ended"));
    EXPECT_THAT(p.log, ElementsAre("destructor"));  // locals destroyed, no handler ran
    EXPECT_TRUE(v.done());
    EXPECT_TRUE(v.cancelled());  // who awaits it sees CancelledError
    EXPECT_TRUE(world().is_down("a"));
    EXPECT_FALSE(world().is_down("b"));
    co_await survivor;
    EXPECT_THAT(p.log, ElementsAre("destructor", "after sleep", "destructor"));
    EXPECT_EQ(world().tasks_ended(), 1u);
  }());
}

TEST(WorldCrash, ATaskAlreadyWokenOrNotYetStartedNeverRuns) {
  run([]() -> Coro<void> {
    add_hosts();
    std::vector<std::string> log;
    std::vector<std::string> reports;
    get_running_loop().set_exception_handler(
        [&](EventLoop&, const ExceptionContext& c) { reports.push_back(c.message); });
    Event go;
    const auto waits = [&]() -> Coro<void> {
      co_await go.wait();
      log.push_back("woken task ran");
    };
    const auto starts = [&]() -> Coro<void> {
      log.push_back("new task ran");
      co_return;
    };
    Task<void> woken = spawn_on("a", waits());
    co_await sleep(absl::Milliseconds(1));
    go.set();                               // in the ready queue now
    Task<void> fresh = spawn_on("a", starts());  // created, never stepped
    world().crash("a");
    co_await sleep(absl::Seconds(1));
    EXPECT_TRUE(log.empty()) << log.front();
    EXPECT_TRUE(woken.cancelled());
    EXPECT_TRUE(fresh.cancelled());
    EXPECT_TRUE(reports.empty()) << reports.front();  // no "never awaited" for a crashed host's coroutine
    get_running_loop().set_exception_handler(nullptr);
  }());
}

TEST(WorldCrash, CancelsTheCallbacksTheHostScheduled) {
  run([]() -> Coro<void> {
    add_hosts();
    int later = 0;
    int spins = 0;
    // A callback that schedules itself again at once, forever, and a timer.
    std::function<void()> spin = [&] {
      ++spins;
      get_running_loop().call_soon(spin);
    };
    const auto schedules = [&]() -> Coro<void> {
      get_running_loop().call_later(absl::Seconds(2), [&] { ++later; });
      get_running_loop().call_soon(spin);
      co_return;
    };
    co_await spawn_on("a", schedules());
    co_await sleep(absl::ZeroDuration());
    EXPECT_GT(spins, 0);
    world().crash("a");
    const int at_crash = spins;
    co_await sleep(absl::Seconds(3));
    EXPECT_EQ(spins, at_crash);
    EXPECT_EQ(later, 0);
  }());
}

TEST(WorldCrash, ATaskOnAnotherHostAwaitingACrashedOneSeesCancelledError) {
  run([]() -> Coro<void> {
    add_hosts();
    Probe p;
    Task<void> v = spawn_on("a", victim(&p));
    bool cancelled = false;
    const auto waiter = [&]() -> Coro<void> {
      try {
        co_await v;
      } catch (const CancelledError&) {
        cancelled = true;
      }
    };
    Task<void> w = spawn_on("b", waiter());
    co_await sleep(absl::Seconds(1));
    world().crash("a");
    co_await w;
    EXPECT_TRUE(cancelled);
  }());
}

TEST(WorldCrash, MisuseIsAnError) {
  run([]() -> Coro<void> {
    add_hosts();
    const auto self_crash = [&]() -> Coro<void> {
      EXPECT_THROW(world().crash("a"), std::logic_error);
      co_return;
    };
    co_await spawn_on("a", self_crash());
    EXPECT_THROW(world().restart("a"), std::logic_error);  // it is up
    world().crash("a");
    EXPECT_THROW(world().crash("a"), std::logic_error);  // down already
    EXPECT_THROW(world().crash("nowhere"), std::invalid_argument);
    EXPECT_THROW(world().crash("b", CrashOptions{.restart_after = absl::Seconds(-1)}), std::invalid_argument);
  }());
}

// ---- crashes and the network

Coro<void> echo_main() {
  ClientConnected echo = [](StreamReader reader, StreamWriter writer) -> Coro<void> {
    while (true) {
      std::string line = co_await reader.readline();
      if (line.empty()) break;
      writer.write(line);
      co_await writer.drain();
    }
    writer.close();
  };
  Server server = co_await start_server(std::move(echo), "0.0.0.0", 7000);
  co_await server.serve_forever();
}

Coro<std::string> ask(StreamReader reader, StreamWriter writer, std::string line) {
  writer.write(line);
  co_await writer.drain();
  std::string back = co_await reader.readline();
  co_return back;
}

TEST(WorldCrash, ACrashedServersPeersAreResetAndReconnectAfterTheRestart) {
  run([]() -> Coro<void> {
    add_hosts();
    world().start("a", echo_main);
    co_await sleep(absl::Milliseconds(1));
    std::vector<std::string> log;
    const auto client = [&]() -> Coro<void> {
      std::pair<StreamReader, StreamWriter> c = co_await open_connection("10.0.0.1", 7000);
      const std::string hello = "hello\n";
      log.push_back(co_await ask(c.first, c.second, hello));
      co_await sleep(absl::Seconds(1));  // a crashes and comes back meanwhile
      try {
        const std::string again = "again\n";
        log.push_back(co_await ask(c.first, c.second, again));
      } catch (const ConnectionResetError&) {
        log.push_back(absl::StrCat("reset at ", absl::FormatDuration(loop_now())));
      }
      c.second.close();
      std::pair<StreamReader, StreamWriter> d = co_await open_connection("10.0.0.1", 7000);
      const std::string back = "back\n";
      log.push_back(co_await ask(d.first, d.second, back));
      d.second.close();
    };
    Task<void> c = spawn_on("b", client());
    co_await sleep(absl::Milliseconds(100));
    EXPECT_THAT(world().crash("a", CrashOptions{.restart_after = absl::Milliseconds(500)}),
                HasSubstr("crash host 'a': 2 task(s) ended"));  // the main and the connection's handler
    co_await c;
    // The restarted host answers the old connection with a reset; its main
    // listens again.
    EXPECT_THAT(log, ElementsAre("hello\n", ::testing::StartsWith("reset at 1.0"), "back\n"));
    EXPECT_THAT(world().fault_log(), HasSubstr("host_down a"));
    EXPECT_THAT(world().fault_log(), HasSubstr("host_up a"));
  }());
}

// ---- mains and restarts

Coro<void> counting_main(std::vector<std::string>* log) {
  log->push_back(absl::StrCat("main starts at ", absl::FormatDuration(loop_now()), " on ",
                              Network::of(get_running_loop()).current_host()));
  co_await sleep(absl::Hours(1));
}

TEST(WorldRestart, RunsTheMainAgainInAFreshTask) {
  run([]() -> Coro<void> {
    add_hosts();
    std::vector<std::string> log;
    world().start("a", [&log] { return counting_main(&log); });
    co_await sleep(absl::Seconds(1));
    world().crash("a", CrashOptions{.restart_after = absl::Seconds(2)});
    co_await sleep(absl::Seconds(5));
    EXPECT_FALSE(world().is_down("a"));
    world().crash("a");
    co_await sleep(absl::Seconds(1));
    EXPECT_TRUE(world().is_down("a"));
    world().restart("a");
    co_await sleep(absl::Milliseconds(1));
    EXPECT_THAT(log, ElementsAre("main starts at 0 on a", "main starts at 3s on a", "main starts at 7s on a"));
    std::vector<std::string> faults;
    for (const World::Fault& f : world().faults()) faults.push_back(absl::StrCat(absl::FormatDuration(f.at), " ", f.what));
    EXPECT_THAT(faults, ElementsAre("1s crash host 'a': 1 task(s) ended, restart in 2s",
                                    "3s restart host 'a' (down 2s), main #1 starts",
                                    "6s crash host 'a': 1 task(s) ended",
                                    "7s restart host 'a' (down 1s), main #2 starts"));
  }());
}

TEST(WorldRestart, TheRestartDelayIsDrawnAndReplayedBySeed) {
  const auto restart_time = [](uint64_t seed) {
    absl::Duration restarted;
    // Outlives the run: the restarted main may take its first step in the
    // loop iteration in which the body returns.
    std::vector<std::string> log;
    run(
        [](absl::Duration* out, std::vector<std::string>* log) -> Coro<void> {
          add_hosts();
          world().start("a", [log] { return counting_main(log); });
          co_await sleep(absl::Seconds(1));
          world().crash_and_restart("a", absl::Seconds(10));
          while (world().is_down("a")) co_await sleep(absl::Milliseconds(1));
          *out = loop_now() - absl::Seconds(1);
        }(&restarted, &log),
        Options{.seed = seed});
    return restarted;
  };
  std::set<absl::Duration> seen;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    const absl::Duration d = restart_time(seed);
    EXPECT_GE(d, absl::ZeroDuration());
    EXPECT_LE(d, absl::Seconds(10) + absl::Milliseconds(1));
    EXPECT_EQ(d, restart_time(seed));
    seen.insert(d);
  }
  EXPECT_GT(seen.size(), 1u);
}

TEST(WorldRestart, NoMainStartsOnceTheRunsMainCoroutineIsDone) {
  auto starts = std::make_shared<int>(0);
  Simulation sim;
  sim.run([](std::shared_ptr<int> starts) -> Coro<void> {
    add_hosts();
    world().start("a", [starts]() -> Coro<void> {
      ++*starts;
      co_await sleep(absl::Hours(1));
    });
    // A task whose cancellation takes virtual time keeps the runner's
    // shutdown going past the pending restart.
    const auto slow_to_cancel = []() -> Coro<void> {
      bool cancelled = false;
      try {
        co_await sleep(absl::Hours(1));
      } catch (const CancelledError&) {
        cancelled = true;
      }
      if (cancelled) co_await sleep(absl::Seconds(2));
    };
    spawn_on("b", slow_to_cancel());
    co_await sleep(absl::Milliseconds(1));
    world().crash("a", CrashOptions{.restart_after = absl::Seconds(1)});
  }(starts));
  EXPECT_EQ(*starts, 1);
  EXPECT_THAT(sim.world().fault_log(), HasSubstr("restart host 'a' (down 1s)\n"));
  EXPECT_GE(sim.elapsed(), absl::Seconds(2));  // the restart did come, during the shutdown
}

TEST(WorldRestart, AMainThatRaisesIsReportedAtOnce) {
  run([]() -> Coro<void> {
    add_hosts();
    std::vector<std::string> reports;
    get_running_loop().set_exception_handler(
        [&](EventLoop&, const ExceptionContext& c) { reports.push_back(c.message); });
    const auto failing = []() -> Coro<void> {
      co_await sleep(absl::Seconds(1));
      throw std::runtime_error("boom");
    };
    world().start("b", failing);
    co_await sleep(absl::Seconds(2));
    EXPECT_THAT(reports, ElementsAre("host 'b': its main coroutine raised"));
    get_running_loop().set_exception_handler(nullptr);
  }());
}

TEST(World, IsTheSimulatedLoopsOnly) {
  EventLoopRef loop = real::new_event_loop();
  EXPECT_THROW(World::of(*loop), std::runtime_error);
}

// fault_log() merges the world's faults and the network's in the order they
// happened, also within one virtual time: a crash healed at once (a drawn
// restart delay of 0, as shrinking leaves them) reads crash, host_down,
// heal, restart, host_up; not the world's lines first.
TEST(World, TheFaultLogKeepsTheOrderOfFaultsAtOneVirtualTime) {
  Simulation sim(Options{});
  sim.run([]() -> Coro<void> {
    add_hosts();
    std::vector<std::string> log;
    world().start("a", [&log] { return counting_main(&log); });
    co_await sleep(absl::Seconds(1));
    world().crash("a");
    world().heal_everything();
    co_await sleep(absl::Seconds(1));  // main #1 runs (and logs) while `log` lives
  }());
  std::vector<std::string> lines = absl::StrSplit(sim.world().fault_log(), '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 5u) << sim.world().fault_log();
  EXPECT_THAT(lines[0], ::testing::StartsWith("t=1s crash host 'a'"));
  EXPECT_THAT(lines[1], ::testing::StartsWith("t=1s host_down a"));
  EXPECT_THAT(lines[2], ::testing::StartsWith("t=1s heal_all"));
  EXPECT_THAT(lines[3], ::testing::StartsWith("t=1s restart host 'a'"));
  EXPECT_THAT(lines[4], ::testing::StartsWith("t=1s host_up a"));
}

TEST(World, FaultsAreEventsOfTheRunsHash) {
  const auto hash = [](bool crash) {
    Simulation sim(Options{.seed = 3});
    sim.run([](bool crash) -> Coro<void> {
      add_hosts();
      std::vector<std::string> log;
      world().start("a", [&log] { return counting_main(&log); });
      co_await sleep(absl::Seconds(1));
      if (crash) world().crash("a", CrashOptions{.restart_after = absl::Seconds(1)});
      co_await sleep(absl::Seconds(1));
    }(crash));
    return sim.event_hash();
  };
  EXPECT_EQ(hash(true), hash(true));
  EXPECT_NE(hash(true), hash(false));
}

}  // namespace
}  // namespace twinloop::sim
