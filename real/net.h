// twinloop/real/net.h: the real loop's network (api/net_backend.h's
// NetBackend on Linux sockets).
//
// EpollBackend::net() returns an EpollNet; the shared transports and streams
// (api/transports.h, api/streams.h) run on top of it. Few programs name it:
//
//   twinloop::EventLoopRef loop = twinloop::real::new_event_loop();
//   twinloop::NetBackend* net = loop->backend().net();
//   auto listener = net->listen(twinloop::SocketAddress::inet("127.0.0.1", 0), {});
//   net->connect(listener->local_address(), {},
//                [](std::unique_ptr<twinloop::StreamChannel> ch, std::exception_ptr err) { ... });
//
// What it is made of, and where it follows asyncio (CPython 3.14
// Lib/asyncio/selector_events.py, base_events.py, unix_events.py):
//
//   channels   non-blocking stream sockets (TCP over IPv4 and IPv6, Unix),
//              every fd SOCK_CLOEXEC. read() is one recv(2), write() one
//              send(2, MSG_NOSIGNAL): no SIGPIPE, ever. Readiness through the
//              backend's epoll instance, level-triggered (FdWatch,
//              real/epoll_backend.h): no allocation and no system call per
//              notification besides epoll's own, and an epoll_ctl only when
//              the wanted set changes. close(abort=true) sets SO_LINGER
//              {1, 0} first, so the peer gets a RST (asyncio's
//              transport.abort() drops its buffer; the kernel's part is ours).
//   listeners  socket, SO_REUSEADDR (reuse_address, asyncio's default on
//              POSIX), SO_REUSEPORT (reuse_port), IPV6_V6ONLY on IPv6 (as
//              create_server), bind, listen(backlog). accept4 with
//              SOCK_NONBLOCK | SOCK_CLOEXEC; TCP_NODELAY on accepted TCP
//              connections when asked (asyncio's _set_nodelay).
//              Unix listeners, as create_unix_server / Server.close with
//              cleanup_socket=True (3.13+): a socket file already at the path
//              is removed before bind (stale, from a crashed server; any
//              other kind of file stays and bind fails with EADDRINUSE), and
//              close() removes the file if it is still the one this
//              listener bound (same inode and device). Abstract paths
//              (starting with '\0') have no file.
//   connect    a non-blocking connect(2); EINPROGRESS waits for EPOLLOUT,
//              then SO_ERROR decides (asyncio's _sock_connect_cb). TCP_NODELAY
//              first, unless ConnectOptions::nodelay is false. The result
//              always arrives through the ready queue, never inside
//              connect(), even when connect(2) answered at once.
//   resolve    numeric hosts (getaddrinfo with AI_NUMERICHOST, which never
//              blocks) at once, delivered later through the ready queue;
//              names with getaddrinfo on the executor
//              (EpollBackend::submit), so the loop thread never blocks
//              (asyncio's loop.getaddrinfo is run_in_executor(None,
//              socket.getaddrinfo)). SOCK_STREAM, no AI_ADDRCONFIG
//              (asyncio's flags=0), the order getaddrinfo gives. An empty
//              host means the wildcard addresses (AI_PASSIVE: "0.0.0.0",
//              "::"), as create_server(host=None).
//
// Errors. Every failed system call becomes twinloop::make_system_error(errno,
// what) (api/errors.h), a std::system_error in std::generic_category():
//
//   ECONNREFUSED            ConnectionRefusedError (connect: nothing listens)
//   ECONNRESET              ConnectionResetError (read/write after a RST)
//   ECONNABORTED            ConnectionAbortedError
//   EPIPE, ESHUTDOWN        BrokenPipeError (write after the peer closed, or
//                           after shutdown_write)
//   anything else           std::system_error with that errno: ETIMEDOUT,
//                           ENETUNREACH, EHOSTUNREACH (connect), ENOENT (a
//                           Unix path nobody bound), EAGAIN (connect to a Unix
//                           listener whose backlog is full: Linux does not
//                           queue it; asyncio would wait for writability and
//                           then misreport success), EADDRINUSE, EACCES
//                           (listen), EMFILE, ENFILE, ENOBUFS, ENOMEM
//                           (accept: the caller backs off)
//
// The what() strings follow asyncio's messages: "Connect call failed
// 127.0.0.1:1: Connection refused", "error while attempting to bind on
// address 127.0.0.1:80: Permission denied", "recv: Connection reset by
// peer".
//
// Not system errors:
//   - accept() retries after ECONNABORTED, EPROTO, EINTR and the network
//     errors Linux passes on from the new connection (accept(2): ENETDOWN,
//     ENOPROTOOPT, EHOSTDOWN, ENONET, EHOSTUNREACH, EOPNOTSUPP, ENETUNREACH),
//     as asyncio ignores ConnectionAbortedError; EAGAIN gives nullptr.
//   - read()'s EAGAIN is kWouldBlock, write()'s is 0; EINTR retries.
//   - Addresses that cannot be sockets (kUnspecified, a non-numeric host in
//     connect, a Unix path longer than sun_path or holding a NUL, reuse_port
//     on a Unix listener, read/write of 0 bytes) throw std::invalid_argument
//     from the call itself; using a closed channel or listener throws
//     std::system_error(EBADF).
//   - Name resolution fails with a std::system_error whose code is
//     getaddrinfo's EAI_* value (negative on glibc, as Python's
//     socket.gaierror.errno) in twinloop::resolver_category() (api/errors.h), whose message is
//     gai_strerror's: an unknown name is EAI_NONAME, "Name or service not
//     known". EAI_SYSTEM becomes the errno it stands for.
//
// Addresses are numeric: IPv4 "127.0.0.1", IPv6 "::1" (a scope as
// "fe80::1%2"; a name after '%' is accepted too), Unix paths as given, an
// unnamed Unix socket as "". local_address() / peer_address() ask the kernel
// each time (getsockname / getpeername) and give an unspecified address if it
// refuses (a reset connection has no peer).
//
// Lifetimes: connect's and resolve's callbacks run once, on the loop thread,
// unless the loop closes first (then they are destroyed without running, as
// executor work). Channels and listeners may outlive the loop: after it
// closed they deliver nothing, and close() only closes the fd.
//
// Threads: the loop thread only (getaddrinfo runs on an executor thread, but
// only touches its own copy of the request).
#ifndef TWINLOOP_REAL_NET_H_
#define TWINLOOP_REAL_NET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

#include "twinloop/api/net_backend.h"

namespace twinloop {
class EventLoop;
}  // namespace twinloop

namespace twinloop::real {

class EpollBackend;

class EpollNet final : public NetBackend {
 public:
  // Created by EpollBackend::attach; sockets are watched by `backend`.
  EpollNet(EpollBackend& backend, EventLoop& loop) : backend_(backend), loop_(loop) {}

  void resolve(std::string host, uint16_t port, SocketAddress::Family family, ResolveDone done) override;
  void connect(const SocketAddress& remote, const ConnectOptions& options, ConnectDone done) override;
  std::unique_ptr<StreamListener> listen(const SocketAddress& local, const ListenOptions& options) override;

 private:
  void check_open() const;

  EpollBackend& backend_;
  EventLoop& loop_;
};

}  // namespace twinloop::real

#endif  // TWINLOOP_REAL_NET_H_
