// The simulated network's faults (sim/network.h, "Faults"), driven through
// the seam (api/net_backend.h) directly: partitions that hold or lose, one
// way or both, heal; hold and release; reset_connections; host_down and
// host_up; links changed mid-run; the retransmission timeout; misuse; the
// fault log, the kFault events, determinism and reports. The same faults
// through the streams API: tests/simnet/faults_test.cc.
#include <cerrno>
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
#include "twinloop/sim/network.h"
#include "twinloop/sim/network_test_util.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::sim {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;
using net_test::Acceptor;
using net_test::ChannelPtr;
using net_test::connect_to;
using net_test::net;
using net_test::Stream;
using net_test::virtual_now;

// ---------------------------------------------------------------------------
// Helpers (the shared ones: sim/network_test_util.h).

Network& network() { return Network::of(get_running_loop()); }



// Reads inside on_readable, as a transport does, recording each read, its
// virtual time, and the error that ended it.
class CallbackReader final : public ChannelEvents {
 public:
  explicit CallbackReader(ChannelPtr ch) : ch_(std::move(ch)) {
    ch_->set_events(this);
    ch_->want_read(true);
  }
  ~CallbackReader() { ch_->set_events(nullptr); }
  void on_readable() override {
    char buf[4096];
    try {
      const std::ptrdiff_t r = ch_->read(buf, sizeof buf);
      if (r == 0) {
        ch_->want_read(false);
        done.set();
      } else if (r > 0) {
        reads.push_back(std::string(buf, static_cast<size_t>(r)));
        times.push_back(virtual_now());
      }
    } catch (const std::system_error& e) {
      error = e.code().value();
      error_at = virtual_now();
      ch_->want_read(false);
      done.set();
    }
  }
  void on_writable() override {}
  StreamChannel& channel() { return *ch_; }

  std::vector<std::string> reads;
  std::vector<absl::Duration> times;
  int error = 0;
  absl::Duration error_at;
  Event done;

 private:
  ChannelPtr ch_;
};

Options zero_draws() {
  Options o;
  o.chooser = [](std::string_view, uint64_t) -> uint64_t { return 0; };
  return o;
}

Coro<std::shared_ptr<Acceptor>> listen_on(std::string host, SocketAddress at) {
  std::shared_ptr<Acceptor> a = co_await spawn_on(host, [](SocketAddress at) -> Coro<std::shared_ptr<Acceptor>> {
    co_return std::make_shared<Acceptor>(net().listen(at, ListenOptions{}));
  }(at));
  co_return a;
}

Coro<ChannelPtr> connect_from(std::string host, SocketAddress to) {
  ChannelPtr c = co_await spawn_on(host, connect_to(to));
  co_return c;
}

void add_hosts(Simulation& sim) {
  sim.network().add_host("a", "10.0.0.1");
  sim.network().add_host("b", "10.0.0.2");
  sim.network().add_host("c", "10.0.0.3");
}

const SocketAddress kB80 = SocketAddress::inet("10.0.0.2", 80);

// A connection from a to b:80 (connected at 100 us with the default 50 us
// links and a listener made at 0), its two ends.
struct Pair {
  ChannelPtr client;  // on a
  ChannelPtr server;  // on b
  std::shared_ptr<Acceptor> acceptor;
};
Coro<Pair> connect_pair() {
  Pair p;
  p.acceptor = co_await listen_on("b", kB80);
  p.client = co_await connect_from("a", kB80);
  p.server = co_await p.acceptor->accept();
  co_return p;
}

std::vector<std::string> fault_log(const Network& n) {
  std::vector<std::string> out;
  for (const Network::AppliedFault& f : n.faults()) out.push_back(absl::StrCat(absl::FormatDuration(f.at), " ", f.what));
  return out;
}

// ---------------------------------------------------------------------------
// hold / release, kHold partitions.

TEST(NetworkFaults, HeldSegmentsInFlightArriveAfterTheReleaseInOrder) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  struct Seen {
    std::vector<std::string> reads;
    std::vector<absl::Duration> times;
    std::string hold, release;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    Pair p = co_await connect_pair();
    EXPECT_EQ(virtual_now(), absl::Microseconds(150));  // the ACK arrived
    CallbackReader reader(p.server);
    p.client->write("one", 3);  // in flight until 200 us
    co_await sleep(absl::Microseconds(20));
    seen.hold = network().hold("a", "b");  // "one" is still in flight
    p.client->write("two", 3);
    co_await sleep(absl::Milliseconds(1));
    EXPECT_TRUE(reader.reads.empty());
    seen.release = network().release("a", "b");
    p.client->write("three", 5);  // sent after the release: behind the others
    p.client->close(false);
    co_await reader.done.wait();
    seen.reads = reader.reads;
    seen.times = reader.times;
  }(seen));
  EXPECT_EQ(seen.hold, "hold a -> b");
  EXPECT_EQ(seen.release, "release a -> b");
  EXPECT_THAT(seen.reads, ElementsAre("one", "two", "three"));
  // Released at 1.17 ms: each held segment crosses the link again (50 us).
  const absl::Duration released = absl::Microseconds(1170);
  EXPECT_THAT(seen.times, ElementsAre(released + absl::Microseconds(50), released + absl::Microseconds(50),
                                      released + absl::Microseconds(50)));
}

TEST(NetworkFaults, AReleasedSegmentsLatencyIsDrawnAgainAndNeverReordersItsConnection) {
  Options options;
  options.net_max_segments = 1;
  options.net_latency_min = absl::Microseconds(100);
  options.net_latency_max = absl::Microseconds(900);
  auto release_draws = std::make_shared<std::vector<uint64_t>>();
  options.chooser = [release_draws](std::string_view site, uint64_t n) -> uint64_t {
    if (site != "net.release_latency_us") return 0;
    EXPECT_EQ(n, 801u);
    release_draws->push_back(n);
    return release_draws->size() == 1 ? 700 : 0;  // the first released: 700 us more
  };
  Simulation sim(options);
  add_hosts(sim);
  std::vector<absl::Duration> times;
  sim.run([](std::vector<absl::Duration>& times) -> Coro<void> {
    Pair p = co_await connect_pair();  // connected at 200 us, ACK at 300 us
    CallbackReader reader(p.server);
    network().hold("a", "b");
    p.client->write("x", 1);
    p.client->write("y", 1);
    co_await sleep(absl::Milliseconds(10));
    network().release("a", "b");
    p.client->close(false);
    co_await reader.done.wait();
    times = reader.times;
  }(times));
  EXPECT_EQ(release_draws->size(), 2u);  // one per held segment
  // Released at 10.3 ms: x at + 800 us; y drew 100 us but waits for x.
  EXPECT_THAT(times, ElementsAre(absl::Microseconds(10300 + 800), absl::Microseconds(10300 + 800)));
}

TEST(NetworkFaults, AOneWayPartitionHoldsOneDirectionOnly) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  struct Seen {
    std::vector<absl::Duration> at_client, at_server;
    std::string what;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    Pair p = co_await connect_pair();
    CallbackReader at_client(p.client);
    CallbackReader at_server(p.server);
    seen.what = network().partition({"a"}, {"b"}, {.mode = PartitionMode::kHold, .one_way = true});
    p.client->write("up", 2);
    p.server->write("down", 4);
    co_await sleep(absl::Milliseconds(2));
    network().heal({"b"}, {"a"});  // heal's sides may be given either way
    co_await sleep(absl::Milliseconds(1));
    seen.at_client = at_client.times;
    seen.at_server = at_server.times;
  }(seen));
  EXPECT_EQ(seen.what, "partition {a} -> {b} (hold)");
  EXPECT_THAT(seen.at_client, ElementsAre(absl::Microseconds(200)));  // b -> a flows
  EXPECT_THAT(seen.at_server, ElementsAre(absl::Microseconds(2150 + 50)));
}

TEST(NetworkFaults, APartitionBetweenSetsBlocksEveryPairBothWaysAndHealEndsIt) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  sim.network().add_host("d", "10.0.0.4");
  std::vector<std::string> log;
  std::string report;
  sim.run([](std::vector<std::string>& log, std::string& report) -> Coro<void> {
    network().partition({"a", "c"}, {"b", "d"});
    report = network().describe();
    network().heal({"a"}, {"b"});
    network().heal({"a"}, {"b"});  // nothing left to heal there
    network().heal({"c", "a"}, {"d", "b"});
    log = fault_log(network());
    co_return;
  }(log, report));
  EXPECT_THAT(report, HasSubstr("fault in effect: partition {a, c} <-> {b, d} (hold), blocking a -> b, a -> d, "
                                "b -> a, b -> c, c -> b, c -> d, d -> a, d -> c"));
  EXPECT_THAT(log, ElementsAre("0 partition {a, c} <-> {b, d} (hold)", "0 heal {a} <-> {b}: 2 blocked links unblocked",
                               "0 heal {a} <-> {b}: nothing to heal",
                               "0 heal {c, a} <-> {d, b}: 6 blocked links unblocked, ended: partition {a, c} <-> "
                               "{b, d} (hold)"));
}

TEST(NetworkFaults, AHandshakeAcrossAPartitionRetriesItsSynThenTimesOut) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  struct Seen {
    int error = 0;
    absl::Duration failed;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    std::shared_ptr<Acceptor> acceptor = co_await listen_on("b", kB80);
    network().partition({"a"}, {"b"});
    try {
      co_await connect_from("a", kB80);
    } catch (const std::system_error& e) {
      seen.error = e.code().value();
      seen.failed = virtual_now();
    }
  }(seen));
  EXPECT_EQ(seen.error, ETIMEDOUT);
  // Seven SYNs, each lost at 50 us, sent again after 1, 2 ... 32 s.
  EXPECT_EQ(seen.failed, absl::Seconds(63) + absl::Microseconds(7 * 50));
}

TEST(NetworkFaults, AConnectGetsThroughAtTheFirstSynAfterTheHeal) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  absl::Duration connected;
  sim.run([](absl::Duration& connected) -> Coro<void> {
    std::shared_ptr<Acceptor> acceptor = co_await listen_on("b", kB80);
    // Only the way back: the SYN arrives, its SYN-ACK is lost (and with it
    // the half-open connection, which would otherwise fill the backlog).
    network().partition({"b"}, {"a"}, {.one_way = true});
    Task<ChannelPtr> client = spawn_on("a", connect_to(kB80));
    co_await sleep(absl::Seconds(5));
    network().heal_all();
    ChannelPtr c = co_await client;
    connected = virtual_now();
    ChannelPtr s = co_await acceptor->accept();
  }(connected));
  // SYNs sent at 0, 1 s, 3 s (each SYN-ACK lost 100 us after), then 7 s.
  EXPECT_EQ(connected, absl::Seconds(7) + absl::Microseconds(3 * 100 + 100));
}

// ---------------------------------------------------------------------------
// kLose partitions.

TEST(NetworkFaults, ALosingPartitionCutsAConnectionAndBothEndsTimeOutHealedOrNot) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  struct Seen {
    int client_error = 0, server_error = 0, write_error = 0;
    absl::Duration client_at, server_at;
    std::string report;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    network().set_retransmission_timeout(absl::Seconds(10));
    Pair p = co_await connect_pair();
    CallbackReader client(p.client);
    CallbackReader server(p.server);
    p.client->write("lost", 4);  // in flight, arrives at 200 us: cut then
    network().partition({"a"}, {"b"}, {.mode = PartitionMode::kLose});
    co_await sleep(absl::Milliseconds(1));
    seen.report = network().describe();
    network().heal_all();  // too late: the connection is cut
    EXPECT_EQ(p.server->write("after", 5), 5u);  // into the buffers; never sent
    co_await client.done.wait();
    co_await server.done.wait();
    EXPECT_TRUE(server.reads.empty());
    EXPECT_TRUE(client.reads.empty());  // "after" never left
    seen.client_error = client.error;
    seen.client_at = client.error_at;
    seen.server_error = server.error;
    seen.server_at = server.error_at;
    try {
      p.client->write("x", 1);
    } catch (const std::system_error& e) {
      seen.write_error = e.code().value();
    }
  }(seen));
  EXPECT_THAT(seen.report, HasSubstr("connection #1 (tcp, cut by a partition)"));
  EXPECT_THAT(seen.report, HasSubstr("unanswered: ETIMEDOUT at t=10.0002s"));
  EXPECT_EQ(seen.client_error, ETIMEDOUT);
  EXPECT_EQ(seen.server_error, ETIMEDOUT);
  EXPECT_EQ(seen.client_at, absl::Seconds(10) + absl::Microseconds(200));
  EXPECT_EQ(seen.server_at, absl::Seconds(10) + absl::Microseconds(200));
  EXPECT_EQ(seen.write_error, ETIMEDOUT);
}

TEST(NetworkFaults, ALosingPartitionSparesAConnectionThatSendsNothingAcrossIt) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  std::vector<std::string> reads;
  sim.run([](std::vector<std::string>& reads) -> Coro<void> {
    Pair p = co_await connect_pair();
    CallbackReader server(p.server);
    network().partition({"a"}, {"b"}, {.mode = PartitionMode::kLose});
    co_await sleep(absl::Seconds(1));
    network().heal({"a"}, {"b"});
    p.client->write("fine", 4);
    p.client->close(false);
    co_await server.done.wait();
    EXPECT_EQ(server.error, 0);
    reads = server.reads;
  }(reads));
  EXPECT_THAT(reads, ElementsAre("fine"));
}

TEST(NetworkFaults, ALosingPartitionCutsConnectionsWaitingAtAHold) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  int error = 0;
  sim.run([](int& error) -> Coro<void> {
    network().set_retransmission_timeout(absl::Seconds(1));
    Pair p = co_await connect_pair();
    CallbackReader server(p.server);
    network().hold("a", "b");
    p.client->write("held", 4);
    co_await sleep(absl::Milliseconds(1));
    network().partition({"b"}, {"a"}, {.mode = PartitionMode::kLose});
    network().heal_all();
    co_await server.done.wait();
    EXPECT_TRUE(server.reads.empty());
    error = server.error;
  }(error));
  EXPECT_EQ(error, ETIMEDOUT);
}

// ---------------------------------------------------------------------------
// reset_connections.

TEST(NetworkFaults, ResetConnectionsResetsBothEndsAtOnce) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  struct Seen {
    int client_read = 0, server_read = 0, client_write = 0;
    absl::Duration at;
    std::string what;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    Pair p = co_await connect_pair();
    ChannelPtr second = co_await connect_from("a", kB80);
    ChannelPtr second_at_b = co_await p.acceptor->accept();
    p.client->write("in flight", 9);
    seen.what = network().reset_connections("b", "a");
    seen.at = virtual_now();
    Stream client(p.client);
    Stream server(p.server);
    try {
      co_await server.read_some();
    } catch (const ConnectionResetError& e) {
      seen.server_read = e.code().value();
    }
    try {
      co_await client.read_some();
    } catch (const ConnectionResetError& e) {
      seen.client_read = e.code().value();
    }
    try {
      client.write("x");
    } catch (const BrokenPipeError& e) {
      seen.client_write = e.code().value();
    }
    EXPECT_EQ(virtual_now(), seen.at);  // at once, no round trip
  }(seen));
  EXPECT_EQ(seen.what, "reset_connections b <-> a: 2 connections reset");
  EXPECT_EQ(seen.server_read, ECONNRESET);
  EXPECT_EQ(seen.client_read, ECONNRESET);
  EXPECT_EQ(seen.client_write, EPIPE);
}

TEST(NetworkFaults, ResetConnectionsFailsAConnectUnderWayAndEmptiesTheBacklog) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  struct Seen {
    int connect_error = 0;
    bool backlog_empty = false;
    std::string what;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    std::shared_ptr<Acceptor> acceptor = co_await listen_on("b", kB80);
    ChannelPtr waiting = co_await connect_from("a", kB80);  // in b's backlog
    co_await sleep(absl::Milliseconds(1));
    Task<ChannelPtr> connecting = spawn_on("c", connect_to(kB80));
    co_await sleep(absl::Microseconds(10));  // its SYN is in flight
    seen.what = network().reset_connections("b");
    try {
      co_await connecting;
    } catch (const ConnectionResetError& e) {
      seen.connect_error = e.code().value();
    }
    seen.backlog_empty = acceptor->listener().accept() == nullptr;
  }(seen));
  EXPECT_EQ(seen.what, "reset_connections b: 2 connections reset");
  EXPECT_EQ(seen.connect_error, ECONNRESET);
  EXPECT_TRUE(seen.backlog_empty);
}

TEST(NetworkFaults, ResetConnectionsLeavesOtherHostsConnectionsAlone) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  std::string what;
  std::vector<std::string> reads;
  sim.run([](std::string& what, std::vector<std::string>& reads) -> Coro<void> {
    Pair p = co_await connect_pair();  // a -> b
    ChannelPtr from_c = co_await connect_from("c", kB80);
    ChannelPtr at_b = co_await p.acceptor->accept();
    what = network().reset_connections("a", "c");  // none between a and c
    CallbackReader reader(at_b);
    from_c->write("ok", 2);
    from_c->close(false);
    co_await reader.done.wait();
    reads = reader.reads;
    EXPECT_EQ(p.client->write("ok", 2), 2u);
  }(what, reads));
  EXPECT_EQ(what, "reset_connections a <-> c: 0 connections reset");
  EXPECT_THAT(reads, ElementsAre("ok"));
}

// ---------------------------------------------------------------------------
// host_down / host_up.

TEST(NetworkFaults, ADownHostsListenersAndChannelsVanishAndItCannotConnectOrListen) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  struct Seen {
    int read_error = 0, connect_error = 0, listen_error = 0, accept_error = 0, refused = 0;
    std::string what, report;
    bool down = false;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    Pair p = co_await connect_pair();
    seen.what = network().host_down("b");
    seen.down = network().is_down("b");
    seen.report = network().describe();
    try {
      char c;
      p.server->read(&c, 1);
    } catch (const std::system_error& e) {
      seen.read_error = e.code().value();
    }
    try {
      p.acceptor->listener().accept();
    } catch (const std::system_error& e) {
      seen.accept_error = e.code().value();
    }
    try {
      co_await connect_from("b", SocketAddress::inet("10.0.0.1", 80));
    } catch (const std::system_error& e) {
      seen.connect_error = e.code().value();
    }
    try {
      co_await listen_on("b", kB80);
    } catch (const std::system_error& e) {
      seen.listen_error = e.code().value();
    }
    network().host_up("b");
    try {
      co_await connect_from("c", kB80);  // its listener is gone
    } catch (const ConnectionRefusedError& e) {
      seen.refused = e.code().value();
    }
    std::shared_ptr<Acceptor> again = co_await listen_on("b", kB80);  // the port is free
  }(seen));
  EXPECT_EQ(seen.what, "host_down b: 1 connection end and 1 listener vanished");
  EXPECT_TRUE(seen.down);
  EXPECT_THAT(seen.report, HasSubstr("host b (DOWN)"));
  EXPECT_THAT(seen.report, HasSubstr("b 10.0.0.2:80 closed, vanished (host down)"));
  EXPECT_EQ(seen.read_error, EBADF);
  EXPECT_EQ(seen.accept_error, EBADF);
  EXPECT_EQ(seen.connect_error, ENETDOWN);
  EXPECT_EQ(seen.listen_error, ENETDOWN);
  EXPECT_EQ(seen.refused, ECONNREFUSED);
}

TEST(NetworkFaults, APeerSendingToADownHostTimesOut) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  struct Seen {
    int error = 0;
    absl::Duration at;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    network().set_retransmission_timeout(absl::Seconds(30));
    Pair p = co_await connect_pair();
    CallbackReader client(p.client);
    network().host_down("b");
    co_await sleep(absl::Seconds(1));
    p.client->write("anyone?", 7);  // lost at 1.00005 s
    co_await client.done.wait();
    seen.error = client.error;
    seen.at = client.error_at;
  }(seen));
  EXPECT_EQ(seen.error, ETIMEDOUT);
  EXPECT_EQ(seen.at, absl::Microseconds(150) + absl::Seconds(31) + absl::Microseconds(50));
}

TEST(NetworkFaults, HostUpAnswersAPeerStillRetransmittingWithAReset) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  struct Seen {
    int error = 0;
    absl::Duration at;
    std::string up;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    Pair p = co_await connect_pair();
    CallbackReader client(p.client);
    network().host_down("b");
    p.client->write("anyone?", 7);
    co_await sleep(absl::Seconds(2));
    seen.up = network().host_up("b");
    co_await client.done.wait();
    seen.error = client.error;
    seen.at = client.error_at;
  }(seen));
  EXPECT_EQ(seen.up, "host_up b: 1 peer answered with an RST");
  EXPECT_EQ(seen.error, ECONNRESET);
  EXPECT_EQ(seen.at, absl::Microseconds(150) + absl::Seconds(2) + absl::Microseconds(50));
}

TEST(NetworkFaults, AfterHostUpAPeerLearnsByWriting) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  struct Seen {
    int error = 0;
    absl::Duration at;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    Pair p = co_await connect_pair();
    CallbackReader client(p.client);
    network().host_down("b");
    co_await sleep(absl::Seconds(1));
    network().host_up("b");  // the client had sent nothing: it knows nothing
    co_await sleep(absl::Seconds(1));
    EXPECT_EQ(client.error, 0);
    p.client->write("hello?", 6);  // reaches no socket: an RST comes back
    co_await client.done.wait();
    seen.error = client.error;
    seen.at = client.error_at;
  }(seen));
  EXPECT_EQ(seen.error, ECONNRESET);
  EXPECT_EQ(seen.at, absl::Microseconds(150) + absl::Seconds(2) + absl::Microseconds(100));
}

TEST(NetworkFaults, APeerWhoseWindowWasClosedLearnsByTheBytesItCouldNotSend) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  sim.network().set_buffers(1000, 1000);
  struct Seen {
    int error = 0;
    absl::Duration at;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    network().set_retransmission_timeout(absl::Seconds(10));
    Pair p = co_await connect_pair();
    CallbackReader client(p.client);
    // The server never reads: 1000 bytes reach it, 1000 wait for its window.
    EXPECT_EQ(p.client->write(std::string(2000, 'x').data(), 2000), 2000u);
    co_await sleep(absl::Seconds(1));
    network().host_down("b");  // the waiting bytes go out now, and are lost
    co_await client.done.wait();
    seen.error = client.error;
    seen.at = client.error_at;
  }(seen));
  EXPECT_EQ(seen.error, ETIMEDOUT);
  EXPECT_EQ(seen.at, absl::Microseconds(150) + absl::Seconds(11) + absl::Microseconds(50));
}

TEST(NetworkFaults, AfterHostUpAFinToAVanishedEndIsAnsweredWithAReset) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  int error = 0;
  sim.run([](int& error) -> Coro<void> {
    Pair p = co_await connect_pair();
    CallbackReader client(p.client);
    network().host_down("b");
    network().host_up("b");
    p.client->shutdown_write();  // a FIN to a socket b no longer has
    co_await client.done.wait();
    error = client.error;
  }(error));
  EXPECT_EQ(error, ECONNRESET);
}

// A connection cut by a losing partition sends nothing more; when its
// crashed end's host comes back while the partition lasts, the RST host_up
// answers its doomed peer with is stopped at the partition and lost like
// the rest. (It used to stay at the head of its flow, re-armed at the same
// virtual time forever: the loop spun without advancing time.)
TEST(NetworkFaults, AResetHostUpSendsOnACutConnectionIsLostAtThePartition) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  struct Seen {
    std::string up;
    std::string report;
    absl::Duration slept;
  } seen;
  sim.run([](Seen& seen) -> Coro<void> {
    Pair p = co_await connect_pair();
    CallbackReader server(p.server);
    network().partition({"a"}, {"b"}, {.mode = PartitionMode::kLose});
    p.client->write("lost", 4);  // stopped at the partition: cuts the connection
    co_await sleep(absl::Milliseconds(1));
    network().host_down("a");
    seen.up = network().host_up("a");  // b's end is doomed (by the cut)
    // To the RST's arrival at 1.2 ms, then a few loop iterations there
    // (sleep(0): bounded even if virtual time stopped).
    co_await sleep(absl::Microseconds(50));
    for (int i = 0; i < 20; ++i) co_await sleep(absl::ZeroDuration());
    seen.report = network().describe();
    seen.slept = virtual_now();
  }(seen));
  EXPECT_EQ(seen.up, "host_up a: 1 peer answered with an RST");
  EXPECT_THAT(seen.report, HasSubstr("connection #1 (tcp, cut by a partition)"));
  EXPECT_THAT(seen.report, HasSubstr("connector -> acceptor: 0 unread at the receiver, 0 in flight (0 segments)"))
      << seen.report;
  EXPECT_EQ(seen.slept, absl::Microseconds(150 + 1000 + 50));
}

TEST(NetworkFaults, SegmentsADownHostSentBeforeStillArrive) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  std::vector<std::string> reads;
  sim.run([](std::vector<std::string>& reads) -> Coro<void> {
    Pair p = co_await connect_pair();
    CallbackReader client(p.client);
    p.server->write("last words", 10);
    network().host_down("b");
    co_await sleep(absl::Milliseconds(1));
    reads = client.reads;
    EXPECT_EQ(client.error, 0);
  }(reads));
  EXPECT_THAT(reads, ElementsAre("last words"));
}

TEST(NetworkFaults, ASynToADownHostIsLostUntilItComesBack) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  absl::Duration connected;
  sim.run([](absl::Duration& connected) -> Coro<void> {
    network().host_down("b");
    Task<ChannelPtr> client = spawn_on("a", connect_to(kB80));
    co_await sleep(absl::Seconds(2));
    network().host_up("b");
    std::shared_ptr<Acceptor> acceptor = co_await listen_on("b", kB80);
    ChannelPtr c = co_await client;
    connected = virtual_now();
  }(connected));
  // SYNs at 0 and 1 s lost; the one sent at 3 s gets through.
  EXPECT_EQ(connected, absl::Seconds(3) + absl::Microseconds(2 * 50 + 100));
}

// ---------------------------------------------------------------------------
// Links mid-run, misuse, the log, events, determinism, reports.

TEST(NetworkFaults, ChangingALinkInUseIsAFaultAndKeepsTheOrder) {
  Options options = zero_draws();
  options.net_max_segments = 1;
  Simulation sim(options);
  add_hosts(sim);
  sim.network().set_link("a", "b", {absl::Milliseconds(5), absl::Milliseconds(5), 0});  // setup, not a fault
  std::vector<absl::Duration> times;
  sim.run([](std::vector<absl::Duration>& times) -> Coro<void> {
    co_await sleep(absl::Milliseconds(1));
    network().set_default_link({absl::Microseconds(50), absl::Microseconds(50), 0});  // no link in use: setup
    Pair p = co_await connect_pair();  // SYN 5 ms, SYN-ACK 50 us, ACK 5 ms
    CallbackReader server(p.server);
    const absl::Duration t = virtual_now();
    p.client->write("slow", 4);  // arrives at t + 5 ms
    network().set_link("a", "b", {absl::Microseconds(10), absl::Microseconds(10), 0});
    p.client->write("fast", 4);  // would arrive at t + 10 us: waits for "slow"
    co_await sleep(absl::Milliseconds(6));
    p.client->write("fast", 4);
    co_await sleep(absl::Milliseconds(1));
    times = server.times;
    for (absl::Duration& d : times) d -= t;
    // b -> a is in use and follows the default.
    network().set_default_link({absl::Microseconds(20), absl::Microseconds(30), 1000});
  }(times));
  EXPECT_THAT(times, ElementsAre(absl::Milliseconds(5), absl::Milliseconds(5), absl::Milliseconds(6) +
                                                                                   absl::Microseconds(10)));
  ASSERT_EQ(sim.network().faults().size(), 2u);
  EXPECT_EQ(sim.network().faults()[0].what, "set_link a -> b: latency 10us, unlimited bandwidth");
  EXPECT_EQ(sim.network().faults()[1].what, "set_default_link: latency 20us..30us, 1000 bytes/s");
}

TEST(NetworkFaults, MisuseIsALoudErrorAndChangesNothing) {
  Simulation sim;
  add_hosts(sim);
  Network& n = sim.network();
  EXPECT_THROW(n.partition({}, {"b"}), std::invalid_argument);
  EXPECT_THROW(n.partition({"a"}, {}), std::invalid_argument);
  EXPECT_THROW(n.partition({"a"}, {"nope"}), std::invalid_argument);
  EXPECT_THROW(n.partition({"a", "b"}, {"b"}), std::invalid_argument);
  EXPECT_THROW(n.partition({"a", "A"}, {"b"}), std::invalid_argument);  // names are case-insensitive
  EXPECT_THROW(n.heal({"a"}, {"nope"}), std::invalid_argument);
  EXPECT_THROW(n.hold("a", "a"), std::invalid_argument);
  EXPECT_THROW(n.hold("a", "nope"), std::invalid_argument);
  EXPECT_THROW(n.release("a", "b"), std::logic_error);
  EXPECT_THROW(n.reset_connections("nope"), std::invalid_argument);
  EXPECT_THROW(n.reset_connections("a", "nope"), std::invalid_argument);
  EXPECT_THROW(n.host_up("a"), std::logic_error);
  EXPECT_THROW(n.host_down("nope"), std::invalid_argument);
  EXPECT_THROW(n.is_down("nope"), std::invalid_argument);
  EXPECT_THROW(n.set_retransmission_timeout(absl::ZeroDuration()), std::invalid_argument);
  EXPECT_THROW(n.set_retransmission_timeout(-absl::Seconds(1)), std::invalid_argument);
  EXPECT_TRUE(n.faults().empty());
  EXPECT_FALSE(n.active());
  EXPECT_EQ(n.retransmission_timeout(), absl::Seconds(100));

  n.hold("a", "b");
  EXPECT_THROW(n.hold("a", "b"), std::logic_error);
  n.host_down("c");
  EXPECT_THROW(n.host_down("c"), std::logic_error);
  EXPECT_EQ(n.faults().size(), 2u);
  try {
    n.release("b", "a");
    ADD_FAILURE() << "released a link not held";
  } catch (const std::logic_error& e) {
    EXPECT_THAT(e.what(), HasSubstr("b -> a is not held"));
  }
  try {
    n.partition({"a"}, {"b", "a"});
    ADD_FAILURE() << "a host on both sides";
  } catch (const std::invalid_argument& e) {
    EXPECT_THAT(e.what(), HasSubstr("host 'a' is on both sides"));
  }
}

TEST(NetworkFaults, TheImplicitHostCanBeQueriedBeforeAnyHostExists) {
  Simulation sim;
  EXPECT_FALSE(sim.network().is_down("localhost"));
  EXPECT_THROW(sim.network().is_down("elsewhere"), std::invalid_argument);
}

// A conversation across a partition that holds, then a reset: the run's
// faults are events of the event hash.
struct FaultRun {
  std::string result;
  uint64_t hash;
  Recording recording;
  std::vector<std::string> faults;
};

Coro<std::string> partitioned_chat(bool apply_faults) {
  Pair p = co_await connect_pair();
  Stream client(p.client);
  Stream server(p.server);
  std::string out;
  for (int i = 0; i < 3; ++i) {
    if (apply_faults && i == 1) network().partition({"a"}, {"b"});
    client.write(absl::StrCat("m", i, ";"));
    co_await sleep(absl::Milliseconds(2));
    if (apply_faults && i == 1) network().heal_all();
    out += co_await server.read_some();
  }
  co_return out;
}

Options chatty(uint64_t seed) {
  Options o;
  o.seed = seed;
  o.net_latency_min = absl::Microseconds(10);
  o.net_latency_max = absl::Microseconds(300);
  return o;
}

FaultRun run_partitioned(Options options, bool apply_faults) {
  Simulation sim(options);
  add_hosts(sim);
  std::string r = sim.run(partitioned_chat(apply_faults));
  return FaultRun{r, sim.event_hash(), sim.recording(), fault_log(sim.network())};
}

TEST(NetworkFaults, FaultsAreEventsAndTheSameRunHashesTheSame) {
  std::set<uint64_t> hashes;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    const FaultRun one = run_partitioned(chatty(seed), true);
    const FaultRun two = run_partitioned(chatty(seed), true);
    const FaultRun without = run_partitioned(chatty(seed), false);
    EXPECT_EQ(one.result, "m0;m1;m2;");
    EXPECT_EQ(one.hash, two.hash) << "seed " << seed;
    EXPECT_NE(one.hash, without.hash) << "seed " << seed;
    EXPECT_EQ(one.faults.size(), 2u);
    hashes.insert(one.hash);
  }
  EXPECT_GT(hashes.size(), 1u);
}

TEST(NetworkFaults, AReplayThatOmitsAFaultDiverges) {
  Options o = chatty(5);
  o.record = true;
  const FaultRun recorded = run_partitioned(o, true);
  int fault_events = 0;
  for (const EventRecord& e : recorded.recording.events) fault_events += e.kind == internal::EventKind::kFault;
  EXPECT_EQ(fault_events, 2);
  EXPECT_THAT(describe_event(recorded.recording.events[0]), HasSubstr("t="));

  {  // the same faults: the same run
    Options replay = options_for_replay(recorded.recording);
    replay.replay = std::make_shared<Recording>(recorded.recording);
    Simulation sim(replay);
    add_hosts(sim);
    EXPECT_EQ(sim.run(partitioned_chat(true)), recorded.result);
    EXPECT_EQ(sim.event_hash(), recorded.hash);
    EXPECT_FALSE(sim.divergence().has_value());
  }
  {  // without them: the replay says where it left the recording
    Options replay = options_for_replay(recorded.recording);
    replay.replay = std::make_shared<Recording>(recorded.recording);
    Simulation sim(replay);
    add_hosts(sim);
    sim.run(partitioned_chat(false));
    EXPECT_NE(sim.event_hash(), recorded.hash);
    EXPECT_TRUE(sim.divergence().has_value());
  }
}

TEST(NetworkFaults, TheLogHasTheVirtualTimeOfEachFault) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  sim.network().hold("a", "c");  // before the run: time 0
  sim.run([]() -> Coro<void> {
    co_await sleep(absl::Seconds(2));
    network().release("a", "c");
    network().host_down("c");
    co_await sleep(absl::Milliseconds(5));
    network().host_up("c");
    network().partition({"a"}, {"b"}, {.mode = PartitionMode::kLose, .one_way = true});
  }());
  EXPECT_THAT(fault_log(sim.network()),
              ElementsAre("0 hold a -> c", "2s release a -> c",
                          "2s host_down c: 0 connection ends and 0 listeners vanished",
                          "2.005s host_up c: 0 peers answered with an RST", "2.005s partition {a} -> {b} (lose)"));
  const std::string report = sim.network_report();
  EXPECT_THAT(report, HasSubstr("fault in effect: partition {a} -> {b} (lose), blocking a -> b"));
  EXPECT_THAT(report, HasSubstr("  faults applied: 5\n    t=0 hold a -> c\n    t=2s release a -> c\n"));
}

TEST(NetworkFaults, TheReportListsTheLastFaultsAppliedEvenWhenNoneIsInEffect) {
  Simulation sim;
  add_hosts(sim);
  EXPECT_EQ(sim.network_report(), "");
  for (int i = 0; i < 20; ++i) {
    sim.network().hold("a", "b");
    sim.network().release("a", "b");
  }
  const std::string report = sim.network_report();  // nothing in effect, no connection
  EXPECT_THAT(report, HasSubstr("  faults applied: 40 (the last 32)\n    t=0 hold a -> b\n    t=0 release a -> b\n"));
  EXPECT_THAT(report, Not(HasSubstr("fault in effect")));
}

TEST(NetworkFaults, DescribeShowsSegmentsWaitingAtABlockedLink) {
  Simulation sim(zero_draws());
  add_hosts(sim);
  std::string report;
  sim.run([](std::string& report) -> Coro<void> {
    Pair p = co_await connect_pair();
    network().hold("a", "b");
    p.client->write("x", 1);
    co_await sleep(absl::Milliseconds(1));
    report = network().describe();
    network().release("a", "b");
  }(report));
  EXPECT_THAT(report, HasSubstr("fault in effect: hold a -> b, blocking a -> b"));
  EXPECT_THAT(report, HasSubstr("connector -> acceptor: 0 unread at the receiver, 1 in flight (1 segment), 0 unsent; "
                                "next: data waiting at a blocked link"));
}

}  // namespace
}  // namespace twinloop::sim
