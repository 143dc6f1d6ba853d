// The reconnect leak (reconnect_leak.h).
#include "twinloop/tests/planted/reconnect_leak.h"

#include <algorithm>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/faults.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/world.h"

namespace twinloop::planted {
namespace {

constexpr uint16_t kPort = 8080;
constexpr absl::Duration kInterval = absl::Milliseconds(50);
constexpr absl::Duration kRequestTimeout = absl::Milliseconds(300);
constexpr absl::Duration kConnectTimeout = absl::Milliseconds(300);
constexpr absl::Duration kRetryPause = absl::Milliseconds(100);

// The loop's virtual time (the implicit host's clock, which no fault moves).
absl::Duration now() {
  sim::World& world = sim::World::of(get_running_loop());
  return world.clock_time(sim::Network::kImplicitHost) - absl::UnixEpoch();
}

// ---- srv: "REQ <n>\n" -> "REP <n>\n", until the end of the stream or an error.

Coro<void> serve_requests(StreamReader reader, StreamWriter writer) {
  try {
    while (true) {
      const std::string line = co_await reader.readline();
      if (!line.starts_with("REQ ") || !line.ends_with("\n")) break;
      writer.write(absl::StrCat("REP ", line.substr(4)));
      co_await writer.drain();
    }
  } catch (const std::system_error&) {
    // Reset, or timed out (a partition that loses).
  }
  writer.close();
}

Coro<void> server_main() {
  ClientConnected handler = &serve_requests;
  Server server = co_await start_server(std::move(handler), "0.0.0.0", kPort);
  co_await server.serve_forever();
}

// ---- app: the client and its pool of connections.

struct Connection {
  uint64_t id = 0;
  StreamWriter writer;
  // The reply the request in flight on this connection waits for ("" if the
  // connection ended first).
  std::optional<Future<std::string>> reply;
};

// One incarnation of the client process: what a crash takes away.
struct Pool {
  explicit Pool(std::shared_ptr<LeakOutcome> o) : out(std::move(o)) {}

  // Closes `c` if it is open, and wakes its waiting request with "".
  void drop(const std::shared_ptr<Connection>& c) {
    if (open.erase(c->id) > 0) c->writer.close();
    if (current == c) current.reset();
    if (c->reply) {
      Future<std::string> f = *std::exchange(c->reply, std::nullopt);
      if (!f.done()) f.set_result("");
    }
  }

  std::shared_ptr<LeakOutcome> out;
  // Every connection the client holds open, by id.
  std::map<uint64_t, std::shared_ptr<Connection>> open;
  // Where the next request goes; null: connect first.
  std::shared_ptr<Connection> current;
  uint64_t next_id = 0;
};

// Reads a connection's replies until it ends, then closes it.
Coro<void> read_replies(std::shared_ptr<Pool> pool, std::shared_ptr<Connection> c, StreamReader reader) {
  try {
    while (true) {
      const std::string line = co_await reader.readline();
      if (line.empty()) break;
      if (c->reply) {
        Future<std::string> f = *std::exchange(c->reply, std::nullopt);
        if (!f.done()) f.set_result(line);
      }
      // Else a late reply to a request given up on: dropped.
    }
  } catch (const std::system_error&) {
    // Reset, or timed out long after a cut.
  }
  pool->drop(c);
}

// Connects anew; false if that failed or took too long.
Coro<bool> connect(std::shared_ptr<Pool> pool) {
  std::optional<std::pair<StreamReader, StreamWriter>> conn;
  try {
    Coro<std::pair<StreamReader, StreamWriter>> opening = open_connection("srv", kPort);
    conn = co_await wait_for(std::move(opening), kConnectTimeout);
  } catch (const TimeoutError&) {
  } catch (const std::system_error&) {
  }
  if (!conn) co_return false;
  auto c = std::make_shared<Connection>();
  c->id = ++pool->next_id;
  c->writer = conn->second;
  pool->open.emplace(c->id, c);
  pool->current = c;
  LeakOutcome& out = *pool->out;
  const int open = static_cast<int>(pool->open.size());
  if (open > out.connections_open_max) {
    out.connections_open_max = open;
    out.connections_open_max_at =
        absl::StrCat("at t=", absl::FormatDuration(now()), ", after ", out.timeouts, " request timeouts");
  }
  create_task(read_replies(pool, c, conn->first));
  co_return true;
}

// One request; true if it was answered.
Coro<bool> call(std::shared_ptr<Pool> pool, Reconnect policy, int n) {
  if (!pool->current) {
    const bool connected = co_await connect(pool);
    if (!connected) co_return false;
  }
  std::shared_ptr<Connection> c = pool->current;
  Future<std::string> reply = get_running_loop().create_future<std::string>();
  c->reply = reply;
  c->writer.write(absl::StrCat("REQ ", n, "\n"));
  std::string got;
  bool timed_out = false;
  try {
    got = co_await wait_for(reply, kRequestTimeout);
  } catch (const TimeoutError&) {
    timed_out = true;
  }
  if (!timed_out) co_return got == absl::StrCat("REP ", n, "\n");
  ++pool->out->timeouts;
  c->reply.reset();
  if (policy == Reconnect::kAbortTheOld) {
    // The fix: the connection given up on is closed before the next one.
    c->writer.transport()->abort();
    pool->drop(c);
  }
  // The bug (kLeakTheOld): the next request connects anew, and this
  // connection stays open in the pool, its reader waiting.
  if (pool->current == c) pool->current.reset();
  co_return false;
}

Coro<void> client_main(Reconnect policy, std::shared_ptr<LeakOutcome> out) {
  auto pool = std::make_shared<Pool>(std::move(out));
  for (int n = 0;; ++n) {
    const bool answered = co_await call(pool, policy, n);
    if (answered) {
      ++pool->out->replies;
    } else {
      co_await sleep(kRetryPause);
    }
    co_await sleep(kInterval);
  }
}

}  // namespace

std::string LeakOutcome::describe() const {
  return absl::StrCat("the client held ", connections_open_max, " connections to srv open at once (",
                      connections_open_max_at, "); ", timeouts, " request timeouts, ", replies,
                      " replies; fault kinds enabled: ", enabled_kinds.empty() ? "none" : enabled_kinds);
}

sim::FaultProfile partitions_profile() {
  sim::FaultProfile p;
  p.duration = absl::Seconds(10);
  p.partitions_per_s = 0.5;
  p.partition_max = absl::Seconds(2);
  p.clock_offset_max = absl::Seconds(1);
  return p;
}

sim::FaultProfile every_fault_profile() {
  sim::FaultProfile p;
  p.duration = absl::Seconds(10);
  p.partitions_per_s = 0.5;
  p.partition_max = absl::Seconds(2);
  p.holds_per_s = 0.5;
  p.hold_max = absl::Seconds(2);
  p.resets_per_s = 0.5;
  p.slow_links_per_s = 0.5;
  p.slow_latency_max = absl::Milliseconds(500);
  p.slow_max = absl::Seconds(2);
  p.crashes_per_s = 0.3;
  p.restart_max = absl::Seconds(1);
  p.clock_jumps_per_s = 0.5;
  return p;
}

sim::FaultProfile swarm_profile() {
  sim::FaultProfile p = every_fault_profile();
  p.swarm = true;
  return p;
}

Coro<LeakOutcome> reconnect_scenario(Reconnect policy, sim::FaultProfile profile) {
  EventLoop& loop = get_running_loop();
  sim::Network& net = sim::Network::of(loop);
  net.add_host("srv", "10.0.0.1");
  net.add_host("app", "10.0.0.2");
  sim::World& world = sim::World::of(loop);
  auto out = std::make_shared<LeakOutcome>();
  world.start("srv", [] { return server_main(); });
  co_await sleep(absl::Milliseconds(10));
  world.start("app", [policy, out] { return client_main(policy, out); });
  world.inject(profile);
  co_await sleep(profile.duration);
  const int replies_before = out->replies;
  std::function<bool()> answered_again = [out, replies_before] { return out->replies >= replies_before + 5; };
  const std::string what = "the client gets replies again";
  co_await world.converge(std::move(answered_again), absl::Seconds(30), what);
  out->enabled_kinds = world.enabled_kinds();
  co_return *out;
}

}  // namespace twinloop::planted
