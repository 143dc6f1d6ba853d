// twinloop/api/net_backend.h: the networking half of the seam between the
// shared API and a loop implementation.
//
// asyncio splits networking in two: the loop offers transports
// (create_connection, create_server), and streams are shared code written on
// top of them. twinloop does the same, and the loop's side is this interface:
// connected byte streams (StreamChannel), listening endpoints
// (StreamListener), connecting, listening and name resolution (NetBackend).
// api/transports.h implements asyncio's transports, protocols and servers once
// on top of it, and api/streams.h asyncio's streams on top of those; nothing
// above this interface knows which loop it runs on.
//
//   real/  non-blocking TCP and Unix sockets on epoll; resolution with
//          getaddrinfo on the executor.
//   sim/   a simulated network of hosts: no file descriptors, no kernel;
//          every latency, segment size and arrival order is a named draw.
//
// The model is readiness, as asyncio's selector transports: a channel tells
// its owner that it is readable or writable (level-triggered: again after
// each notification while the condition holds and is wanted), and the owner
// reads and writes without blocking. Notifications arrive on the loop thread
// through the loop's ready queue (LoopBackend::schedule_io), in FIFO order
// with every other callback, never from inside a read or write call.
//
// Threads: every call on the loop thread.
#ifndef TWINLOOP_API_NET_BACKEND_H_
#define TWINLOOP_API_NET_BACKEND_H_

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"

namespace twinloop {

// An endpoint: an IPv4 or IPv6 address and port, or a Unix socket path.
struct SocketAddress {
  enum class Family : uint8_t { kUnspecified, kInet, kInet6, kUnix };
  Family family = Family::kUnspecified;
  // The numeric address ("127.0.0.1", "::1", "10.0.0.2") for kInet/kInet6.
  std::string host = {};
  uint16_t port = 0;
  // The path for kUnix ("" for an unnamed socket).
  std::string path = {};

  static SocketAddress inet(std::string host, uint16_t port) {
    return SocketAddress{Family::kInet, std::move(host), port, {}};
  }
  static SocketAddress inet6(std::string host, uint16_t port) {
    return SocketAddress{Family::kInet6, std::move(host), port, {}};
  }
  static SocketAddress unix_path(std::string path) { return SocketAddress{Family::kUnix, {}, 0, std::move(path)}; }

  // "127.0.0.1:8080", "[::1]:8080", "/tmp/app.sock" (an unnamed Unix
  // socket: "<unnamed>").
  std::string to_string() const;
  friend bool operator==(const SocketAddress&, const SocketAddress&) = default;
};

// What a channel or listener reports to its owner. Called on the loop
// thread, from the ready queue (never from inside a read, write or accept).
class ChannelEvents {
 public:
  // Something can be read: data, the end of the stream, or an error (read()
  // tells which). For a listener: a connection can be accepted.
  virtual void on_readable() = 0;
  // write() can take more bytes now, or will report an error.
  virtual void on_writable() = 0;

 protected:
  ~ChannelEvents() = default;
};

// A connected byte stream: a TCP or Unix socket on the real loop, a
// connection between two simulated hosts on the simulated loop. Owned by one
// transport, which calls set_events first and close() last; no notification
// arrives after close().
class StreamChannel {
 public:
  // What read() returns besides a byte count.
  static constexpr std::ptrdiff_t kWouldBlock = -1;

  virtual ~StreamChannel() = default;

  virtual void set_events(ChannelEvents* events) = 0;
  // Whether on_readable / on_writable notifications are wanted. While a
  // condition holds and is wanted, a notification is pending (at most one of
  // each kind at a time).
  virtual void want_read(bool on) = 0;
  virtual void want_write(bool on) = 0;

  // Reads up to `n` bytes into `buf` without blocking: the count read (> 0),
  // 0 at the end of the stream (the peer shut down its write side, or closed),
  // or kWouldBlock. Throws std::system_error for a broken connection
  // (ECONNRESET, ETIMEDOUT, ...); after that the channel only closes.
  virtual std::ptrdiff_t read(char* buf, std::size_t n) = 0;
  // Writes up to `n` bytes without blocking; returns how many were taken
  // (0: none now; wait for on_writable). Throws std::system_error for a
  // broken connection (EPIPE, ECONNRESET). Never raises SIGPIPE.
  virtual std::size_t write(const char* buf, std::size_t n) = 0;
  // Ends the write side after what write() took (TCP FIN, shutdown(SHUT_WR)):
  // the peer reads the end of the stream once it has read the rest.
  virtual void shutdown_write() = 0;
  // Releases the connection. abort = false: what write() took is still
  // delivered, then the stream ends (close(2)). abort = true: it is dropped
  // and the peer's next read fails with ECONNRESET (SO_LINGER 0: RST).
  // Idempotent.
  virtual void close(bool abort) = 0;

  virtual SocketAddress local_address() const = 0;
  virtual SocketAddress peer_address() const = 0;
  // The file descriptor on the real loop (get_extra_info("socket")); -1 on
  // the simulated loop.
  virtual int fileno() const { return -1; }
};

// A listening endpoint. on_readable means accept() has a connection.
class StreamListener {
 public:
  virtual ~StreamListener() = default;

  virtual void set_events(ChannelEvents* events) = 0;
  virtual void want_accept(bool on) = 0;
  // A new connection, or nullptr when none is waiting. Throws
  // std::system_error for other errors; EMFILE / ENFILE / ENOBUFS / ENOMEM
  // (out of descriptors or memory) are among them, and the caller backs off
  // instead of spinning (asyncio's _accept_connection does the same).
  virtual std::unique_ptr<StreamChannel> accept() = 0;
  virtual SocketAddress local_address() const = 0;
  // Stops listening: connections not accepted yet are refused (reset).
  // Idempotent.
  virtual void close() = 0;
  virtual int fileno() const { return -1; }
};

struct ConnectOptions {
  // TCP_NODELAY on TCP connections (asyncio sets it by default since 3.7).
  bool nodelay = true;
};

struct ListenOptions {
  int backlog = 100;
  // SO_REUSEADDR (asyncio's default on POSIX).
  bool reuse_address = true;
  bool reuse_port = false;
  // TCP_NODELAY on accepted TCP connections.
  bool nodelay = true;
};

using ResolveDone = absl::AnyInvocable<void(std::vector<SocketAddress> addresses, std::exception_ptr error)>;
using ConnectDone = absl::AnyInvocable<void(std::unique_ptr<StreamChannel> channel, std::exception_ptr error)>;

// Connecting, listening and resolving names. A loop that has no network
// returns nullptr from LoopBackend::net(), and the API raises
// std::runtime_error("... not supported by this event loop").
class NetBackend {
 public:
  virtual ~NetBackend() = default;

  // The addresses of `host` ("localhost", "db.internal", "10.0.0.1", "::1")
  // with `port`, of `family` (kUnspecified: any), in the order to try them.
  // `done` runs on the loop thread, later (never inside this call), with the
  // addresses or an error (std::system_error; unknown names:
  // std::system_error with EAI_NONAME's message).
  virtual void resolve(std::string host, uint16_t port, SocketAddress::Family family, ResolveDone done) = 0;
  // Starts connecting to `remote` (numeric). `done` runs on the loop thread,
  // later, with the connected channel or the error (ECONNREFUSED when
  // nothing listens, ETIMEDOUT, ENETUNREACH, ENOENT for a missing Unix path).
  virtual void connect(const SocketAddress& remote, const ConnectOptions& options, ConnectDone done) = 0;
  // Listens on `local` (port 0: a free port, which local_address() then
  // names). Throws std::system_error (EADDRINUSE, EACCES, ...).
  virtual std::unique_ptr<StreamListener> listen(const SocketAddress& local, const ListenOptions& options) = 0;
};

}  // namespace twinloop

#endif  // TWINLOOP_API_NET_BACKEND_H_
