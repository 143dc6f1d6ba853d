// Networked services under the simulated network, run by the harness over
// its default seed sweep. Each scenario puts a server and its clients on
// different simulated hosts (sim::spawn_on) joined by links whose latencies
// are drawn per segment, and the default net_max_segments (4) lets each
// transmission be cut into segments that arrive on their own: every seed
// delivers the same bytes in other pieces, at other times, in another order
// across connections. The services are written with asyncio's streams
// (api/streams.h) as they would be for the real loop.
//
//  - KeyValueServiceAnswersEveryClient: a length-prefixed key/value service,
//    several clients pipelining and alternating requests; every reply checked.
//  - ClientRetriesUntilTheServerListens: ConnectionRefusedError until the
//    server starts listening, then a normal conversation.
//  - ServerResetMidConversation / ServerClosesInsideAFrame: the client sees
//    ConnectionResetError, or IncompleteReadError with exactly the bytes the
//    server sent.
//  - SlowReaderBoundsTheWriter: back-pressure; drain() waits for a slow
//    reader, and what is written but not yet read stays within the buffers.
#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/harness/testing.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::simnet {
namespace {

constexpr uint16_t kPort = 7000;

// Links of 100 us to 3 ms each way unless a scenario sets its own.
const sim::Options kWan{.net_latency_min = absl::Microseconds(100), .net_latency_max = absl::Milliseconds(3)};

sim::Network& network() { return sim::Network::of(get_running_loop()); }

// ---------------------------------------------------------------- framing

// A frame: the payload's length (4 bytes, big-endian), then the payload.
std::string frame(std::string_view payload) {
  const auto n = static_cast<uint32_t>(payload.size());
  std::string out;
  out.reserve(4 + payload.size());
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((n >> shift) & 0xff));
  out.append(payload);
  return out;
}

uint32_t frame_length(std::string_view header) {
  uint32_t n = 0;
  for (char c : header) n = (n << 8) | static_cast<uint8_t>(c);
  return n;
}

// The next frame's payload; nullopt when the stream ends between frames.
// IncompleteReadError when it ends inside one. The reader gathers however
// many segments the frame arrived in (readexactly).
Coro<std::optional<std::string>> read_frame(StreamReader reader) {
  std::string header;
  bool ended = false;
  try {
    header = co_await reader.readexactly(4);
  } catch (const IncompleteReadError& e) {
    if (!e.partial().empty()) throw;
    ended = true;
  }
  if (ended) co_return std::nullopt;
  std::string payload = co_await reader.readexactly(static_cast<std::ptrdiff_t>(frame_length(header)));
  co_return payload;
}

// A reply's payload, or "<end of stream>" (so that EXPECT_EQ prints it).
Coro<std::string> reply(StreamReader reader) {
  std::optional<std::string> payload = co_await read_frame(reader);
  co_return payload ? *payload : std::string("<end of stream>");
}

// ---------------------------------------------------------------- the key/value service

// Requests: "SET <key> <value>" -> "OK"; "GET <key>" -> "VALUE <value>" or
// "MISSING"; "DEL <key>" -> "DELETED" or "MISSING". Values may hold spaces.
class Store {
 public:
  std::string apply(std::string_view request) {
    const size_t space = request.find(' ');
    const std::string_view command = request.substr(0, space);
    const std::string_view rest = space == std::string_view::npos ? std::string_view() : request.substr(space + 1);
    if (command == "SET") {
      const size_t split = rest.find(' ');
      if (split == std::string_view::npos) return "ERR SET needs a key and a value";
      values_[std::string(rest.substr(0, split))] = std::string(rest.substr(split + 1));
      return "OK";
    }
    auto it = values_.find(std::string(rest));
    if (command == "GET") return it == values_.end() ? "MISSING" : absl::StrCat("VALUE ", it->second);
    if (command == "DEL") {
      if (it == values_.end()) return "MISSING";
      values_.erase(it);
      return "DELETED";
    }
    return absl::StrCat("ERR unknown command '", std::string(command), "'");
  }
  void set(const std::string& key, const std::string& value) { values_[key] = value; }
  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  std::map<std::string, std::string> values_;
};

// One connection: a reply per request, until the client ends the stream.
Coro<void> serve_kv(std::shared_ptr<Store> store, StreamReader reader, StreamWriter writer) {
  while (true) {
    std::optional<std::string> request = co_await read_frame(reader);
    if (!request) break;
    writer.write(frame(store->apply(*request)));
    co_await writer.drain();
  }
  writer.close();
  co_await writer.wait_closed();
}

// Accepts and waits forever.
Coro<void> serve_kv_forever(StreamReader, StreamWriter) {
  Event never("never");
  co_await never.wait();
}

// Listens on every address of the host the calling task runs on.
Coro<Server> start_kv(std::shared_ptr<Store> store) {
  ClientConnected handler = [store](StreamReader r, StreamWriter w) {
    return serve_kv(store, std::move(r), std::move(w));
  };
  Server server = co_await start_server(std::move(handler), "0.0.0.0", kPort);
  co_return server;
}

// Client `id`'s value number `j`: short, a few hundred bytes, larger than
// the links' windows' share, or with spaces, so that messages are cut
// anywhere.
std::string value_of(int id, int j) {
  const char fill = static_cast<char>('a' + (id * 7 + j) % 26);
  switch (j % 4) {
    case 0:
      return std::string(1, fill);
    case 1:
      return std::string(300 + id, fill);
    case 2:
      return std::string(20000 + 13 * id, fill);
    default:
      return absl::StrCat("client ", id, " says ", std::string(5, fill));
  }
}

constexpr int kValuesPerClient = 4;

// A client: pipelines its SETs (several frames per write, so that frames
// share segments and cuts fall inside them), then GETs them back one at a
// time, deletes one, reads a key it does not own. Returns the number of
// replies it checked.
Coro<int> kv_client(int id) {
  std::pair<StreamReader, StreamWriter> conn = co_await open_connection("kv", kPort);
  StreamReader reader = conn.first;
  StreamWriter writer = conn.second;
  int checked = 0;
  for (int j = 0; j < kValuesPerClient; ++j) {
    writer.write(frame(absl::StrCat("SET c", id, ".k", j, " ", value_of(id, j))));
  }
  co_await writer.drain();
  for (int j = 0; j < kValuesPerClient; ++j, ++checked) {
    EXPECT_EQ(co_await reply(reader), "OK") << "client " << id << ", SET " << j;
  }
  for (int j = kValuesPerClient - 1; j >= 0; --j, ++checked) {
    writer.write(frame(absl::StrCat("GET c", id, ".k", j)));
    co_await writer.drain();
    EXPECT_EQ(co_await reply(reader), absl::StrCat("VALUE ", value_of(id, j))) << "client " << id << ", GET " << j;
  }
  writer.write(frame(absl::StrCat("DEL c", id, ".k0")));
  writer.write(frame(absl::StrCat("GET c", id, ".k0")));
  writer.write(frame("GET motd"));
  co_await writer.drain();
  EXPECT_EQ(co_await reply(reader), "DELETED") << "client " << id;
  EXPECT_EQ(co_await reply(reader), "MISSING") << "client " << id;
  EXPECT_EQ(co_await reply(reader), "VALUE hello") << "client " << id;
  checked += 3;
  writer.write_eof();
  EXPECT_EQ(co_await reply(reader), "<end of stream>") << "client " << id;
  writer.close();
  co_await writer.wait_closed();
  co_return checked;
}

constexpr int kClients = 4;

TWINLOOP_SIM_TEST_WITH_OPTIONS(SimNet, KeyValueServiceAnswersEveryClient, kWan) {
  sim::Network& net = network();
  net.add_host("server", "10.0.0.1", "fd00::1");
  net.add_name("kv", "10.0.0.1");
  for (int i = 0; i < kClients; ++i) net.add_host(absl::StrCat("client", i), absl::StrCat("10.0.1.", i + 1));
  // The last client is far away: 5 to 20 ms each way.
  const sim::LinkConfig far{.latency_min = absl::Milliseconds(5), .latency_max = absl::Milliseconds(20)};
  net.set_link("client3", "server", far);
  net.set_link("server", "client3", far);

  auto store = std::make_shared<Store>();
  store->set("motd", "hello");
  Task<Server> started = sim::spawn_on("server", start_kv(store));
  Server server = co_await started;
  std::vector<Task<int>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(sim::spawn_on(absl::StrCat("client", i), kv_client(i)));
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(co_await clients[i], 2 * kValuesPerClient + 3) << "client " << i;
  }
  server.close();
  co_await server.wait_closed();
  // Every client's keys but the one it deleted, and the preset one.
  EXPECT_EQ(store->values().size(), 1u + kClients * (kValuesPerClient - 1));
  EXPECT_EQ(store->values().count("c2.k0"), 0u);
  EXPECT_EQ(store->values().at("c3.k2"), value_of(3, 2));
}

// ---------------------------------------------------------------- refused, then retried

constexpr absl::Duration kServerStartsAt = absl::Milliseconds(30);
constexpr absl::Duration kRetryAfter = absl::Milliseconds(5);

Coro<Server> start_kv_later(std::shared_ptr<Store> store) {
  co_await sleep(kServerStartsAt);
  Server server = co_await start_kv(std::move(store));
  co_return server;
}

struct RetryOutcome {
  int refusals = 0;
  absl::Duration connected_at;
  std::string motd;
};

// Connects, retrying every kRetryAfter while the connection is refused;
// anything but ConnectionRefusedError escapes and fails the seed.
Coro<RetryOutcome> connect_with_retries() {
  RetryOutcome out;
  EventLoop& loop = get_running_loop();
  std::optional<std::pair<StreamReader, StreamWriter>> conn;
  while (!conn) {
    try {
      conn = co_await open_connection("server", kPort);
    } catch (const ConnectionRefusedError& e) {
      EXPECT_EQ(e.code().value(), ECONNREFUSED);
      ++out.refusals;
    }
    if (!conn) co_await sleep(kRetryAfter);
    if (out.refusals > 100) throw std::runtime_error("refused more than 100 times");
  }
  out.connected_at = loop.time() - absl::UnixEpoch();
  StreamWriter writer = conn->second;
  writer.write(frame("GET motd"));
  out.motd = co_await reply(conn->first);
  writer.close();
  co_await writer.wait_closed();
  co_return out;
}

TWINLOOP_SIM_TEST_WITH_OPTIONS(SimNet, ClientRetriesUntilTheServerListens, kWan) {
  sim::Network& net = network();
  net.add_host("server", "10.0.0.1");
  net.add_host("client", "10.0.0.2");
  auto store = std::make_shared<Store>();
  store->set("motd", "hello");
  Task<Server> started = sim::spawn_on("server", start_kv_later(store));
  Task<RetryOutcome> client = sim::spawn_on("client", connect_with_retries());
  const RetryOutcome out = co_await client;
  Server server = co_await started;
  EXPECT_GE(out.refusals, 1) << "the client connected before the server listened";
  EXPECT_GE(out.connected_at, kServerStartsAt);
  // The first attempt whose SYN arrives after the server listens succeeds:
  // at most one retry delay and two round trips (3 ms each way) later.
  EXPECT_LE(out.connected_at, kServerStartsAt + kRetryAfter + 2 * 2 * kWan.net_latency_max);
  EXPECT_EQ(out.motd, "VALUE hello");
  server.close();
  co_await server.wait_closed();
}

// ---------------------------------------------------------------- the server goes away mid-conversation

// Answers the first request, reads the second, then resets the connection
// (RST: SO_LINGER {1, 0}).
Coro<void> answer_once_then_reset(StreamReader reader, StreamWriter writer) {
  std::optional<std::string> first = co_await read_frame(reader);
  writer.write(frame(first ? "OK" : "?"));
  co_await writer.drain();
  co_await read_frame(reader);
  writer.transport()->reset();
}

struct ResetOutcome {
  std::string first;
  std::string read_error;   // what reading the second reply raised
  std::string drain_error;  // what writing after that raised
};

Coro<ResetOutcome> converse_until_reset() {
  ResetOutcome out;
  std::pair<StreamReader, StreamWriter> conn = co_await open_connection("server", kPort);
  StreamReader reader = conn.first;
  StreamWriter writer = conn.second;
  writer.write(frame("first"));
  out.first = co_await reply(reader);
  writer.write(frame("second"));
  try {
    co_await reply(reader);
    out.read_error = "nothing";
  } catch (const ConnectionResetError& e) {
    out.read_error = absl::StrCat("ConnectionResetError errno ", e.code().value());
  }
  try {
    writer.write(frame("third"));
    co_await writer.drain();
    out.drain_error = "nothing";
  } catch (const ConnectionResetError&) {
    out.drain_error = "ConnectionResetError";
  }
  writer.close();
  co_return out;
}

TWINLOOP_SIM_TEST_WITH_OPTIONS(SimNet, ServerResetMidConversation, kWan) {
  sim::Network& net = network();
  net.add_host("server", "10.0.0.1");
  net.add_host("client", "10.0.0.2");
  ClientConnected handler = &answer_once_then_reset;
  Task<Server> started = sim::spawn_on("server", start_server(std::move(handler), "0.0.0.0", kPort));
  Server server = co_await started;
  Task<ResetOutcome> client = sim::spawn_on("client", converse_until_reset());
  const ResetOutcome out = co_await client;
  EXPECT_EQ(out.first, "OK");
  EXPECT_EQ(out.read_error, absl::StrCat("ConnectionResetError errno ", ECONNRESET));
  // asyncio: drain() after the connection was lost raises the reader's
  // exception (streams.py, StreamWriter.drain).
  EXPECT_EQ(out.drain_error, "ConnectionResetError");
  server.close();
  co_await server.wait_closed();
}

// Announces a 1000-byte reply, sends 10 bytes of it, then closes (FIN).
constexpr size_t kAnnounced = 1000;
constexpr std::string_view kSent = "0123456789";

Coro<void> close_inside_a_frame(StreamReader reader, StreamWriter writer) {
  co_await read_frame(reader);
  writer.write(frame(std::string(kAnnounced, 'x')).substr(0, 4));
  writer.write(kSent);
  writer.close();
  co_await writer.wait_closed();
}

struct IncompleteOutcome {
  bool raised = false;
  std::string partial;
  std::optional<size_t> expected;
};

Coro<IncompleteOutcome> read_a_cut_reply() {
  IncompleteOutcome out;
  std::pair<StreamReader, StreamWriter> conn = co_await open_connection("server", kPort);
  StreamWriter writer = conn.second;
  writer.write(frame("GET big"));
  try {
    co_await read_frame(conn.first);
  } catch (const IncompleteReadError& e) {
    out.raised = true;
    out.partial = e.partial();
    out.expected = e.expected();
  }
  writer.close();
  co_await writer.wait_closed();
  co_return out;
}

TWINLOOP_SIM_TEST_WITH_OPTIONS(SimNet, ServerClosesInsideAFrame, kWan) {
  sim::Network& net = network();
  net.add_host("server", "10.0.0.1");
  net.add_host("client", "10.0.0.2");
  ClientConnected handler = &close_inside_a_frame;
  Task<Server> started = sim::spawn_on("server", start_server(std::move(handler), "0.0.0.0", kPort));
  Server server = co_await started;
  Task<IncompleteOutcome> client = sim::spawn_on("client", read_a_cut_reply());
  const IncompleteOutcome out = co_await client;
  EXPECT_TRUE(out.raised) << "no IncompleteReadError";
  EXPECT_EQ(out.partial, kSent);  // every byte sent, however it was cut
  EXPECT_EQ(out.expected, std::optional<size_t>(kAnnounced));
  server.close();
  co_await server.wait_closed();
}

// ---------------------------------------------------------------- back-pressure

// Small network buffers, a reader that takes 2 KiB per millisecond, and a
// writer that sends 512 KiB in 8 KiB chunks, draining after each.
constexpr uint32_t kNetBuffer = 8 * 1024;
constexpr size_t kReaderLimit = 4 * 1024;   // the StreamReader pauses reading above 2x this
constexpr size_t kHighWater = 16 * 1024;   // the writer's transport
constexpr size_t kChunk = 8 * 1024;
constexpr int kChunks = 64;
constexpr size_t kReadSize = 2 * 1024;
constexpr absl::Duration kReadEvery = absl::Milliseconds(1);
// What can be written and not yet read when drain() returns: the writer's
// transport buffer (at most the high-water mark once drain() returns), the
// connection's send and receive buffers (sim/network.h: at most their sum),
// and the StreamReader's buffer (it stops reading above 2 * limit, after a
// read of at most the receive buffer).
constexpr size_t kMaxUnread = kHighWater + 2 * kNetBuffer + 2 * kReaderLimit + kNetBuffer;

const sim::Options kSmallBuffers{.net_latency_min = absl::Microseconds(100),
                                 .net_latency_max = absl::Milliseconds(2),
                                 .net_send_buffer = kNetBuffer,
                                 .net_receive_buffer = kNetBuffer};

struct Progress {
  size_t read = 0;
};

// Reads slowly to the end, then answers with the number of bytes read.
Coro<void> slow_reader(std::shared_ptr<Progress> progress, StreamReader reader, StreamWriter writer) {
  while (true) {
    std::string chunk = co_await reader.read(static_cast<std::ptrdiff_t>(kReadSize));
    if (chunk.empty()) break;
    progress->read += chunk.size();
    co_await sleep(kReadEvery);
  }
  writer.write(frame(absl::StrCat(progress->read)));
  writer.close();
  co_await writer.wait_closed();
}

Coro<Server> start_slow_reader(std::shared_ptr<Progress> progress) {
  ClientConnected handler = [progress](StreamReader r, StreamWriter w) {
    return slow_reader(progress, std::move(r), std::move(w));
  };
  StreamOptions options{.limit = kReaderLimit};
  Server server = co_await start_server(std::move(handler), "0.0.0.0", kPort, options);
  co_return server;
}

struct WriterOutcome {
  size_t max_unread = 0;         // written minus read, when drain() returned
  size_t max_transport_buffer = 0;  // the transport's buffer, when drain() returned
  int drains_that_waited = 0;
  absl::Duration all_written_at;  // when the last drain() returned
  std::string acknowledged;
};

Coro<WriterOutcome> fast_writer(std::shared_ptr<Progress> progress) {
  WriterOutcome out;
  EventLoop& loop = get_running_loop();
  std::pair<StreamReader, StreamWriter> conn = co_await open_connection("consumer", kPort);
  StreamWriter writer = conn.second;
  writer.transport()->set_write_buffer_limits(kHighWater);
  const std::string chunk(kChunk, 'z');
  size_t written = 0;
  for (int i = 0; i < kChunks; ++i) {
    writer.write(chunk);
    written += chunk.size();
    const absl::Time before = loop.time();
    co_await writer.drain();
    if (loop.time() > before) ++out.drains_that_waited;
    out.max_unread = std::max(out.max_unread, written - progress->read);
    out.max_transport_buffer = std::max(out.max_transport_buffer, writer.transport()->get_write_buffer_size());
  }
  out.all_written_at = loop.time() - absl::UnixEpoch();
  writer.write_eof();
  out.acknowledged = co_await reply(conn.first);
  writer.close();
  co_await writer.wait_closed();
  co_return out;
}

TWINLOOP_SIM_TEST_WITH_OPTIONS(SimNet, SlowReaderBoundsTheWriter, kSmallBuffers) {
  sim::Network& net = network();
  net.add_host("consumer", "10.0.0.1");
  net.add_host("producer", "10.0.0.2");
  auto progress = std::make_shared<Progress>();
  Task<Server> started = sim::spawn_on("consumer", start_slow_reader(progress));
  Server server = co_await started;
  Task<WriterOutcome> producer = sim::spawn_on("producer", fast_writer(progress));
  const WriterOutcome out = co_await producer;
  const size_t total = kChunk * kChunks;
  EXPECT_EQ(out.acknowledged, absl::StrCat(total));
  EXPECT_LE(out.max_unread, kMaxUnread) << "the writer ran ahead of the reader by more than the buffers hold";
  EXPECT_LE(out.max_transport_buffer, kHighWater);
  // Without back-pressure every drain() would return at once. With it, the
  // writer is done only once the reader has read all but kMaxUnread bytes,
  // kReadSize per kReadEvery.
  EXPECT_GT(out.drains_that_waited, 0);
  EXPECT_GE(out.all_written_at, kReadEvery * static_cast<int64_t>((total - kMaxUnread) / kReadSize - 1));
  server.close();
  co_await server.wait_closed();
}

// ---------------------------------------------------------------- failures with open streams

// A run that deadlocks while its main task holds an open StreamWriter: the
// loop closes first, then the task's frame (and the writer) goes. asyncio's
// StreamWriter.__del__ does not close the transport of a closed loop; before
// that fix, closing it threw from the destructor and terminated the process
// instead of reporting the deadlock.
Coro<void> deadlock_holding_a_writer() {
  sim::Network& net = network();
  net.add_host("server", "10.0.0.1");
  net.add_host("client", "10.0.0.2");
  ClientConnected handler = &serve_kv_forever;
  Task<Server> started = sim::spawn_on("server", start_server(std::move(handler), "0.0.0.0", kPort));
  Server server = co_await started;
  Task<std::pair<StreamReader, StreamWriter>> connected = sim::spawn_on("client", open_connection("server", kPort));
  std::pair<StreamReader, StreamWriter> conn = co_await connected;
  StreamWriter writer = conn.second;
  Event never("never");
  co_await never.wait();
}

TEST(SimNetFailures, ADeadlockWhileHoldingAStreamWriterIsReported) {
  try {
    sim::run(deadlock_holding_a_writer(), kWan);
    ADD_FAILURE() << "expected a deadlock";
  } catch (const sim::DeadlockError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("Event.wait() on 'never'"));
    EXPECT_THAT(e.what(), ::testing::HasSubstr("1 connection"));
  }
}

}  // namespace
}  // namespace twinloop::simnet
