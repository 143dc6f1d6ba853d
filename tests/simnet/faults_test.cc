// The simulated network's faults (sim/network.h, "Faults"; docs/network.md,
// "Network faults") seen through asyncio's streams (api/streams.h) on both
// sides of a connection: what a reader (read, readexactly), a writer (write,
// drain) and wait_closed see when the link between them is held and
// released, cut by a partition that loses, when the connection is reset,
// when a host goes down and comes back, and when bytes are already in
// flight as a partition starts (turmoil#251). Each scenario runs under
// sim::Simulation with virtual time checks, across seeds where draws
// matter (latencies, segment cuts).
#include <cerrno>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/harness/replay_file.h"
#include "twinloop/sim/harness/testing.h"
#include "twinloop/sim/network.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::simnet {
namespace {

using ::testing::HasSubstr;

constexpr uint16_t kPort = 7000;
constexpr uint64_t kSeeds = 8;

sim::Network& network() { return sim::Network::of(get_running_loop()); }
absl::Duration now() { return get_running_loop().time() - absl::UnixEpoch(); }

// Links of 100 us to 2 ms each way, segments cut by the draws.
sim::Options wan(uint64_t seed) {
  sim::Options o;
  o.seed = seed;
  o.net_latency_min = absl::Microseconds(100);
  o.net_latency_max = absl::Milliseconds(2);
  return o;
}

// Every draw 0: 50 us links, one segment per write: exact times.
sim::Options exact() {
  sim::Options o;
  o.chooser = [](std::string_view, uint64_t) -> uint64_t { return 0; };
  return o;
}

void add_hosts(sim::Simulation& sim) {
  sim.network().add_host("server", "10.0.0.1");
  sim.network().add_host("client", "10.0.0.2");
}

// What an exception is, by its class and errno: "ConnectionResetError",
// "BrokenPipeError", "ETIMEDOUT", "IncompleteReadError(3 bytes)".
std::string kind_of(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const IncompleteReadError& x) {
    return absl::StrCat("IncompleteReadError(", x.partial().size(), " bytes)");
  } catch (const ConnectionResetError&) {
    return "ConnectionResetError";
  } catch (const ConnectionRefusedError&) {
    return "ConnectionRefusedError";
  } catch (const BrokenPipeError&) {
    return "BrokenPipeError";
  } catch (const std::system_error& x) {
    if (x.code().value() == ETIMEDOUT) return "ETIMEDOUT";
    return absl::StrCat("system_error ", x.code().value(), ": ", x.what());
  } catch (const TimeoutError&) {
    return "TimeoutError";
  } catch (const std::exception& x) {
    return absl::StrCat("exception: ", x.what());
  }
}

// What awaiting `c` ended with: "ok" or kind_of the exception.
Coro<std::string> outcome(Coro<void> c) {
  std::exception_ptr error;
  try {
    co_await std::move(c);
  } catch (...) {
    error = std::current_exception();
  }
  if (!error) co_return std::string("ok");
  co_return kind_of(error);
}

Coro<void> read_n(StreamReader reader, std::ptrdiff_t n, std::string* out) {
  *out = co_await reader.readexactly(n);
}
Coro<void> read_some(StreamReader reader, std::string* out) { *out = co_await reader.read(1 << 16); }
Coro<void> drain(StreamWriter writer) { co_await writer.drain(); }
Coro<void> wait_closed(StreamWriter writer) { co_await writer.wait_closed(); }
// Writes and drains until drain raises (or `chunks` chunks went through).
Coro<void> write_until_error(StreamWriter writer, int chunks) {
  for (int i = 0; i < chunks; ++i) {
    writer.write(std::string(16 * 1024, 'w'));
    co_await writer.drain();
  }
}

// A server on "server" whose handler hands the two streams to the test
// and waits.
// The handler lets go of the future once it set it: the server's protocol
// keeps the handler for the connection's life, and a future holding the
// writer that holds that protocol would be a cycle (api/streams.cc).
using ConnSlot = std::shared_ptr<std::optional<Future<std::pair<StreamReader, StreamWriter>>>>;
Coro<void> hand_over(ConnSlot slot, StreamReader r, StreamWriter w) {
  if (slot->has_value()) {
    Future<std::pair<StreamReader, StreamWriter>> conn = std::move(**slot);
    slot->reset();
    if (!conn.done()) conn.set_result(std::make_pair(r, w));
  }
  Event never("never");
  co_await never.wait();
}
Coro<Server> serve(Future<std::pair<StreamReader, StreamWriter>> conn) {
  auto slot = std::make_shared<std::optional<Future<std::pair<StreamReader, StreamWriter>>>>(std::move(conn));
  ClientConnected handler = [slot](StreamReader r, StreamWriter w) {
    return hand_over(slot, std::move(r), std::move(w));
  };
  Server s = co_await start_server(std::move(handler), "0.0.0.0", kPort);
  co_return s;
}

// Opens client -> server:kPort; both ends' streams.
struct Ends {
  StreamReader server_reader, client_reader;
  StreamWriter server_writer, client_writer;
  Server server;
};
Coro<std::pair<StreamReader, StreamWriter>> open_from_client() {
  std::pair<StreamReader, StreamWriter> c = co_await open_connection("10.0.0.1", kPort);
  co_return c;
}
Coro<Ends> connect_ends() {
  Future<std::pair<StreamReader, StreamWriter>> accepted =
      get_running_loop().create_future<std::pair<StreamReader, StreamWriter>>();
  Server server = co_await sim::spawn_on("server", serve(accepted));
  std::pair<StreamReader, StreamWriter> client = co_await sim::spawn_on("client", open_from_client());
  std::pair<StreamReader, StreamWriter> at_server = co_await accepted;
  co_return Ends{at_server.first, client.first, at_server.second, client.second, server};
}

std::string message(int i) { return absl::StrCat("message ", i, " ", std::string(static_cast<size_t>(100 * i), 'm'), ";"); }

// ---------------------------------------------------------------- held, then released

// The client writes while the link to the server is held (the first
// message already in flight when the hold starts): the server's readexactly
// gets every byte, in order, only after the release; the client's drain()
// returns at once (the bytes fit the buffers); reads the other way go on.
struct HeldOutcome {
  std::string got;
  absl::Duration got_at, released_at, reply_at;
  std::string drain, reply;
};
Coro<HeldOutcome> held_then_released() {
  HeldOutcome out;
  Ends e = co_await connect_ends();
  std::string all;
  e.client_writer.write(message(0));  // in flight when the hold starts
  all += message(0);
  network().hold("client", "server");
  for (int i = 1; i < 4; ++i) {
    e.client_writer.write(message(i));
    all += message(i);
  }
  out.drain = co_await outcome(drain(e.client_writer));
  // The other direction is not held.
  e.server_writer.write("still here");
  std::string reply;
  out.reply = co_await outcome(read_n(e.client_reader, 10, &reply));
  out.reply += ":" + reply;
  out.reply_at = now();
  co_await sleep(absl::Seconds(1));
  out.released_at = now();
  network().release("client", "server");
  std::string got;
  const std::string r = co_await outcome(read_n(e.server_reader, static_cast<std::ptrdiff_t>(all.size()), &got));
  EXPECT_EQ(r, "ok");
  out.got = got == all ? "all, in order" : absl::StrCat("wrong bytes: ", got.size(), " of ", all.size());
  out.got_at = now();
  e.client_writer.close();
  e.server.close();
  co_return out;
}

TEST(SimNetFaults, HeldBytesArriveAfterTheReleaseInOrder) {
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    sim::Simulation sim(wan(seed));
    add_hosts(sim);
    const HeldOutcome out = sim.run(held_then_released());
    EXPECT_EQ(out.got, "all, in order") << "seed " << seed;
    EXPECT_EQ(out.drain, "ok") << "seed " << seed;
    EXPECT_EQ(out.reply, "ok:still here") << "seed " << seed;
    EXPECT_LT(out.reply_at, out.released_at) << "seed " << seed;
    // Not before the release plus the link's least latency; at most its
    // greatest after (each held segment draws its latency again).
    EXPECT_GE(out.got_at, out.released_at + absl::Microseconds(100)) << "seed " << seed;
    EXPECT_LE(out.got_at, out.released_at + absl::Milliseconds(2)) << "seed " << seed;
  }
}

// The same across the harness's default seed sweep (failing seeds get a
// replay file and are shrunk).
const sim::Options kWan{.net_latency_min = absl::Microseconds(100), .net_latency_max = absl::Milliseconds(2)};
TWINLOOP_SIM_TEST_WITH_OPTIONS(SimNetFaultsSweep, HeldBytesArriveAfterTheReleaseInOrder, kWan) {
  network().add_host("server", "10.0.0.1");
  network().add_host("client", "10.0.0.2");
  const HeldOutcome out = co_await held_then_released();
  EXPECT_EQ(out.got, "all, in order");
  EXPECT_EQ(out.reply, "ok:still here");
  EXPECT_GE(out.got_at, out.released_at + absl::Microseconds(100));
  EXPECT_LE(out.got_at, out.released_at + absl::Milliseconds(2));
}

// A writer whose peer's link is held fills the buffers; its drain() waits
// for the release, and so does the reader at the other end, which gets
// every byte after it.
struct DrainOutcome {
  bool done_while_held = true;
  absl::Duration healed, read_all, drained;
  std::string read, wrote;
};
Coro<DrainOutcome> drain_waits_for_the_heal() {
  DrainOutcome out;
  Ends e = co_await connect_ends();
  network().partition({"client"}, {"server"});
  constexpr int kChunks = 32;  // 512 KiB
  Task<std::string> writer = create_task([](StreamWriter w, DrainOutcome* out) -> Coro<std::string> {
    std::string r = co_await outcome(write_until_error(w, kChunks));
    out->drained = now();
    co_return r;
  }(e.client_writer, &out));
  std::string got;
  Task<std::string> reader = create_task([](StreamReader r, std::string* got, DrainOutcome* out) -> Coro<std::string> {
    std::string result = co_await outcome(read_n(r, kChunks * 16 * 1024, got));
    out->read_all = now();
    co_return result;
  }(e.server_reader, &got, &out));
  co_await sleep(absl::Seconds(3));
  out.done_while_held = writer.done() || reader.done();
  out.healed = now();
  network().heal({"server"}, {"client"});
  out.wrote = co_await writer;
  out.read = co_await reader;
  if (got != std::string(kChunks * 16 * 1024, 'w')) out.read += " (wrong bytes)";
  e.client_writer.close();
  e.server.close();
  co_return out;
}

TEST(SimNetFaults, DrainAndTheReaderWaitWhileThePartitionHoldsTheBytes) {
  sim::Simulation sim(exact());
  add_hosts(sim);
  const DrainOutcome out = sim.run(drain_waits_for_the_heal());
  EXPECT_FALSE(out.done_while_held);
  EXPECT_EQ(out.wrote, "ok");
  EXPECT_EQ(out.read, "ok");
  EXPECT_EQ(out.healed, absl::Seconds(3) + absl::Microseconds(150));
  EXPECT_GT(out.read_all, out.healed);
  EXPECT_GT(out.drained, out.healed);
}

// ---------------------------------------------------------------- a partition that loses

// Bytes in flight when the partition starts are lost with it (turmoil#251):
// the server never reads them; both readers fail with ETIMEDOUT the
// retransmission timeout after the cut, the writer's drain too, even though
// the partition was healed meanwhile.
struct LostOutcome {
  std::string server_read, client_read, drain, wait_closed;
  absl::Duration server_at, client_at, cut_at;
};
Coro<LostOutcome> lost_in_a_partition() {
  LostOutcome out;
  network().set_retransmission_timeout(absl::Seconds(20));
  Ends e = co_await connect_ends();
  e.client_writer.write(message(5));  // in flight
  network().partition({"client"}, {"server"}, {.mode = sim::PartitionMode::kLose});
  Task<std::string> server_read = create_task([](StreamReader r, LostOutcome* out) -> Coro<std::string> {
    std::string got;
    std::string result = co_await outcome(read_n(r, 1, &got));
    out->server_at = now();
    co_return result;
  }(e.server_reader, &out));
  Task<std::string> client_read = create_task([](StreamReader r, LostOutcome* out) -> Coro<std::string> {
    std::string got;
    std::string result = co_await outcome(read_some(r, &got));
    out->client_at = now();
    co_return result;
  }(e.client_reader, &out));
  co_await sleep(absl::Seconds(1));
  network().heal_all();
  out.drain = co_await outcome(write_until_error(e.client_writer, 64));
  out.server_read = co_await server_read;
  out.client_read = co_await client_read;
  e.client_writer.close();
  out.wait_closed = co_await outcome(wait_closed(e.client_writer));
  e.server.close();
  co_return out;
}

TEST(SimNetFaults, ALosingPartitionLosesBytesInFlightAndBothEndsTimeOut) {
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    sim::Simulation sim(wan(seed));
    add_hosts(sim);
    const LostOutcome out = sim.run(lost_in_a_partition());
    EXPECT_EQ(out.server_read, "ETIMEDOUT") << "seed " << seed;
    EXPECT_EQ(out.client_read, "ETIMEDOUT") << "seed " << seed;
    EXPECT_EQ(out.drain, "ETIMEDOUT") << "seed " << seed;
    // asyncio: wait_closed() raises what the connection was lost with
    // (streams.py, StreamReaderProtocol.connection_lost sets the _closed
    // future's exception).
    EXPECT_EQ(out.wait_closed, "ETIMEDOUT") << "seed " << seed;
    // The message's first segment is cut within the link's latency range.
    EXPECT_GE(out.server_at, absl::Seconds(20)) << "seed " << seed;
    EXPECT_LE(out.server_at, absl::Seconds(20) + absl::Milliseconds(20)) << "seed " << seed;
    EXPECT_EQ(out.client_at, out.server_at) << "seed " << seed;
  }
}

// ---------------------------------------------------------------- reset

struct ResetOutcome {
  std::string server_read, client_read, client_drain, server_drain, wait_closed;
  absl::Duration at, reset_at;
};
Coro<ResetOutcome> reset_both_ends() {
  ResetOutcome out;
  Ends e = co_await connect_ends();
  e.client_writer.write("hello");
  std::string got;
  EXPECT_EQ(co_await outcome(read_n(e.server_reader, 5, &got)), "ok");
  Task<std::string> server_read = create_task(outcome(read_n(e.server_reader, 5, &got)));
  co_await sleep(absl::Milliseconds(3));
  out.reset_at = now();
  network().reset_connections("client", "server");
  out.server_read = co_await server_read;
  out.at = now();
  std::string nothing;
  out.client_read = co_await outcome(read_some(e.client_reader, &nothing));
  e.client_writer.write("more");
  out.client_drain = co_await outcome(drain(e.client_writer));
  e.server_writer.write("more");
  out.server_drain = co_await outcome(drain(e.server_writer));
  e.client_writer.close();
  out.wait_closed = co_await outcome(wait_closed(e.client_writer));
  e.server.close();
  co_return out;
}

TEST(SimNetFaults, AResetConnectionFailsReadsAndDrainsAtBothEnds) {
  sim::Simulation sim(exact());
  add_hosts(sim);
  const ResetOutcome out = sim.run(reset_both_ends());
  EXPECT_EQ(out.server_read, "ConnectionResetError");
  EXPECT_EQ(out.client_read, "ConnectionResetError");
  // asyncio's drain() after the connection was lost raises the reader's
  // exception (streams.py, StreamWriter.drain).
  EXPECT_EQ(out.client_drain, "ConnectionResetError");
  EXPECT_EQ(out.server_drain, "ConnectionResetError");
  EXPECT_EQ(out.wait_closed, "ConnectionResetError");  // as after an RST (streams.py)
  EXPECT_EQ(out.at, out.reset_at);  // at once, on the next loop iteration
}

// ---------------------------------------------------------------- a host down, then up

// The server's host goes down (its tasks would crash with it: the test
// leaves its handler waiting). The client, writing, hears nothing; once the
// host is up again its retransmissions are answered with an RST.
struct DownOutcome {
  std::string client_read, client_drain, reconnect, refused;
  absl::Duration read_failed_at, up_at;
};
Coro<DownOutcome> down_then_up() {
  DownOutcome out;
  Ends e = co_await connect_ends();
  network().host_down("server");
  e.client_writer.write(message(3));  // lost at the down host
  Task<std::string> client_read = create_task([](StreamReader r, DownOutcome* out) -> Coro<std::string> {
    std::string got;
    std::string result = co_await outcome(read_some(r, &got));
    out->read_failed_at = now();
    co_return result;
  }(e.client_reader, &out));
  co_await sleep(absl::Seconds(5));
  EXPECT_FALSE(client_read.done());
  out.up_at = now();
  network().host_up("server");
  out.client_read = co_await client_read;
  e.client_writer.write("again");
  out.client_drain = co_await outcome(drain(e.client_writer));
  e.client_writer.close();
  // Its listener vanished with the host: refused until a server listens again.
  out.refused = co_await outcome([]() -> Coro<void> {
    co_await sim::spawn_on("client", open_from_client());
  }());
  Future<std::pair<StreamReader, StreamWriter>> accepted =
      get_running_loop().create_future<std::pair<StreamReader, StreamWriter>>();
  Server again = co_await sim::spawn_on("server", serve(accepted));
  out.reconnect = co_await outcome([]() -> Coro<void> {
    std::pair<StreamReader, StreamWriter> c = co_await sim::spawn_on("client", open_from_client());
    c.second.close();
  }());
  again.close();
  co_return out;
}

TEST(SimNetFaults, AfterAHostCameBackItsPeerIsReset) {
  for (uint64_t seed = 1; seed <= kSeeds; ++seed) {
    sim::Simulation sim(wan(seed));
    add_hosts(sim);
    const DownOutcome out = sim.run(down_then_up());
    EXPECT_EQ(out.client_read, "ConnectionResetError") << "seed " << seed;
    EXPECT_EQ(out.client_drain, "ConnectionResetError") << "seed " << seed;
    EXPECT_EQ(out.refused, "ConnectionRefusedError") << "seed " << seed;
    EXPECT_EQ(out.reconnect, "ok") << "seed " << seed;
    // The RST crosses the link once the host is up.
    EXPECT_GE(out.read_failed_at, out.up_at + absl::Microseconds(100)) << "seed " << seed;
    EXPECT_LE(out.read_failed_at, out.up_at + absl::Milliseconds(2)) << "seed " << seed;
  }
}

// A client writing to a host that stays down gives up after the
// retransmission timeout: readexactly and drain raise ETIMEDOUT.
Coro<std::vector<std::string>> down_for_good() {
  network().set_retransmission_timeout(absl::Seconds(60));
  Ends e = co_await connect_ends();
  const absl::Duration t0 = now();
  network().host_down("server");
  e.client_writer.write("request");
  std::string got;
  std::vector<std::string> out;
  out.push_back(co_await outcome(read_n(e.client_reader, 4, &got)));
  out.push_back(absl::FormatDuration(now() - t0));
  e.client_writer.write("x");
  out.push_back(co_await outcome(drain(e.client_writer)));
  e.client_writer.close();
  co_return out;
}

TEST(SimNetFaults, APeerOfAHostThatStaysDownTimesOut) {
  sim::Simulation sim(exact());
  add_hosts(sim);
  const std::vector<std::string> out = sim.run(down_for_good());
  // The request is lost 50 us after it is sent: ETIMEDOUT 60 s later.
  EXPECT_THAT(out, ::testing::ElementsAre("ETIMEDOUT", "1m0.00005s", "ETIMEDOUT"));
}

// A client that only reads never learns that the host went down (TCP
// without keepalive): its read needs a timeout of its own.
Coro<std::string> only_reading() {
  Ends e = co_await connect_ends();
  network().host_down("server");
  std::string got;
  std::string r = co_await outcome([](StreamReader reader, std::string* got) -> Coro<void> {
    *got = co_await wait_for(reader.read(100), absl::Seconds(300));
  }(e.client_reader, &got));
  e.client_writer.close();
  co_return r;
}

TEST(SimNetFaults, AReaderOfADownHostWaitsUntilItsOwnTimeout) {
  sim::Simulation sim(exact());
  add_hosts(sim);
  EXPECT_EQ(sim.run(only_reading()), "TimeoutError");  // its own, not a network error
}

// ---------------------------------------------------------------- replay files

// A recorded run with faults goes through a replay file (its events include
// the faults') and replays to the same hash.
TEST(SimNetFaults, ARunWithFaultsRoundTripsThroughAReplayFile) {
  sim::Options o = wan(3);
  o.record = true;
  sim::Simulation recorded(o);
  add_hosts(recorded);
  const HeldOutcome first = recorded.run(held_then_released());
  const std::string text = sim::format_recording(recorded.recording());
  EXPECT_THAT(text, HasSubstr(" fault "));
  const sim::Recording parsed = sim::parse_recording(text);
  ASSERT_EQ(parsed.events.size(), recorded.recording().events.size());
  int faults = 0;
  for (const sim::EventRecord& e : parsed.events) faults += e.kind == internal::EventKind::kFault;
  EXPECT_EQ(faults, 2);  // hold, release

  sim::Options replay = sim::options_for_replay(parsed);
  replay.replay = std::make_shared<sim::Recording>(parsed);
  sim::Simulation again(replay);
  add_hosts(again);
  const HeldOutcome second = again.run(held_then_released());
  EXPECT_EQ(second.got_at, first.got_at);
  EXPECT_EQ(again.event_hash(), recorded.event_hash());
  EXPECT_FALSE(again.divergence().has_value());
}

}  // namespace
}  // namespace twinloop::simnet
