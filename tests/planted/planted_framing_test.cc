// A planted networking bug: a server that takes one read() for one whole
// request. It FAILS on purpose: tagged "manual" (not part of `bazel test
// //...`) and run by planted_framing_driver_test, which expects the harness
// to find it within its default seed count, shrink it to the segment cut
// that exposes it, and replay that.
//
// A request written with one write() usually arrives in one piece, and then
// the bug is invisible: PlantedNet.HiddenWhenWritesArriveWhole runs the same
// service with segment cutting off (net_max_segments = 1) and passes every
// seed. The simulated network cuts transmissions into segments that arrive
// on their own (net.segments, net.segment_cut; docs/network.md), as TCP may:
// read(100) then returns the first piece of a request only.
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/harness/testing.h"
#include "twinloop/sim/network.h"

namespace twinloop::planted {
namespace {

constexpr uint16_t kPort = 6379;
constexpr int kClients = 2;
constexpr int kRequests = 4;

// Links of 100 us to 2 ms, segments cut as by default (up to 4).
const sim::Options kCut{.net_latency_min = absl::Microseconds(100), .net_latency_max = absl::Milliseconds(2)};
// The same links, every transmission one segment.
const sim::Options kWhole{.net_latency_min = absl::Microseconds(100),
                          .net_latency_max = absl::Milliseconds(2),
                          .net_max_segments = 1};

std::string key_of(int client, int i) { return absl::StrCat("user", client, ".", i); }
std::string value_of(const std::string& key) { return absl::StrCat("profile of ", key); }

// "GET <key>\n" -> "VALUE <value>\n"; anything else -> "ERR ...\n".
std::string answer(std::string_view request) {
  if (request.starts_with("GET ") && request.ends_with("\n")) {
    const std::string key(request.substr(4, request.size() - 5));
    return absl::StrCat("VALUE ", value_of(key), "\n");
  }
  std::string shown(request);
  absl::StrReplaceAll({{"\n", "\\n"}}, &shown);
  return absl::StrCat("ERR bad request '", shown, "'\n");
}

// BUG: one read() is taken for one whole request. When the network cuts a
// request into segments, read() returns its first piece: the server answers
// it as a bad request, then answers the rest as another one.
Coro<void> serve(StreamReader reader, StreamWriter writer) {
  try {
    while (true) {
      std::string request = co_await reader.read(100);
      if (request.empty()) break;
      writer.write(answer(request));
      co_await writer.drain();
    }
  } catch (const ConnectionError&) {
    // A client that went away.
  }
  writer.close();
}

Coro<Server> start_cache() {
  ClientConnected handler = &serve;
  Server server = co_await start_server(std::move(handler), "0.0.0.0", kPort);
  co_return server;
}

// One request at a time, each answered before the next is written.
Coro<void> client(int id) {
  std::pair<StreamReader, StreamWriter> conn = co_await open_connection("cache", kPort);
  StreamReader reader = conn.first;
  StreamWriter writer = conn.second;
  for (int i = 0; i < kRequests; ++i) {
    const std::string key = key_of(id, i);
    writer.write(absl::StrCat("GET ", key, "\n"));
    co_await writer.drain();
    const std::string reply = co_await reader.readline();
    EXPECT_EQ(reply, absl::StrCat("VALUE ", value_of(key), "\n"))
        << "wrong reply to request " << i << " (GET " << key << ") of client " << id;
  }
  writer.close();
  try {
    co_await writer.wait_closed();
  } catch (const ConnectionError&) {
    // The server answered more than was asked: those replies stay unread and
    // the close resets the connection.
  }
}

// A cache server and two clients, each on its own host.
Coro<void> lookups() {
  sim::Network& net = sim::Network::of(get_running_loop());
  net.add_host("cache", "10.0.0.1");
  for (int i = 0; i < kClients; ++i) net.add_host(absl::StrCat("web", i), absl::StrCat("10.0.1.", i + 1));
  Task<Server> started = sim::spawn_on("cache", start_cache());
  Server server = co_await started;
  std::vector<Task<void>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(sim::spawn_on(absl::StrCat("web", i), client(i)));
  for (Task<void>& c : clients) co_await c;
  server.close();
  co_await server.wait_closed();
}

TWINLOOP_SIM_TEST_WITH_OPTIONS(PlantedNet, OneReadIsNotOneMessage, kCut) { co_await lookups(); }

TWINLOOP_SIM_TEST_WITH_OPTIONS(PlantedNet, HiddenWhenWritesArriveWhole, kWhole) { co_await lookups(); }

}  // namespace
}  // namespace twinloop::planted
