// twinloop/api/streams.h: asyncio's streams (CPython 3.14
// Lib/asyncio/streams.py): StreamReader, StreamWriter, open_connection,
// start_server and their Unix-socket forms, on both loops.
//
//   twinloop::Coro<void> handle(twinloop::StreamReader reader, twinloop::StreamWriter writer) {
//     while (true) {
//       std::string line = co_await reader.readline();
//       if (line.empty()) break;                       // EOF
//       writer.write(line);
//       co_await writer.drain();
//     }
//     writer.close();
//     co_await writer.wait_closed();
//   }
//   twinloop::Server server = co_await twinloop::start_server(handle, "127.0.0.1", 0);
//   auto [reader, writer] = co_await twinloop::open_connection("127.0.0.1", server.sockets()[0].port);
//
// Streams are written on asyncio's public transport layer (api/transports.h),
// as asyncio's are, and run unchanged on the real loop (TCP and Unix sockets)
// and on the simulated network (sim/network.h), where latencies, segment
// boundaries and arrival orders are the run's decisions: a reader that
// assumes one read returns one message fails under simulation.
//
// StreamReader (asyncio's semantics, including the edge cases):
//  - read(n): n > 0 returns up to n bytes as soon as any is buffered, ""
//    at EOF; n < 0 reads to EOF; n == 0 returns "" at once. A stored
//    exception (the connection's error) is raised before buffered data.
//  - readexactly(n): exactly n bytes, or IncompleteReadError(partial, n) at
//    EOF (the buffer is cleared); std::invalid_argument for n < 0.
//  - readuntil(separator or separators): the data through the separator
//    that ends first; IncompleteReadError(partial, nullopt) at EOF without
//    one (the buffer is cleared); LimitOverrunError when the separator is not
//    found within `limit` bytes, or found past it: the data stays buffered.
//  - readline(): readuntil("\n"), but at EOF the partial line is returned,
//    and on a limit overrun the line (or the whole buffer) is dropped and
//    std::invalid_argument (asyncio's ValueError) is raised.
//  - Two coroutines waiting on one reader: std::runtime_error.
//  - Flow control: reading from the transport pauses when more than
//    2 * limit bytes are buffered, and resumes at limit or less.
// StreamWriter:
//  - write() never blocks: it buffers; drain() waits while the transport's
//    buffer is above its high-water mark (concurrent drains are allowed), and
//    raises the reader's exception, or ConnectionResetError("Connection
//    lost") once the connection is lost (also after close()).
//  - close() closes the transport (after its buffer is sent);
//    wait_closed() returns when the connection is closed and raises the
//    error that closed it, if any.
//  - write() after write_eof() raises std::runtime_error.
// Handles (StreamReader, StreamWriter) are cheap to copy; copies share the
// stream, and every coroutine they return keeps the stream alive. When the
// last StreamWriter of a connection goes, the connection is closed if it is
// still open (asyncio closes it in StreamWriter.__del__): a client handler
// that returns without closing its writer closes its connection.
// A client handler given to start_server runs as a task per connection; if
// it fails, the loop's exception handler gets "Unhandled exception in
// client_connected_cb" and the connection is closed; the server keeps
// serving. A cancelled handler closes its connection silently.
// Threads: the loop's thread only.
#ifndef TWINLOOP_API_STREAMS_H_
#define TWINLOOP_API_STREAMS_H_

#include <any>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "twinloop/api/coro.h"
#include "twinloop/api/internal/ref.h"
#include "twinloop/api/net_backend.h"
#include "twinloop/api/task.h"
#include "twinloop/api/transports.h"

namespace twinloop {

// asyncio's default stream buffer limit: 64 KiB.
inline constexpr size_t kDefaultStreamLimit = 64 * 1024;

// Options of open_connection / start_server (asyncio's keyword arguments).
struct StreamOptions {
  // The reader's buffer limit (readuntil/readline; flow control at 2x).
  size_t limit = kDefaultStreamLimit;
};

namespace internal {
class ReaderState;
class StreamProtocol;
struct WriterState;
}  // namespace internal

class StreamReader {
 public:
  // A reader fed by hand (feed_data / feed_eof), or by a transport.
  StreamReader();
  explicit StreamReader(size_t limit);
  ~StreamReader();
  StreamReader(const StreamReader&);
  StreamReader& operator=(const StreamReader&);
  StreamReader(StreamReader&&) noexcept;
  StreamReader& operator=(StreamReader&&) noexcept;

  // Up to n bytes (n > 0), everything to EOF (n < 0), nothing (n == 0).
  Coro<std::string> read(std::ptrdiff_t n = -1);
  Coro<std::string> readline();
  // std::invalid_argument for n < 0.
  Coro<std::string> readexactly(std::ptrdiff_t n);
  // Through "\n", through `separator`, or through whichever of `separators`
  // ends first (asyncio 3.13's tuple form). std::invalid_argument for an
  // empty separator or an empty list.
  Coro<std::string> readuntil();
  Coro<std::string> readuntil(std::string separator);
  Coro<std::string> readuntil(std::vector<std::string> separators);
  // twinloop's extension: up to buf.size() bytes into `buf`, as read(n)
  // returns them, without allocating; 0 at EOF.
  Coro<size_t> read_into(std::span<char> buf);

  // EOF was fed and the buffer is empty.
  bool at_eof() const;
  std::exception_ptr exception() const;
  void set_exception(std::exception_ptr error);
  // Appends data (asyncio asserts it is not after feed_eof; twinloop raises
  // std::logic_error).
  void feed_data(std::string_view data);
  void feed_eof();
  size_t limit() const;
  // Bytes buffered and not read yet.
  size_t buffered() const;

  explicit StreamReader(internal::Ref<internal::ReaderState> state);
  const internal::Ref<internal::ReaderState>& state() const { return state_; }

 private:
  internal::Ref<internal::ReaderState> state_;
};

class StreamWriter {
 public:
  StreamWriter();
  ~StreamWriter();
  StreamWriter(const StreamWriter&);
  StreamWriter& operator=(const StreamWriter&);
  StreamWriter(StreamWriter&&) noexcept;
  StreamWriter& operator=(StreamWriter&&) noexcept;

  void write(std::string_view data);
  void writelines(std::initializer_list<std::string_view> chunks);
  void writelines(const std::vector<std::string>& chunks);
  bool can_write_eof() const;
  void write_eof();
  void close();
  bool is_closing() const;
  Coro<void> drain();
  Coro<void> wait_closed();
  // "peername", "sockname", "socket" (see Transport::get_extra_info).
  std::any get_extra_info(std::string_view name) const;
  std::any get_extra_info(std::string_view name, std::any default_value) const;
  const std::shared_ptr<Transport>& transport() const;

  StreamWriter(std::shared_ptr<Transport> transport, std::shared_ptr<internal::StreamProtocol> protocol,
               internal::Ref<internal::ReaderState> reader);

 private:
  // Shared by the copies; when the last copy goes, a transport still open
  // is closed (asyncio's StreamWriter.__del__ closes it too).
  std::shared_ptr<internal::WriterState> state_;
};

// What start_server calls for each connection: a coroutine function, run as
// a task per connection (asyncio also takes a plain function; twinloop's
// handlers are coroutines).
using ClientConnected = std::function<Coro<void>(StreamReader, StreamWriter)>;

namespace internal {
Coro<std::pair<StreamReader, StreamWriter>> open_stream(std::optional<SocketAddress> remote, std::string host,
                                                        uint16_t port, StreamOptions options);
Coro<Server> start_stream_server(ClientConnected client_connected, std::vector<SocketAddress> local,
                                 std::string host, uint16_t port, StreamOptions stream_options,
                                 ServerOptions server_options);
// asyncio's StreamReader.set_transport: `reader` pauses and resumes reading
// on `transport` (flow control above 2 * limit); nullptr detaches it.
// (asyncio's subprocess streams feed their readers by hand.)
void set_reader_transport(const StreamReader& reader, std::shared_ptr<Transport> transport);
// A StreamWriter over `transport` with the protocol that drives its drain()
// and wait_closed(): its owner forwards connection_made, pause_writing,
// resume_writing and connection_lost to it (asyncio's
// SubprocessStreamProtocol is the FlowControlMixin of its stdin's writer).
std::pair<StreamWriter, std::shared_ptr<BaseProtocol>> make_driven_writer(std::shared_ptr<Transport> transport);
// A reader and a writer over the connected `channel`, on `loop`, as
// open_connection makes them (the transport's connection_made runs next
// iteration, then reading starts). The simulated loop's programs get their
// pipes this way (sim/process.cc).
std::pair<StreamReader, StreamWriter> stream_over_channel(EventLoop& loop, std::unique_ptr<StreamChannel> channel,
                                                          StreamOptions options);
}  // namespace internal

// asyncio.open_connection(host, port, limit=2**16): a TCP connection as a
// (reader, writer) pair.
Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, uint16_t port);
Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, uint16_t port, StreamOptions options);
// asyncio.open_unix_connection(path).
Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path);
Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path, StreamOptions options);

// asyncio.start_server(client_connected_cb, host, port, limit=2**16): a
// server calling `client_connected(reader, writer)` for every connection.
Coro<Server> start_server(ClientConnected client_connected, std::string host, uint16_t port);
Coro<Server> start_server(ClientConnected client_connected, std::string host, uint16_t port, StreamOptions options);
Coro<Server> start_server(ClientConnected client_connected, std::string host, uint16_t port, StreamOptions options,
                          ServerOptions server_options);
// asyncio.start_unix_server(client_connected_cb, path).
Coro<Server> start_unix_server(ClientConnected client_connected, std::string path);
Coro<Server> start_unix_server(ClientConnected client_connected, std::string path, StreamOptions options);

}  // namespace twinloop

#endif  // TWINLOOP_API_STREAMS_H_
