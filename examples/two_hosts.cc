// Two hosts: a small key-value service on host "server" and a client on host
// "client", in a simulated network with a slow, jittery link; then the very
// same service and client code on the real loop over loopback.
//
// The service and the client below are written against api/ only
// (twinloop/api/twinloop.h): streams (start_server, open_connection,
// StreamReader, StreamWriter) and a Server. Only the wiring differs between
// the loops:
//   - simulated: sim::Simulation, two hosts with their own addresses, a link
//     whose every segment takes 1 to 5 ms (a drawn latency), the service
//     placed on "server" and the client on "client" with sim::spawn_on; the
//     client reaches the service by its host name.
//   - real: real::run, both on this machine, 127.0.0.1 and a port the
//     system picks (port 0).
//
// The protocol is one request per line, one reply per line:
//   SET key value  -> OK
//   GET key        -> VALUE value | MISSING
//   WHOAMI         -> YOU ARE <the client's address, as the server sees it>
// anything else   -> ERROR unknown command
//
// docs/network.md shows the core of this file; //examples:two_hosts_test
// runs it.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/real/run.h"
#include "twinloop/sim/simulation.h"

namespace {

using twinloop::Coro;
using twinloop::Future;
using twinloop::Server;
using twinloop::SocketAddress;
using twinloop::StreamReader;
using twinloop::StreamWriter;
using twinloop::Task;

// ---------------------------------------------------------------- the service

using Store = std::map<std::string, std::string>;

// The reply to one request line (without its "\n").
std::string answer(Store& store, const std::string& request, const SocketAddress& peer) {
  std::vector<std::string> words = absl::StrSplit(request, absl::MaxSplits(' ', 2));
  if (words.size() == 3 && words[0] == "SET") {
    store[words[1]] = words[2];
    return "OK";
  }
  if (words.size() == 2 && words[0] == "GET") {
    auto it = store.find(words[1]);
    return it == store.end() ? "MISSING" : absl::StrCat("VALUE ", it->second);
  }
  if (words.size() == 1 && words[0] == "WHOAMI") return absl::StrCat("YOU ARE ", peer.host);
  return "ERROR unknown command";
}

// One connection: a task per client, started by the server.
Coro<void> serve_client(std::shared_ptr<Store> store, StreamReader reader, StreamWriter writer) {
  const auto peer = std::any_cast<SocketAddress>(writer.get_extra_info("peername"));
  while (true) {
    // A line may arrive in several pieces (the simulated network cuts
    // writes into segments): readline reassembles it.
    std::string line = co_await reader.readline();
    if (line.empty()) break;  // the client closed its side
    if (line.back() == '\n') line.pop_back();  // (a last line may lack it)
    writer.write(absl::StrCat(answer(*store, line, peer), "\n"));
    co_await writer.drain();
  }
  writer.close();
  co_await writer.wait_closed();
}

// Listens on host:port, tells `listening` which port it got, and serves until
// cancelled; serve_forever then closes the server and waits for its clients.
Coro<void> run_service(std::string host, uint16_t port, Future<uint16_t> listening) {
  auto store = std::make_shared<Store>();
  twinloop::ClientConnected on_client = [store](StreamReader reader, StreamWriter writer) {
    return serve_client(store, std::move(reader), std::move(writer));
  };
  Server server = co_await twinloop::start_server(std::move(on_client), host, port);
  listening.set_result(server.sockets().at(0).port);
  co_await server.serve_forever();
}

// ---------------------------------------------------------------- the client

// A few requests, one at a time; returns the replies.
Coro<std::vector<std::string>> run_client(std::string host, uint16_t port) {
  auto [reader, writer] = co_await twinloop::open_connection(host, port);
  std::vector<std::string> replies;
  for (const char* request : {"SET colour blue\n", "GET colour\n", "GET size\n", "WHOAMI\n"}) {
    writer.write(request);
    co_await writer.drain();
    replies.push_back(co_await reader.readline());
  }
  writer.close();
  co_await writer.wait_closed();
  co_return replies;
}

// ---------------------------------------------------------------- the wiring

// Stops the service and waits until it has closed.
Coro<void> stop(Task<void> service) {
  service.cancel();
  try {
    co_await service;
  } catch (const twinloop::CancelledError&) {
    // serve_forever re-raises the cancellation once the server is closed
  }
}

// Simulated: the service on host "server", the client on host "client".
Coro<std::vector<std::string>> simulated_main() {
  Future<uint16_t> listening = twinloop::create_future<uint16_t>();
  Task<void> service = twinloop::sim::spawn_on("server", run_service("0.0.0.0", 7000, listening));
  const uint16_t port = co_await listening;
  Task<std::vector<std::string>> client = twinloop::sim::spawn_on("client", run_client("server", port));
  std::vector<std::string> replies = co_await client;
  co_await stop(service);
  co_return replies;
}

// Real: both on this machine, over loopback.
Coro<std::vector<std::string>> real_main() {
  Future<uint16_t> listening = twinloop::create_future<uint16_t>();
  Task<void> service = twinloop::create_task(run_service("127.0.0.1", 0, listening));
  const uint16_t port = co_await listening;
  std::vector<std::string> replies = co_await run_client("127.0.0.1", port);
  co_await stop(service);
  co_return replies;
}

struct SimulatedRun {
  std::vector<std::string> replies;
  absl::Duration elapsed;
  uint64_t event_hash;
};

SimulatedRun run_simulated(uint64_t seed) {
  twinloop::sim::Simulation sim({.seed = seed});
  twinloop::sim::Network& net = sim.network();
  net.add_host("server", "10.0.0.1");
  net.add_host("client", "10.0.0.2");
  const twinloop::sim::LinkConfig link{.latency_min = absl::Milliseconds(1), .latency_max = absl::Milliseconds(5)};
  net.set_link("client", "server", link);
  net.set_link("server", "client", link);
  SimulatedRun run;
  run.replies = sim.run(simulated_main());
  run.elapsed = sim.elapsed();
  run.event_hash = sim.event_hash();
  return run;
}

// ---------------------------------------------------------------- the test

std::vector<std::string> expected_replies(const std::string& client_address) {
  return {"OK\n", "VALUE blue\n", "MISSING\n", absl::StrCat("YOU ARE ", client_address, "\n")};
}

TEST(TwoHosts, TheExchangeWorksUnderEverySeed) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    SCOPED_TRACE(absl::StrCat("seed ", seed));
    const SimulatedRun run = run_simulated(seed);
    // The server sees the client host's own address.
    EXPECT_EQ(run.replies, expected_replies("10.0.0.2"));
    // Each link crossing takes at least 1 ms: the handshake and each of the
    // four request/reply pairs is a round trip.
    EXPECT_GE(run.elapsed, absl::Milliseconds(2 * (1 + 4)));
  }
}

TEST(TwoHosts, ASeedIsOneRun) {
  const SimulatedRun a = run_simulated(7);
  const SimulatedRun b = run_simulated(7);
  EXPECT_EQ(a.event_hash, b.event_hash);
  EXPECT_EQ(a.elapsed, b.elapsed);
  // Other seeds draw other latencies.
  bool some_seed_differs = false;
  for (uint64_t seed = 8; seed < 12 && !some_seed_differs; ++seed) {
    some_seed_differs = run_simulated(seed).elapsed != a.elapsed;
  }
  EXPECT_TRUE(some_seed_differs);
}

TEST(TwoHosts, TheSameCodeRunsOnTheRealLoop) {
  EXPECT_EQ(twinloop::real::run(real_main()), expected_replies("127.0.0.1"));
}

}  // namespace
