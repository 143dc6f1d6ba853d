// twinloop/api/transports.h: asyncio's transports, protocols and servers
// (CPython 3.14 Lib/asyncio/transports.py, protocols.py, selector_events.py,
// base_events.py), on both loops.
//
// A protocol reacts to a connection's events; the loop's transport moves the
// bytes. This is asyncio's low-level networking layer, and the streams of
// api/streams.h are written on top of it, as asyncio's are.
//
//   class Echo : public twinloop::Protocol {
//    public:
//     void connection_made(std::shared_ptr<twinloop::Transport> t) override { transport_ = std::move(t); }
//     void data_received(std::string_view data) override { transport_->write(data); }
//     void connection_lost(std::exception_ptr) override { transport_.reset(); }
//    private:
//     std::shared_ptr<twinloop::Transport> transport_;
//   };
//   twinloop::Server server = co_await twinloop::create_server(
//       [] { return std::make_shared<Echo>(); }, "127.0.0.1", 0);
//   auto [transport, protocol] = co_await twinloop::create_connection(
//       [] { return std::make_shared<MyClient>(); }, "127.0.0.1", server.sockets()[0].port);
//
// Contract (asyncio's, selector_events._SelectorSocketTransport):
//  - connection_made runs one loop iteration after the transport exists
//    (call_soon), then reading starts; create_connection returns after
//    connection_made.
//  - data_received / buffer_updated run from the loop's ready queue when
//    data arrived: one read (at most 256 KiB) per readiness notification.
//    At the end of the stream eof_received runs; returning false closes the
//    transport, true keeps it open for writing (a half-closed connection).
//  - write() sends at once what the connection takes and buffers the rest.
//    When the buffer grows past the high-water mark, pause_writing runs (at
//    once, inside write(): the only callbacks not deferred, as asyncio's);
//    when it drains to the low-water mark or below, resume_writing. Limits:
//    high 64 KiB and low high/4 by default (set_write_buffer_limits).
//  - write() after write_eof() raises std::runtime_error; write() after the
//    connection is lost is dropped (asyncio counts and logs such writes).
//  - close() stops reading, sends what is buffered, then connection_lost
//    (nullptr) runs; abort() drops the buffer and connection_lost runs at
//    once (next iteration). A read or write error closes the transport:
//    connection_lost(the error); connection errors (ConnectionResetError,
//    BrokenPipeError, ...) are not reported to the exception handler, other
//    errors are ("Fatal read error on socket transport").
//  - connection_lost runs exactly once, and it is the last callback; the
//    transport then drops its protocol (breaking the transport <-> protocol
//    cycle that a protocol holding its transport makes).
// Simulated loop: the same code runs over the simulated network
// (sim/network.h): latencies, segment boundaries and arrival orders are
// decisions of the run.
// Threads: the loop's thread only.
#ifndef TWINLOOP_API_TRANSPORTS_H_
#define TWINLOOP_API_TRANSPORTS_H_

#include <any>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/future.h"
#include "twinloop/api/internal/ref.h"
#include "twinloop/api/net_backend.h"

namespace twinloop {

class Transport;

// asyncio.BaseProtocol: the callbacks every protocol gets.
class BaseProtocol {
 public:
  virtual ~BaseProtocol() = default;
  // The connection is set up; `transport` moves its bytes. A protocol that
  // keeps it holds it until connection_lost.
  virtual void connection_made(std::shared_ptr<Transport> transport) { static_cast<void>(transport); }
  // The connection is closed: nullptr for a regular end (EOF, close()), else
  // the error that closed it. Runs once, last.
  virtual void connection_lost(std::exception_ptr error) { static_cast<void>(error); }
  // The transport's write buffer went above its high-water mark / drained to
  // its low-water mark.
  virtual void pause_writing() {}
  virtual void resume_writing() {}
};

// asyncio.Protocol: data arrives as bytes the protocol copies if it keeps.
class Protocol : public BaseProtocol {
 public:
  // `data` is valid during the call only.
  virtual void data_received(std::string_view data) { static_cast<void>(data); }
  // The peer ended its side. Return true to keep the transport open (for
  // writing); false (the default) closes it.
  virtual bool eof_received() { return false; }
};

// asyncio.BufferedProtocol: the transport reads straight into the protocol's
// buffer, with no copy and no allocation per read.
class BufferedProtocol : public BaseProtocol {
 public:
  // A buffer to read into, at least one byte; `sizehint` is a hint (0: any).
  virtual std::span<char> get_buffer(size_t sizehint) = 0;
  // `nbytes` bytes were written at the start of the last buffer.
  virtual void buffer_updated(size_t nbytes) = 0;
  virtual bool eof_received() { return false; }
};

// asyncio.Transport (ReadTransport + WriteTransport): a connection's bytes.
class Transport {
 public:
  virtual ~Transport() = default;

  // ---- BaseTransport
  // "peername" and "sockname" (SocketAddress), "socket" (int: the file
  // descriptor, -1 on the simulated loop); an empty std::any for anything
  // else (asyncio returns the default).
  virtual std::any get_extra_info(std::string_view name) const = 0;
  std::any get_extra_info(std::string_view name, std::any default_value) const {
    std::any v = get_extra_info(name);
    return v.has_value() ? v : default_value;
  }
  // True once close() or abort() was called, or the connection was lost.
  virtual bool is_closing() const = 0;
  // Closes after the write buffer is sent; connection_lost(nullptr) then
  // runs. Idempotent.
  virtual void close() = 0;
  virtual void set_protocol(std::shared_ptr<BaseProtocol> protocol) = 0;
  virtual std::shared_ptr<BaseProtocol> get_protocol() const = 0;

  // ---- ReadTransport
  virtual bool is_reading() const = 0;
  // Stops / restarts reading (and data_received) until resume_reading; no-op
  // when already paused / reading or closing.
  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;

  // ---- WriteTransport
  // The write buffer's marks: high defaults to 64 KiB, low to high / 4 (or
  // high to 4 * low when only low is given). std::invalid_argument unless
  // high >= low >= 0.
  virtual void set_write_buffer_limits(std::optional<size_t> high = std::nullopt,
                                       std::optional<size_t> low = std::nullopt) = 0;
  // (low, high), as asyncio's get_write_buffer_limits.
  virtual std::pair<size_t, size_t> get_write_buffer_limits() const = 0;
  virtual size_t get_write_buffer_size() const = 0;
  // Sends `data` (what the connection does not take now is buffered).
  // std::runtime_error after write_eof().
  virtual void write(std::string_view data) = 0;
  void writelines(std::initializer_list<std::string_view> chunks) {
    for (std::string_view c : chunks) write(c);
  }
  void writelines(const std::vector<std::string>& chunks) {
    for (const std::string& c : chunks) write(c);
  }
  // Ends the write side once the buffer is sent (the peer reads EOF).
  virtual void write_eof() = 0;
  virtual bool can_write_eof() const = 0;
  // Closes at once: the buffer is dropped, connection_lost(nullptr) runs
  // next iteration.
  virtual void abort() = 0;
  // twinloop's extension: abort() and make the peer see a reset
  // (ConnectionResetError on its next read; TCP RST, as closing a socket
  // with SO_LINGER {1, 0}, which is how asyncio users do it).
  virtual void reset() = 0;
};

namespace internal {
class ServerState;
}  // namespace internal

// Options of create_server / start_server (asyncio's keyword arguments).
struct ServerOptions {
  int backlog = 100;
  bool reuse_address = true;
  bool reuse_port = false;
  // Start accepting at once (asyncio's start_serving=True).
  bool start_serving = true;
};

// asyncio.Server: listening sockets and the connections they accepted.
//   - close() stops listening (and cancels serve_forever); connections
//     already accepted stay open.
//   - wait_closed() returns once the server is closed AND every accepted
//     connection has dropped, in either order (asyncio 3.12.1 semantics).
//   - close_clients() / abort_clients() close / abort those connections.
// A Server is a handle: copies share the server.
class Server {
 public:
  Server();
  ~Server();
  Server(const Server&);
  Server& operator=(const Server&);
  Server(Server&&) noexcept;
  Server& operator=(Server&&) noexcept;

  EventLoop& get_loop() const;
  bool is_serving() const;
  // Starts accepting (if not already), then yields once.
  Coro<void> start_serving();
  // Serves until cancelled; then closes and waits for the server to close.
  // std::runtime_error if already serving forever or closed.
  Coro<void> serve_forever();
  void close();
  void close_clients();
  void abort_clients();
  Coro<void> wait_closed();
  // The listening addresses (asyncio's Server.sockets, as addresses; empty
  // once closed). With port 0, the port the system chose.
  std::vector<SocketAddress> sockets() const;
  // The connections accepted and not yet lost.
  size_t active_connections() const;

  explicit Server(internal::Ref<internal::ServerState> state);

 private:
  internal::Ref<internal::ServerState> state_;
};

// The protocol type a factory (a callable returning std::shared_ptr<P>)
// makes.
template <class F>
using protocol_of = typename std::invoke_result_t<F&>::element_type;

namespace internal {

using AnyProtocolFactory = std::function<std::shared_ptr<BaseProtocol>()>;

// The connection half of loop.create_connection: resolves `host` (unless
// `remote` is given), tries each address in order, wraps the first
// connection in a transport for protocol_factory(), and returns when
// connection_made has run.
Coro<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> create_connection_any(
    AnyProtocolFactory protocol_factory, std::optional<SocketAddress> remote, std::string host, uint16_t port,
    ConnectOptions options);
Coro<Server> create_server_any(AnyProtocolFactory protocol_factory, std::vector<SocketAddress> local,
                               std::string host, uint16_t port, ServerOptions options);

// A connected transport for `channel` on the running loop, its protocol
// `protocol` (connection_made next iteration). `server`: the server that
// accepted it, if any. `connected`: set once connection_made has run.
std::shared_ptr<Transport> make_stream_transport(EventLoop& loop, std::unique_ptr<StreamChannel> channel,
                                                 std::shared_ptr<BaseProtocol> protocol, ServerState* server,
                                                 Future<void> connected);

NetBackend& net_of(EventLoop& loop);

}  // namespace internal

namespace internal {
// The factory as the untyped code takes it. (A named local, not a lambda
// temporary inside a co_await: see docs/design.md, "Compilers".)
template <class F>
AnyProtocolFactory any_factory(F f) {
  return [f = std::move(f)]() mutable -> std::shared_ptr<BaseProtocol> { return f(); };
}
template <class P>
Coro<std::pair<std::shared_ptr<Transport>, std::shared_ptr<P>>> typed(
    Coro<std::pair<std::shared_ptr<Transport>, std::shared_ptr<BaseProtocol>>> connecting) {
  auto [t, p] = co_await std::move(connecting);
  co_return std::pair<std::shared_ptr<Transport>, std::shared_ptr<P>>(std::move(t), std::static_pointer_cast<P>(p));
}
}  // namespace internal

// loop.create_connection(protocol_factory, host, port): opens a TCP
// connection (each address `host` resolves to, in turn, until one accepts)
// and returns the transport and the protocol once connection_made has run.
// Errors: the connection error (ConnectionRefusedError, ...); with several
// addresses failing differently, a std::system_error naming them all
// (asyncio's "Multiple exceptions: ...").
template <class F, class P = protocol_of<F>>
Coro<std::pair<std::shared_ptr<Transport>, std::shared_ptr<P>>> create_connection(F protocol_factory, std::string host,
                                                                                  uint16_t port) {
  return internal::typed<P>(internal::create_connection_any(internal::any_factory(std::move(protocol_factory)),
                                                            std::nullopt, std::move(host), port, ConnectOptions{}));
}
// loop.create_unix_connection(protocol_factory, path).
template <class F, class P = protocol_of<F>>
Coro<std::pair<std::shared_ptr<Transport>, std::shared_ptr<P>>> create_unix_connection(F protocol_factory,
                                                                                       std::string path) {
  std::optional<SocketAddress> remote = SocketAddress::unix_path(std::move(path));
  return internal::typed<P>(internal::create_connection_any(internal::any_factory(std::move(protocol_factory)),
                                                            std::move(remote), std::string(), 0, ConnectOptions{}));
}

// loop.create_server(protocol_factory, host, port): listens on every address
// `host` resolves to ("" or "0.0.0.0": every IPv4 interface; "::": IPv6),
// port 0 choosing a free port (Server::sockets() tells which), and makes a
// transport and a protocol for every connection it accepts.
template <class F>
Coro<Server> create_server(F protocol_factory, std::string host, uint16_t port) {
  return internal::create_server_any(internal::any_factory(std::move(protocol_factory)), {}, std::move(host), port,
                                     ServerOptions{});
}
template <class F>
Coro<Server> create_server(F protocol_factory, std::string host, uint16_t port, ServerOptions options) {
  return internal::create_server_any(internal::any_factory(std::move(protocol_factory)), {}, std::move(host), port,
                                     options);
}
// loop.create_unix_server(protocol_factory, path): a stale socket file at
// `path` is removed first, and the file is removed when the server closes
// (asyncio 3.13's cleanup_socket).
template <class F>
Coro<Server> create_unix_server(F protocol_factory, std::string path) {
  std::vector<SocketAddress> local{SocketAddress::unix_path(std::move(path))};
  return internal::create_server_any(internal::any_factory(std::move(protocol_factory)), std::move(local),
                                     std::string(), 0, ServerOptions{});
}

// loop.getaddrinfo(host, port), simplified: the addresses to try, in order.
// std::system_error for an unknown name.
Coro<std::vector<SocketAddress>> getaddrinfo(std::string host, uint16_t port);

}  // namespace twinloop

#endif  // TWINLOOP_API_TRANSPORTS_H_
