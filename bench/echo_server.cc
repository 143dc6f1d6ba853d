// twinloop/bench/echo_server.cc: a TCP echo server on twinloop's real loop,
// with the interface of the performance anchors' echo servers
// (../shared/bench/README.md, workload 4), so that bench/compare.py drives it
// with the anchors' common client (c/echo_client.c) in the same rounds as the
// raw epoll, libuv, asio and Python servers.
//
//   echo_server [streams|protocol|streams-read] PORT
//
// Listens on 127.0.0.1:PORT (0: a free port), prints "PORT <n>" on stdout and
// flushes, echoes every connection's bytes back until SIGTERM (or SIGINT),
// then closes the server and its connections cleanly and exits 0. Accepted
// connections have TCP_NODELAY (ServerOptions / ListenOptions default, as
// asyncio's).
//
// Modes, each the asyncio anchor's code (py/asyncio_anchors.py) in twinloop:
//   streams       start_server; per connection
//                   n = co_await reader.read_into(buf); writer.write(buf[0, n));
//                   co_await writer.drain();
//                 with one 256 KiB buffer per connection: read_into is
//                 twinloop's allocation-free form of asyncio's
//                 `data = await reader.read(n)` (same semantics: up to n bytes
//                 as soon as any byte is there, 0 at EOF), and while it waits
//                 the transport reads straight into `buf`. 256 KiB is what
//                 the raw epoll reference reads per read(2) and what a
//                 transport reads per notification (asyncio's max_size); the
//                 asyncio anchor's 64 KiB reads cost ~1.4x the raw server's
//                 CPU per GiB in the bulk test on this VM (4x the system
//                 calls), 256 KiB ~1.05x: docs/PERFORMANCE.md, "TCP echo".
//   protocol      create_server with a Protocol: data_received writes the
//                 bytes back at once; pause_writing pauses reading, and
//                 resume_writing resumes it (the anchor's EchoProtocol: the
//                 transport's write buffer is the only flow control).
//   streams-read  [diagnostic] the streams server with asyncio's literal
//                 `std::string data = co_await reader.read(65536)`: one
//                 std::string allocated per read.
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "twinloop/api/twinloop.h"
#include "twinloop/real/run.h"

namespace {

using twinloop::Coro;
using twinloop::Future;
using twinloop::Server;
using twinloop::StreamReader;
using twinloop::StreamWriter;
using twinloop::Transport;

constexpr char kHost[] = "127.0.0.1";
constexpr size_t kChunk = 256 * 1024;  // read_into's buffer (streams)
constexpr size_t kReadN = 64 * 1024;  // read(65536), as the asyncio anchor (streams-read)

enum class Mode { kStreams, kProtocol, kStreamsRead };

// ---- streams

// The asyncio anchor's echo_stream, reading into one buffer per connection
// (allocated once, not per read).
Coro<void> echo_stream(StreamReader reader, StreamWriter writer) {
  std::unique_ptr<char[]> buf(new char[kChunk]);
  try {
    while (true) {
      const size_t n = co_await reader.read_into(std::span<char>(buf.get(), kChunk));
      if (n == 0) break;  // EOF
      writer.write(std::string_view(buf.get(), n));
      co_await writer.drain();
    }
  } catch (const std::system_error&) {
    // ConnectionError (a reset peer), as the anchor's `except ConnectionError`.
  }
  writer.close();
}

// The same with asyncio's literal read(65536): a string per read.
Coro<void> echo_stream_read(StreamReader reader, StreamWriter writer) {
  try {
    while (true) {
      std::string data = co_await reader.read(static_cast<std::ptrdiff_t>(kReadN));
      if (data.empty()) break;
      writer.write(data);
      co_await writer.drain();
    }
  } catch (const std::system_error&) {
  }
  writer.close();
}

// ---- protocol

// The asyncio anchor's EchoProtocol.
class EchoProtocol final : public twinloop::Protocol {
 public:
  void connection_made(std::shared_ptr<Transport> transport) override { transport_ = std::move(transport); }
  void data_received(std::string_view data) override { transport_->write(data); }
  // Flow control, as drain() in the streams version: stop reading while the
  // peer does not take what we write.
  void pause_writing() override { transport_->pause_reading(); }
  void resume_writing() override { transport_->resume_reading(); }
  void connection_lost(std::exception_ptr) override { transport_.reset(); }

 private:
  std::shared_ptr<Transport> transport_;
};

// ---- main

Coro<int> serve(Mode mode, uint16_t port) {
  twinloop::EventLoop& loop = twinloop::get_running_loop();
  Server server;
  if (mode == Mode::kProtocol) {
    auto factory = [] { return std::make_shared<EchoProtocol>(); };
    server = co_await twinloop::create_server(factory, kHost, port);
  } else {
    twinloop::ClientConnected handler = mode == Mode::kStreams ? echo_stream : echo_stream_read;
    server = co_await twinloop::start_server(std::move(handler), kHost, port);
  }
  std::printf("PORT %u\n", static_cast<unsigned>(server.sockets().at(0).port));
  std::fflush(stdout);

  // Serve until SIGTERM (what bench/compare.py and the anchors' runner send)
  // or SIGINT.
  Future<void> stop = loop.create_future<void>();
  auto on_signal = [stop]() mutable {
    if (!stop.done()) stop.set_result();
  };
  loop.add_signal_handler(SIGTERM, on_signal);
  loop.add_signal_handler(SIGINT, on_signal);
  co_await stop;
  loop.remove_signal_handler(SIGTERM);
  loop.remove_signal_handler(SIGINT);

  // Stop listening, close the connections still open (after their buffered
  // bytes are sent), and wait until every one is gone.
  server.close();
  server.close_clients();
  co_await server.wait_closed();
  co_return 0;
}

int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [streams|protocol|streams-read] PORT   (PORT 0: any free port)\n", argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) return usage(argv[0]);
  Mode mode;
  if (std::strcmp(argv[1], "streams") == 0) {
    mode = Mode::kStreams;
  } else if (std::strcmp(argv[1], "protocol") == 0) {
    mode = Mode::kProtocol;
  } else if (std::strcmp(argv[1], "streams-read") == 0) {
    mode = Mode::kStreamsRead;
  } else {
    std::fprintf(stderr, "%s: unknown mode '%s'\n", argv[0], argv[1]);
    return usage(argv[0]);
  }
  char* end = nullptr;
  const long port = std::strtol(argv[2], &end, 10);
  if (end == argv[2] || *end != '\0' || port < 0 || port > 65535) {
    std::fprintf(stderr, "%s: not a port: '%s'\n", argv[0], argv[2]);
    return usage(argv[0]);
  }
  try {
    return twinloop::real::run(serve(mode, static_cast<uint16_t>(port)));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: %s\n", argv[0], e.what());
    return 1;
  }
}
