#include "twinloop/real/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/real/epoll_backend.h"

namespace twinloop::real {
namespace {

// ---- addresses

struct NativeAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;
  const sockaddr* get() const { return reinterpret_cast<const sockaddr*>(&storage); }
};

int native_family(SocketAddress::Family family) {
  switch (family) {
    case SocketAddress::Family::kInet:
      return AF_INET;
    case SocketAddress::Family::kInet6:
      return AF_INET6;
    case SocketAddress::Family::kUnix:
      return AF_UNIX;
    case SocketAddress::Family::kUnspecified:
      break;
  }
  return AF_UNSPEC;
}

bool is_inet(int family) { return family == AF_INET || family == AF_INET6; }

// An abstract Unix address (Linux): the path starts with a NUL and has no
// file.
bool is_abstract(const std::string& path) { return !path.empty() && path[0] == '\0'; }

// `address` as a sockaddr. An empty inet host is the wildcard address when
// `wildcard_ok` (listen), an error otherwise. std::invalid_argument for what
// cannot be a socket address.
NativeAddress to_native(const SocketAddress& address, bool wildcard_ok) {
  NativeAddress out;
  switch (address.family) {
    case SocketAddress::Family::kInet: {
      auto* sa = reinterpret_cast<sockaddr_in*>(&out.storage);
      sa->sin_family = AF_INET;
      sa->sin_port = htons(address.port);
      if (address.host.empty() && wildcard_ok) {
        sa->sin_addr.s_addr = htonl(INADDR_ANY);
      } else if (::inet_pton(AF_INET, address.host.c_str(), &sa->sin_addr) != 1 ||
                 address.host.find('\0') != std::string::npos) {
        throw std::invalid_argument(absl::StrCat("not a numeric IPv4 address: '", address.host, "'"));
      }
      out.length = sizeof(sockaddr_in);
      return out;
    }
    case SocketAddress::Family::kInet6: {
      auto* sa = reinterpret_cast<sockaddr_in6*>(&out.storage);
      sa->sin6_family = AF_INET6;
      sa->sin6_port = htons(address.port);
      out.length = sizeof(sockaddr_in6);
      if (address.host.empty() && wildcard_ok) {
        sa->sin6_addr = in6addr_any;
        return out;
      }
      const std::string_view host = address.host;
      const size_t percent = host.find('%');
      const std::string numeric(host.substr(0, percent));
      bool ok = numeric.find('\0') == std::string::npos &&
                ::inet_pton(AF_INET6, numeric.c_str(), &sa->sin6_addr) == 1;
      if (ok && percent != std::string_view::npos) {
        const std::string scope(host.substr(percent + 1));
        uint32_t index = 0;
        if (!absl::SimpleAtoi(scope, &index)) index = ::if_nametoindex(scope.c_str());
        sa->sin6_scope_id = index;
        ok = index != 0;
      }
      if (!ok) throw std::invalid_argument(absl::StrCat("not a numeric IPv6 address: '", address.host, "'"));
      return out;
    }
    case SocketAddress::Family::kUnix: {
      auto* sa = reinterpret_cast<sockaddr_un*>(&out.storage);
      sa->sun_family = AF_UNIX;
      const std::string& path = address.path;
      const bool abstract = is_abstract(path);
      // A file path needs room for its terminating NUL.
      if (path.size() + (abstract ? 0 : 1) > sizeof(sa->sun_path)) {
        throw std::invalid_argument(absl::StrCat("AF_UNIX path too long (", path.size(), " bytes, at most ",
                                                 sizeof(sa->sun_path) - 1, "): '", path, "'"));
      }
      if (!abstract && path.find('\0') != std::string::npos) {
        throw std::invalid_argument("AF_UNIX path contains a NUL byte");
      }
      std::memcpy(sa->sun_path, path.data(), path.size());
      out.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() +
                                          (abstract || path.empty() ? 0 : 1));
      return out;
    }
    case SocketAddress::Family::kUnspecified:
      break;
  }
  throw std::invalid_argument(absl::StrCat("no address family: '", address.to_string(), "'"));
}

// A kernel address as a SocketAddress (numeric). Unknown families give an
// unspecified address.
SocketAddress from_native(const sockaddr* sa, socklen_t length) {
  char text[INET6_ADDRSTRLEN] = {};
  switch (sa->sa_family) {
    case AF_INET: {
      const auto* in = reinterpret_cast<const sockaddr_in*>(sa);
      ::inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
      return SocketAddress::inet(text, ntohs(in->sin_port));
    }
    case AF_INET6: {
      const auto* in6 = reinterpret_cast<const sockaddr_in6*>(sa);
      ::inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
      std::string host = text;
      if (in6->sin6_scope_id != 0) absl::StrAppend(&host, "%", in6->sin6_scope_id);
      return SocketAddress::inet6(std::move(host), ntohs(in6->sin6_port));
    }
    case AF_UNIX: {
      const auto* un = reinterpret_cast<const sockaddr_un*>(sa);
      const size_t offset = offsetof(sockaddr_un, sun_path);
      if (length <= offset) return SocketAddress::unix_path("");
      const size_t max = std::min<size_t>(length - offset, sizeof(un->sun_path));
      if (un->sun_path[0] == '\0') return SocketAddress::unix_path(std::string(un->sun_path, max));
      return SocketAddress::unix_path(std::string(un->sun_path, ::strnlen(un->sun_path, max)));
    }
    default:
      return SocketAddress{};
  }
}

SocketAddress sock_name(int fd, bool peer) {
  sockaddr_storage storage{};
  socklen_t length = sizeof storage;
  auto* sa = reinterpret_cast<sockaddr*>(&storage);
  if (fd < 0 || (peer ? ::getpeername(fd, sa, &length) : ::getsockname(fd, sa, &length)) != 0) return SocketAddress{};
  return from_native(sa, length);
}

void set_nodelay(int fd) {
  const int one = 1;
  // Best effort, as asyncio's _set_nodelay: a connection reset meanwhile is
  // reported by its next read or write.
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

[[noreturn]] void throw_closed(const char* what) {
  throw std::system_error(EBADF, std::generic_category(), absl::StrCat(what, " on a closed socket"));
}

// ---- readiness

void close_socket(ChannelWatch* watch, int& fd, bool abort) {
  if (fd < 0) return;
  watch->stop();  // before close(2): the fd number may be reused at once
  if (abort) {
    const linger lg{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  }
  ::close(fd);
  fd = -1;
}

// ---- channels

class SocketChannel final : public StreamChannel {
 public:
  // Takes `fd`, a connected non-blocking socket.
  SocketChannel(EpollBackend* backend, int fd) : fd_(fd), watch_(new ChannelWatch(backend, fd)) {}
  SocketChannel(const SocketChannel&) = delete;
  SocketChannel& operator=(const SocketChannel&) = delete;
  ~SocketChannel() override {
    close_socket(watch_, fd_, false);
    watch_->release();
  }

  void set_events(ChannelEvents* events) override {
    if (fd_ >= 0) watch_->set_events(events);
  }
  void want_read(bool on) override {
    if (fd_ >= 0) watch_->want(on, watch_->want_write());
  }
  void want_write(bool on) override {
    if (fd_ >= 0) watch_->want(watch_->want_read(), on);
  }

  std::ptrdiff_t read(char* buf, std::size_t n) override {
    if (fd_ < 0) throw_closed("read");
    if (n == 0) throw std::invalid_argument("StreamChannel::read of 0 bytes");
    while (true) {
      const ssize_t r = ::recv(fd_, buf, n, 0);
      if (r >= 0) return r;
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return kWouldBlock;
      if (err != EINTR) throw_system_error(err, "recv");
    }
  }

  std::size_t write(const char* buf, std::size_t n) override {
    if (fd_ < 0) throw_closed("write");
    if (n == 0) return 0;
    while (true) {
      const ssize_t r = ::send(fd_, buf, n, MSG_NOSIGNAL);
      if (r >= 0) return static_cast<std::size_t>(r);
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return 0;
      if (err != EINTR) throw_system_error(err, "send");
    }
  }

  void shutdown_write() override {
    if (fd_ < 0) throw_closed("shutdown_write");
    if (::shutdown(fd_, SHUT_WR) != 0) throw_system_error(errno, "shutdown");
  }

  void close(bool abort) override { close_socket(watch_, fd_, abort); }

  SocketAddress local_address() const override { return sock_name(fd_, false); }
  SocketAddress peer_address() const override { return sock_name(fd_, true); }
  int fileno() const override { return fd_; }

 private:
  int fd_;
  ChannelWatch* watch_;  // released by the destructor
};

// Makes a channel of `fd`, closing `fd` if that fails.
std::unique_ptr<StreamChannel> adopt_channel(EpollBackend* backend, int fd) {
  try {
    return std::make_unique<SocketChannel>(backend, fd);
  } catch (...) {
    ::close(fd);
    throw;
  }
}

// ---- listeners

class SocketListener final : public StreamListener {
 public:
  SocketListener(EpollBackend* backend, int fd, int family, bool nodelay)
      : fd_(fd), family_(family), nodelay_(nodelay), watch_(new ChannelWatch(backend, fd)) {}
  SocketListener(const SocketListener&) = delete;
  SocketListener& operator=(const SocketListener&) = delete;
  ~SocketListener() override {
    close();
    watch_->release();
  }

  // The file to remove on close (create_unix_server's cleanup_socket).
  void remove_on_close(std::string path, const struct stat& st) {
    cleanup_path_ = std::move(path);
    cleanup_dev_ = st.st_dev;
    cleanup_ino_ = st.st_ino;
    cleanup_ = true;
  }

  void set_events(ChannelEvents* events) override {
    if (fd_ >= 0) watch_->set_events(events);
  }
  void want_accept(bool on) override {
    if (fd_ >= 0) watch_->want(on, false);
  }

  std::unique_ptr<StreamChannel> accept() override {
    if (fd_ < 0) throw_closed("accept");
    while (true) {
      const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd >= 0) {
        if (nodelay_ && is_inet(family_)) set_nodelay(fd);
        return adopt_channel(watch_->backend(), fd);
      }
      const int err = errno;
      switch (err) {
        case EAGAIN:
#if EWOULDBLOCK != EAGAIN
        case EWOULDBLOCK:
#endif
          return nullptr;
        // That connection is gone; the next may be fine (asyncio ignores
        // ConnectionAbortedError; accept(2) asks to retry after the
        // network errors it passes on).
        case EINTR:
        case ECONNABORTED:
        case EPROTO:
        case ENETDOWN:
        case ENOPROTOOPT:
        case EHOSTDOWN:
        case ENONET:
        case EHOSTUNREACH:
        case EOPNOTSUPP:
        case ENETUNREACH:
          continue;
        default:
          // EMFILE, ENFILE, ENOBUFS, ENOMEM among them: the connection stays
          // queued, and the caller backs off before asking again.
          throw_system_error(err, "accept");
      }
    }
  }

  SocketAddress local_address() const override { return sock_name(fd_, false); }

  void close() override {
    if (fd_ < 0) return;
    close_socket(watch_, fd_, false);
    if (cleanup_) {
      // Only the file this listener bound: another server may have replaced
      // it since (unix_events.py _stop_serving compares the inode).
      struct stat st {};
      if (::stat(cleanup_path_.c_str(), &st) == 0 && st.st_ino == cleanup_ino_ && st.st_dev == cleanup_dev_) {
        ::unlink(cleanup_path_.c_str());
      }
      cleanup_ = false;
    }
  }

  int fileno() const override { return fd_; }

 private:
  int fd_;
  const int family_;
  const bool nodelay_;
  ChannelWatch* watch_;  // released by the destructor
  bool cleanup_ = false;
  std::string cleanup_path_;
  dev_t cleanup_dev_ = 0;
  ino_t cleanup_ino_ = 0;
};

// ---- connecting

// One connect in progress. The backend owns it (through its list of
// watches) until the result is delivered or the backend closes (which
// follows the loop dropping a queued result).
class Connector final : public FdWatch {
 public:
  Connector(EpollBackend* backend, int fd, SocketAddress remote, ConnectDone done)
      : FdWatch(backend, fd), remote_(std::move(remote)), done_(std::move(done)) {}

  // Delivers `err` (an errno) instead of asking the socket.
  void fail(int err) {
    error_ = err;
    post(EPOLLOUT);
  }

 private:
  ~Connector() override {
    if (fd_ >= 0) ::close(fd_);
  }

  void on_ready(uint32_t /*events*/) override {
    int err = error_;
    if (err == 0) {
      socklen_t length = sizeof err;
      if (::getsockopt(fd_, SOL_SOCKET, SO_ERROR, &err, &length) != 0) err = errno;
    }
    stop_watching();
    ConnectDone done = std::move(done_);
    release();  // deleted when this returns
    if (err != 0) {
      if (fd_ >= 0) ::close(fd_);
      fd_ = -1;
      done(nullptr, make_system_error(err, absl::StrCat("Connect call failed ", remote_.to_string())));
      return;
    }
    const int fd = fd_;
    fd_ = -1;  // the channel's now
    std::unique_ptr<StreamChannel> channel;
    try {
      channel = adopt_channel(backend(), fd);
    } catch (...) {
      done(nullptr, std::current_exception());
      return;
    }
    done(std::move(channel), nullptr);
  }

  void on_backend_closed() override { release(); }

  SocketAddress remote_;
  ConnectDone done_;
  int error_ = 0;
};

// ---- resolving

struct Resolution {
  std::vector<SocketAddress> addresses;
  std::exception_ptr error;
};

// getaddrinfo(host, port) for stream sockets of `family`; `flags` as
// getaddrinfo's. Sets *not_numeric (if given) instead of failing when
// AI_NUMERICHOST was asked and `host` is a name.
Resolution run_getaddrinfo(const std::string& host, uint16_t port, int family, int flags, bool* not_numeric) {
  addrinfo hints{};
  hints.ai_family = family;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = flags | AI_NUMERICSERV | (host.empty() ? AI_PASSIVE : 0);
  const std::string service = absl::StrCat(port);
  addrinfo* list = nullptr;
  const int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &list);
  const int saved_errno = errno;
  Resolution out;
  if (rc != 0) {
    if (not_numeric && rc == EAI_NONAME) {
      *not_numeric = true;
      return out;
    }
    const std::string what = absl::StrCat("cannot resolve '", host, "'");
    if (rc == EAI_SYSTEM) {
      out.error = make_system_error(saved_errno, what);
    } else {
      out.error = std::make_exception_ptr(std::system_error(rc, resolver_category(), what));
    }
    return out;
  }
  for (const addrinfo* ai = list; ai; ai = ai->ai_next) {
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    out.addresses.push_back(from_native(ai->ai_addr, ai->ai_addrlen));
  }
  ::freeaddrinfo(list);
  return out;
}

}  // namespace

void EpollNet::check_open() const {
  if (loop_.is_closed()) throw std::runtime_error("Event loop is closed");
}

void EpollNet::resolve(std::string host, uint16_t port, SocketAddress::Family family, ResolveDone done) {
  check_open();
  if (family == SocketAddress::Family::kUnix) throw std::invalid_argument("resolve: a Unix path needs no resolving");
  if (host.find('\0') != std::string::npos) throw std::invalid_argument("resolve: the host name contains a NUL byte");
  const int af = native_family(family);
  bool not_numeric = false;
  Resolution now = run_getaddrinfo(host, port, af, AI_NUMERICHOST, &not_numeric);
  if (!not_numeric) {
    loop_.call_soon([done = std::move(done), now = std::move(now)]() mutable {
      done(std::move(now.addresses), std::move(now.error));
    });
    return;
  }
  // A name: the executor's thread blocks in getaddrinfo, not the loop. The
  // worker only touches `job`, which is its own until `done` runs.
  auto job = std::make_shared<Resolution>();
  backend_.submit([job, host = std::move(host), port, af] { *job = run_getaddrinfo(host, port, af, 0, nullptr); },
                  [job, done = std::move(done)]() mutable { done(std::move(job->addresses), std::move(job->error)); });
}

void EpollNet::connect(const SocketAddress& remote, const ConnectOptions& options, ConnectDone done) {
  check_open();
  const NativeAddress native = to_native(remote, /*wildcard_ok=*/false);
  if (remote.family == SocketAddress::Family::kUnix && remote.path.empty()) {
    throw std::invalid_argument("connect: an empty Unix path");
  }
  const int family = native.get()->sa_family;
  const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  const int socket_errno = fd < 0 ? errno : 0;
  Connector* connector;
  try {
    connector = new Connector(&backend_, fd, remote, std::move(done));
  } catch (...) {
    if (fd >= 0) ::close(fd);
    throw;
  }
  if (fd < 0) {
    connector->fail(socket_errno);
    return;
  }
  if (options.nodelay && is_inet(family)) set_nodelay(fd);
  if (::connect(fd, native.get(), native.length) == 0) {
    connector->post(EPOLLOUT);  // connected at once (usual for Unix sockets)
    return;
  }
  const int err = errno;
  // EINTR: a non-blocking connect goes on in the background, as EINPROGRESS.
  if (err != EINPROGRESS && err != EINTR) {
    connector->fail(err);
    return;
  }
  try {
    connector->set_interest(EPOLLOUT);
  } catch (const std::system_error& e) {
    connector->fail(e.code().value());
  }
}

std::unique_ptr<StreamListener> EpollNet::listen(const SocketAddress& local, const ListenOptions& options) {
  check_open();
  const NativeAddress native = to_native(local, /*wildcard_ok=*/true);
  const int family = native.get()->sa_family;
  if (family == AF_UNIX && options.reuse_port) {
    throw std::invalid_argument("listen: reuse_port is not supported for Unix sockets");
  }
  const int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) throw_system_error(errno, "socket");
  std::unique_ptr<SocketListener> listener;
  try {
    listener = std::make_unique<SocketListener>(&backend_, fd, family, options.nodelay);  // owns fd from here
  } catch (...) {
    ::close(fd);
    throw;
  }
  const int one = 1;
  if (is_inet(family)) {
    if (options.reuse_address && ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) {
      throw_system_error(errno, "setsockopt(SO_REUSEADDR)");
    }
    if (options.reuse_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0) {
      throw_system_error(errno, "setsockopt(SO_REUSEPORT)");
    }
    // create_server: IPv6 sockets listen on IPv6 only, so that "::" and
    // "0.0.0.0" can both be bound.
    if (family == AF_INET6 && ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0) {
      throw_system_error(errno, "setsockopt(IPV6_V6ONLY)");
    }
  }
  const bool unix_file = family == AF_UNIX && !local.path.empty() && !is_abstract(local.path);
  if (unix_file) {
    // create_unix_server: a socket file left at the path by a server that
    // died is removed; errors are ignored (asyncio logs them), and bind then
    // reports what is wrong.
    struct stat st {};
    if (::stat(local.path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode)) ::unlink(local.path.c_str());
  }
  if (::bind(fd, native.get(), native.length) != 0) {
    throw_system_error(errno, absl::StrCat("error while attempting to bind on address ", local.to_string()));
  }
  if (unix_file) {
    struct stat st {};
    if (::stat(local.path.c_str(), &st) == 0) listener->remove_on_close(local.path, st);
  }
  if (::listen(fd, options.backlog) != 0) throw_system_error(errno, "listen");
  return listener;
}

}  // namespace twinloop::real
