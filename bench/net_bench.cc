// twinloop/bench/net_bench.cc: the simulated network's throughput, on one
// core, through the seam (api/net_backend.h) with the owners reading and
// writing inside their notifications, as transports do.
//
//   bazel run --config=opt //bench:net_bench
//
// Host "a" (10.0.0.1) sends 64-byte messages to host "b" (10.0.0.2) over
// the default links (50 us); items_per_second is messages delivered (read
// by the receiver) per wall-clock second, one simulation per iteration.
//   BM_NetStream/<cuts>       one connection, the writer writes messages as
//                             fast as flow control lets it (64 KiB buffers)
//   BM_NetPingPong/<conns>/<cuts>  <conns> connections in parallel, each a
//                             request/response loop: every message is its
//                             own segment, timer and notification
//   BM_NetStreamsPingPong/<conns>/<cuts>  the same through the streams API
//                             (start_server on "b", open_connection from
//                             tasks on "a", readexactly + write + drain),
//                             which is what applications pay
// <cuts> 0: net_max_segments = 1 (nothing to draw: one segment per
// transmission); 1: the default (4: seeds cut transmissions into up to four
// segments, so there are more segments than messages).
#include <benchmark/benchmark.h>

#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "twinloop/api/twinloop.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/simulation.h"

namespace {

using twinloop::ChannelEvents;
using twinloop::Coro;
using twinloop::Future;
using twinloop::SocketAddress;
using twinloop::StreamChannel;
using twinloop::StreamListener;

constexpr size_t kMessage = 64;

twinloop::NetBackend& net() { return *twinloop::get_running_loop().backend().net(); }

// `n` connections from host "a" to host "b", then `run` drives them until
// it completes `done`.
struct Setup {
  size_t n = 0;
  std::unique_ptr<StreamListener> listener;
  std::vector<std::unique_ptr<StreamChannel>> a;  // connectors, on "a"
  std::vector<std::unique_ptr<StreamChannel>> b;  // acceptors, on "b"
  Future<void> connected;
  Future<void> accepted;
};

// Accepts inside the listener's notification.
struct Acceptor final : ChannelEvents {
  Setup* setup = nullptr;
  void on_readable() override {
    while (std::unique_ptr<StreamChannel> c = setup->listener->accept()) setup->b.push_back(std::move(c));
    if (setup->b.size() == setup->n && !setup->accepted.done()) setup->accepted.set_result();
  }
  void on_writable() override {}
};

Coro<void> listen_on_b(Setup& s, Acceptor& acceptor) {
  s.listener = net().listen(SocketAddress::inet("0.0.0.0", 7), twinloop::ListenOptions{});
  s.listener->set_events(&acceptor);
  s.listener->want_accept(true);
  co_return;
}

Coro<void> connect_from_a(Setup& s) {
  for (size_t i = 0; i < s.n; ++i) {
    net().connect(SocketAddress::inet("10.0.0.2", 7), twinloop::ConnectOptions{},
                  [&s](std::unique_ptr<StreamChannel> ch, std::exception_ptr e) {
                    if (e) std::rethrow_exception(e);
                    s.a.push_back(std::move(ch));
                    if (s.a.size() == s.n) s.connected.set_result();
                  });
  }
  co_await s.connected;
}

Coro<void> connect_all(Setup& s) {
  Acceptor acceptor;
  acceptor.setup = &s;
  s.connected = twinloop::get_running_loop().create_future<void>();
  s.accepted = twinloop::get_running_loop().create_future<void>();
  co_await twinloop::sim::spawn_on("b", listen_on_b(s, acceptor));
  co_await twinloop::sim::spawn_on("a", connect_from_a(s));
  co_await s.accepted;
  s.listener->set_events(nullptr);
}

twinloop::sim::Options options(bool cuts) {
  twinloop::sim::Options o;
  o.seed = 1;
  if (!cuts) o.net_max_segments = 1;
  return o;
}

// ---- one connection, as fast as flow control allows

struct StreamWriter final : ChannelEvents {
  StreamChannel* ch = nullptr;
  uint64_t left = 0;  // messages still to write
  size_t off = 0;     // bytes of the current message written
  char message[kMessage] = {};
  void on_readable() override {}
  void on_writable() override {
    while (left != 0) {
      const size_t k = ch->write(message + off, kMessage - off);
      if (k == 0) return;
      off += k;
      if (off == kMessage) {
        off = 0;
        --left;
      }
    }
    ch->want_write(false);
  }
};

struct StreamReader final : ChannelEvents {
  StreamChannel* ch = nullptr;
  uint64_t bytes_left = 0;
  Future<void> done;
  char buf[65536];
  void on_readable() override {
    while (true) {
      const std::ptrdiff_t r = ch->read(buf, sizeof buf);
      if (r <= 0) break;
      bytes_left -= static_cast<uint64_t>(r);
    }
    if (bytes_left == 0 && !done.done()) done.set_result();
  }
  void on_writable() override {}
};

Coro<void> stream(uint64_t messages) {
  Setup s;
  s.n = 1;
  co_await connect_all(s);
  StreamWriter w;
  w.ch = s.a[0].get();
  w.left = messages;
  auto r = std::make_unique<StreamReader>();
  r->ch = s.b[0].get();
  r->bytes_left = messages * kMessage;
  r->done = twinloop::get_running_loop().create_future<void>();
  s.b[0]->set_events(r.get());
  s.b[0]->want_read(true);
  s.a[0]->set_events(&w);
  s.a[0]->want_write(true);
  co_await r->done;
  s.a[0]->close(false);
  s.b[0]->close(false);
}

// One simulation of `main` on hosts "a" and "b"; the wall time is what the
// benchmark measures.
void simulate(bool cuts, Coro<void> main) {
  twinloop::sim::Simulation sim(options(cuts));
  sim.network().add_host("a", "10.0.0.1");
  sim.network().add_host("b", "10.0.0.2");
  sim.run(std::move(main));
}

void BM_NetStream(benchmark::State& state) {
  constexpr uint64_t kMessages = 200'000;
  for (auto _ : state) simulate(state.range(0) != 0, stream(kMessages));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kMessages));
}
BENCHMARK(BM_NetStream)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond);

// ---- request/response loops

// Both ends of one connection: "a" sends a message, "b" answers it, until
// `rounds` answers arrived.
struct PingPong {
  struct Side final : ChannelEvents {
    PingPong* pp = nullptr;
    StreamChannel* ch = nullptr;
    bool client = false;
    size_t got = 0;  // bytes of the current message read
    void on_readable() override {
      char buf[kMessage];
      while (true) {
        const std::ptrdiff_t r = ch->read(buf, kMessage - got);
        if (r <= 0) return;
        got += static_cast<size_t>(r);
        if (got < kMessage) continue;
        got = 0;
        ++pp->delivered;
        if (client && --pp->rounds_left == 0) {
          pp->finished();
          return;
        }
        send();
      }
    }
    void on_writable() override {}
    void send() {
      static const char kBody[kMessage] = {};
      if (ch->write(kBody, kMessage) != kMessage) throw std::logic_error("a 64-byte write did not fit");
    }
  };
  Side a;
  Side b;
  uint64_t rounds_left = 0;
  uint64_t delivered = 0;
  uint64_t* open = nullptr;  // connections still going
  Future<void>* all_done = nullptr;
  void finished() {
    if (--*open == 0) all_done->set_result();
  }
};

Coro<void> ping_pong(size_t connections, uint64_t rounds, uint64_t* delivered) {
  Setup s;
  s.n = connections;
  co_await connect_all(s);
  uint64_t open = connections;
  Future<void> all_done = twinloop::get_running_loop().create_future<void>();
  std::vector<std::unique_ptr<PingPong>> pps;
  for (size_t i = 0; i < connections; ++i) {
    auto pp = std::make_unique<PingPong>();
    pp->rounds_left = rounds;
    pp->open = &open;
    pp->all_done = &all_done;
    pp->a.pp = pp->b.pp = pp.get();
    pp->a.client = true;
    pp->a.ch = s.a[i].get();
    pp->b.ch = s.b[i].get();
    s.a[i]->set_events(&pp->a);
    s.b[i]->set_events(&pp->b);
    s.a[i]->want_read(true);
    s.b[i]->want_read(true);
    pp->a.send();
    pps.push_back(std::move(pp));
  }
  co_await all_done;
  for (auto& pp : pps) *delivered += pp->delivered;
  for (auto& c : s.a) c->set_events(nullptr);
  for (auto& c : s.b) c->set_events(nullptr);
}

void BM_NetPingPong(benchmark::State& state) {
  const size_t connections = static_cast<size_t>(state.range(0));
  const uint64_t rounds = 100'000 / connections;
  uint64_t delivered = 0;
  for (auto _ : state) simulate(state.range(1) != 0, ping_pong(connections, rounds, &delivered));
  if (delivered != state.iterations() * rounds * connections * 2) state.SkipWithError("messages lost");
  state.SetItemsProcessed(static_cast<int64_t>(delivered));
}
BENCHMARK(BM_NetPingPong)->Args({1, 0})->Args({1, 1})->Args({64, 0})->Args({64, 1})->Unit(benchmark::kMillisecond);

// ---- the same through the streams API

Coro<void> echo_messages(twinloop::StreamReader reader, twinloop::StreamWriter writer) {
  while (true) {
    std::string m;
    try {
      m = co_await reader.readexactly(kMessage);
    } catch (const twinloop::IncompleteReadError&) {
      break;  // the client is done
    }
    writer.write(m);
    co_await writer.drain();
  }
  writer.close();
}

Coro<void> streams_client(uint64_t rounds, uint64_t* delivered) {
  auto [reader, writer] = co_await twinloop::open_connection("10.0.0.2", 7);
  const std::string message(kMessage, 'm');
  for (uint64_t i = 0; i < rounds; ++i) {
    writer.write(message);
    co_await writer.drain();
    const std::string back = co_await reader.readexactly(kMessage);
    *delivered += 2;  // the request and its answer
    if (back != message) throw std::runtime_error("wrong answer");
  }
  writer.close();
  co_await writer.wait_closed();
}

Coro<void> streams_ping_pong(size_t connections, uint64_t rounds, uint64_t* delivered) {
  twinloop::Server server = co_await twinloop::sim::spawn_on("b", twinloop::start_server(echo_messages, "10.0.0.2", 7));
  std::vector<twinloop::Task<void>> clients;
  for (size_t i = 0; i < connections; ++i) clients.push_back(twinloop::sim::spawn_on("a", streams_client(rounds, delivered)));
  for (auto& c : clients) co_await c;
  server.close();
  co_await server.wait_closed();
}

void BM_NetStreamsPingPong(benchmark::State& state) {
  const size_t connections = static_cast<size_t>(state.range(0));
  const uint64_t rounds = 20'000 / connections;
  uint64_t delivered = 0;
  for (auto _ : state) simulate(state.range(1) != 0, streams_ping_pong(connections, rounds, &delivered));
  if (delivered != state.iterations() * rounds * connections * 2) state.SkipWithError("messages lost");
  state.SetItemsProcessed(static_cast<int64_t>(delivered));
}
BENCHMARK(BM_NetStreamsPingPong)->Args({1, 0})->Args({1, 1})->Args({64, 0})->Args({64, 1})->Unit(benchmark::kMillisecond);

}  // namespace
