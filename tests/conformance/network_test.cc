// Cross-loop conformance: asyncio's streams, transports, protocols and
// servers over a network: TCP on loopback and Unix sockets on the real loop,
// the simulated network on the simulated loop (one implicit host,
// "localhost", with 127.0.0.1). CPython 3.14 is the spec
// (Lib/test/test_asyncio/test_streams.py, test_server.py,
// test_selector_events.py, test_sock_lowlevel.py); each case names what it
// mirrors.
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <any>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/tests/conformance/loop_fixture.h"

namespace twinloop::conformance {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

constexpr char kLocal[] = "127.0.0.1";

uint16_t port_of(const Server& server) { return server.sockets().at(0).port; }

// A Unix socket path unique to this process and case, in /tmp: Bazel's
// TEST_TMPDIR is longer than a Unix socket path may be (108 bytes).
std::string unix_path(const std::string& name) { return absl::StrCat("/tmp/twl-", getpid(), "-", name, ".sock"); }

// Echoes every line back, then closes at EOF.
Coro<void> echo_lines(StreamReader reader, StreamWriter writer) {
  while (true) {
    std::string line = co_await reader.readline();
    if (line.empty()) break;
    writer.write(line);
    co_await writer.drain();
  }
  writer.close();
  co_await writer.wait_closed();
}

class NetworkConformance : public LoopTest {};

// test_streams: test_open_connection: a round trip through an echo server.
TEST_P(NetworkConformance, OpenConnectionEchoesALine) {
  const std::string got = run([]() -> Coro<std::string> {
    Server server = co_await start_server(echo_lines, kLocal, 0);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    writer.write("hello\n");
    co_await writer.drain();
    std::string line = co_await reader.readline();
    writer.close();
    co_await writer.wait_closed();
    server.close();
    co_await server.wait_closed();
    co_return line;
  }());
  EXPECT_EQ(got, "hello\n");
}

// Port 0 picks a free port; Server.sockets names it; several requests.
TEST_P(NetworkConformance, PortZeroPicksAPortAndManyRequestsFlow) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(echo_lines, kLocal, 0);
    EXPECT_EQ(server.sockets().size(), 1u);
    EXPECT_NE(port_of(server), 0);
    EXPECT_TRUE(server.is_serving());
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    for (int i = 0; i < 20; ++i) {
      writer.write(absl::StrCat("request ", i, "\n"));
      EXPECT_EQ(co_await reader.readline(), absl::StrCat("request ", i, "\n"));
    }
    writer.close();
    server.close();
    co_await server.wait_closed();
    EXPECT_FALSE(server.is_serving());
    EXPECT_TRUE(server.sockets().empty());
  }());
}

// Several clients at once, each served by its own handler task.
TEST_P(NetworkConformance, SeveralClientsAreServedConcurrently) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(echo_lines, kLocal, 0);
    const uint16_t port = port_of(server);
    std::vector<Task<std::string>> clients;
    for (int i = 0; i < 8; ++i) {
      clients.push_back(create_task([](uint16_t port, int i) -> Coro<std::string> {
        auto [reader, writer] = co_await open_connection(kLocal, port);
        writer.write(absl::StrCat("client ", i, "\n"));
        std::string line = co_await reader.readline();
        writer.close();
        co_await writer.wait_closed();
        co_return line;
      }(port, i)));
    }
    for (int i = 0; i < 8; ++i) EXPECT_EQ(co_await clients[i], absl::StrCat("client ", i, "\n"));
    server.close();
    co_await server.wait_closed();
  }());
}

// The server closing its side: the client reads what was sent, then EOF.
TEST_P(NetworkConformance, PeerCloseReadsTheDataThenEof) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(
        [](StreamReader, StreamWriter w) -> Coro<void> {
          w.write("bye");
          w.close();
          co_await w.wait_closed();
        },
        kLocal, 0);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    EXPECT_EQ(co_await reader.read(-1), "bye");
    EXPECT_TRUE(reader.at_eof());
    EXPECT_EQ(co_await reader.read(10), "");
    writer.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// test_readexactly at EOF over a connection: IncompleteReadError.
TEST_P(NetworkConformance, ReadexactlyPastTheEndRaisesIncompleteRead) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(
        [](StreamReader, StreamWriter w) -> Coro<void> {
          w.write("12345");
          w.close();
          co_return;
        },
        kLocal, 0);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    bool raised = false;
    try {
      co_await reader.readexactly(10);
    } catch (const IncompleteReadError& e) {
      raised = true;
      EXPECT_EQ(e.partial(), "12345");
      EXPECT_EQ(e.expected(), 10u);
    }
    EXPECT_TRUE(raised);
    writer.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// A message split across several reads: readexactly / readuntil reassemble it.
TEST_P(NetworkConformance, ReaduntilReassemblesAcrossSegments) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(
        [](StreamReader, StreamWriter w) -> Coro<void> {
          w.write("par");
          co_await sleep(absl::Milliseconds(2));
          w.write("t one\r\npart ");
          co_await sleep(absl::Milliseconds(2));
          w.write("two\n");
          w.close();
        },
        kLocal, 0);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    const std::vector<std::string> separators = {"\n", "\r\n"};
    EXPECT_EQ(co_await reader.readuntil(separators), "part one\r\n");
    EXPECT_EQ(co_await reader.readuntil(), "part two\n");
    writer.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// A line longer than the reader's limit: readline raises ValueError.
TEST_P(NetworkConformance, ALineOverTheLimitIsAValueError) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(
        [](StreamReader, StreamWriter w) -> Coro<void> {
          w.write(std::string(100, 'x') + "\nshort\n");
          co_await w.drain();
        },
        kLocal, 0);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server), StreamOptions{.limit = 16});
    EXPECT_EQ(reader.limit(), 16u);
    bool value_error = false;
    try {
      co_await reader.readline();
    } catch (const std::invalid_argument&) {
      value_error = true;
    }
    EXPECT_TRUE(value_error);
    writer.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// test_open_connection_no_loop_ssl-less: nothing listens: refused.
TEST_P(NetworkConformance, NothingListeningIsConnectionRefused) {
  run([]() -> Coro<void> {
    // A port that was just free: open and close a server to learn one.
    Server probe = co_await start_server(echo_lines, kLocal, 0);
    const uint16_t port = port_of(probe);
    probe.close();
    co_await probe.wait_closed();
    bool refused = false;
    try {
      co_await open_connection(kLocal, port);
    } catch (const ConnectionRefusedError& e) {
      refused = true;
      EXPECT_EQ(e.code().value(), ECONNREFUSED);
    }
    EXPECT_TRUE(refused);
  }());
}

// A peer that resets: the reader raises ConnectionResetError.
TEST_P(NetworkConformance, APeerResetIsConnectionResetOnRead) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(
        [](StreamReader r, StreamWriter w) -> Coro<void> {
          co_await r.readline();
          w.transport()->reset();
        },
        kLocal, 0);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    writer.write("go\n");
    bool reset = false;
    try {
      co_await reader.read(100);
      co_await reader.read(100);  // the reset may follow an EOF-less read
    } catch (const ConnectionResetError&) {
      reset = true;
    }
    EXPECT_TRUE(reset);
    writer.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// test_drain_raises (gh-): drain after the peer closed raises once the
// connection is lost.
TEST_P(NetworkConformance, DrainAfterTheConnectionIsLostRaises) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(
        [](StreamReader, StreamWriter w) -> Coro<void> {
          w.transport()->reset();
          co_return;
        },
        kLocal, 0);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    bool raised = false;
    for (int i = 0; i < 100 && !raised; ++i) {
      try {
        writer.write("data\n");
        co_await writer.drain();
        co_await sleep(absl::Milliseconds(1));
      } catch (const ConnectionResetError&) {
        raised = true;
      } catch (const std::system_error&) {
        raised = true;  // BrokenPipeError, on some kernels
      }
    }
    EXPECT_TRUE(raised);
    server.close();
    co_await server.wait_closed();
  }());
}

// After close(), drain raises ConnectionResetError("Connection lost").
TEST_P(NetworkConformance, DrainAfterCloseRaisesConnectionLost) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(echo_lines, kLocal, 0);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    writer.close();
    EXPECT_TRUE(writer.is_closing());
    bool raised = false;
    try {
      co_await writer.drain();
    } catch (const ConnectionResetError& e) {
      raised = true;
      EXPECT_THAT(e.what(), HasSubstr("Connection lost"));
    }
    EXPECT_TRUE(raised);
    server.close();
    co_await server.wait_closed();
  }());
}

// Flow control: a peer that does not read makes drain() wait; several
// drains may wait at once (gh-74116), and all resume when the peer reads.
TEST_P(NetworkConformance, ConcurrentDrainsWaitForThePeerToRead) {
  run([]() -> Coro<void> {
    auto release = std::make_shared<Future<void>>(create_future<void>());
    // Named: g++ 12 miscompiles a lambda temporary with captures inside a
    // co_await (docs/design.md, "Compilers").
    auto handler = [release](StreamReader r, StreamWriter w) -> Coro<void> {
      co_await *release;
      co_await r.read(-1);
      w.close();
    };
    Server server = co_await start_server(handler, kLocal, 0);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    writer.transport()->set_write_buffer_limits(1024);
    const std::string chunk(64 * 1024, 'z');
    // Fill everything: the kernel's (or the simulated link's) buffers, then
    // the transport's, well past its high-water mark and past what the
    // peer's reader reads ahead (2 * limit) once the link has room again.
    for (int i = 0; i < 400 && writer.transport()->get_write_buffer_size() <= 512 * 1024; ++i) {
      writer.write(chunk);
      if (i % 8 == 7) co_await sleep(absl::Milliseconds(1));  // let the peer read ahead
    }
    EXPECT_GT(writer.transport()->get_write_buffer_size(), 512u * 1024);
    Task<void> d1 = create_task(writer.drain());
    Task<void> d2 = create_task(writer.drain());
    co_await sleep(absl::Milliseconds(5));
    EXPECT_FALSE(d1.done());
    EXPECT_FALSE(d2.done());
    release->set_result();
    co_await d1;
    co_await d2;
    writer.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// test_server: wait_closed returns only when the server is closed and its
// connections are gone, in either order (3.12.1 semantics).
TEST_P(NetworkConformance, WaitClosedWaitsForTheClients) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(echo_lines, kLocal, 0);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    writer.write("x\n");
    co_await reader.readline();
    EXPECT_EQ(server.active_connections(), 1u);
    Task<void> waiting = create_task(server.wait_closed());
    co_await sleep(absl::Milliseconds(2));
    EXPECT_FALSE(waiting.done()) << "not closed yet";
    server.close();
    co_await sleep(absl::Milliseconds(2));
    EXPECT_FALSE(waiting.done()) << "closed, but a client is still connected";
    writer.close();
    co_await writer.wait_closed();
    co_await waiting;
    EXPECT_EQ(server.active_connections(), 0u);
    // Once woken, wait_closed returns at once.
    co_await server.wait_closed();
  }());
}

// close_clients / abort_clients (3.13).
TEST_P(NetworkConformance, CloseClientsAndAbortClients) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(echo_lines, kLocal, 0);
    auto [r1, w1] = co_await open_connection(kLocal, port_of(server));
    auto [r2, w2] = co_await open_connection(kLocal, port_of(server));
    w1.write("a\n");
    w2.write("b\n");
    co_await r1.readline();
    co_await r2.readline();
    server.close();
    server.close_clients();
    EXPECT_EQ(co_await r1.read(-1), "");
    EXPECT_EQ(co_await r2.read(-1), "");
    co_await server.wait_closed();
    Server second = co_await start_server(echo_lines, kLocal, 0);
    auto [r3, w3] = co_await open_connection(kLocal, port_of(second));
    w3.write("c\n");
    co_await r3.readline();
    second.close();
    second.abort_clients();
    co_await second.wait_closed();
    EXPECT_EQ(second.active_connections(), 0u);
  }());
}

// A handler that fails: the exception handler gets "Unhandled exception in
// client_connected_cb", the connection closes, the server keeps serving.
TEST_P(NetworkConformance, AFailingHandlerIsReportedAndTheServerKeepsServing) {
  Reports reports;
  run([&]() -> Coro<void> {
    reports.install();
    Server server = co_await start_server(
        [](StreamReader r, StreamWriter w) -> Coro<void> {
          std::string line = co_await r.readline();
          if (line == "fail\n") throw std::runtime_error("handler failed");
          w.write(line);
          co_await w.drain();
        },
        kLocal, 0);
    auto [r1, w1] = co_await open_connection(kLocal, port_of(server));
    w1.write("fail\n");
    EXPECT_EQ(co_await r1.read(-1), "");  // closed by the server
    auto [r2, w2] = co_await open_connection(kLocal, port_of(server));
    w2.write("ok\n");
    EXPECT_EQ(co_await r2.readline(), "ok\n");
    w1.close();
    w2.close();
    server.close();
    co_await server.wait_closed();
  }());
  EXPECT_EQ(reports.count_starting_with("Unhandled exception in client_connected_cb"), 1u);
}

// A handler that is cancelled closes its connection silently
// (test_unhandled_cancel).
TEST_P(NetworkConformance, ACancelledHandlerClosesItsConnectionSilently) {
  Reports reports;
  run([&]() -> Coro<void> {
    reports.install();
    Server server = co_await start_server(
        [](StreamReader, StreamWriter) -> Coro<void> {
          current_task()->cancel();
          co_await sleep(absl::Milliseconds(1));
        },
        kLocal, 0);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    EXPECT_EQ(co_await reader.read(-1), "");
    writer.close();
    server.close();
    co_await server.wait_closed();
  }());
  EXPECT_TRUE(reports.contexts.empty());
}

// write_eof: a half-closed connection; the server reads EOF and still writes.
TEST_P(NetworkConformance, WriteEofHalfClosesTheConnection) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(
        [](StreamReader r, StreamWriter w) -> Coro<void> {
          std::string all = co_await r.read(-1);
          w.write(absl::StrCat("got ", all.size(), " bytes"));
          w.close();
        },
        kLocal, 0);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    EXPECT_TRUE(writer.can_write_eof());
    writer.write("0123456789");
    writer.write_eof();
    EXPECT_THROW(writer.write("late"), std::runtime_error);
    EXPECT_EQ(co_await reader.read(-1), "got 10 bytes");
    writer.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// get_extra_info: peername and sockname, mirrored on the two sides.
TEST_P(NetworkConformance, ExtraInfoNamesBothEnds) {
  run([]() -> Coro<void> {
    auto server_side = std::make_shared<std::pair<SocketAddress, SocketAddress>>();
    // Named: g++ 12 miscompiles a lambda temporary with captures inside a
    // co_await (docs/design.md, "Compilers").
    auto handler = [server_side](StreamReader r, StreamWriter w) -> Coro<void> {
      server_side->first = std::any_cast<SocketAddress>(w.get_extra_info("sockname"));
      server_side->second = std::any_cast<SocketAddress>(w.get_extra_info("peername"));
      co_await r.read(-1);
      w.close();
    };
    Server server = co_await start_server(handler, kLocal, 0);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    co_await sleep(absl::Milliseconds(2));
    const auto peer = std::any_cast<SocketAddress>(writer.get_extra_info("peername"));
    const auto local = std::any_cast<SocketAddress>(writer.get_extra_info("sockname"));
    EXPECT_EQ(peer.host, kLocal);
    EXPECT_EQ(peer.port, port_of(server));
    EXPECT_EQ(server_side->first, peer);
    EXPECT_EQ(server_side->second, local);
    EXPECT_FALSE(writer.get_extra_info("no such key").has_value());
    EXPECT_EQ(std::any_cast<int>(writer.get_extra_info("no such key", 7)), 7);
    writer.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// serve_forever: cancelling it closes the server; a second one raises.
TEST_P(NetworkConformance, ServeForeverRunsUntilCancelled) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(echo_lines, kLocal, 0, StreamOptions{}, ServerOptions{.start_serving = false});
    EXPECT_FALSE(server.is_serving());
    Task<void> forever = create_task(server.serve_forever());
    co_await sleep(absl::Milliseconds(1));
    EXPECT_TRUE(server.is_serving());
    bool second_raised = false;
    try {
      co_await server.serve_forever();
    } catch (const std::runtime_error&) {
      second_raised = true;
    }
    EXPECT_TRUE(second_raised);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    writer.write("ping\n");
    EXPECT_EQ(co_await reader.readline(), "ping\n");
    writer.close();
    forever.cancel();
    bool cancelled = false;
    try {
      co_await forever;
    } catch (const CancelledError&) {
      cancelled = true;
    }
    EXPECT_TRUE(cancelled);
    EXPECT_FALSE(server.is_serving());
    bool closed_raised = false;
    try {
      co_await server.serve_forever();
    } catch (const std::runtime_error&) {
      closed_raised = true;
    }
    EXPECT_TRUE(closed_raised);
  }());
}

// Unix sockets: start_unix_server / open_unix_connection.
TEST_P(NetworkConformance, UnixSocketsCarryStreams) {
  const std::string path = unix_path(absl::StrCat("echo-", GetParam().seed, on_real_loop() ? "r" : "s"));
  run([&]() -> Coro<void> {
    Server server = co_await start_unix_server(echo_lines, path);
    EXPECT_EQ(server.sockets().size(), 1u);
    EXPECT_EQ(server.sockets()[0].path, path);
    auto [reader, writer] = co_await open_unix_connection(path);
    writer.write("over a unix socket\n");
    EXPECT_EQ(co_await reader.readline(), "over a unix socket\n");
    writer.close();
    server.close();
    co_await server.wait_closed();
  }());
}

TEST_P(NetworkConformance, UnixConnectionToNoServerFails) {
  const std::string path = unix_path("nobody-listens");
  run([&]() -> Coro<void> {
    bool failed = false;
    try {
      co_await open_unix_connection(path);
    } catch (const std::system_error& e) {
      failed = e.code().value() == ENOENT || e.code().value() == ECONNREFUSED;
    }
    EXPECT_TRUE(failed);
  }());
}

// ---------------------------------------------------------------- protocols

// Records a protocol's callbacks.
class Recorder : public Protocol {
 public:
  explicit Recorder(std::vector<std::string>* log) : log_(log) {}
  void connection_made(std::shared_ptr<Transport> t) override {
    transport = t;
    log_->push_back("made");
  }
  void data_received(std::string_view data) override {
    received += data;
    log_->push_back("data");
  }
  bool eof_received() override {
    log_->push_back("eof");
    return keep_open;
  }
  void connection_lost(std::exception_ptr e) override {
    log_->push_back(e ? "lost(error)" : "lost");
    transport.reset();
    lost.set_result();
  }
  void pause_writing() override { log_->push_back("pause"); }
  void resume_writing() override { log_->push_back("resume"); }

  std::shared_ptr<Transport> transport;
  std::string received;
  bool keep_open = false;
  Future<void> lost = create_future<void>();

 private:
  std::vector<std::string>* log_;
};

// selector_events: connection_made first, then data, eof, connection_lost.
TEST_P(NetworkConformance, ProtocolCallbacksComeInAsyncioOrder) {
  std::vector<std::string> client_log;
  std::vector<std::string> server_log;
  run([&]() -> Coro<void> {
    std::shared_ptr<Recorder> server_protocol;
    Server server = co_await create_server(
        [&] {
          server_protocol = std::make_shared<Recorder>(&server_log);
          server_protocol->keep_open = true;  // answer after the client's EOF
          return server_protocol;
        },
        kLocal, 0);
    auto [transport, protocol] = co_await create_connection(
        [&] { return std::make_shared<Recorder>(&client_log); }, kLocal, port_of(server));
    EXPECT_THAT(client_log, ElementsAre("made")) << "create_connection returns after connection_made";
    transport->write("hello");
    transport->write_eof();
    co_await sleep(absl::Milliseconds(5));
    EXPECT_TRUE(server_protocol && server_protocol->transport);
    if (!server_protocol || !server_protocol->transport) co_return;
    EXPECT_EQ(server_protocol->received, "hello");
    server_protocol->transport->write("bye");
    server_protocol->transport->close();
    co_await protocol->lost;
    co_await server_protocol->lost;
    server.close();
    co_await server.wait_closed();
  }());
  // One data_received per segment that arrived ("bye" may come in pieces).
  client_log.erase(std::unique(client_log.begin(), client_log.end()), client_log.end());
  EXPECT_THAT(client_log, ElementsAre("made", "data", "eof", "lost"));
  EXPECT_EQ(server_log.front(), "made");
  EXPECT_EQ(server_log.back(), "lost");
  EXPECT_THAT(server_log, ::testing::Contains("eof"));
}

// eof_received returning true keeps the transport open for writing.
TEST_P(NetworkConformance, EofReceivedTrueKeepsTheTransportOpen) {
  std::vector<std::string> log;
  run([&]() -> Coro<void> {
    Server server = co_await start_server(
        [](StreamReader r, StreamWriter w) -> Coro<void> {
          co_await r.readexactly(2);
          w.write_eof();
          std::string after = co_await r.read(-1);
          EXPECT_EQ(after, "still writing");
          w.close();
        },
        kLocal, 0);
    auto [transport, protocol] = co_await create_connection(
        [&] {
          auto p = std::make_shared<Recorder>(&log);
          p->keep_open = true;
          return p;
        },
        kLocal, port_of(server));
    transport->write("hi");
    co_await sleep(absl::Milliseconds(5));
    EXPECT_FALSE(transport->is_closing());
    transport->write("still writing");
    // Both sides ended their writes; nothing reads any more: the transport
    // stays open until it is closed (asyncio's too).
    transport->write_eof();
    co_await sleep(absl::Milliseconds(5));
    EXPECT_FALSE(transport->is_closing());
    transport->close();
    co_await protocol->lost;
    server.close();
    co_await server.wait_closed();
  }());
  EXPECT_THAT(log, ElementsAre("made", "eof", "lost"));
}

// Flow control (transports.py FlowControlMixin): pause_writing above the
// high-water mark, resume_writing at the low-water mark.
TEST_P(NetworkConformance, WriteBufferLimitsPauseAndResumeWriting) {
  std::vector<std::string> log;
  run([&]() -> Coro<void> {
    auto release = std::make_shared<Future<void>>(create_future<void>());
    // Named: g++ 12 miscompiles a lambda temporary with captures inside a
    // co_await (docs/design.md, "Compilers").
    auto handler = [release](StreamReader r, StreamWriter w) -> Coro<void> {
      co_await *release;
      co_await r.read(-1);
      w.close();
    };
    Server server = co_await start_server(handler, kLocal, 0);
    auto [transport, protocol] = co_await create_connection(
        [&] { return std::make_shared<Recorder>(&log); }, kLocal, port_of(server));
    EXPECT_EQ(transport->get_write_buffer_limits(), (std::pair<size_t, size_t>(16 * 1024, 64 * 1024)));
    transport->set_write_buffer_limits(4096, 1024);
    EXPECT_EQ(transport->get_write_buffer_limits(), (std::pair<size_t, size_t>(1024, 4096)));
    EXPECT_THROW(transport->set_write_buffer_limits(10, 20), std::invalid_argument);
    const std::string chunk(64 * 1024, 'q');
    for (int i = 0; i < 200 && transport->get_write_buffer_size() <= 4096; ++i) transport->write(chunk);
    EXPECT_THAT(log, ::testing::Contains("pause"));
    release->set_result();
    while (transport->get_write_buffer_size() > 0) co_await sleep(absl::Milliseconds(1));
    co_await sleep(absl::Milliseconds(1));
    EXPECT_THAT(log, ::testing::Contains("resume"));
    transport->close();
    co_await protocol->lost;
    server.close();
    co_await server.wait_closed();
  }());
  EXPECT_EQ(std::count(log.begin(), log.end(), "pause"), std::count(log.begin(), log.end(), "resume"));
}

// pause_reading stops data_received until resume_reading.
TEST_P(NetworkConformance, PauseReadingHoldsDataUntilResumed) {
  std::vector<std::string> log;
  run([&]() -> Coro<void> {
    Server server = co_await start_server(
        [](StreamReader r, StreamWriter w) -> Coro<void> {
          w.write("first");
          co_await w.drain();
          co_await r.readexactly(1);  // "go"
          w.write("second");
          co_await w.drain();
          co_await r.read(-1);
          w.close();
        },
        kLocal, 0);
    auto [transport, protocol] = co_await create_connection(
        [&] { return std::make_shared<Recorder>(&log); }, kLocal, port_of(server));
    while (protocol->received.empty()) co_await sleep(absl::Milliseconds(1));
    EXPECT_EQ(protocol->received, "first");
    EXPECT_TRUE(transport->is_reading());
    transport->pause_reading();
    transport->pause_reading();  // idempotent
    EXPECT_FALSE(transport->is_reading());
    transport->write("g");
    co_await sleep(absl::Milliseconds(10));
    EXPECT_EQ(protocol->received, "first") << "nothing is delivered while paused";
    transport->resume_reading();
    while (protocol->received.size() < 11) co_await sleep(absl::Milliseconds(1));
    EXPECT_EQ(protocol->received, "firstsecond");
    transport->close();
    co_await protocol->lost;
    server.close();
    co_await server.wait_closed();
  }());
}

// abort() drops the write buffer; close() sends it first.
TEST_P(NetworkConformance, CloseFlushesAndAbortDrops) {
  run([]() -> Coro<void> {
    auto got = std::make_shared<std::string>();
    auto release = std::make_shared<Future<void>>(create_future<void>());
    // Named: g++ 12 miscompiles a lambda temporary with captures inside a
    // co_await (docs/design.md, "Compilers").
    auto handler = [got, release](StreamReader r, StreamWriter w) -> Coro<void> {
      co_await *release;
      *got = co_await r.read(-1);
      w.close();
    };
    Server server = co_await start_server(handler, kLocal, 0);
    std::vector<std::string> log;
    auto [transport, protocol] = co_await create_connection(
        [&] { return std::make_shared<Recorder>(&log); }, kLocal, port_of(server));
    const std::string big(256 * 1024, 'b');
    transport->write(big);
    transport->close();  // sends the buffered rest before connection_lost
    EXPECT_TRUE(transport->is_closing());
    release->set_result();
    co_await protocol->lost;
    while (got->size() < big.size()) co_await sleep(absl::Milliseconds(1));
    EXPECT_EQ(*got, big);
    server.close();
    co_await server.wait_closed();
  }());
}

// BufferedProtocol: the transport reads into the protocol's own buffer.
class Collect : public BufferedProtocol {
 public:
  std::span<char> get_buffer(size_t) override { return std::span<char>(buf_, sizeof buf_); }
  void buffer_updated(size_t n) override {
    data.append(buf_, n);
    ++updates;
  }
  bool eof_received() override {
    eof = true;
    return false;
  }
  void connection_lost(std::exception_ptr) override { lost.set_result(); }
  std::string data;
  int updates = 0;
  bool eof = false;
  Future<void> lost = create_future<void>();

 private:
  char buf_[7];
};

TEST_P(NetworkConformance, BufferedProtocolReadsIntoItsOwnBuffer) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(
        [](StreamReader, StreamWriter w) -> Coro<void> {
          w.write("0123456789abcdefghij");
          w.close();
          co_return;
        },
        kLocal, 0);
    auto [transport, protocol] = co_await create_connection([] { return std::make_shared<Collect>(); }, kLocal,
                                                            port_of(server));
    co_await protocol->lost;
    EXPECT_EQ(protocol->data, "0123456789abcdefghij");
    EXPECT_GE(protocol->updates, 3) << "at most 7 bytes per read";
    EXPECT_TRUE(protocol->eof);
    server.close();
    co_await server.wait_closed();
  }());
}

// A protocol whose data_received raises: reported, and the transport closes.
TEST_P(NetworkConformance, AProtocolErrorIsFatalToItsTransport) {
  Reports reports;
  run([&]() -> Coro<void> {
    reports.install();
    Server server = co_await start_server(
        [](StreamReader, StreamWriter w) -> Coro<void> {
          w.write("boom");
          co_await w.drain();
        },
        kLocal, 0);
    struct Raiser : Protocol {
      void data_received(std::string_view) override { throw std::runtime_error("protocol bug"); }
      void connection_lost(std::exception_ptr e) override {
        error = e;
        lost.set_result();
      }
      std::exception_ptr error;
      Future<void> lost = create_future<void>();
    };
    auto [transport, protocol] = co_await create_connection([] { return std::make_shared<Raiser>(); }, kLocal,
                                                            port_of(server));
    co_await protocol->lost;
    EXPECT_TRUE(protocol->error) << "connection_lost gets the error";
    EXPECT_TRUE(transport->is_closing());
    server.close();
    co_await server.wait_closed();
  }());
  EXPECT_EQ(reports.count_starting_with("Fatal error: protocol.data_received() call failed."), 1u);
}

// Writes after the connection is lost are dropped, not raised.
TEST_P(NetworkConformance, WritesAfterTheConnectionIsLostAreDropped) {
  std::vector<std::string> log;
  run([&]() -> Coro<void> {
    Server server = co_await start_server(echo_lines, kLocal, 0);
    auto [transport, protocol] = co_await create_connection(
        [&] { return std::make_shared<Recorder>(&log); }, kLocal, port_of(server));
    transport->abort();
    co_await protocol->lost;
    transport->write("nobody hears this");
    EXPECT_EQ(transport->get_write_buffer_size(), 0u);
    server.close();
    co_await server.wait_closed();
  }());
  EXPECT_THAT(log, ElementsAre("made", "lost"));
}

// getaddrinfo: numeric addresses and localhost resolve; unknown names fail.
TEST_P(NetworkConformance, GetaddrinfoResolvesAndFailsClearly) {
  run([]() -> Coro<void> {
    std::vector<SocketAddress> a = co_await getaddrinfo("127.0.0.1", 80);
    EXPECT_FALSE(a.empty());
    if (a.empty()) co_return;
    EXPECT_EQ(a[0].host, "127.0.0.1");
    EXPECT_EQ(a[0].port, 80);
    std::vector<SocketAddress> l = co_await getaddrinfo("localhost", 8080);
    EXPECT_FALSE(l.empty());
    if (l.empty()) co_return;
    EXPECT_EQ(l[0].port, 8080);
    // socket.gaierror: an OSError whose errno is getaddrinfo's EAI_* value.
    std::error_code code;
    std::string what;
    try {
      co_await getaddrinfo("no-such-host.invalid", 80);
    } catch (const std::system_error& e) {
      code = e.code();
      what = e.what();
    }
    EXPECT_EQ(&code.category(), &resolver_category()) << what;
    EXPECT_THAT(what, HasSubstr("cannot resolve 'no-such-host.invalid'"));
  }());
}

// A read loop over a connection whose writer sends many small messages:
// nothing is lost or duplicated, whatever the segment boundaries.
TEST_P(NetworkConformance, ManyWritesArriveInOrderWhateverTheSegments) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(
        [](StreamReader, StreamWriter w) -> Coro<void> {
          for (int i = 0; i < 500; ++i) w.write(absl::StrCat(i, ","));
          co_await w.drain();
          w.close();
        },
        kLocal, 0);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    std::string expected;
    for (int i = 0; i < 500; ++i) expected += absl::StrCat(i, ",");
    EXPECT_EQ(co_await reader.read(-1), expected);
    writer.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// Open file descriptors of this process (/proc/self/fd, less the one
// reading it).
int open_fds() {
  int n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n - 1;
}

// asyncio: a transport or a server dropped open warns "unclosed ..."
// (ResourceWarning: selector_events.py _SelectorTransport.__del__,
// base_events.py Server) and its socket closes when it is collected. Here a
// loop closing with them open reports them in debug mode and closes them:
// their descriptors close, and neither they nor their protocols (which hold
// their transports: a cycle) stay alive. A task still holding a StreamWriter
// is destroyed with the loop, after its connection was closed.
TEST_P(NetworkConformance, ALoopClosingWithServersAndConnectionsOpenClosesThem) {
  std::vector<std::string> log;
  std::weak_ptr<Recorder> client;
  std::weak_ptr<Recorder> accepted;
  std::vector<std::string> reports;
  const int fds_before = open_fds();
  {
    EventLoopRef loop = new_loop();
    loop->set_debug(true);
    loop->set_exception_handler([&](EventLoop&, const ExceptionContext& c) { reports.push_back(c.message); });
    loop->run_until_complete([](std::vector<std::string>* log, std::weak_ptr<Recorder>* client,
                                std::weak_ptr<Recorder>* accepted) -> Coro<void> {
      Server server = co_await create_server(
          [log, accepted] {
            auto p = std::make_shared<Recorder>(log);
            *accepted = p;
            return p;
          },
          kLocal, 0);
      auto [transport, protocol] =
          co_await create_connection([log] { return std::make_shared<Recorder>(log); }, kLocal, port_of(server));
      *client = protocol;
      transport->write("never read");
      Server streams = co_await start_server(echo_lines, kLocal, 0);
      auto [reader, writer] = co_await open_connection(kLocal, port_of(streams));
      create_task([]([[maybe_unused]] StreamWriter held) -> Coro<void> { co_await sleep(kNever); }(writer));
      while (accepted->expired() || streams.active_connections() == 0) co_await sleep(absl::Milliseconds(1));
    }(&log, &client, &accepted));
    loop->close();
  }
  EXPECT_TRUE(client.expired());
  EXPECT_TRUE(accepted.expired());
  EXPECT_EQ(open_fds(), fds_before);
  const auto count = [&](const std::string& prefix) {
    return std::count_if(reports.begin(), reports.end(), [&](const std::string& r) { return r.rfind(prefix, 0) == 0; });
  };
  EXPECT_EQ(count("unclosed server <Server sockets=[127.0.0.1:"), 2) << ::testing::PrintToString(reports);
  EXPECT_EQ(count("unclosed transport <"), 4) << ::testing::PrintToString(reports);
  EXPECT_THAT(log, ::testing::Not(::testing::Contains("lost")));  // no callback ran after the loop closed
}

// Outside debug mode nothing is reported, and the same is closed.
TEST_P(NetworkConformance, ALoopClosingOutsideDebugModeClosesQuietly) {
  std::vector<std::string> reports;
  const int fds_before = open_fds();
  {
    EventLoopRef loop = new_loop();
    loop->set_debug(false);
    loop->set_exception_handler([&](EventLoop&, const ExceptionContext& c) { reports.push_back(c.message); });
    loop->run_until_complete([]() -> Coro<void> {
      Server server = co_await start_server(echo_lines, kLocal, 0);
      auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
      writer.write("hello\n");
      EXPECT_EQ(co_await reader.readline(), "hello\n");
    }());
    loop->close();
  }
  EXPECT_EQ(open_fds(), fds_before);
  EXPECT_THAT(reports, ::testing::IsEmpty());
}

// A connection handler parked for good on a loop that closes holds its own
// writer, and the writer holds the protocol that holds the handler's task:
// a cycle. The closing loop destroys the unfinished task's frame, so what
// the frame holds is freed (asyncio's collector frees the same cycle).
Coro<void> park_holding(StreamReader, StreamWriter, [[maybe_unused]] std::shared_ptr<int> token) {
  Event never("never");
  co_await never.wait();
}
TEST_P(NetworkConformance, AClosingLoopFreesAHandlerParkedOnItsOwnWriter) {
  std::weak_ptr<int> token_seen;
  {
    EventLoopRef loop = new_loop();
    loop->run_until_complete([](std::weak_ptr<int>* seen) -> Coro<void> {
      auto token = std::make_shared<int>(1);
      *seen = token;
      ClientConnected handler = [token](StreamReader r, StreamWriter w) {
        return park_holding(std::move(r), std::move(w), token);
      };
      token.reset();
      Server server = co_await start_server(std::move(handler), kLocal, 0);
      auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
      writer.write("x");
      co_await writer.drain();
      co_await sleep(absl::Milliseconds(5));
    }(&token_seen));
    loop->close();
  }
  EXPECT_TRUE(token_seen.expired()) << "the parked handler's frame outlived its closed loop";
}

// Echoes with read_into through a small buffer (twinloop's extension).
Coro<void> echo_into(StreamReader reader, StreamWriter writer) {
  char buf[1000];
  while (true) {
    const size_t n = co_await reader.read_into(std::span<char>(buf, sizeof buf));
    if (n == 0) break;
    writer.write(std::string_view(buf, n));
    co_await writer.drain();
  }
  writer.close();
}

// read_into over a connection: while it waits on an empty buffer the
// transport reads straight into read_into's buffer; otherwise it copies from
// the stream's buffer. Either way every byte comes back once, in order.
TEST_P(NetworkConformance, ReadIntoEchoesAMegabyteInOrder) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(echo_into, kLocal, 0);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    std::string data;
    for (size_t i = 0; i < (1u << 20); ++i) data += static_cast<char>(i * 7 + i / 1000);
    writer.write(data);
    writer.write_eof();
    const std::string back = co_await reader.read(-1);
    EXPECT_EQ(back.size(), data.size());
    EXPECT_TRUE(back == data);
    writer.close();
    server.close();
    co_await server.wait_closed();
  }());
}

// The server's writer is kept in a slot the test empties at the end (the
// handler, which the connection's protocol keeps, holds the slot: holding the
// writer itself would be a cycle).
using WriterSlot = std::shared_ptr<std::optional<StreamWriter>>;

struct ReadIntoConn {
  Server server;
  StreamReader reader;
  StreamWriter writer;
  WriterSlot peer;  // the server's side
};

Coro<void> hand_over(WriterSlot slot, Future<void> ready, StreamWriter w) {
  *slot = std::move(w);
  ready.set_result();
  co_return;
}

Coro<ReadIntoConn> read_into_connection() {
  WriterSlot peer = std::make_shared<std::optional<StreamWriter>>();
  Future<void> ready = create_future<void>();
  ClientConnected handler = [peer, ready](StreamReader, StreamWriter w) { return hand_over(peer, ready, std::move(w)); };
  Server server = co_await start_server(std::move(handler), kLocal, 0);
  auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
  co_await ready;
  co_return ReadIntoConn{server, reader, writer, peer};
}

// A read_into cancelled after its bytes arrived but before it resumed (a
// cancel racing with the data, as wait_for's timeout may): the bytes stay in
// the stream for the next read, as read(n) leaves them in asyncio's buffer.
// (With the direct read above, they were already in read_into's buffer.)
TEST_P(NetworkConformance, ReadIntoCancelledAfterItsBytesArrivedLosesNothing) {
  EventLoopRef loop = new_loop();
  ReadIntoConn c = loop->run_until_complete(read_into_connection());
  char buf[16] = {};
  Task<size_t> t = loop->create_task(c.reader.read_into(std::span<char>(buf, sizeof buf)));
  loop->run_once();  // t starts and waits for data
  ASSERT_FALSE(t.done());
  (*c.peer)->write("hello");
  for (int i = 0; i < 10000 && c.reader.buffered() == 0 && buf[0] == 0; ++i) loop->run_once();
  ASSERT_TRUE(c.reader.buffered() > 0 || buf[0] != 0) << "the bytes never arrived";
  ASSERT_FALSE(t.done());  // woken, not resumed yet
  t.cancel();
  while (!t.done()) loop->run_once();
  EXPECT_TRUE(t.cancelled());
  (*c.peer)->close();  // lost bytes would read as an early EOF, not hang
  // Everything to EOF: the bytes may come in several segments (simulated
  // network).
  EXPECT_EQ(loop->run_until_complete(c.reader.read(-1)), "hello");
  c.writer.close();
  c.server.close();
  loop->run_until_complete(c.server.wait_closed());
  c.peer->reset();
  loop->close();
}

// asyncio's StreamWriter.__del__ (3.11+) closes a transport still open:
// here the last copy of a StreamWriter does. Copies share the connection;
// while one is alive the connection stays open.
TEST_P(NetworkConformance, TheLastStreamWriterCopyClosesTheConnection) {
  run([]() -> Coro<void> {
    Server server = co_await start_server(echo_lines, kLocal, 0);
    auto [reader, writer] = co_await open_connection(kLocal, port_of(server));
    std::shared_ptr<Transport> transport = writer.transport();
    std::optional<StreamWriter> copy = writer;
    writer = StreamWriter();  // one copy left
    co_await sleep(absl::Milliseconds(1));
    EXPECT_FALSE(transport->is_closing());
    copy->write("still open\n");
    EXPECT_EQ(co_await reader.readline(), "still open\n");
    copy.reset();  // the last copy
    EXPECT_TRUE(transport->is_closing());
    EXPECT_EQ(co_await reader.read(-1), "");  // the server echoed EOF: closed
    server.close();
    co_await server.wait_closed();
  }());
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(NetworkConformance);

}  // namespace
}  // namespace twinloop::conformance
