// The simulated network (sim/network.h), driven through the seam
// (api/net_backend.h) directly: hosts, names, connections, resets,
// half-close, back-pressure, segments, timing, task placement, determinism
// and reports.
#include "twinloop/sim/network.h"

#include <netdb.h>

#include <any>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/network_test_util.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::sim {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using net_test::Acceptor;
using net_test::ChannelPtr;
using net_test::connect_to;
using net_test::net;
using net_test::Stream;
using net_test::virtual_now;

std::string here() { return Network::of(get_running_loop()).current_host(); }

// connect() as a coroutine: the channel, or the connect error rethrown.

Coro<std::vector<SocketAddress>> resolve(std::string name, SocketAddress::Family family) {
  using Addresses = std::vector<SocketAddress>;
  Future<Addresses> f = get_running_loop().create_future<Addresses>();
  net().resolve(name, 80, family, [f](Addresses a, std::exception_ptr e) mutable {
    if (e) {
      f.set_exception(e);
    } else {
      f.set_result(std::move(a));
    }
  });
  Addresses a = co_await f;
  co_return a;
}

// A listener whose accept() waits for a connection.

// Reads inside on_readable, as a transport does, and records each read.
class CallbackReader final : public ChannelEvents {
 public:
  explicit CallbackReader(ChannelPtr ch) : ch_(std::move(ch)) {
    ch_->set_events(this);
    ch_->want_read(true);
  }
  ~CallbackReader() { ch_->set_events(nullptr); }
  void on_readable() override {
    char buf[4096];
    const std::ptrdiff_t r = ch_->read(buf, sizeof buf);
    if (r == 0) {
      ch_->want_read(false);
      eof.set();
    } else if (r > 0) {
      reads.push_back(std::string(buf, static_cast<size_t>(r)));
      times.push_back(virtual_now());
    }
  }
  void on_writable() override {}

  std::vector<std::string> reads;
  std::vector<absl::Duration> times;
  Event eof;

 private:
  ChannelPtr ch_;
};

// Every draw answers 0, the default: the lowest free ports, no cuts.
Options zero_draws() {
  Options o;
  o.chooser = [](std::string_view, uint64_t) -> uint64_t { return 0; };
  return o;
}

// Listens on `host` (a task there opens the listener).
Coro<std::shared_ptr<Acceptor>> listen_on(std::string host, SocketAddress at) {
  std::shared_ptr<Acceptor> a = co_await spawn_on(host, [](SocketAddress at) -> Coro<std::shared_ptr<Acceptor>> {
    co_return std::make_shared<Acceptor>(net().listen(at, ListenOptions{}));
  }(at));
  co_return a;
}

void add_two_hosts(Simulation& sim) {
  sim.network().add_host("a", "10.0.0.1");
  sim.network().add_host("b", "10.0.0.2", "fd00::2");
}

// ---------------------------------------------------------------------------
// Connections.

Coro<std::string> echo_once(std::shared_ptr<Acceptor> acceptor) {
  Stream s(co_await acceptor->accept());
  const std::string peer = s.channel().peer_address().to_string();
  std::string got = co_await s.read_some();
  co_await s.write_all("pong:" + got);
  s.channel().close(false);
  co_return peer;
}

TEST(Network, ConnectAcceptAndExchangeBetweenTwoHosts) {
  Simulation sim(zero_draws());
  add_two_hosts(sim);
  struct Seen {
    std::string client_local, client_peer, server_saw_peer, reply;
    absl::Duration connected;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    std::shared_ptr<Acceptor> acceptor = co_await listen_on("b", SocketAddress::inet("0.0.0.0", 80));
    Task<std::string> server = spawn_on("b", echo_once(acceptor));
    co_await sleep(absl::Milliseconds(1));
    Task<void> client = spawn_on("a", [](Seen& seen) -> Coro<void> {
      const absl::Duration t0 = virtual_now();
      Stream s(co_await connect_to(SocketAddress::inet("10.0.0.2", 80)));
      seen.connected = virtual_now() - t0;
      seen.client_local = s.channel().local_address().to_string();
      seen.client_peer = s.channel().peer_address().to_string();
      co_await s.write_all("ping");
      seen.reply = co_await s.read_to_eof();
    }(seen));
    seen.server_saw_peer = co_await server;
    co_await client;
  }(seen));
  EXPECT_EQ(seen.client_local, "10.0.0.1:32768");
  EXPECT_EQ(seen.client_peer, "10.0.0.2:80");
  EXPECT_EQ(seen.server_saw_peer, "10.0.0.1:32768");
  EXPECT_EQ(seen.reply, "pong:ping");
  // SYN there, SYN-ACK back: one round trip of the default 50 us links.
  EXPECT_EQ(seen.connected, absl::Microseconds(100));
}

TEST(Network, ConnectionRefusedAfterTheRoundTrip) {
  Simulation sim;
  add_two_hosts(sim);
  absl::Duration failed_after;
  std::string what;
  sim.run([](absl::Duration& failed_after, std::string& what) -> Coro<void> {
    co_await spawn_on("a", [](absl::Duration& failed_after, std::string& what) -> Coro<void> {
      try {
        co_await connect_to(SocketAddress::inet("10.0.0.2", 81));
        ADD_FAILURE() << "connected to nothing";
      } catch (const ConnectionRefusedError& e) {
        failed_after = virtual_now();
        what = e.what();
      }
    }(failed_after, what));
  }(failed_after, what));
  EXPECT_EQ(failed_after, absl::Microseconds(100));
  EXPECT_THAT(what, HasSubstr("connect to 10.0.0.2:81"));
}

TEST(Network, UnknownAddressAndMissingSourceAddressAreUnreachable) {
  Simulation sim;
  add_two_hosts(sim);
  std::vector<std::string> errors;
  sim.run([](std::vector<std::string>& errors) -> Coro<void> {
    for (const char* addr : {"10.9.9.9", "10.0.0.2"}) {
      // From the implicit host, which has no routable address.
      try {
        co_await connect_to(SocketAddress::inet(addr, 80));
      } catch (const std::system_error& e) {
        EXPECT_EQ(e.code().value(), ENETUNREACH);
        errors.push_back(e.what());
      }
    }
  }(errors));
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_THAT(errors[0], HasSubstr("no simulated host has address 10.9.9.9"));
  EXPECT_THAT(errors[1], HasSubstr("host 'localhost' has no IPv4 address"));
}

TEST(Network, AbortResetsThePeerAndDropsWhatWasInFlight) {
  Simulation sim;
  add_two_hosts(sim);
  struct Seen {
    bool read_reset = false, write_broken = false;
    std::string read_before_reset;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    std::shared_ptr<Acceptor> acceptor = co_await listen_on("b", SocketAddress::inet("0.0.0.0", 80));
    Task<void> server = spawn_on("b", [](std::shared_ptr<Acceptor> acceptor) -> Coro<void> {
      ChannelPtr ch = co_await acceptor->accept();
      // Written, then at once reset: the bytes never arrive.
      EXPECT_EQ(ch->write("hello", 5), 5u);
      ch->close(/*abort=*/true);
    }(acceptor));
    co_await spawn_on("a", [](Seen& seen) -> Coro<void> {
      Stream s(co_await connect_to(SocketAddress::inet("10.0.0.2", 80)));
      try {
        seen.read_before_reset = co_await s.read_some();
      } catch (const ConnectionResetError&) {
        seen.read_reset = true;
      }
      try {
        s.channel().write("x", 1);
      } catch (const BrokenPipeError&) {
        seen.write_broken = true;
      }
    }(seen));
    co_await server;
  }(seen));
  EXPECT_TRUE(seen.read_reset);
  EXPECT_EQ(seen.read_before_reset, "");
  EXPECT_TRUE(seen.write_broken);
}

TEST(Network, WritingToAClosedPeerSucceedsOnceThenTheResetComesBack) {
  Simulation sim;  // the implicit host, over loopback
  struct Seen {
    std::string eof_read = "unset";
    size_t first_write = 0;
    bool read_reset = false, write_broken = false;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    auto acceptor =
        std::make_shared<Acceptor>(net().listen(SocketAddress::inet("127.0.0.1", 9000), ListenOptions{}));
    Stream s(co_await connect_to(SocketAddress::inet("127.0.0.1", 9000)));
    ChannelPtr server = co_await acceptor->accept();
    server->close(false);  // FIN
    seen.eof_read = co_await s.read_some();
    seen.first_write = s.channel().write("x", 1);  // Linux takes it ...
    co_await sleep(absl::Milliseconds(1));         // ... and the RST comes back
    try {
      s.channel().write("y", 1);
    } catch (const BrokenPipeError&) {
      seen.write_broken = true;
    }
    try {
      co_await s.read_some();
    } catch (const ConnectionResetError&) {
      seen.read_reset = true;
    }
  }(seen));
  EXPECT_EQ(seen.eof_read, "");
  EXPECT_EQ(seen.first_write, 1u);
  EXPECT_TRUE(seen.write_broken);
  EXPECT_TRUE(seen.read_reset);
}

TEST(Network, ClosingWithUnreadDataResetsInsteadOfFinishing) {
  Simulation sim;
  bool reset = false;
  sim.run([](bool& reset) -> Coro<void> {
    auto acceptor =
        std::make_shared<Acceptor>(net().listen(SocketAddress::inet("127.0.0.1", 9000), ListenOptions{}));
    Stream s(co_await connect_to(SocketAddress::inet("127.0.0.1", 9000)));
    ChannelPtr server = co_await acceptor->accept();
    co_await s.write_all("never read");
    co_await sleep(absl::Milliseconds(1));
    server->close(false);  // unread data: RST (Linux tcp_close)
    try {
      co_await s.read_some();
    } catch (const ConnectionResetError&) {
      reset = true;
    }
  }(reset));
  EXPECT_TRUE(reset);
}

TEST(Network, HalfCloseDeliversEndOfStreamAfterTheData) {
  Simulation sim;
  add_two_hosts(sim);
  std::string request, response;
  sim.run([](std::string& request, std::string& response) -> Coro<void> {
    std::shared_ptr<Acceptor> acceptor = co_await listen_on("b", SocketAddress::inet6("::", 443));
    Task<std::string> server = spawn_on("b", [](std::shared_ptr<Acceptor> acceptor) -> Coro<std::string> {
      Stream s(co_await acceptor->accept());
      std::string got = co_await s.read_to_eof();  // the client's FIN ends it
      co_await s.write_all("response to " + got);   // the other direction still works
      s.channel().close(false);
      co_return got;
    }(acceptor));
    // From the implicit host, given an IPv6 address.
    Network::of(get_running_loop()).add_address("localhost", "fd00::9");
    Stream c(co_await connect_to(SocketAddress::inet6("fd00::2", 443)));
    co_await c.write_all("request");
    c.channel().shutdown_write();
    EXPECT_THROW(c.channel().write("more", 4), BrokenPipeError);
    response = co_await c.read_to_eof();
    request = co_await server;
  }(request, response));
  EXPECT_EQ(request, "request");
  EXPECT_EQ(response, "response to request");
}

// ---------------------------------------------------------------------------
// Back-pressure.

TEST(Network, WriterStopsAtTheBuffersAndResumesWhenThePeerReads) {
  Simulation sim;
  add_two_hosts(sim);
  sim.network().set_buffers(/*send_bytes=*/1000, /*receive_bytes=*/2000);
  struct Seen {
    size_t taken = 0, arrived_unread = 0, taken_after = 0;
    int writable_while_blocked = -1;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    std::shared_ptr<Acceptor> acceptor = co_await listen_on("b", SocketAddress::inet("0.0.0.0", 80));
    Task<ChannelPtr> accepted = spawn_on("b", [](std::shared_ptr<Acceptor> a) -> Coro<ChannelPtr> {
      co_return co_await a->accept();
    }(acceptor));
    co_await spawn_on("a", [](Seen& seen, Task<ChannelPtr> accepted) -> Coro<void> {
      Stream w(co_await connect_to(SocketAddress::inet("10.0.0.2", 80)));
      Stream r(co_await accepted);
      const std::string chunk(700, 'x');
      // Nobody reads: the writer is held to send + receive buffer.
      for (int i = 0; i < 20; ++i) {
        seen.taken += w.channel().write(chunk.data(), chunk.size());
        co_await sleep(absl::Milliseconds(1));
      }
      EXPECT_EQ(w.channel().write(chunk.data(), chunk.size()), 0u);
      w.channel().want_write(true);
      co_await sleep(absl::Seconds(1));
      seen.writable_while_blocked = w.writable_calls;
      // At most the receive buffer crossed the network.
      seen.arrived_unread = (co_await r.read_some()).size();
      co_await w.wait_writable();
      seen.taken_after = w.channel().write(chunk.data(), chunk.size());
    }(seen, accepted));
  }(seen));
  EXPECT_EQ(seen.taken, 3000u);
  EXPECT_EQ(seen.writable_while_blocked, 0);
  EXPECT_EQ(seen.arrived_unread, 2000u);
  EXPECT_EQ(seen.taken_after, 700u);
}

TEST(Network, SmallReadsDoNotReopenTheWindowUntilHalfOfItIsFree) {
  Simulation sim;
  add_two_hosts(sim);
  sim.network().set_buffers(/*send_bytes=*/1000, /*receive_bytes=*/2000);
  std::vector<size_t> reads;
  sim.run([](std::vector<size_t>& reads) -> Coro<void> {
    std::shared_ptr<Acceptor> acceptor = co_await listen_on("b", SocketAddress::inet("0.0.0.0", 80));
    Task<ChannelPtr> accepted = spawn_on("b", [](std::shared_ptr<Acceptor> a) -> Coro<ChannelPtr> {
      co_return co_await a->accept();
    }(acceptor));
    ChannelPtr w = co_await spawn_on("a", []() -> Coro<ChannelPtr> {
      co_return co_await connect_to(SocketAddress::inet("10.0.0.2", 80));
    }());
    Stream r(co_await accepted);
    const std::string data(3000, 'd');
    EXPECT_EQ(w->write(data.data(), data.size()), 3000u);  // 2000 go, 1000 wait
    co_await sleep(absl::Milliseconds(1));
    reads.push_back((co_await r.read_some(500)).size());
    co_await sleep(absl::Milliseconds(1));
    // 500 free is less than half the window: nothing more was sent.
    reads.push_back((co_await r.read_some()).size());
    co_await sleep(absl::Milliseconds(1));
    // All read: the window reopened and the rest came.
    reads.push_back((co_await r.read_some()).size());
  }(reads));
  EXPECT_THAT(reads, ElementsAre(500, 1500, 1000));
}

TEST(Network, WritableNotificationsAreLevelTriggeredAndStopAtClose) {
  Simulation sim;
  struct Seen {
    int calls_after_3_iterations = 0, calls_after_close = 0;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    auto acceptor =
        std::make_shared<Acceptor>(net().listen(SocketAddress::inet("127.0.0.1", 9000), ListenOptions{}));
    ChannelPtr ch = co_await connect_to(SocketAddress::inet("127.0.0.1", 9000));
    struct Counter final : ChannelEvents {
      int writable = 0;
      void on_readable() override {}
      void on_writable() override { ++writable; }
    } counter;
    ch->set_events(&counter);
    ch->want_write(true);  // writable and wanted: once per iteration
    for (int i = 0; i < 3; ++i) co_await sleep(absl::ZeroDuration());
    seen.calls_after_3_iterations = counter.writable;
    ch->close(false);
    const int before = counter.writable;
    for (int i = 0; i < 3; ++i) co_await sleep(absl::ZeroDuration());
    seen.calls_after_close = counter.writable - before;
    ChannelPtr server = co_await acceptor->accept();
  }(seen));
  EXPECT_EQ(seen.calls_after_3_iterations, 3);
  EXPECT_EQ(seen.calls_after_close, 0);
}

// ---------------------------------------------------------------------------
// Segments and timing.

struct Reads {
  std::vector<std::string> reads;
  std::vector<absl::Duration> times;
};

// One 10-byte write from host a to b; what the reader sees.
Coro<void> one_write(Reads& out, std::string data) {
  std::shared_ptr<Acceptor> acceptor = co_await listen_on("b", SocketAddress::inet("0.0.0.0", 80));
  Task<void> server = spawn_on("b", [](std::shared_ptr<Acceptor> a, Reads& out) -> Coro<void> {
    CallbackReader reader(co_await a->accept());
    co_await reader.eof.wait();
    out.reads = reader.reads;
    out.times = reader.times;
  }(acceptor, out));
  co_await spawn_on("a", [](std::string data) -> Coro<void> {
    Stream s(co_await connect_to(SocketAddress::inet("10.0.0.2", 80)));
    co_await sleep(absl::Milliseconds(2) - virtual_now());  // write at t = 2 ms
    co_await s.write_all(data);
    s.channel().close(false);
  }(data));
  co_await server;
}

TEST(Network, AWriteCutIntoSegmentsIsSeveralReads) {
  Options options;
  options.chooser = [](std::string_view site, uint64_t n) -> uint64_t {
    return site == "net.segments" ? n - 1 : 0;  // the most segments, each cut as early as can be
  };
  Simulation sim(options);
  add_two_hosts(sim);
  Reads out;
  sim.run(one_write(out, "0123456789"));
  EXPECT_THAT(out.reads, ElementsAre("0", "1", "2", "3456789"));
}

TEST(Network, DefaultDrawsDeliverOneSegment) {
  Simulation sim(zero_draws());
  add_two_hosts(sim);
  Reads out;
  sim.run(one_write(out, "0123456789"));
  EXPECT_THAT(out.reads, ElementsAre("0123456789"));
  EXPECT_THAT(out.times, ElementsAre(absl::Microseconds(2050)));
}

TEST(Network, SomeSeedSplitsAWrite) {
  bool split = false;
  for (uint64_t seed = 0; seed < 20 && !split; ++seed) {
    Simulation sim({.seed = seed});
  add_two_hosts(sim);
    Reads out;
    sim.run(one_write(out, "0123456789"));
    std::string joined;
    for (const std::string& r : out.reads) joined += r;
    EXPECT_EQ(joined, "0123456789") << "seed " << seed;
    split = out.reads.size() > 1;
  }
  EXPECT_TRUE(split);
}

TEST(Network, LatencyAndBandwidthGiveTheDeliveryTime) {
  Simulation sim({.net_max_segments = 1});
  add_two_hosts(sim);
  // 1 ms latency, 1 MB/s: a 1000-byte segment also takes 1 ms to send.
  sim.network().set_link("a", "b", {absl::Milliseconds(1), absl::Milliseconds(1), 1'000'000});
  Reads out;
  sim.run(one_write(out, std::string(1000, 'z')));
  ASSERT_EQ(out.times.size(), 1u);
  EXPECT_EQ(out.times[0], absl::Milliseconds(4));  // written at 2 ms
}

TEST(Network, BandwidthQueuesSegmentsBehindEachOther) {
  Simulation sim({.net_max_segments = 1});
  add_two_hosts(sim);
  sim.network().set_link("a", "b", {absl::Milliseconds(1), absl::Milliseconds(1), 1'000'000});
  Reads out;
  sim.run([](Reads& out) -> Coro<void> {
    std::shared_ptr<Acceptor> acceptor = co_await listen_on("b", SocketAddress::inet("0.0.0.0", 80));
    Task<void> server = spawn_on("b", [](std::shared_ptr<Acceptor> a, Reads& out) -> Coro<void> {
      CallbackReader reader(co_await a->accept());
      co_await reader.eof.wait();
      out.times = reader.times;
    }(acceptor, out));
    co_await spawn_on("a", []() -> Coro<void> {
      Stream s(co_await connect_to(SocketAddress::inet("10.0.0.2", 80)));
      const absl::Duration t0 = virtual_now();
      EXPECT_EQ(t0, absl::Microseconds(1050));  // SYN 1 ms there, SYN-ACK 50 us back
      const std::string kb(1000, 'q');
      s.channel().write(kb.data(), kb.size());
      s.channel().write(kb.data(), kb.size());
      s.channel().close(false);
      co_return;
    }());
    co_await server;
  }(out));
  // Sent at 1.05 ms: the first occupies the link until 2.05 ms, the second
  // until 3.05 ms; each then travels 1 ms.
  EXPECT_THAT(out.times, ElementsAre(absl::Microseconds(3050), absl::Microseconds(4050)));
}

TEST(Network, DrawnLatenciesNeverReorderAConnection) {
  Options options;
  options.net_max_segments = 1;
  options.net_latency_min = absl::Microseconds(100);
  options.net_latency_max = absl::Microseconds(900);
  // Latencies 800, 0, 0, ... us above the minimum: the second write would
  // overtake the first.
  auto draws = std::make_shared<int>(0);
  options.chooser = [draws](std::string_view site, uint64_t n) -> uint64_t {
    if (site != "net.latency_us") return 0;
    EXPECT_EQ(n, 801u);
    return (*draws)++ == 3 ? 800 : 0;  // draws 0, 1, 2: SYN, SYN-ACK, ACK
  };
  Simulation sim(options);
  add_two_hosts(sim);
  Reads out;
  sim.run([](Reads& out) -> Coro<void> {
    std::shared_ptr<Acceptor> acceptor = co_await listen_on("b", SocketAddress::inet("0.0.0.0", 80));
    Task<void> server = spawn_on("b", [](std::shared_ptr<Acceptor> a, Reads& out) -> Coro<void> {
      CallbackReader reader(co_await a->accept());
      co_await reader.eof.wait();
      out.reads = reader.reads;
      out.times = reader.times;
    }(acceptor, out));
    co_await spawn_on("a", []() -> Coro<void> {
      Stream s(co_await connect_to(SocketAddress::inet("10.0.0.2", 80)));
      EXPECT_EQ(virtual_now(), absl::Microseconds(200));
      s.channel().write("first", 5);
      s.channel().write("second", 6);
      s.channel().close(false);
      co_return;
    }());
    co_await server;
  }(out));
  EXPECT_THAT(out.reads, ElementsAre("first", "second"));
  // Both at 200 + 900 us: the second waits for the first.
  EXPECT_THAT(out.times, ElementsAre(absl::Microseconds(1100), absl::Microseconds(1100)));
}

TEST(Network, ALinkCanBeSlowedMidRun) {
  Simulation sim({.net_max_segments = 1});
  add_two_hosts(sim);
  Reads out;
  sim.run([](Reads& out) -> Coro<void> {
    std::shared_ptr<Acceptor> acceptor = co_await listen_on("b", SocketAddress::inet("0.0.0.0", 80));
    Task<void> server = spawn_on("b", [](std::shared_ptr<Acceptor> a, Reads& out) -> Coro<void> {
      CallbackReader reader(co_await a->accept());
      co_await reader.eof.wait();
      out.times = reader.times;
    }(acceptor, out));
    co_await spawn_on("a", []() -> Coro<void> {
      Stream s(co_await connect_to(SocketAddress::inet("10.0.0.2", 80)));
      s.channel().write("fast", 4);  // at 100 us, arrives at 150 us
      co_await sleep(absl::Milliseconds(1));
      Network::of(get_running_loop()).set_link("a", "b", {absl::Milliseconds(5), absl::Milliseconds(5), 0});
      s.channel().write("slow", 4);  // at 1.1 ms, arrives at 6.1 ms
      s.channel().close(false);
    }());
    co_await server;
  }(out));
  EXPECT_THAT(out.times, ElementsAre(absl::Microseconds(150), absl::Microseconds(6100)));
}

// ---------------------------------------------------------------------------
// Hosts, names, tasks.

TEST(Network, NamesResolveToTheirHostsAddresses) {
  Simulation sim;
  add_two_hosts(sim);
  sim.network().add_name("db.internal", "10.0.0.2");
  sim.network().add_name("DB.internal", "10.0.0.7");
  struct Seen {
    std::vector<std::string> b, b6, db, localhost, numeric;
    std::string unknown;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    const auto names = [](const std::vector<SocketAddress>& v) {
      std::vector<std::string> out;
      for (const SocketAddress& a : v) out.push_back(a.to_string());
      return out;
    };
    seen.b = names(co_await resolve("B", SocketAddress::Family::kUnspecified));
    seen.b6 = names(co_await resolve("b", SocketAddress::Family::kInet6));
    seen.db = names(co_await resolve("db.internal", SocketAddress::Family::kUnspecified));
    seen.localhost = names(co_await resolve("localhost", SocketAddress::Family::kUnspecified));
    seen.numeric = names(co_await resolve("::0:1", SocketAddress::Family::kUnspecified));
    try {
      co_await resolve("nope.example", SocketAddress::Family::kUnspecified);
    } catch (const std::system_error& e) {
      seen.unknown = e.what();
    }
  }(seen));
  EXPECT_THAT(seen.b, ElementsAre("10.0.0.2:80", "[fd00::2]:80"));
  EXPECT_THAT(seen.b6, ElementsAre("[fd00::2]:80"));
  EXPECT_THAT(seen.db, ElementsAre("10.0.0.2:80", "10.0.0.7:80"));
  EXPECT_THAT(seen.localhost, ElementsAre("127.0.0.1:80", "[::1]:80"));
  EXPECT_THAT(seen.numeric, ElementsAre("[::1]:80"));
  EXPECT_THAT(seen.unknown, HasSubstr("cannot resolve 'nope.example'"));
  EXPECT_THAT(seen.unknown, HasSubstr(gai_strerror(EAI_NONAME)));
}

TEST(Network, BadHostsAndNamesAreLoudErrors) {
  Simulation sim;
  add_two_hosts(sim);
  Network& n = sim.network();
  EXPECT_THROW(n.add_host("a", "10.0.0.9"), std::invalid_argument);           // taken name
  EXPECT_THROW(n.add_host("A"), std::invalid_argument);                       // case-insensitive
  EXPECT_THROW(n.add_host("c", "10.0.0.1"), std::invalid_argument);           // taken address
  EXPECT_THROW(n.add_host("c", "10.0.0.300"), std::invalid_argument);         // not an address
  EXPECT_THROW(n.add_host("c", "127.0.0.2"), std::invalid_argument);          // loopback
  EXPECT_THROW(n.add_host("c", "10.0.0.5", "10.0.0.5"), std::invalid_argument);
  EXPECT_THROW(n.add_host("localhost", "10.0.0.5"), std::invalid_argument);   // the implicit host
  EXPECT_THROW(n.add_host(""), std::invalid_argument);
  EXPECT_THROW(n.add_name("a", "10.0.0.5"), std::invalid_argument);           // a host's name
  EXPECT_THROW(n.add_name("x", "not-an-address"), std::invalid_argument);
  EXPECT_THROW(n.set_link("a", "nope", LinkConfig{}), std::invalid_argument);
  EXPECT_THROW(n.set_link("a", "b", {absl::Microseconds(9), absl::Microseconds(8), 0}), std::invalid_argument);
  EXPECT_THROW(Simulation({.net_max_segments = 0}), std::invalid_argument);
  EXPECT_FALSE(n.has_host("c"));  // nothing was half-added
  EXPECT_THAT(n.hosts(), ElementsAre("localhost", "a", "b"));
  EXPECT_THAT(n.addresses("b"), ElementsAre("10.0.0.2", "fd00::2"));
  try {
    n.addresses("nope");
    ADD_FAILURE() << "no exception";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("unknown simulated host 'nope' (hosts: localhost, a, b)"));
  }
}

TEST(Network, LoopbackOnTheImplicitHostNeedsNoSetup) {
  Simulation sim(zero_draws());
  struct Seen {
    std::string v4, v6, unix_reply, host;
    uint16_t port = 0;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    seen.host = here();
    auto l4 = std::make_shared<Acceptor>(net().listen(SocketAddress::inet("127.0.0.1", 0), ListenOptions{}));
    seen.port = l4->port();
    auto l6 = std::make_shared<Acceptor>(net().listen(SocketAddress::inet6("::1", 8080), ListenOptions{}));
    auto lu = std::make_shared<Acceptor>(net().listen(SocketAddress::unix_path("/tmp/app.sock"), ListenOptions{}));
    Task<std::string> e4 = create_task(echo_once(l4));
    Task<std::string> e6 = create_task(echo_once(l6));
    Task<std::string> eu = create_task(echo_once(lu));
    const std::vector<SocketAddress> targets = {SocketAddress::inet("127.0.0.1", l4->port()),
                                                 SocketAddress::inet6("::1", 8080),
                                                 SocketAddress::unix_path("/tmp/app.sock")};
    for (const SocketAddress& to : targets) {
      Stream s(co_await connect_to(to));
      co_await s.write_all("hi");
      std::string reply = co_await s.read_to_eof();
      EXPECT_EQ(reply, "pong:hi");
    }
    seen.v4 = co_await e4;
    seen.v6 = co_await e6;
    seen.unix_reply = co_await eu;
  }(seen));
  EXPECT_EQ(seen.host, "localhost");
  EXPECT_EQ(seen.port, 32768);
  EXPECT_EQ(seen.v4, "127.0.0.1:32769");  // the listener holds 32768
  EXPECT_EQ(seen.v6, "[::1]:32768");      // IPv6 ports are their own
  EXPECT_EQ(seen.unix_reply, "<unnamed>");
}

TEST(Network, UnixPathsAndPortsAreErrorsWhenMissingOrTaken) {
  Simulation sim;
  std::vector<int> errors;
  sim.run([](std::vector<int>& errors) -> Coro<void> {
    try {
      co_await connect_to(SocketAddress::unix_path("/nowhere"));
    } catch (const std::system_error& e) {
      errors.push_back(e.code().value());
    }
    std::unique_ptr<StreamListener> l = net().listen(SocketAddress::inet("0.0.0.0", 80), ListenOptions{});
    try {
      net().listen(SocketAddress::inet("127.0.0.1", 80), ListenOptions{});
    } catch (const std::system_error& e) {
      errors.push_back(e.code().value());
    }
    try {
      net().listen(SocketAddress::inet("10.1.1.1", 80), ListenOptions{});
    } catch (const std::system_error& e) {
      errors.push_back(e.code().value());
    }
    l->close();
    // Closed: the port is free again.
    std::unique_ptr<StreamListener> again = net().listen(SocketAddress::inet("127.0.0.1", 80), ListenOptions{});
  }(errors));
  EXPECT_THAT(errors, ElementsAre(ENOENT, EADDRINUSE, EADDRNOTAVAIL));
}

TEST(Network, EachHostHasItsOwnLoopbackAndUnixNamespace) {
  Simulation sim;
  add_two_hosts(sim);
  std::vector<std::string> outcomes;
  sim.run([](std::vector<std::string>& outcomes) -> Coro<void> {
    std::shared_ptr<Acceptor> on_a = co_await listen_on("a", SocketAddress::inet("127.0.0.1", 80));
    std::shared_ptr<Acceptor> unix_on_a = co_await listen_on("a", SocketAddress::unix_path("/run/s"));
    const std::vector<SocketAddress> targets = {SocketAddress::inet("127.0.0.1", 80),
                                                 SocketAddress::unix_path("/run/s")};
    for (const char* host : {"b", "a"}) {
      for (const SocketAddress& to : targets) {
        outcomes.push_back(co_await spawn_on(host, [](SocketAddress to) -> Coro<std::string> {
          try {
            ChannelPtr ch = co_await connect_to(to);
            co_return absl::StrCat(here(), ": connected");
          } catch (const std::system_error& e) {
            co_return absl::StrCat(here(), ": ", e.code().value() == ECONNREFUSED ? "refused"
                                                 : e.code().value() == ENOENT     ? "no such path"
                                                                                  : e.what());
          }
        }(to)));
      }
    }
  }(outcomes));
  EXPECT_THAT(outcomes, ElementsAre("b: refused", "b: no such path", "a: connected", "a: connected"));
}

TEST(Network, TasksInheritTheirCreatorsHost) {
  Simulation sim;
  add_two_hosts(sim);
  std::vector<std::string> hosts;
  sim.run([](std::vector<std::string>& hosts) -> Coro<void> {
    hosts.push_back(here());
    co_await spawn_on("a", [](std::vector<std::string>& hosts) -> Coro<void> {
      hosts.push_back(here());
      co_await create_task([](std::vector<std::string>& hosts) -> Coro<void> {
        hosts.push_back(here());
        TaskOptions options{.name = "on-b"};
        co_await spawn_on("B", [](std::vector<std::string>& hosts) -> Coro<void> {
          hosts.push_back(here());
          co_return;
        }(hosts), std::move(options));
        hosts.push_back(here());
      }(hosts));
    }(hosts));
    hosts.push_back(here());
    try {
      spawn_on("nope", sleep(absl::ZeroDuration()).as_coro());
      ADD_FAILURE() << "no exception";
    } catch (const std::invalid_argument& e) {
      hosts.push_back(e.what());
    }
  }(hosts));
  EXPECT_THAT(hosts, ElementsAre("localhost", "a", "a", "b", "a", "localhost",
                                 "unknown simulated host 'nope' (hosts: localhost, a, b)"));
}

// The host is a context variable: a callback scheduled by a task on a host
// runs on that host (asyncio's Handle copies its scheduler's context), and
// so do the tasks it creates; spawn_on with a TaskOptions::context keeps
// that context's values and changes only the host, in a copy.
TEST(Network, CallbacksRunOnTheHostOfWhoScheduledThem) {
  Simulation sim;
  add_two_hosts(sim);
  static ContextVar<std::string> tag("tag", "none");
  std::vector<std::string> seen;
  sim.run([](std::vector<std::string>& seen) -> Coro<void> {
    co_await spawn_on("a", [](std::vector<std::string>& seen) -> Coro<void> {
      Event done;
      get_running_loop().call_later(absl::Milliseconds(1), [&seen, &done] {
        seen.push_back("callback on " + here());
        create_task([](std::vector<std::string>* seen, Event* done) -> Coro<void> {
          seen->push_back("its task on " + here());
          done->set();
          co_return;
        }(&seen, &done));
      });
      co_await done.wait();
    }(seen));
    Context tagged;
    tagged.run([] { tag.set("given"); });
    TaskOptions options;  // named: see docs/design.md, "Compilers"
    options.context = tagged;
    co_await spawn_on("b", [](std::vector<std::string>& seen) -> Coro<void> {
      seen.push_back("tag " + tag.get() + " on " + here());
      co_return;
    }(seen), std::move(options));
    seen.push_back("given context still on " + tagged.run([] { return here(); }));
  }(seen));
  EXPECT_THAT(seen, ElementsAre("callback on a", "its task on a", "tag given on b", "given context still on localhost"));
}

// A server's client handlers (tasks created from the accept notification,
// through the protocol's connection_made) run on the server's host: a handler
// on "b" that connects onwards leaves from b's address.
Coro<void> forward_peer(StreamReader reader, StreamWriter writer) {
  std::string line = co_await reader.readline();
  auto [r, w] = co_await open_connection("10.0.0.1", 7);
  const auto from = std::any_cast<SocketAddress>(w.get_extra_info("sockname"));
  writer.write(line.substr(0, line.size() - 1) + " via " + here() + " from " + from.host + "\n");
  w.close();
  writer.close();
}

Coro<void> silent(StreamReader reader, StreamWriter writer) {
  co_await reader.read(-1);
  writer.close();
}

TEST(Network, AServersHandlersRunOnItsHost) {
  Simulation sim;
  add_two_hosts(sim);
  std::string got;
  sim.run([](std::string& got) -> Coro<void> {
    Server sink = co_await spawn_on("a", start_server(silent, "10.0.0.1", 7));
    Server server = co_await spawn_on("b", start_server(forward_peer, "10.0.0.2", 80));
    got = co_await spawn_on("a", []() -> Coro<std::string> {
      auto [r, w] = co_await open_connection("10.0.0.2", 80);
      w.write("hi\n");
      std::string line = co_await r.readline();
      w.close();
      co_return line;
    }());
    server.close();
    sink.close();
  }(got));
  EXPECT_EQ(got, "hi via b from 10.0.0.2\n");
}

TEST(Network, NetworkCallbacksRunOnTheChannelsHost) {
  Simulation sim;
  add_two_hosts(sim);
  std::vector<std::string> hosts;
  sim.run([](std::vector<std::string>& hosts) -> Coro<void> {
    std::shared_ptr<Acceptor> acceptor = co_await listen_on("b", SocketAddress::inet("0.0.0.0", 80));
    Task<ChannelPtr> accepted = spawn_on("b", [](std::shared_ptr<Acceptor> a) -> Coro<ChannelPtr> {
      co_return co_await a->accept();
    }(acceptor));
    struct Recorder final : ChannelEvents {
      std::vector<std::string>* hosts;
      ChannelPtr ch;
      Event done;
      void on_readable() override {
        hosts->push_back(here());
        char c;
        ch->read(&c, 1);
        // A task created by a callback belongs to the callback's host.
        create_task([](std::vector<std::string>* hosts, Event* done) -> Coro<void> {
          hosts->push_back(here());
          done->set();
          co_return;
        }(hosts, &done));
        ch->want_read(false);
      }
      void on_writable() override {}
    };
    ChannelPtr client = co_await spawn_on("a", []() -> Coro<ChannelPtr> {
      co_return co_await connect_to(SocketAddress::inet("10.0.0.2", 80));
    }());
    Recorder r;
    r.hosts = &hosts;
    r.ch = co_await accepted;
    r.ch->set_events(&r);
    r.ch->want_read(true);
    client->write("!", 1);
    co_await r.done.wait();
    r.ch->set_events(nullptr);
  }(hosts));
  EXPECT_THAT(hosts, ElementsAre("b", "b"));
}

TEST(Network, EphemeralPortsAreDrawnAmongTheFreeOnes) {
  Options options;
  options.chooser = [](std::string_view site, uint64_t n) -> uint64_t {
    if (site == "net.ephemeral_port") {
      EXPECT_EQ(n, 60999u - 32768u + 1u);
      return 5;
    }
    return 0;
  };
  Simulation sim(options);
  std::string local;
  sim.run([](std::string& local) -> Coro<void> {
    auto acceptor =
        std::make_shared<Acceptor>(net().listen(SocketAddress::inet("127.0.0.1", 9000), ListenOptions{}));
    ChannelPtr ch = co_await connect_to(SocketAddress::inet("127.0.0.1", 9000));
    local = ch->local_address().to_string();
    ChannelPtr server = co_await acceptor->accept();
  }(local));
  EXPECT_EQ(local, "127.0.0.1:32773");
}

TEST(Network, AFullBacklogDropsSynsUntilTheConnectorTimesOut) {
  Simulation sim;
  struct Seen {
    absl::Duration first, second_failed;
    int second_error = 0;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    ListenOptions lo;
    lo.backlog = 0;  // holds one connection (Linux: backlog + 1)
    std::unique_ptr<StreamListener> l = net().listen(SocketAddress::inet("127.0.0.1", 9000), lo);
    ChannelPtr first = co_await connect_to(SocketAddress::inet("127.0.0.1", 9000));
    seen.first = virtual_now();
    try {
      co_await connect_to(SocketAddress::inet("127.0.0.1", 9000));
    } catch (const std::system_error& e) {
      seen.second_error = e.code().value();
      seen.second_failed = virtual_now();
    }
  }(seen));
  EXPECT_EQ(seen.first, absl::Microseconds(100));
  EXPECT_EQ(seen.second_error, ETIMEDOUT);
  // SYN at 100 us, dropped at 150 us, retried 1+2+4+8+16+32 s later (each
  // retry takes 50 us to arrive), the 7th drop fails it.
  EXPECT_EQ(seen.second_failed, absl::Microseconds(150) + absl::Seconds(63) + absl::Microseconds(6 * 50));
}

TEST(Network, ARetriedSynGetsInOnceTheBacklogHasRoom) {
  Simulation sim;
  absl::Duration second;
  sim.run([](absl::Duration& second) -> Coro<void> {
    ListenOptions lo;
    lo.backlog = 0;
    auto acceptor = std::make_shared<Acceptor>(net().listen(SocketAddress::inet("127.0.0.1", 9000), lo));
    ChannelPtr first = co_await connect_to(SocketAddress::inet("127.0.0.1", 9000));
    Task<ChannelPtr> pending = create_task(connect_to(SocketAddress::inet("127.0.0.1", 9000)));
    co_await sleep(absl::Milliseconds(500));
    ChannelPtr a1 = co_await acceptor->accept();  // room again
    ChannelPtr c2 = co_await pending;
    second = virtual_now();
    ChannelPtr a2 = co_await acceptor->accept();
  }(second));
  // Dropped at 150 us, retried 1 s later, accepted, SYN-ACK back.
  EXPECT_EQ(second, absl::Microseconds(150) + absl::Seconds(1) + absl::Microseconds(100));
}

TEST(Network, ClosingAListenerResetsWhatItHadNotAccepted) {
  Simulation sim;
  bool reset = false;
  sim.run([](bool& reset) -> Coro<void> {
    std::unique_ptr<StreamListener> l = net().listen(SocketAddress::inet("127.0.0.1", 9000), ListenOptions{});
    Stream s(co_await connect_to(SocketAddress::inet("127.0.0.1", 9000)));
    l->close();
    try {
      co_await s.read_some();
    } catch (const ConnectionResetError&) {
      reset = true;
    }
  }(reset));
  EXPECT_TRUE(reset);
}

// ---------------------------------------------------------------------------
// Determinism, recordings, reports.

// Two clients of one echo server, on three hosts, with drawn latencies and
// segments.
Coro<std::string> chatter() {
  std::shared_ptr<Acceptor> acceptor = co_await listen_on("b", SocketAddress::inet("0.0.0.0", 7));
  Task<void> server = spawn_on("b", [](std::shared_ptr<Acceptor> a) -> Coro<void> {
    for (int i = 0; i < 2; ++i) {
      create_task([](ChannelPtr ch) -> Coro<void> {
        Stream s(std::move(ch));
        while (true) {
          std::string got = co_await s.read_some();
          if (got.empty()) break;
          co_await s.write_all(got);
        }
        s.channel().close(false);
      }(co_await a->accept()));
    }
  }(acceptor));
  std::vector<Task<std::string>> clients;
  for (const char* host : {"a", "c"}) {
    clients.push_back(spawn_on(host, []() -> Coro<std::string> {
      Stream s(co_await connect_to(SocketAddress::inet("10.0.0.2", 7)));
      for (int i = 0; i < 5; ++i) co_await s.write_all(absl::StrCat(here(), i, ";"));
      s.channel().shutdown_write();
      co_return co_await s.read_to_eof();
    }()));
  }
  std::string all;
  for (Task<std::string>& c : clients) all += co_await c;
  co_await server;
  co_return all;
}

Options chatty(uint64_t seed) {
  Options o;
  o.seed = seed;
  o.net_latency_min = absl::Microseconds(10);
  o.net_latency_max = absl::Microseconds(300);
  return o;
}

struct Outcome {
  std::string result;
  uint64_t hash;
  Recording recording;
};

Outcome run_chatter(Options options) {
  Simulation sim(options);
  add_two_hosts(sim);
  sim.network().add_host("c", "10.0.0.3");
  std::string r = sim.run(chatter());
  return Outcome{r, sim.event_hash(), sim.recording()};
}

TEST(Network, SameSeedSameHash) {
  std::set<uint64_t> hashes;
  for (uint64_t seed = 1; seed <= 4; ++seed) {
    const Outcome one = run_chatter(chatty(seed));
    const Outcome two = run_chatter(chatty(seed));
    EXPECT_EQ(one.hash, two.hash) << "seed " << seed;
    EXPECT_EQ(one.result, "a0;a1;a2;a3;a4;c0;c1;c2;c3;c4;");
    hashes.insert(one.hash);
  }
  EXPECT_GT(hashes.size(), 1u);  // the draws matter
}

TEST(Network, AReplayedRecordingReproducesTheRunExactly) {
  Options o = chatty(11);
  o.record = true;
  const Outcome recorded = run_chatter(o);
  bool sends = false, deliveries = false, latencies = false;
  for (const EventRecord& e : recorded.recording.events) {
    sends |= e.kind == internal::EventKind::kNetSend;
    deliveries |= e.kind == internal::EventKind::kNetDeliver;
  }
  for (const Decision& d : recorded.recording.decisions) latencies |= d.site == "net.latency_us";
  EXPECT_TRUE(sends);
  EXPECT_TRUE(deliveries);
  EXPECT_TRUE(latencies);

  Options replay = options_for_replay(recorded.recording);
  EXPECT_EQ(replay.net_latency_max, absl::Microseconds(300));
  replay.seed = 999;  // the decisions come from the recording, not the seed
  replay.replay = std::make_shared<Recording>(recorded.recording);
  Simulation sim(replay);
  add_two_hosts(sim);
  sim.network().add_host("c", "10.0.0.3");
  EXPECT_EQ(sim.run(chatter()), recorded.result);
  EXPECT_EQ(sim.event_hash(), recorded.hash);
  EXPECT_FALSE(sim.divergence().has_value());
}

TEST(Network, ArrivalsAtTheSameTimeAreOrderedByTheLoopsTieDraw) {
  // Two connections whose segments arrive at the same virtual time: the
  // loop's timer tie rule orders them ("loop.timer_tie").
  Options o;
  o.record = true;
  Simulation sim(o);
  sim.run([]() -> Coro<void> {
    auto acceptor =
        std::make_shared<Acceptor>(net().listen(SocketAddress::inet("127.0.0.1", 9000), ListenOptions{}));
    ChannelPtr c1 = co_await connect_to(SocketAddress::inet("127.0.0.1", 9000));
    ChannelPtr c2 = co_await connect_to(SocketAddress::inet("127.0.0.1", 9000));
    ChannelPtr s1 = co_await acceptor->accept();
    ChannelPtr s2 = co_await acceptor->accept();
    c1->write("1", 1);
    c2->write("2", 1);
    co_await sleep(absl::Milliseconds(1));
  }());
  bool tie = false;
  for (const Decision& d : sim.recording().decisions) tie |= d.site == "loop.timer_tie";
  EXPECT_TRUE(tie);
}

TEST(Network, DescribeShowsHostsListenersAndConnections) {
  Simulation sim(zero_draws());
  add_two_hosts(sim);
  std::string report;
  sim.run([](std::string& report) -> Coro<void> {
    std::shared_ptr<Acceptor> acceptor = co_await listen_on("b", SocketAddress::inet("0.0.0.0", 80));
    ChannelPtr c = co_await spawn_on("a", []() -> Coro<ChannelPtr> {
      co_return co_await connect_to(SocketAddress::inet("10.0.0.2", 80));
    }());
    c->write("12345", 5);
    c->shutdown_write();
    co_await sleep(absl::Milliseconds(1));
    report = Network::of(get_running_loop()).describe();
  }(report));
  EXPECT_THAT(report, HasSubstr("simulated network at t=1.1ms: 3 hosts, 1 listener, 1 connection"));
  EXPECT_THAT(report, HasSubstr("host a: 127.0.0.1 ::1 10.0.0.1"));
  EXPECT_THAT(report, HasSubstr("host b: 127.0.0.1 ::1 10.0.0.2 fd00::2"));
  EXPECT_THAT(report, HasSubstr("listener #1 on b 0.0.0.0:80: 1 connection waiting to be accepted, 0 in handshake (backlog 100)"));
  EXPECT_THAT(report, HasSubstr("connection #1 (tcp): a 10.0.0.1:32768 open, no owner events <-> b 10.0.0.2:80 waiting to be accepted"));
  EXPECT_THAT(report, HasSubstr("connector -> acceptor: 5 unread at the receiver, 0 in flight (0 segments), 0 unsent; "
                                "FIN delivered"));
  EXPECT_THAT(report, HasSubstr("acceptor -> connector: 0 unread at the receiver"));
  EXPECT_EQ(sim.network_report(), "");  // after the run: everything released
}

TEST(Network, ADeadlockReportIncludesTheNetwork) {
  Simulation sim(zero_draws());
  add_two_hosts(sim);
  std::string message;
  try {
    sim.run([]() -> Coro<void> {
      std::unique_ptr<StreamListener> l = net().listen(SocketAddress::inet("127.0.0.1", 80), ListenOptions{});
      Stream s(co_await connect_to(SocketAddress::inet("127.0.0.1", 80)));
      co_await s.read_some();  // nobody ever writes
    }());
  } catch (const DeadlockError& e) {
    message = e.what();
  }
  EXPECT_THAT(message, HasSubstr("deadlock"));
  EXPECT_THAT(message, HasSubstr("simulated network at t=150us: 3 hosts, 1 listener, 1 connection"));
  EXPECT_THAT(message, HasSubstr("connection #1 (tcp): localhost 127.0.0.1:32768 open, wants read"));
}

TEST(Network, ChannelsOutlivingTheLoopAreDetached) {
  ChannelPtr kept;
  {
    Simulation sim;
    sim.run([](ChannelPtr& kept) -> Coro<void> {
      std::unique_ptr<StreamListener> l = net().listen(SocketAddress::inet("127.0.0.1", 80), ListenOptions{});
      kept = co_await connect_to(SocketAddress::inet("127.0.0.1", 80));
    }(kept));
  }
  char c;
  EXPECT_THROW(kept->read(&c, 1), std::system_error);
  kept->close(false);  // harmless
  EXPECT_EQ(kept->peer_address().to_string(), "127.0.0.1:80");
}

}  // namespace
}  // namespace twinloop::sim
