#include "twinloop/sim/faults.h"

#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/simulation.h"
#include "twinloop/sim/world.h"

namespace twinloop::sim {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

World& world() { return World::of(get_running_loop()); }

void add_hosts() {
  Network& net = Network::of(get_running_loop());
  net.add_host("a", "10.0.0.1");
  net.add_host("b", "10.0.0.2");
  net.add_host("c", "10.0.0.3");
}

Coro<void> idle_main() { co_await sleep(absl::Hours(1)); }

// What the injector did in one run of `profile`.
struct Injected {
  std::string log;
  std::string kinds;
  int crashes = 0;
};

Injected inject_run(const FaultProfile& profile, Options options) {
  Injected out;
  Simulation sim(options);
  sim.run([](FaultProfile profile, Injected* out) -> Coro<void> {
    add_hosts();
    for (const char* h : {"a", "b", "c"}) world().start(h, idle_main);
    world().inject(profile);
    co_await sleep(profile.duration + absl::Seconds(5));
    out->kinds = world().enabled_kinds();
  }(profile, &out));
  out.log = sim.world().fault_log();
  for (size_t at = out.log.find(" crash host "); at != std::string::npos; at = out.log.find(" crash host ", at + 1)) {
    ++out.crashes;
  }
  return out;
}

FaultProfile crash_profile() {
  FaultProfile p;
  p.crashes_per_s = 1;
  p.restart_max = absl::Milliseconds(500);
  p.duration = absl::Seconds(10);
  return p;
}

TEST(FaultProfile, CrashesFireAtAboutTheirRateAndReplayBySeed) {
  int total = 0;
  for (uint64_t seed = 0; seed < 10; ++seed) {
    const Injected r = inject_run(crash_profile(), Options{.seed = seed});
    EXPECT_EQ(r.log, inject_run(crash_profile(), Options{.seed = seed}).log) << "seed " << seed;
    EXPECT_EQ(r.kinds, "crashes");
    total += r.crashes;
  }
  // One per virtual second on average over 10 s, less the draws that hit a
  // host already down: 10 seeds make ~60-100.
  EXPECT_GT(total, 40);
  EXPECT_LT(total, 130);
}

TEST(FaultProfile, EveryDrawAtZeroMeansNoFault) {
  FaultProfile p = crash_profile();
  p.clock_jumps_per_s = 5;
  p.clock_drift_max_ppm = 500;
  const Injected r = inject_run(p, Options{.chooser = [](std::string_view, uint64_t) -> uint64_t { return 0; }});
  // Only the injection's own line: no fault.
  EXPECT_EQ(r.log, "t=0 fault injection for 10s: crashes clock_jumps\n");
  EXPECT_EQ(r.kinds, "crashes clock_jumps");
  p.swarm = true;
  const Injected swarm = inject_run(p, Options{.chooser = [](std::string_view, uint64_t) -> uint64_t { return 0; }});
  EXPECT_EQ(swarm.kinds, "");  // 0 disables every kind
}

TEST(FaultProfile, SwarmModeDrawsASubsetOfKindsPerSeed) {
  FaultProfile p = crash_profile();
  p.clock_jumps_per_s = 1;
  p.duration = absl::Seconds(1);
  std::set<std::string> subsets;
  for (uint64_t seed = 0; seed < 16; ++seed) subsets.insert(inject_run(p, Options{.seed = seed}).kinds);
  EXPECT_EQ(subsets, (std::set<std::string>{"crashes clock_jumps"}));  // without swarm: all of them
  p.swarm = true;
  subsets.clear();
  for (uint64_t seed = 0; seed < 16; ++seed) subsets.insert(inject_run(p, Options{.seed = seed}).kinds);
  EXPECT_EQ(subsets, (std::set<std::string>{"", "crashes", "clock_jumps", "crashes clock_jumps"}));
}

TEST(FaultProfile, DrawnDriftsMakeTheHostsClocksDisagree) {
  run([]() -> Coro<void> {
    add_hosts();
    FaultProfile p;
    p.clock_drift_max_ppm = 100'000;
    p.duration = absl::Seconds(1);
    world().inject(p);
    co_await sleep(absl::Seconds(100));
    std::set<absl::Time> readings;
    for (const char* h : {"a", "b", "c"}) readings.insert(world().clock_time(h));
    EXPECT_GT(readings.size(), 1u);
  }(), Options{.seed = 5});
}

TEST(FaultProfile, BadProfilesAreRefused) {
  run([]() -> Coro<void> {
    FaultProfile p;
    p.crashes_per_s = 1;
    EXPECT_THROW(world().inject(p), std::invalid_argument);  // no host
    add_hosts();
    p.crashes_per_s = -1;
    EXPECT_THROW(world().inject(p), std::invalid_argument);
    p.crashes_per_s = 1;
    p.tick = absl::ZeroDuration();
    EXPECT_THROW(world().inject(p), std::invalid_argument);
    p.tick = absl::Milliseconds(100);
    p.hosts = {"a", "nowhere"};
    EXPECT_THROW(world().inject(p), std::invalid_argument);
    p.hosts = {"a"};
    p.partitions_per_s = 1;
    EXPECT_THROW(world().inject(p), std::invalid_argument);  // one host cannot be partitioned
    EXPECT_FALSE(world().injecting());
    co_return;
  }());
}

TEST(FaultProfile, NetworkKindsApplyAndEndTheirFaults) {
  FaultProfile p;
  p.partitions_per_s = 1;
  p.holds_per_s = 1;
  p.resets_per_s = 1;
  p.slow_links_per_s = 1;
  p.partition_max = absl::Seconds(1);
  p.hold_max = absl::Seconds(1);
  p.slow_max = absl::Seconds(1);
  p.duration = absl::Seconds(10);
  std::string log;
  bool healed = false;
  run([](FaultProfile p, std::string* log, bool* healed) -> Coro<void> {
    add_hosts();
    world().inject(p);
    // Every fault drawn ends by itself within its maximum after the phase.
    co_await sleep(p.duration + absl::Seconds(2));
    *log = world().fault_log();
    const std::string net = Network::of(get_running_loop()).describe();
    *healed = net.find("fault in effect") == std::string::npos;
  }(p, &log, &healed), Options{.seed = 4});
  EXPECT_THAT(log, HasSubstr("partition "));
  EXPECT_THAT(log, HasSubstr("heal "));
  EXPECT_THAT(log, HasSubstr("hold "));
  EXPECT_THAT(log, HasSubstr("release "));
  EXPECT_THAT(log, HasSubstr("reset"));
  EXPECT_THAT(log, HasSubstr("set_link "));
  EXPECT_TRUE(healed) << log;
}

TEST(FaultProfile, HealEverythingEndsFaultsAtOnce) {
  run([]() -> Coro<void> {
    add_hosts();
    FaultProfile p;
    p.partitions_per_s = 10;
    p.partition_max = absl::Hours(1);
    p.crashes_per_s = 10;
    p.restart_max = absl::Hours(1);
    p.duration = absl::Seconds(1);
    world().inject(p);
    co_await sleep(absl::Seconds(2));
    Network& net = Network::of(get_running_loop());
    EXPECT_THAT(net.describe(), HasSubstr("fault in effect: partition"));
    const std::string what = world().heal_everything();
    EXPECT_THAT(what, HasSubstr("heal_all"));
    EXPECT_THAT(what, HasSubstr("restart host"));
    for (const char* h : {"a", "b", "c"}) EXPECT_FALSE(world().is_down(h)) << h;
    EXPECT_EQ(net.describe().find("fault in effect"), std::string::npos) << net.describe();
    EXPECT_FALSE(world().injecting());
  }(), Options{.seed = 1});
}

// ---- liveness

TEST(Converge, HealsEverythingThenWaitsForTheCondition) {
  run([]() -> Coro<void> {
    add_hosts();
    int mains = 0;
    world().start("a", [&mains]() -> Coro<void> {
      ++mains;
      co_await sleep(absl::Hours(1));
    });
    co_await sleep(absl::Seconds(1));
    world().crash("a");  // no restart of its own
    EXPECT_EQ(mains, 1);
    co_await world().converge([&] { return mains == 2; }, absl::Seconds(5), "a's main runs again");
    EXPECT_FALSE(world().is_down("a"));
  }());
}

TEST(Converge, AConditionThatNeverHoldsIsADidNotConvergeFailure) {
  run([]() -> Coro<void> {
    add_hosts();
    world().start("b", idle_main);
    bool threw = false;
    try {
      co_await world().converge([] { return false; }, absl::Seconds(2), "nothing");
    } catch (const DidNotConvergeError& e) {
      threw = true;
      EXPECT_THAT(e.what(), StartsWith("did not converge: 'nothing' still false 2s after every fault was healed"));
      EXPECT_THAT(e.what(), HasSubstr("b:main#0"));  // the await graph of the hosts' tasks
    }
    EXPECT_TRUE(threw);
    EXPECT_EQ(get_running_loop().time() - absl::UnixEpoch(), absl::Seconds(2));
  }());
}

}  // namespace
}  // namespace twinloop::sim
