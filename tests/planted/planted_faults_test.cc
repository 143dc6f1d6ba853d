// Planted fault bugs: distributed-systems bugs that only faults expose
// (sim/faults.h, sim/world.h, docs/faults.md). They FAIL on purpose: tagged
// "manual" and run by planted_faults_driver_test, which expects the
// harness's default sweep to find each, shrinking to leave fewer faults and
// decisions, and the minimal replay to reproduce it. Each has a fixed twin
// that passes every seed of the same sweep.
//
//  - PlantedFaults.LeaseUntilAnotherHostsClock: a lease server grants
//    "until <its clock + 2 s>" and clients compare that with their own
//    clock; clocks set apart (FaultProfile::clock_offset_max) let a client
//    hold the lease after the server granted it to the other one.
//    Fixed: LeaseForADurationOnOwnClock (the server sends the duration, the
//    client counts it on its own clock from before it asked).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/faults.h"
#include "twinloop/sim/harness/testing.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/world.h"

namespace twinloop::planted {
namespace {

// ---------------------------------------------------------------------------
// Leases and clocks.

constexpr uint16_t kLeasePort = 7000;
constexpr absl::Duration kLease = absl::Seconds(2);
constexpr int kLeaseClients = 2;
constexpr int kAcquisitions = 3;
// Clocks drift by at most FaultProfile::clock_drift_max_ppm (50 ppm: 0.1 ms
// per lease of 2 s); a client gives its lease up this much early.
constexpr absl::Duration kDriftMargin = absl::Milliseconds(10);

enum class LeaseProtocol { kUntilServerTime, kForDuration };

// Who believes they hold the lease now: the test's view, outside every host.
struct LeaseHolders {
  int holding = 0;
  int grants = 0;
};

// One request per connection: "ACQUIRE\n" -> "GRANTED <n>\n" or "BUSY\n".
// <n>: the server's clock when the lease ends (kUntilServerTime) or the
// lease's length (kForDuration), in nanoseconds.
Coro<void> lease_server(LeaseProtocol protocol) {
  auto until = std::make_shared<int64_t>(0);
  ClientConnected serve = [protocol, until](StreamReader reader, StreamWriter writer) -> Coro<void> {
    try {
      const std::string request = co_await reader.readline();
      if (request == "ACQUIRE\n") {
        const int64_t now = get_running_loop().time_ns();
        std::string reply = "BUSY\n";
        if (now >= *until) {
          *until = now + absl::ToInt64Nanoseconds(kLease);
          const int64_t n = protocol == LeaseProtocol::kUntilServerTime ? *until : absl::ToInt64Nanoseconds(kLease);
          reply = absl::StrCat("GRANTED ", n, "\n");
        }
        writer.write(reply);
        co_await writer.drain();
      }
    } catch (const ConnectionError&) {
    }
    writer.close();
  };
  Server server = co_await start_server(std::move(serve), "0.0.0.0", kLeasePort);
  co_await server.serve_forever();
}

Coro<void> lease_client(LeaseProtocol protocol, int id, LeaseHolders* holders) {
  EventLoop& loop = get_running_loop();
  int acquired = 0;
  while (acquired < kAcquisitions) {
    const int64_t asked_at = loop.time_ns();
    std::pair<StreamReader, StreamWriter> conn = co_await open_connection("leader", kLeasePort);
    const std::string request = "ACQUIRE\n";
    conn.second.write(request);
    co_await conn.second.drain();
    const std::string reply = co_await conn.first.readline();
    conn.second.close();
    int64_t n = 0;
    if (!reply.starts_with("GRANTED ") || !absl::SimpleAtoi(reply.substr(8, reply.size() - 9), &n)) {
      co_await sleep(absl::Milliseconds(150));
      continue;
    }
    ++acquired;
    ++holders->grants;
    // BUG (kUntilServerTime): `n` is a reading of the server's clock,
    // compared here with this host's own clock.
    // Fixed (kForDuration): counted on this host's clock from before the
    // request, less a margin for the clocks' drift.
    const int64_t deadline = protocol == LeaseProtocol::kUntilServerTime
                                 ? n
                                 : asked_at + n - absl::ToInt64Nanoseconds(kDriftMargin);
    ++holders->holding;
    EXPECT_LE(holders->holding, 1) << "client " << id << " holds the lease while another client does (grant #"
                                   << holders->grants << ")";
    const int64_t now = loop.time_ns();
    if (deadline > now) co_await sleep(absl::Nanoseconds(deadline - now));
    --holders->holding;
    co_await sleep(absl::Milliseconds(100));
  }
}

Coro<void> leases(LeaseProtocol protocol) {
  sim::Network& net = sim::Network::of(get_running_loop());
  net.add_host("leader", "10.0.0.1");
  for (int i = 0; i < kLeaseClients; ++i) net.add_host(absl::StrCat("c", i), absl::StrCat("10.0.1.", i + 1));
  sim::World& world = sim::World::of(get_running_loop());
  sim::FaultProfile profile;
  profile.clock_offset_max = absl::Seconds(3);
  profile.clock_drift_max_ppm = 50;
  profile.duration = absl::ZeroDuration();
  world.inject(profile);
  world.start("leader", [protocol] { return lease_server(protocol); });
  co_await sleep(absl::Milliseconds(10));
  LeaseHolders holders;
  std::vector<Task<void>> clients;
  for (int i = 0; i < kLeaseClients; ++i) {
    clients.push_back(sim::spawn_on(absl::StrCat("c", i), lease_client(protocol, i, &holders)));
  }
  for (Task<void>& c : clients) co_await c;
  EXPECT_EQ(holders.grants, kLeaseClients * kAcquisitions);
}

TWINLOOP_SIM_TEST(PlantedFaults, LeaseUntilAnotherHostsClock) { co_await leases(LeaseProtocol::kUntilServerTime); }

TWINLOOP_SIM_TEST(PlantedFaults, LeaseForADurationOnOwnClock) { co_await leases(LeaseProtocol::kForDuration); }

}  // namespace
}  // namespace twinloop::planted
