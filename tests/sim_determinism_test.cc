// Same seed, same run: the event hash of a fixed workload (timers, executor
// work, step jitter, the simulated network and processes) is pinned here and checked on
// every build configuration. `./twinloop test` also builds
// sim_determinism_print with clang++ 19, g++ 12 and clang++ 14 at -O0 and -O2
// and compares their output, so a compiler- or optimisation-dependent
// decision fails CI.
//
// If scheduling semantics change on purpose, update kGoldenHash from
// `bazel run //tests:sim_determinism_print` (seed=42 line) and say why in the
// commit message.
#include <cstdint>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/sim/recording.h"
#include "twinloop/tests/determinism_workload.h"

namespace twinloop::testing {
namespace {

constexpr uint64_t kGoldenHash = 0x64ef9e73aa53c91a;  // seed 42

TEST(SimDeterminism, RepeatedRunsGiveIdenticalHashes) {
  sim::RunStats a, b;
  const uint64_t ra = sim::run(determinism_main(), determinism_options(7), &a);
  const uint64_t rb = sim::run(determinism_main(), determinism_options(7), &b);
  EXPECT_EQ(ra, rb);
  EXPECT_EQ(a.event_hash, b.event_hash);
  EXPECT_EQ(a.events, b.events);
  EXPECT_EQ(a.choices, b.choices);
  EXPECT_GT(a.choices, 100u);  // the workload really makes decisions
}

TEST(SimDeterminism, HashForSeed42MatchesTheGoldenValue) {
  sim::RunStats s;
  sim::run(determinism_main(), determinism_options(42), &s);
  EXPECT_EQ(s.event_hash, kGoldenHash) << std::hex << "got 0x" << s.event_hash;
}

// The hash covers the network: the workload's run sends and delivers
// segments (events in the hash) and draws latencies, cuts and ports.
TEST(SimDeterminism, TheWorkloadSendsAndDeliversOverTheNetwork) {
  sim::Options options = determinism_options(42);
  options.record = true;
  sim::Simulation sim(options);
  sim.run(determinism_main());
  const sim::Recording r = sim.recording();
  int sends = 0, deliveries = 0;
  for (const sim::EventRecord& e : r.events) {
    sends += e.kind == internal::EventKind::kNetSend;
    deliveries += e.kind == internal::EventKind::kNetDeliver;
  }
  EXPECT_GT(sends, 50);
  EXPECT_EQ(deliveries, sends);  // every segment arrives by the end of the run
  int latencies = 0, cut = 0, ports = 0;
  for (const sim::Decision& d : r.decisions) {
    latencies += d.site == "net.latency_us" && d.value != 0;
    cut += d.site == "net.segments" && d.value != 0;
    ports += d.site == "net.ephemeral_port";
  }
  EXPECT_GT(latencies, 20);
  EXPECT_GT(cut, 5);
  EXPECT_EQ(ports, kDeterminismClients + 2);
}

// The network part does what it says on every seed: the echo clients get
// every byte back, one connection is refused, one reset.
TEST(SimDeterminism, TheNetworkPartEchoesRefusesAndResets) {
  for (uint64_t seed : {1, 2, 3, 42, 1000}) {
    const std::vector<uint64_t> results = sim::run(determinism_network_results(), determinism_options(seed));
    ASSERT_EQ(results.size(), static_cast<size_t>(kDeterminismClients + 2));
    for (int i = 0; i < kDeterminismClients; ++i) {
      uint64_t sent = 0;
      for (const std::string& line : determinism_lines(i)) sent += line.size();
      EXPECT_EQ(results[i], sent) << "client " << i << ", seed " << seed;
    }
    EXPECT_EQ(results[kDeterminismClients], kDeterminismRefused) << "seed " << seed;
    EXPECT_EQ(results[kDeterminismClients + 1], kDeterminismReset) << "seed " << seed;
  }
}

TEST(SimDeterminism, TheWorkloadAppliesFaults) {
  // The fault part crashes and restarts hosts, sets their clocks apart and
  // partitions them: the cross-build check covers the fault machinery's
  // draws and its integer clock arithmetic.
  sim::Simulation sim(determinism_options(42));
  sim.run(determinism_main());
  const std::string log = sim.world().fault_log();
  EXPECT_THAT(log, ::testing::HasSubstr("crash host 'f"));
  EXPECT_THAT(log, ::testing::HasSubstr("restart host 'f"));
  EXPECT_THAT(log, ::testing::HasSubstr("clock of host 'f"));
}

}  // namespace
}  // namespace twinloop::testing
