// Planted order-sensitive bugs: each needs one party to be fast at every one
// of several steps while another is slow at one, the shape of bug that
// systematic strategies (PCT, PCTCP; sim/strategy.h) are built for and
// independent uniform draws rarely produce. They FAIL on purpose: tagged
// "manual" (not part of `bazel test //...`), run by
// planted_order_driver_test, and measured in docs/exploration.md
// ("Strategies", seeds to the first failure under each strategy).
//
// Each bug has a fixed twin (the same test, the bug repaired) that passes
// every seed under every strategy (planted_order_driver_test checks it), so
// a strategy that finds the bug finds the bug, not a broken test.
#include <deque>
#include <map>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/harness/testing.h"
#include "twinloop/sim/network.h"

namespace twinloop::planted {
namespace {

// ------------------------------------------------- 1. a lost wakeup at start-up

// A job queue fed by two producers and drained by one worker. Each producer
// fetches, decodes and validates its job (executor round trips) before
// queueing it and setting `ready`.
struct JobQueue {
  std::deque<int> jobs;
  Event ready{"jobs.ready"};
  int done = 0;
};

constexpr int kJobs = 2;

Coro<void> produce(JobQueue* q, int job, int steps) {
  for (int i = 0; i < steps; ++i) co_await to_thread([] {});  // fetch, decode, validate
  q->jobs.push_back(job);
  q->ready.set();
}

// The worker's main loop is right: it clears `ready` before it looks at the
// queue, so a set() after the look is never lost.
Coro<void> drain(JobQueue* q) {
  while (q->done < kJobs) {
    q->ready.clear();
    while (!q->jobs.empty()) {
      q->jobs.pop_front();
      ++q->done;
    }
    if (q->done < kJobs) co_await q->ready.wait();
  }
}

// BUG (fixed = false): at start-up the worker looks at the queue, registers
// with the autoscaler (an executor round trip) and only then clears `ready`
// and waits: a job queued and signalled during the registration has its
// set() erased. If every job arrived in that window, nothing sets `ready`
// again and the worker waits forever. It needs both producers' three round
// trips to finish within the worker's one.
Coro<void> worker(JobQueue* q, bool fixed) {
  if (q->jobs.empty()) {
    if (fixed) q->ready.clear();  // clear before the await: a set() during it stays
    co_await to_thread([] {});    // register with the autoscaler
    if (!fixed) q->ready.clear();
    if (q->jobs.empty() || !fixed) co_await q->ready.wait();
  }
  co_await drain(q);
}

Coro<void> jobs_at_startup(bool fixed) {
  JobQueue q;
  Task<void> w = create_task(worker(&q, fixed));
  Task<void> p1 = create_task(produce(&q, 1, 3));
  Task<void> p2 = create_task(produce(&q, 2, 3));
  co_await p1;
  co_await p2;
  co_await w;
  EXPECT_EQ(q.done, kJobs);
}

TWINLOOP_SIM_TEST(PlantedOrder, LostWakeupAtStartup) { co_await jobs_at_startup(false); }
TWINLOOP_SIM_TEST(PlantedOrder, LostWakeupAtStartupFixed) { co_await jobs_at_startup(true); }

// ------------------------------------------------- 2. a stale read after a redirect

// A primary, a read replica and a directory, each on its own host, and a
// client on a fourth. Links of 50 us to 2.05 ms; one segment per write (the
// bug is about order, not framing).
const sim::Options kLinks{.net_latency_min = absl::Microseconds(50),
                          .net_latency_max = absl::Microseconds(2050),
                          .net_max_segments = 1};
constexpr uint16_t kPrimaryPort = 5432;
constexpr uint16_t kReplicaPort = 5433;
constexpr uint16_t kDirectoryPort = 53;

struct Store {
  std::map<std::string, std::string> data;
};

// Lines of "SET k v", "GET k", "REPL k v", "WHERE k"; one answer line each.
std::vector<std::string> words(const std::string& line) {
  absl::string_view l = line;
  if (!l.empty() && l.back() == '\n') l.remove_suffix(1);
  return absl::StrSplit(l, ' ', absl::SkipEmpty());
}

// The replica applies what the primary sends and answers reads.
Coro<void> serve_replica(Store* store, StreamReader reader, StreamWriter writer) {
  try {
    while (true) {
      const std::string line = co_await reader.readline();
      if (line.empty()) break;
      const std::vector<std::string> w = words(line);
      if (w.size() == 3 && w[0] == "REPL") {
        store->data[w[1]] = w[2];
        writer.write("OK\n");  // the primary's fixed twin waits for this
      } else if (w.size() == 2 && w[0] == "GET") {
        auto it = store->data.find(w[1]);
        writer.write(absl::StrCat("VALUE ", it == store->data.end() ? "-" : it->second, "\n"));
      }
      co_await writer.drain();
    }
  } catch (const ConnectionError&) {
  }
  writer.close();
}

// The primary forwards each write to the replica over one connection.
struct Primary {
  Store store;
  StreamReader to_replica_reader;
  StreamWriter to_replica;
  bool fixed = false;
};

// BUG (fixed = false): the primary acknowledges a write as soon as it has
// sent it on to the replica, not when the replica has it. A client that
// reads its own write from the replica (read-your-writes) reads the old
// value when its ack, its directory lookup and its read all travel faster
// than the one replication message.
Coro<void> serve_primary(Primary* p, StreamReader reader, StreamWriter writer) {
  try {
    while (true) {
      const std::string line = co_await reader.readline();
      if (line.empty()) break;
      const std::vector<std::string> w = words(line);
      if (w.size() == 3 && w[0] == "SET") {
        p->store.data[w[1]] = w[2];
        p->to_replica.write(absl::StrCat("REPL ", w[1], " ", w[2], "\n"));
        co_await p->to_replica.drain();
        if (p->fixed) co_await p->to_replica_reader.readline();  // the replica's OK
        writer.write("OK\n");
        co_await writer.drain();
      }
    }
  } catch (const ConnectionError&) {
  }
  writer.close();
}

// The directory tells a client which replica serves reads of a key.
Coro<void> serve_directory(StreamReader reader, StreamWriter writer) {
  try {
    while (true) {
      const std::string line = co_await reader.readline();
      if (line.empty()) break;
      writer.write("AT replica\n");
      co_await writer.drain();
    }
  } catch (const ConnectionError&) {
  }
  writer.close();
}

struct Conn {
  StreamReader reader;
  StreamWriter writer;
  Coro<std::string> ask(std::string line) {
    writer.write(std::move(line));
    co_await writer.drain();
    co_return co_await reader.readline();
  }
};

Coro<Conn> connect(std::string host, uint16_t port) {
  std::pair<StreamReader, StreamWriter> c = co_await open_connection(std::move(host), port);
  co_return Conn{c.first, c.second};
}

Coro<void> close(Conn c) {
  c.writer.close();
  try {
    co_await c.writer.wait_closed();
  } catch (const ConnectionError&) {
  }
}

// The client's connections are open before the write (a pool), so the race
// is the write's ack + the lookup + the read against the replication.
Coro<std::string> update_then_read() {
  Conn primary = co_await connect("primary", kPrimaryPort);
  Conn directory = co_await connect("directory", kDirectoryPort);
  Conn replica = co_await connect("replica", kReplicaPort);
  const std::string ack = co_await primary.ask("SET profile v2\n");
  EXPECT_EQ(ack, "OK\n");
  const std::string where = co_await directory.ask("WHERE profile\n");
  EXPECT_EQ(where, "AT replica\n");
  const std::string value = co_await replica.ask("GET profile\n");
  co_await close(primary);
  co_await close(directory);
  co_await close(replica);
  co_return value;
}

Coro<Server> start(ClientConnected handler, uint16_t port) {
  Server s = co_await start_server(std::move(handler), "0.0.0.0", port);
  co_return s;
}

Coro<void> replicated_store(bool fixed) {
  sim::Network& net = sim::Network::of(get_running_loop());
  net.add_host("primary", "10.0.0.1");
  net.add_host("replica", "10.0.0.2");
  net.add_host("directory", "10.0.0.3");
  net.add_host("client", "10.0.1.1");
  Store replica_store;
  replica_store.data["profile"] = "v1";
  Primary primary;
  primary.store.data["profile"] = "v1";
  primary.fixed = fixed;
  // Handlers named first: a std::function temporary inside a co_await is one
  // of g++ 12's coroutine traps (docs/design.md, "Compilers").
  ClientConnected replica_handler = [&replica_store](StreamReader r, StreamWriter w) {
    return serve_replica(&replica_store, r, w);
  };
  ClientConnected directory_handler = &serve_directory;
  ClientConnected primary_handler = [&primary](StreamReader r, StreamWriter w) { return serve_primary(&primary, r, w); };
  Server replica = co_await sim::spawn_on("replica", start(std::move(replica_handler), kReplicaPort));
  Server directory = co_await sim::spawn_on("directory", start(std::move(directory_handler), kDirectoryPort));
  Conn link = co_await sim::spawn_on("primary", connect("replica", kReplicaPort));
  primary.to_replica_reader = link.reader;
  primary.to_replica = link.writer;
  Server primary_server = co_await sim::spawn_on("primary", start(std::move(primary_handler), kPrimaryPort));
  const std::string value = co_await sim::spawn_on("client", update_then_read());
  EXPECT_EQ(value, "VALUE v2\n") << "the client read its own write from the replica and got the old value";
  co_await close(link);
  for (Server* s : {&primary_server, &directory, &replica}) {
    s->close();
    co_await s->wait_closed();
  }
}

TWINLOOP_SIM_TEST_WITH_OPTIONS(PlantedOrder, StaleReadAfterARedirect, kLinks) { co_await replicated_store(false); }
TWINLOOP_SIM_TEST_WITH_OPTIONS(PlantedOrder, StaleReadAfterARedirectFixed, kLinks) { co_await replicated_store(true); }

// ------------------------------------- 3. an admin switch overtaken on another connection

// A session server with an admin port and a data port, like a database with
// a separate control channel. "DRAIN" on the admin port makes it refuse new
// sessions (before a deploy); the data port speaks "HELLO" -> "HI" and
// "SESSION" -> "OPEN" or "REFUSED".
constexpr uint16_t kDataPort = 7000;
constexpr uint16_t kAdminPort = 7001;

struct SessionServer {
  bool draining = false;
  int opened_while_draining = 0;
};

Coro<void> serve_admin(SessionServer* s, StreamReader reader, StreamWriter writer) {
  try {
    while (true) {
      const std::string line = co_await reader.readline();
      if (line.empty()) break;
      if (line == "DRAIN\n") s->draining = true;
      writer.write("OK\n");
      co_await writer.drain();
    }
  } catch (const ConnectionError&) {
  }
  writer.close();
}

Coro<void> serve_data(SessionServer* s, StreamReader reader, StreamWriter writer) {
  try {
    while (true) {
      const std::string line = co_await reader.readline();
      if (line.empty()) break;
      if (line == "HELLO\n") writer.write("HI\n");
      if (line == "SESSION\n") writer.write(s->draining ? "REFUSED\n" : "OPEN\n");
      co_await writer.drain();
    }
  } catch (const ConnectionError&) {
  }
  writer.close();
}

// BUG (fixed = false): the deploy tool sends DRAIN on the admin connection
// and, without waiting for its OK, goes on over the data connection,
// assuming the server sees its messages in the order it sent them. Two
// connections keep no order between them: when the data connection's
// HELLO, HI and SESSION all travel faster than the one DRAIN message, the
// server opens a session it should have refused. Both connections are the
// tool's (one task writes on both), so only their chains, not their tasks,
// tell them apart.
Coro<std::string> drain_then_check(bool fixed) {
  Conn admin = co_await connect("sessions", kAdminPort);
  Conn data = co_await connect("sessions", kDataPort);
  admin.writer.write("DRAIN\n");
  co_await admin.writer.drain();
  if (fixed) {
    const std::string ok = co_await admin.reader.readline();
    EXPECT_EQ(ok, "OK\n");
  }
  const std::string hi = co_await data.ask("HELLO\n");
  EXPECT_EQ(hi, "HI\n");
  const std::string session = co_await data.ask("SESSION\n");
  co_await close(data);
  co_await close(admin);
  co_return session;
}

Coro<void> deploy_drain(bool fixed) {
  sim::Network& net = sim::Network::of(get_running_loop());
  net.add_host("sessions", "10.0.2.1");
  net.add_host("deploy", "10.0.2.2");
  SessionServer state;
  ClientConnected admin_handler = [&state](StreamReader r, StreamWriter w) { return serve_admin(&state, r, w); };
  ClientConnected data_handler = [&state](StreamReader r, StreamWriter w) { return serve_data(&state, r, w); };
  Server admin = co_await sim::spawn_on("sessions", start(std::move(admin_handler), kAdminPort));
  Server data = co_await sim::spawn_on("sessions", start(std::move(data_handler), kDataPort));
  const std::string session = co_await sim::spawn_on("deploy", drain_then_check(fixed));
  EXPECT_EQ(session, "REFUSED\n") << "the server opened a session after DRAIN was sent on the admin connection";
  for (Server* s : {&data, &admin}) {
    s->close();
    co_await s->wait_closed();
  }
}

TWINLOOP_SIM_TEST_WITH_OPTIONS(PlantedOrder, AdminSwitchOvertakenOnAnotherConnection, kLinks) {
  co_await deploy_drain(false);
}
TWINLOOP_SIM_TEST_WITH_OPTIONS(PlantedOrder, AdminSwitchOvertakenOnAnotherConnectionFixed, kLinks) {
  co_await deploy_drain(true);
}

}  // namespace
}  // namespace twinloop::planted
