// The real loop's network (real/net.h), driven through the seam
// (api/net_backend.h) with a real loop stepped by hand.
#include "twinloop/real/net.h"

#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/net_backend.h"
#include "twinloop/real/epoll_backend.h"
#include "twinloop/real/run.h"
#include "twinloop/tests/proc_probes.h"

namespace twinloop::real {
namespace {

using ::twinloop::test_util::open_fds;

using Clock = std::chrono::steady_clock;
constexpr auto kPatience = std::chrono::seconds(10);

// Counts notifications and runs an optional action for each.
class Recorder final : public ChannelEvents {
 public:
  void on_readable() override {
    ++readable;
    if (on_read) on_read();
  }
  void on_writable() override {
    ++writable;
    if (on_write) on_write();
  }

  int readable = 0;
  int writable = 0;
  std::function<void()> on_read;
  std::function<void()> on_write;
};

struct ConnectResult {
  bool done = false;
  std::unique_ptr<StreamChannel> channel;
  std::exception_ptr error;
};

// The error code of `e`, a std::system_error (-1 if it is something else).
std::error_code code_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::system_error& error) {
    return error.code();
  } catch (...) {
    return std::error_code(-1, std::generic_category());
  }
}

std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& error) {
    return error.what();
  } catch (...) {
    return "?";
  }
}

// A Unix socket path short enough for sun_path (TEST_TMPDIR may not be).
std::string unix_path(const std::string& name) {
  static int counter = 0;
  return absl::StrCat("/tmp/twinloop_net_test_", ::getpid(), "_", ++counter, "_", name, ".sock");
}

// Waits (poll(2), up to kPatience) until `fd` has something to read.
bool wait_readable(int fd) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, static_cast<int>(std::chrono::milliseconds(kPatience).count())) == 1;
}

bool file_exists(const std::string& path) {
  struct stat st {};
  return ::lstat(path.c_str(), &st) == 0;
}

class NetTest : public ::testing::Test {
 protected:
  NetTest() : loop_(new_event_loop()) {}
  ~NetTest() override {
    if (!loop_->is_closed()) loop_->close();
  }

  NetBackend& net() { return *loop_->backend().net(); }
  EpollBackend& backend() { return static_cast<EpollBackend&>(loop_->backend()); }

  // Runs loop iterations until `done()` holds (true) or kPatience passed
  // (false). A short timer keeps each iteration from blocking for long.
  bool run_until(const std::function<bool()>& done) {
    const Clock::time_point give_up = Clock::now() + kPatience;
    while (!done()) {
      if (Clock::now() > give_up) return false;
      TimerHandle tick = loop_->call_later(absl::Milliseconds(5), [] {});
      loop_->run_once();
      tick.cancel();
    }
    return true;
  }

  // One loop iteration that never blocks for long.
  void run_one() {
    TimerHandle tick = loop_->call_later(absl::Milliseconds(1), [] {});
    loop_->run_once();
    tick.cancel();
  }

  ConnectResult connect(const SocketAddress& remote, ConnectOptions options = {}) {
    auto result = std::make_shared<ConnectResult>();
    net().connect(remote, options, [result](std::unique_ptr<StreamChannel> channel, std::exception_ptr error) {
      result->done = true;
      result->channel = std::move(channel);
      result->error = std::move(error);
    });
    EXPECT_FALSE(result->done) << "connect's callback ran inside connect()";
    EXPECT_TRUE(run_until([&] { return result->done; }));
    return std::move(*result);
  }

  // The next connection of `listener`, waiting for it on the loop.
  std::unique_ptr<StreamChannel> accept(StreamListener& listener) {
    Recorder events;
    listener.set_events(&events);
    listener.want_accept(true);
    std::unique_ptr<StreamChannel> channel;
    EXPECT_TRUE(run_until([&] {
      if (events.readable > 0) channel = listener.accept();
      return channel != nullptr;
    }));
    listener.want_accept(false);
    listener.set_events(nullptr);
    return channel;
  }

  struct Pair {
    std::unique_ptr<StreamListener> listener;
    std::unique_ptr<StreamChannel> client;
    std::unique_ptr<StreamChannel> server;
  };

  Pair connected_pair(const SocketAddress& where, ListenOptions listen_options = {}) {
    Pair p;
    p.listener = net().listen(where, listen_options);
    ConnectResult c = connect(p.listener->local_address());
    if (c.error) ADD_FAILURE() << "connect: " << what_of(c.error);
    p.client = std::move(c.channel);
    if (p.client) p.server = accept(*p.listener);
    return p;
  }

  // Writes all of `data`, running the loop while the socket is full.
  void write_all(StreamChannel& channel, const std::string& data) {
    Recorder events;
    channel.set_events(&events);
    size_t sent = 0;
    EXPECT_TRUE(run_until([&] {
      sent += channel.write(data.data() + sent, data.size() - sent);
      channel.want_write(sent < data.size());
      return sent == data.size();
    }));
    channel.want_write(false);
    channel.set_events(nullptr);
  }

  // Reads until `n` bytes or the end of the stream; *eof tells which.
  std::string read_some(StreamChannel& channel, size_t n, bool* eof = nullptr) {
    Recorder events;
    channel.set_events(&events);
    channel.want_read(true);
    std::string out;
    bool at_end = false;
    EXPECT_TRUE(run_until([&] {
      char buf[4096];
      while (out.size() < n && !at_end) {
        const std::ptrdiff_t r = channel.read(buf, std::min(sizeof buf, n - out.size()));
        if (r == StreamChannel::kWouldBlock) break;
        if (r == 0) at_end = true;
        out.append(buf, static_cast<size_t>(r));
      }
      return out.size() == n || at_end;
    }));
    channel.want_read(false);
    channel.set_events(nullptr);
    if (eof) *eof = at_end;
    return out;
  }

  // Reads until the end of the stream; std::exception_ptr of the error
  // read() threw, if any.
  std::exception_ptr read_until_error(StreamChannel& channel) {
    Recorder events;
    channel.set_events(&events);
    channel.want_read(true);
    std::exception_ptr error;
    bool eof = false;
    EXPECT_TRUE(run_until([&] {
      char buf[4096];
      try {
        while (true) {
          const std::ptrdiff_t r = channel.read(buf, sizeof buf);
          if (r == StreamChannel::kWouldBlock) return false;
          if (r == 0) {
            eof = true;
            return true;
          }
        }
      } catch (...) {
        error = std::current_exception();
        return true;
      }
    }));
    channel.want_read(false);
    channel.set_events(nullptr);
    return error;
  }

  void echo_round_trip(Pair& p) {
    ASSERT_TRUE(p.client && p.server);
    const std::string hello = "hello over " + p.listener->local_address().to_string();
    write_all(*p.client, hello);
    const std::string got = read_some(*p.server, hello.size());
    EXPECT_EQ(got, hello);
    write_all(*p.server, got);
    EXPECT_EQ(read_some(*p.client, hello.size()), hello);
  }

  EventLoopRef loop_;
};

TEST_F(NetTest, EchoOverIPv4) {
  Pair p = connected_pair(SocketAddress::inet("127.0.0.1", 0));
  ASSERT_TRUE(p.client && p.server);
  const SocketAddress where = p.listener->local_address();
  EXPECT_EQ(where.family, SocketAddress::Family::kInet);
  EXPECT_EQ(where.host, "127.0.0.1");
  EXPECT_NE(where.port, 0) << "port 0 picks a free port, which local_address() names";
  EXPECT_EQ(p.client->peer_address(), where);
  EXPECT_EQ(p.server->local_address(), where);
  EXPECT_EQ(p.server->peer_address(), p.client->local_address());
  EXPECT_GE(p.client->fileno(), 0);
  EXPECT_GE(p.listener->fileno(), 0);
  echo_round_trip(p);

  // A large write goes through partial writes and on_writable.
  std::string big(4 << 20, 'x');
  for (size_t i = 0; i < big.size(); i += 4096) big[i] = static_cast<char>('a' + i / 4096 % 26);
  size_t sent = 0;
  std::string received;
  Recorder writer, reader;
  p.client->set_events(&writer);
  p.server->set_events(&reader);
  p.server->want_read(true);
  ASSERT_TRUE(run_until([&] {
    sent += p.client->write(big.data() + sent, big.size() - sent);
    p.client->want_write(sent < big.size());
    char buf[65536];
    std::ptrdiff_t r;
    while ((r = p.server->read(buf, sizeof buf)) > 0) received.append(buf, static_cast<size_t>(r));
    return received.size() == big.size();
  }));
  EXPECT_TRUE(received == big);
  EXPECT_GT(writer.writable, 0) << "4 MiB fits no socket buffer: the writer must have waited";
  p.client->close(false);
  p.server->close(false);
}

TEST_F(NetTest, EchoOverIPv6) {
  std::unique_ptr<StreamListener> probe;
  try {
    probe = net().listen(SocketAddress::inet6("::1", 0), {});
  } catch (const std::system_error& e) {
    GTEST_SKIP() << "::1 is not available here: " << e.what();
  }
  probe->close();
  Pair p = connected_pair(SocketAddress::inet6("::1", 0));
  const SocketAddress where = p.listener->local_address();
  EXPECT_EQ(where.family, SocketAddress::Family::kInet6);
  EXPECT_EQ(where.host, "::1");
  EXPECT_NE(where.port, 0);
  EXPECT_EQ(where.to_string(), absl::StrCat("[::1]:", where.port));
  ASSERT_TRUE(p.client);
  EXPECT_EQ(p.client->peer_address(), where);
  echo_round_trip(p);
}

TEST_F(NetTest, EchoOverUnixAndTheFileIsRemovedOnClose) {
  const std::string path = unix_path("echo");
  Pair p = connected_pair(SocketAddress::unix_path(path));
  EXPECT_EQ(p.listener->local_address(), SocketAddress::unix_path(path));
  ASSERT_TRUE(p.client && p.server);
  EXPECT_EQ(p.client->peer_address(), SocketAddress::unix_path(path));
  EXPECT_EQ(p.server->peer_address().family, SocketAddress::Family::kUnix);
  EXPECT_EQ(p.server->peer_address().path, "") << "the client is an unnamed socket";
  echo_round_trip(p);
  EXPECT_TRUE(file_exists(path));
  p.listener->close();
  EXPECT_FALSE(file_exists(path)) << "cleanup_socket: close() removes the socket file it bound";
  p.listener->close();  // idempotent
}

TEST_F(NetTest, UnixListenRemovesAStaleSocketFileButNothingElse) {
  const std::string path = unix_path("stale");
  // A server that died: its socket file stays behind.
  {
    const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(fd, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, path.c_str());
    ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa), 0) << std::strerror(errno);
    ::close(fd);
  }
  ASSERT_TRUE(file_exists(path));
  std::unique_ptr<StreamListener> listener = net().listen(SocketAddress::unix_path(path), {});
  ConnectResult c = connect(SocketAddress::unix_path(path));
  EXPECT_FALSE(c.error) << what_of(c.error);
  listener->close();
  EXPECT_FALSE(file_exists(path));

  // A regular file is not a stale socket: it stays, and bind fails.
  const std::string file = unix_path("regular");
  {
    const int fd = ::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ASSERT_GE(fd, 0);
    ::close(fd);
  }
  try {
    net().listen(SocketAddress::unix_path(file), {});
    ADD_FAILURE() << "listen on a regular file succeeded";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EADDRINUSE) << e.what();
  }
  EXPECT_TRUE(file_exists(file));
  ::unlink(file.c_str());
}

TEST_F(NetTest, UnixCloseLeavesAFileThatAnotherServerBound) {
  const std::string path = unix_path("replaced");
  std::unique_ptr<StreamListener> mine = net().listen(SocketAddress::unix_path(path), {});
  // Another server removes our file and binds its own socket there.
  ASSERT_EQ(::unlink(path.c_str()), 0);
  std::unique_ptr<StreamListener> theirs = net().listen(SocketAddress::unix_path(path), {});
  mine->close();
  EXPECT_TRUE(file_exists(path)) << "close() removed a socket file it did not bind";
  theirs->close();
  EXPECT_FALSE(file_exists(path));
}

TEST_F(NetTest, AbstractUnixSocket) {
  const std::string name = std::string(1, '\0') + "twinloop_net_test_" + std::to_string(::getpid());
  Pair p = connected_pair(SocketAddress::unix_path(name));
  EXPECT_EQ(p.listener->local_address().path, name);
  echo_round_trip(p);
}

TEST_F(NetTest, RefusedConnectIsConnectionRefusedError) {
  std::unique_ptr<StreamListener> listener = net().listen(SocketAddress::inet("127.0.0.1", 0), {});
  const SocketAddress where = listener->local_address();
  listener->close();
  ConnectResult c = connect(where);
  ASSERT_TRUE(c.error);
  EXPECT_FALSE(c.channel);
  try {
    std::rethrow_exception(c.error);
  } catch (const ConnectionRefusedError& e) {
    EXPECT_EQ(std::string(e.what()).rfind("Connect call failed " + where.to_string(), 0), 0u) << e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a ConnectionRefusedError: " << e.what();
  }
}

TEST_F(NetTest, ConnectToAMissingUnixPathIsENOENT) {
  ConnectResult c = connect(SocketAddress::unix_path(unix_path("missing")));
  ASSERT_TRUE(c.error);
  EXPECT_EQ(code_of(c.error).value(), ENOENT) << what_of(c.error);
}

TEST_F(NetTest, ConnectAndListenRejectAddressesThatAreNoSockets) {
  auto ignore = [](std::unique_ptr<StreamChannel>, std::exception_ptr) { ADD_FAILURE() << "called"; };
  EXPECT_THROW(net().connect(SocketAddress{}, {}, ignore), std::invalid_argument);
  EXPECT_THROW(net().connect(SocketAddress::inet("localhost", 80), {}, ignore), std::invalid_argument);
  EXPECT_THROW(net().connect(SocketAddress::inet6("127.0.0.1", 80), {}, ignore), std::invalid_argument);
  EXPECT_THROW(net().connect(SocketAddress::unix_path(std::string(200, 'a')), {}, ignore), std::invalid_argument);
  EXPECT_THROW(net().listen(SocketAddress::unix_path(unix_path("p")), {.reuse_port = true}), std::invalid_argument);
  EXPECT_THROW(net().listen(SocketAddress{}, {}), std::invalid_argument);
}

TEST_F(NetTest, ListenOnAPortInUseIsEADDRINUSE) {
  std::unique_ptr<StreamListener> first = net().listen(SocketAddress::inet("127.0.0.1", 0), {});
  try {
    net().listen(first->local_address(), {});
    ADD_FAILURE() << "a second listener on " << first->local_address().to_string();
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code().value(), EADDRINUSE);
    EXPECT_NE(std::string(e.what()).find("error while attempting to bind on address 127.0.0.1:"), std::string::npos)
        << e.what();
  }
  // SO_REUSEPORT on both: the kernel shares the port.
  std::unique_ptr<StreamListener> a = net().listen(SocketAddress::inet("127.0.0.1", 0), {.reuse_port = true});
  std::unique_ptr<StreamListener> b = net().listen(a->local_address(), {.reuse_port = true});
  EXPECT_EQ(a->local_address(), b->local_address());
}

TEST_F(NetTest, PeerResetIsConnectionResetErrorOnRead) {
  Pair p = connected_pair(SocketAddress::inet("127.0.0.1", 0));
  ASSERT_TRUE(p.client && p.server);
  // Nothing unread on the server: only SO_LINGER {1, 0} makes close() a RST.
  p.server->close(/*abort=*/true);
  std::exception_ptr error = read_until_error(*p.client);
  ASSERT_TRUE(error) << "the peer's abort() must reach read() as an error, not EOF";
  try {
    std::rethrow_exception(error);
  } catch (const ConnectionResetError& e) {
    EXPECT_EQ(e.code().value(), ECONNRESET);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a ConnectionResetError: " << e.what();
  }
}

TEST_F(NetTest, WritingToAClosedPeerIsAnErrorAndNoSIGPIPE) {
  // With SIGPIPE at its default a send without MSG_NOSIGNAL kills us.
  struct sigaction previous {};
  struct sigaction dfl {};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ASSERT_EQ(::sigaction(SIGPIPE, &dfl, &previous), 0);

  for (bool unix_socket : {false, true}) {
    SCOPED_TRACE(unix_socket ? "unix" : "tcp");
    Pair p = connected_pair(unix_socket ? SocketAddress::unix_path(unix_path("pipe"))
                                        : SocketAddress::inet("127.0.0.1", 0));
    ASSERT_TRUE(p.client && p.server);
    p.server->close(false);
    // The first write may still be taken (the peer answers it with a RST).
    std::exception_ptr error;
    const std::string chunk(1024, 'z');
    for (int i = 0; i < 2000 && !error; ++i) {
      try {
        p.client->write(chunk.data(), chunk.size());
      } catch (...) {
        error = std::current_exception();
      }
      run_one();
    }
    ASSERT_TRUE(error) << "writing to a closed peer never failed";
    try {
      std::rethrow_exception(error);
    } catch (const BrokenPipeError&) {
    } catch (const ConnectionResetError&) {
      EXPECT_FALSE(unix_socket) << "a Unix peer that closed is EPIPE";
    } catch (const std::exception& e) {
      ADD_FAILURE() << "not BrokenPipeError / ConnectionResetError: " << e.what();
    }
  }
  ::sigaction(SIGPIPE, &previous, nullptr);
}

TEST_F(NetTest, HalfClose) {
  for (bool unix_socket : {false, true}) {
    SCOPED_TRACE(unix_socket ? "unix" : "tcp");
    Pair p = connected_pair(unix_socket ? SocketAddress::unix_path(unix_path("half"))
                                        : SocketAddress::inet("127.0.0.1", 0));
    ASSERT_TRUE(p.client && p.server);
    write_all(*p.client, "question");
    p.client->shutdown_write();
    bool eof = false;
    EXPECT_EQ(read_some(*p.server, 1000, &eof), "question");
    EXPECT_TRUE(eof) << "shutdown_write: the peer reads the end of the stream after the data";
    // The other direction still works.
    write_all(*p.server, "answer");
    p.server->close(false);
    EXPECT_EQ(read_some(*p.client, 1000, &eof), "answer");
    EXPECT_TRUE(eof);
    // Writing after shutdown_write: EPIPE.
    try {
      p.client->write("x", 1);
      ADD_FAILURE() << "write after shutdown_write succeeded";
    } catch (const BrokenPipeError&) {
    }
  }
}

TEST_F(NetTest, ReadinessIsLevelTriggeredAndFollowsWhatIsWanted) {
  Pair p = connected_pair(SocketAddress::inet("127.0.0.1", 0));
  ASSERT_TRUE(p.client && p.server);
  Recorder events;
  p.server->set_events(&events);
  p.server->want_read(true);
  write_all(*p.client, "data");
  ASSERT_TRUE(run_until([&] { return events.readable > 0; }));
  // Not read: notified again, once per poll, never twice at a time.
  ASSERT_TRUE(run_until([&] { return events.readable >= 3; }));
  p.server->want_read(false);
  const int before = events.readable;
  for (int i = 0; i < 5; ++i) run_one();
  EXPECT_EQ(events.readable, before) << "want_read(false) stops notifications";
  p.server->want_read(true);
  ASSERT_TRUE(run_until([&] { return events.readable > before; }));
  char buf[16];
  EXPECT_EQ(p.server->read(buf, sizeof buf), 4);
  EXPECT_EQ(p.server->read(buf, sizeof buf), StreamChannel::kWouldBlock);
  const int drained = events.readable;
  for (int i = 0; i < 5; ++i) run_one();
  EXPECT_EQ(events.readable, drained) << "nothing to read: no notification";
  EXPECT_EQ(events.writable, 0) << "writability was never wanted";
  // Writable: wanted, at once.
  p.server->want_write(true);
  ASSERT_TRUE(run_until([&] { return events.writable > 0; }));
  // A notification already queued delivers only what is still wanted when
  // it runs.
  write_all(*p.client, "more");
  ASSERT_TRUE(wait_readable(p.server->fileno()));
  const int readable = events.readable;
  const int writable = events.writable;
  backend().wait(LoopBackend::kPollOnly);  // queued: readable and writable
  p.server->want_write(false);
  run_one();
  EXPECT_EQ(events.readable, readable + 1);
  EXPECT_EQ(events.writable, writable) << "on_writable after want_write(false)";
  p.server->want_write(true);
  backend().wait(LoopBackend::kPollOnly);
  p.server->want_read(false);
  run_one();
  EXPECT_EQ(events.readable, readable + 1) << "on_readable after want_read(false)";
  EXPECT_EQ(events.writable, writable + 1);
  p.server->set_events(nullptr);
  p.server->close(false);
}

TEST_F(NetTest, AnUnchangedInterestSetCostsNoSystemCall) {
  Pair p = connected_pair(SocketAddress::inet("127.0.0.1", 0));
  ASSERT_TRUE(p.client);
  const uint64_t start = backend().interest_changes();
  p.client->want_read(true);  // ADD
  p.client->want_read(true);
  p.client->want_write(false);
  EXPECT_EQ(backend().interest_changes(), start + 1);
  p.client->want_write(true);  // MOD
  p.client->want_write(true);
  EXPECT_EQ(backend().interest_changes(), start + 2);
  p.client->want_read(false);  // MOD
  p.client->want_write(false);  // DEL
  p.client->want_write(false);
  EXPECT_EQ(backend().interest_changes(), start + 4);
  p.client->close(false);  // not registered: nothing to remove
  EXPECT_EQ(backend().interest_changes(), start + 4);
}

TEST_F(NetTest, AHungUpSocketNobodyWatchesDoesNotSpinTheLoop) {
  Pair p = connected_pair(SocketAddress::inet("127.0.0.1", 0));
  ASSERT_TRUE(p.client && p.server);
  Recorder events;
  p.client->set_events(&events);
  p.client->want_read(true);
  p.server->close(/*abort=*/true);  // EPOLLHUP | EPOLLERR on the client
  ASSERT_TRUE(run_until([&] { return events.readable > 0; }));
  p.client->want_read(false);  // paused, as a transport under flow control
  // With the fd still in epoll, EPOLLHUP would end every wait at once.
  bool fired = false;
  loop_->call_later(absl::Milliseconds(30), [&] { fired = true; });
  int iterations = 0;
  while (!fired && iterations < 1000) {
    loop_->run_once();
    ++iterations;
  }
  EXPECT_LE(iterations, 3) << "the loop spun on a hung-up socket nobody watches";
  p.client->close(false);
}

TEST_F(NetTest, AResetReachesTheWantedDirectionOnly) {
  Pair p = connected_pair(SocketAddress::inet("127.0.0.1", 0));
  ASSERT_TRUE(p.client && p.server);
  p.server->close(/*abort=*/true);
  Recorder events;
  p.client->set_events(&events);
  p.client->want_write(true);  // only writing: the error comes as writable
  ASSERT_TRUE(run_until([&] { return events.writable > 0; }));
  EXPECT_EQ(events.readable, 0);
  EXPECT_THROW(p.client->write("x", 1), ConnectionError);
  p.client->close(false);
}

TEST_F(NetTest, NoNotificationAfterClose) {
  Pair a = connected_pair(SocketAddress::inet("127.0.0.1", 0));
  Pair b = connected_pair(SocketAddress::inet("127.0.0.1", 0));
  ASSERT_TRUE(a.server && b.server);
  // Both readable and writable, both queued by the same poll; whichever runs
  // first closes and destroys the other, whose notification is then queued
  // for a channel that no longer exists.
  Recorder ea, eb;
  a.server->set_events(&ea);
  b.server->set_events(&eb);
  ea.on_read = [&] {
    b.server.reset();
    a.server->close(false);
  };
  eb.on_read = [&] {
    a.server.reset();
    b.server->close(false);
  };
  write_all(*a.client, "a");
  write_all(*b.client, "b");
  ASSERT_TRUE(wait_readable(a.server->fileno()) && wait_readable(b.server->fileno()));
  a.server->want_read(true);
  a.server->want_write(true);
  b.server->want_read(true);
  b.server->want_write(true);
  backend().wait(LoopBackend::kPollOnly);  // queues both, runs neither
  EXPECT_EQ(ea.readable + eb.readable, 0);
  run_one();
  EXPECT_EQ(ea.readable + eb.readable, 1) << "a closed channel was notified";
  EXPECT_EQ(ea.writable + eb.writable, 0) << "on_writable after the channel closed in on_readable";
  EXPECT_NE(a.server == nullptr, b.server == nullptr);
  for (int i = 0; i < 3; ++i) run_one();
  EXPECT_EQ(ea.readable + eb.readable, 1);

  // Closed (not destroyed) with a notification queued: nothing either.
  Pair c = connected_pair(SocketAddress::inet("127.0.0.1", 0));
  ASSERT_TRUE(c.server);
  Recorder ec;
  c.server->set_events(&ec);
  c.server->want_write(true);
  backend().wait(LoopBackend::kPollOnly);
  c.server->close(false);
  for (int i = 0; i < 3; ++i) run_one();
  EXPECT_EQ(ec.writable, 0);
}

TEST_F(NetTest, AQueuedNotificationIsDroppedWhenTheLoopCloses) {
  Pair p = connected_pair(SocketAddress::inet("127.0.0.1", 0));
  ASSERT_TRUE(p.server);
  Recorder events;
  p.server->set_events(&events);
  p.server->want_write(true);
  backend().wait(LoopBackend::kPollOnly);  // queued
  // The channel goes first, while its notification is queued (the loop drops
  // it later: LeakSanitizer checks the watch is freed then).
  p.server.reset();
  // A connect whose result is queued when the loop closes: dropped, its fd
  // closed, its callback destroyed without running.
  std::unique_ptr<StreamListener> unix_listener = net().listen(SocketAddress::unix_path(unix_path("drop")), {});
  bool called = false;
  net().connect(unix_listener->local_address(), {},
                [&](std::unique_ptr<StreamChannel>, std::exception_ptr) { called = true; });
  // And a TCP connect still registered in epoll (EINPROGRESS) when the
  // backend closes: deleted with it, fd closed, callback not run.
  net().connect(p.listener->local_address(), {},
                [&](std::unique_ptr<StreamChannel>, std::exception_ptr) { called = true; });
  loop_->close();
  EXPECT_EQ(events.writable, 0);
  EXPECT_FALSE(called);
  // Owned sockets outlive the loop and still close.
  p.client->close(false);
  unix_listener->close();
  p.listener->close();
}

TEST_F(NetTest, AnExceptionInANotificationGoesToTheExceptionHandler) {
  Pair p = connected_pair(SocketAddress::inet("127.0.0.1", 0));
  ASSERT_TRUE(p.client);
  std::vector<std::string> reported;
  loop_->set_exception_handler([&](EventLoop&, const ExceptionContext& c) {
    reported.push_back(c.message + ": " + what_of(c.exception));
  });
  Recorder events;
  events.on_write = [] { throw std::runtime_error("boom"); };
  p.client->set_events(&events);
  p.client->want_write(true);
  ASSERT_TRUE(run_until([&] { return !reported.empty(); }));
  EXPECT_EQ(reported[0], "Exception in I/O callback: boom");
  p.client->close(false);
}

TEST_F(NetTest, ResolveLocalhostNumericAndUnknownNames) {
  struct Result {
    bool done = false;
    std::vector<SocketAddress> addresses;
    std::exception_ptr error;
  };
  auto resolve = [&](const std::string& host, SocketAddress::Family family) {
    auto r = std::make_shared<Result>();
    net().resolve(host, 8080, family, [r](std::vector<SocketAddress> a, std::exception_ptr e) {
      r->done = true;
      r->addresses = std::move(a);
      r->error = std::move(e);
    });
    EXPECT_FALSE(r->done) << "resolve's callback ran inside resolve()";
    EXPECT_TRUE(run_until([&] { return r->done; }));
    return std::move(*r);
  };

  Result local = resolve("localhost", SocketAddress::Family::kInet);
  ASSERT_FALSE(local.error) << what_of(local.error);
  EXPECT_EQ(local.addresses, std::vector<SocketAddress>{SocketAddress::inet("127.0.0.1", 8080)});

  Result any = resolve("localhost", SocketAddress::Family::kUnspecified);
  ASSERT_FALSE(any.error) << what_of(any.error);
  bool has_v4 = false;
  for (const SocketAddress& a : any.addresses) has_v4 |= a == SocketAddress::inet("127.0.0.1", 8080);
  EXPECT_TRUE(has_v4);

  Result v6 = resolve("::1", SocketAddress::Family::kUnspecified);
  ASSERT_FALSE(v6.error) << what_of(v6.error);
  EXPECT_EQ(v6.addresses, std::vector<SocketAddress>{SocketAddress::inet6("::1", 8080)});

  Result wildcard = resolve("", SocketAddress::Family::kInet);
  EXPECT_EQ(wildcard.addresses, std::vector<SocketAddress>{SocketAddress::inet("0.0.0.0", 8080)});

  Result wrong_family = resolve("127.0.0.1", SocketAddress::Family::kInet6);
  EXPECT_TRUE(wrong_family.error);
  EXPECT_TRUE(wrong_family.addresses.empty());

  Result unknown = resolve("no-such-host.invalid", SocketAddress::Family::kUnspecified);
  ASSERT_TRUE(unknown.error);
  const std::error_code code = code_of(unknown.error);
  EXPECT_EQ(&code.category(), &resolver_category()) << what_of(unknown.error);
  // Offline the resolver may not even get an answer.
  EXPECT_TRUE(code.value() == EAI_NONAME || code.value() == EAI_AGAIN || code.value() == EAI_FAIL)
      << code.value() << " " << what_of(unknown.error);
  if (code.value() == EAI_NONAME) {
    EXPECT_EQ(what_of(unknown.error), "cannot resolve 'no-such-host.invalid': Name or service not known");
  }
  EXPECT_THROW(net().resolve("x", 1, SocketAddress::Family::kUnix, [](auto, auto) {}), std::invalid_argument);
}

TEST_F(NetTest, AcceptOutOfDescriptorsThrowsAndTheConnectionWaits) {
  std::unique_ptr<StreamListener> listener = net().listen(SocketAddress::inet("127.0.0.1", 0), {});
  ConnectResult c = connect(listener->local_address());
  ASSERT_TRUE(c.channel) << what_of(c.error);
  Recorder events;
  listener->set_events(&events);
  listener->want_accept(true);
  ASSERT_TRUE(run_until([&] { return events.readable > 0; }));

  rlimit saved{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &saved), 0);
  // The lowest free descriptor: with the soft limit there, none is left.
  const int lowest = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  ASSERT_GE(lowest, 0);
  ::close(lowest);
  rlimit low = saved;
  low.rlim_cur = static_cast<rlim_t>(lowest);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::exception_ptr error;
  try {
    listener->accept();
  } catch (...) {
    error = std::current_exception();
  }
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &saved), 0);
  ASSERT_TRUE(error) << "accept succeeded without a free descriptor";
  EXPECT_EQ(code_of(error), std::error_code(EMFILE, std::generic_category())) << what_of(error);
  // The connection was not lost: it is accepted once descriptors are back.
  std::unique_ptr<StreamChannel> server = listener->accept();
  ASSERT_TRUE(server);
  EXPECT_EQ(server->peer_address(), c.channel->local_address());
}

TEST_F(NetTest, EveryDescriptorIsCloexecAndClosedExactlyOnce) {
  loop_->close();
  const std::map<int, std::string> before = open_fds();
  std::map<int, std::string> peak;
  {
    EventLoopRef loop = new_event_loop();
    std::swap(loop, loop_);
    {
      Pair tcp = connected_pair(SocketAddress::inet("127.0.0.1", 0));
      echo_round_trip(tcp);
      Pair unix_pair = connected_pair(SocketAddress::unix_path(unix_path("fds")));
      echo_round_trip(unix_pair);
      Pair reset = connected_pair(SocketAddress::inet("127.0.0.1", 0));
      reset.server->close(true);
      EXPECT_TRUE(read_until_error(*reset.client));
      std::unique_ptr<StreamListener> gone = net().listen(SocketAddress::inet("127.0.0.1", 0), {});
      const SocketAddress refused = gone->local_address();
      gone->close();
      EXPECT_TRUE(connect(refused).error);
      EXPECT_TRUE(connect(SocketAddress::unix_path(unix_path("nobody"))).error);
      peak = open_fds();
      for (const auto& [fd, target] : peak) {
        if (before.count(fd)) continue;
        const int flags = ::fcntl(fd, F_GETFD);
        EXPECT_TRUE(flags >= 0 && (flags & FD_CLOEXEC)) << "fd " << fd << " is not close-on-exec";
      }
      // Closed explicitly, or by the destructors below: both exactly once
      // (a second close of a reused number would close someone else's fd).
      tcp.client->close(false);
      tcp.client->close(false);
      unix_pair.listener->close();
    }
    // A channel that outlives its loop, and connects the closing loop drops:
    // one with its result queued, one still registered in epoll.
    Pair late = connected_pair(SocketAddress::inet("127.0.0.1", 0));
    std::unique_ptr<StreamListener> unix_listener = net().listen(SocketAddress::unix_path(unix_path("late")), {});
    net().connect(unix_listener->local_address(), {}, [](std::unique_ptr<StreamChannel>, std::exception_ptr) {});
    net().connect(late.listener->local_address(), {}, [](std::unique_ptr<StreamChannel>, std::exception_ptr) {});
    loop_->close();
    late.client->close(true);
    late.server.reset();
    std::swap(loop, loop_);
  }
  EXPECT_GT(peak.size(), before.size() + 10) << "the workload opened descriptors";
  EXPECT_EQ(open_fds(), before);
}

// ---- FdWatch, the readiness primitive under channels and listeners

// Records what reaches on_ready.
class RecordingWatch final : public FdWatch {
 public:
  RecordingWatch(EpollBackend* backend, int fd, std::vector<uint32_t>* seen) : FdWatch(backend, fd), seen_(seen) {}

 private:
  ~RecordingWatch() override = default;
  void on_ready(uint32_t events) override { seen_->push_back(events); }

  std::vector<uint32_t>* seen_;
};

class FdWatchTest : public NetTest {
 protected:
  FdWatchTest() {
    EXPECT_EQ(::pipe2(pipe_, O_NONBLOCK | O_CLOEXEC), 0);
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, pair_), 0);
  }
  ~FdWatchTest() override {
    for (int fd : {pipe_[0], pipe_[1], pair_[0], pair_[1]}) {
      if (fd >= 0) ::close(fd);
    }
  }

  int pipe_[2] = {-1, -1};
  int pair_[2] = {-1, -1};
  std::vector<uint32_t> seen_;
};

TEST_F(FdWatchTest, OneNotificationCarriesEveryReadyDirection) {
  auto* w = new RecordingWatch(&backend(), pair_[0], &seen_);
  ASSERT_EQ(::write(pair_[1], "x", 1), 1);
  w->set_interest(EPOLLIN | EPOLLOUT);
  backend().wait(LoopBackend::kPollOnly);
  backend().wait(LoopBackend::kPollOnly);  // still queued: not queued twice
  run_one();
  EXPECT_EQ(seen_, std::vector<uint32_t>{EPOLLIN | EPOLLOUT});
  w->release();
}

TEST_F(FdWatchTest, HangUpIsReportedAsBothDirections) {
  // The read end of a pipe whose writer left: epoll reports EPOLLHUP alone.
  auto* w = new RecordingWatch(&backend(), pipe_[0], &seen_);
  w->set_interest(EPOLLIN);
  ::close(pipe_[1]);
  pipe_[1] = -1;
  ASSERT_TRUE(run_until([&] { return !seen_.empty(); }));
  EXPECT_EQ(seen_[0], uint32_t{EPOLLIN | EPOLLOUT}) << "EPOLLHUP must reach the owner's read (asyncio's selectors)";
  w->release();
}

TEST_F(FdWatchTest, StopWatchingCancelsAQueuedNotification) {
  auto* w = new RecordingWatch(&backend(), pair_[0], &seen_);
  w->set_interest(EPOLLOUT);
  backend().wait(LoopBackend::kPollOnly);  // queued
  w->stop_watching();
  EXPECT_EQ(w->interest(), 0u);
  w->set_interest(EPOLLOUT);  // ignored once stopped
  EXPECT_EQ(w->interest(), 0u);
  for (int i = 0; i < 3; ++i) run_one();
  EXPECT_TRUE(seen_.empty());
  w->release();
}

TEST_F(FdWatchTest, ReleasedWhileQueuedIsDeletedWhenTheQueueGetsToIt) {
  // LeakSanitizer and AddressSanitizer check the deletion, and that epoll
  // no longer reports the (still open, still writable) fd: release() stopped
  // watching.
  auto* w = new RecordingWatch(&backend(), pair_[0], &seen_);
  w->set_interest(EPOLLOUT);
  backend().wait(LoopBackend::kPollOnly);
  w->release();
  for (int i = 0; i < 3; ++i) run_one();
  EXPECT_TRUE(seen_.empty());
}

}  // namespace
}  // namespace twinloop::real
