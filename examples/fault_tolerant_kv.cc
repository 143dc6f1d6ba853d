// A key-value service that survives partitions, resets, slow links and
// crashes, tested under faults drawn at random: the complete example of
// docs/faults.md (`bazel test //examples:fault_tolerant_kv_test`).
//  - Host "db" runs the server as its main (World::start: a restart runs it
//    again). It syncs each put to a log on its simulated disk BEFORE it
//    acknowledges it, and a new main rebuilds the store from what the disk kept.
//  - Hosts "c0" and "c1" run clients, mains too (a crash ends one, its restart
//    runs it again: puts are idempotent). Each attempt has a timeout; after a
//    connection error or a timeout the client reconnects, with a capped backoff.
//  - The test injects a FaultProfile in swarm mode (each seed enables its own
//    subset of the kinds), then converges: every fault healed, every client
//    must finish, and every acknowledged put must read back.
#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/disk.h"
#include "twinloop/sim/harness/testing.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/world.h"

namespace twinloop {
namespace {

constexpr uint16_t kPort = 7000;
constexpr int kClients = 2;
constexpr int kPuts = 20;
using Store = std::map<std::string, std::string>;
using Connection = std::pair<StreamReader, StreamWriter>;

// "PUT <key> <value>" -> "OK" once the put is on disk; "GET <key>" ->
// "VALUE <value>" or "MISSING".
Coro<void> serve(std::shared_ptr<Store> store, StreamReader reader, StreamWriter writer) {
  sim::Disk& disk = sim::Disk::of(get_running_loop());
  const std::string log = "kv.log";
  try {
    while (true) {
      const std::string line = co_await reader.readline();
      if (line.empty()) break;  // the client closed the connection
      std::vector<std::string> words = absl::StrSplit(absl::StripSuffix(line, "\n"), ' ');
      std::string reply = "ERROR\n";
      if (words.size() == 3 && words[0] == "PUT") {
        disk.append(log, absl::StrCat(words[1], "=", words[2], "\n"));
        co_await disk.sync(log);  // durable first, acknowledged after
        (*store)[words[1]] = words[2];
        reply = "OK\n";
      } else if (words.size() == 2 && words[0] == "GET") {
        auto it = store->find(words[1]);
        reply = it == store->end() ? "MISSING\n" : absl::StrCat("VALUE ", it->second, "\n");
      }
      writer.write(reply);
      co_await writer.drain();
    }
  } catch (const std::system_error&) {
    // Reset, or cut by a partition: the client reconnects.
  }
  writer.close();
}

// db's main, at the start and after every restart: the store is what the
// disk kept of the log (only complete lines: a put's line is synced whole).
Coro<void> db_main() {
  auto store = std::make_shared<Store>();
  const std::string log = sim::Disk::of(get_running_loop()).read("kv.log").value_or("");
  for (absl::string_view line : absl::StrSplit(log, '\n', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv = absl::StrSplit(line, absl::MaxSplits('=', 1));
    (*store)[kv.first] = kv.second;
  }
  ClientConnected handler = [store](StreamReader r, StreamWriter w) { return serve(store, r, w); };
  Server server = co_await start_server(std::move(handler), "0.0.0.0", kPort);
  co_await server.serve_forever();
}

// What the test knows, outside every host.
struct Outcome {
  Store acked;             // every put the server acknowledged
  std::set<int> finished;  // clients that did all their puts
};

// One attempt: the request out, its reply line back ("" if the server
// closed the connection).
Coro<std::string> round_trip(Connection conn, std::string request) {
  conn.second.write(request);
  co_await conn.second.drain();
  std::string reply = co_await conn.first.readline();
  co_return reply;
}

// Sends `request` until a reply comes: connecting and each attempt within
// 500 ms; after a failure, drop the connection, back off, try again.
Coro<std::string> call(std::optional<Connection>& conn, const std::string& request) {
  absl::Duration backoff = absl::Milliseconds(20);
  while (true) {
    try {
      if (!conn) conn = co_await wait_for(open_connection("db", kPort), absl::Milliseconds(500));
      Coro<std::string> attempt = round_trip(*conn, request);
      std::string reply = co_await wait_for(std::move(attempt), absl::Milliseconds(500));
      if (!reply.empty()) co_return reply;
    } catch (const std::system_error&) {  // refused, reset, cut (ETIMEDOUT)
    } catch (const TimeoutError&) {       // the server or the link is down, or slow
    }
    if (conn) std::exchange(conn, std::nullopt)->second.close();
    co_await sleep(backoff);
    backoff = std::min(2 * backoff, absl::Seconds(1));
  }
}

Coro<void> client_main(int id, std::shared_ptr<Outcome> outcome) {
  std::optional<Connection> conn;
  for (int i = 0; i < kPuts; ++i) {
    const std::string key = absl::StrCat("c", id, ".k", i);
    const std::string value = absl::StrCat("v", i);
    const std::string put = absl::StrCat("PUT ", key, " ", value, "\n");
    const std::string reply = co_await call(conn, put);
    if (reply == "OK\n") outcome->acked[key] = value;
    co_await sleep(absl::Milliseconds(300));
  }
  if (conn) conn->second.close();
  outcome->finished.insert(id);
}

TWINLOOP_SIM_TEST(FaultTolerantKv, AcknowledgedPutsSurviveEveryFault) {
  sim::Network& net = sim::Network::of(get_running_loop());
  net.add_host("db", "10.0.0.1");
  for (int i = 0; i < kClients; ++i) net.add_host(absl::StrCat("c", i), absl::StrCat("10.0.1.", i + 1));
  net.set_retransmission_timeout(absl::Seconds(2));  // a cut connection fails fast

  sim::World& world = sim::World::of(get_running_loop());
  auto outcome = std::make_shared<Outcome>();
  world.start("db", db_main);
  for (int i = 0; i < kClients; ++i) {
    world.start(absl::StrCat("c", i), [i, outcome] { return client_main(i, outcome); });
  }

  sim::FaultProfile profile;  // rates: faults per virtual second
  profile.partitions_per_s = 0.3;
  profile.resets_per_s = 0.3;
  profile.slow_links_per_s = 0.3;
  profile.crashes_per_s = 0.2;  // of any host; each restarts within restart_max
  profile.duration = absl::Seconds(8);
  profile.swarm = true;  // each seed: its own subset of these kinds
  world.inject(profile);
  co_await sleep(profile.duration);

  // Liveness: with every fault healed, every client finishes.
  std::function<bool()> all_finished = [outcome] { return outcome->finished.size() == size_t{kClients}; };
  co_await world.converge(std::move(all_finished), absl::Seconds(60), "every client finished");
  // Durability: every acknowledged put reads back, after all those crashes.
  std::optional<Connection> conn;
  for (const auto& [key, value] : outcome->acked) {
    const std::string get = absl::StrCat("GET ", key, "\n");
    Task<std::string> reading = sim::spawn_on("c0", call(conn, get));
    const std::string got = co_await reading;
    EXPECT_EQ(got, absl::StrCat("VALUE ", value, "\n")) << "an acknowledged put was lost: " << key;
  }
  EXPECT_EQ(outcome->acked.size(), size_t{kClients * kPuts});
}

}  // namespace
}  // namespace twinloop
