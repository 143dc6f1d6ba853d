// Runs //bench:echo_server as bench/compare.py and the anchors' runner do: a
// fresh process per case, "PORT n" read from its stdout, request/response and
// bulk traffic from plain sockets (as the anchors' echo_client), then SIGTERM
// and the exit status; in each mode.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "twinloop/tests/subprocess.h"

extern char** environ;

namespace {

constexpr int kTimeoutMs = 20'000;

// echo_server, from the BUILD target's env (tests/subprocess.h).
std::string server_path() { return twinloop::test_util::runfile_from_env("ECHO_SERVER"); }

// A child process running echo_server with `args`, its stdout (and, with
// `capture_stderr`, its stderr) on a pipe.
class ServerProcess {
 public:
  explicit ServerProcess(std::vector<std::string> args, bool capture_stderr = false) {
    int fds[2];
    if (::pipe(fds) != 0) std::abort();
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    if (capture_stderr) posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
    posix_spawn_file_actions_addclose(&actions, fds[0]);
    posix_spawn_file_actions_addclose(&actions, fds[1]);
    const std::string path = server_path();
    std::vector<char*> argv{const_cast<char*>(path.c_str())};
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const int rc = posix_spawn(&pid_, path.c_str(), &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    out_ = fds[0];
    if (rc != 0) pid_ = -1;
  }
  ~ServerProcess() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
    }
    ::close(out_);
  }

  bool started() const { return pid_ > 0; }

  // The first line of output ("" on timeout or EOF).
  std::string read_line() {
    std::string line;
    while (true) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, kTimeoutMs) != 1) return line;
      char c;
      if (::read(out_, &c, 1) != 1) return line;
      if (c == '\n') return line;
      line += c;
    }
  }
  // Everything until EOF.
  std::string read_all() {
    std::string all;
    char buf[4096];
    while (true) {
      pollfd p{out_, POLLIN, 0};
      if (::poll(&p, 1, kTimeoutMs) != 1) return all;
      const ssize_t n = ::read(out_, buf, sizeof buf);
      if (n <= 0) return all;
      all.append(buf, static_cast<size_t>(n));
    }
  }

  // Waits (up to kTimeoutMs) for the process to end; its wait status, or -1
  // on timeout.
  int wait() {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(kTimeoutMs);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      const pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        return status;
      }
      ::usleep(2000);
    }
    return -1;
  }
  void signal(int sig) { ::kill(pid_, sig); }

 private:
  pid_t pid_ = -1;
  int out_ = -1;
};

int dial(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  return fd;
}

// Reads exactly `n` bytes (poll-bounded); false on EOF, error or timeout.
bool read_exactly(int fd, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, kTimeoutMs) != 1) return false;
    const ssize_t r = ::read(fd, buf + got, n - got);
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

bool write_all(int fd, const char* buf, size_t n) {
  size_t put = 0;
  while (put < n) {
    const ssize_t w = ::write(fd, buf + put, n - put);
    if (w <= 0) return false;
    put += static_cast<size_t>(w);
  }
  return true;
}

// True once the peer closed (read returns 0) within the timeout.
bool reads_eof(int fd) {
  char c;
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, kTimeoutMs) != 1) return false;
  return ::read(fd, &c, 1) == 0;
}

int parse_port(const std::string& line) {
  if (line.rfind("PORT ", 0) != 0) return -1;
  return std::atoi(line.c_str() + 5);
}

class EchoServerTest : public ::testing::TestWithParam<const char*> {};

// The anchors' request/response workload in small: 16 connections, 64-byte
// messages, every connection's reply checked; then SIGTERM ends the server
// with status 0.
TEST_P(EchoServerTest, RequestResponseThenSigtermExitsZero) {
  ServerProcess server({GetParam(), "0"});
  ASSERT_TRUE(server.started()) << server_path();
  const int port = parse_port(server.read_line());
  ASSERT_GT(port, 0);
  constexpr int kConns = 16;
  constexpr int kRounds = 50;
  std::vector<int> fds;
  for (int i = 0; i < kConns; ++i) {
    fds.push_back(dial(port));
    ASSERT_GE(fds.back(), 0);
  }
  for (int r = 0; r < kRounds; ++r) {
    for (int i = 0; i < kConns; ++i) {
      std::string msg(64, static_cast<char>('a' + (i + r) % 26));
      msg[0] = static_cast<char>('0' + i % 10);
      ASSERT_TRUE(write_all(fds[i], msg.data(), msg.size()));
    }
    for (int i = 0; i < kConns; ++i) {
      char got[64];
      ASSERT_TRUE(read_exactly(fds[i], got, sizeof got)) << "connection " << i << " round " << r;
      EXPECT_EQ(got[0], static_cast<char>('0' + i % 10));
      EXPECT_EQ(got[63], static_cast<char>('a' + (i + r) % 26));
    }
  }
  for (int fd : fds) ::close(fd);
  server.signal(SIGTERM);
  const int status = server.wait();
  ASSERT_NE(status, -1) << "still running 20 s after SIGTERM";
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// Bulk: 8 MiB in 64 KiB writes while reading the echo back (the writer gets
// far ahead of the reader, so the server's flow control runs: it must pause
// reading, not buffer without bound, and lose nothing).
TEST_P(EchoServerTest, BulkEchoesEveryByteInOrder) {
  ServerProcess server({GetParam(), "0"});
  ASSERT_TRUE(server.started());
  const int port = parse_port(server.read_line());
  ASSERT_GT(port, 0);
  const int fd = dial(port);
  ASSERT_GE(fd, 0);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  constexpr size_t kTotal = 8 << 20;
  constexpr size_t kChunk = 64 << 10;
  auto byte_at = [](size_t i) { return static_cast<char>((i * 7 + i / 4096) & 0xff); };
  std::vector<char> out(kChunk);
  std::vector<char> in(kChunk);
  size_t sent = 0;
  size_t received = 0;
  bool mismatch = false;
  while (received < kTotal) {
    pollfd p{fd, static_cast<short>(POLLIN | (sent < kTotal ? POLLOUT : 0)), 0};
    ASSERT_EQ(::poll(&p, 1, kTimeoutMs), 1) << "stalled at " << received << " bytes received, " << sent << " sent";
    if ((p.revents & POLLOUT) && sent < kTotal) {
      const size_t n = std::min(kChunk, kTotal - sent);
      for (size_t i = 0; i < n; ++i) out[i] = byte_at(sent + i);
      const ssize_t w = ::write(fd, out.data(), n);
      if (w > 0) sent += static_cast<size_t>(w);
      ASSERT_TRUE(w > 0 || errno == EAGAIN);
    }
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t r = ::read(fd, in.data(), in.size());
      ASSERT_TRUE(r > 0 || (r < 0 && errno == EAGAIN)) << "read " << r << " at " << received;
      for (ssize_t i = 0; i < r; ++i) mismatch = mismatch || in[i] != byte_at(received + i);
      if (r > 0) received += static_cast<size_t>(r);
    }
  }
  EXPECT_FALSE(mismatch);
  EXPECT_EQ(received, kTotal);
  ::close(fd);
  server.signal(SIGTERM);
  const int status = server.wait();
  ASSERT_NE(status, -1);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

// SIGTERM with a client still connected: the server closes that connection
// (the client reads EOF) and exits 0.
TEST_P(EchoServerTest, SigtermClosesOpenConnections) {
  ServerProcess server({GetParam(), "0"});
  ASSERT_TRUE(server.started());
  const int port = parse_port(server.read_line());
  ASSERT_GT(port, 0);
  const int fd = dial(port);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(write_all(fd, "ping", 4));
  char got[4];
  ASSERT_TRUE(read_exactly(fd, got, 4));
  EXPECT_EQ(std::string(got, 4), "ping");
  server.signal(SIGTERM);
  EXPECT_TRUE(reads_eof(fd));
  const int status = server.wait();
  ASSERT_NE(status, -1);
  ASSERT_TRUE(WIFEXITED(status)) << "status " << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ::close(fd);
}

INSTANTIATE_TEST_SUITE_P(Modes, EchoServerTest, ::testing::Values("streams", "protocol", "streams-read"),
                         [](const ::testing::TestParamInfo<const char*>& info) {
                           std::string name = info.param;
                           for (char& c : name) {
                             if (c == '-') c = '_';
                           }
                           return name;
                         });

// Bad arguments: a usage message and exit status 2, never a server.
TEST(EchoServerArgs, UnknownModeOrBadPortIsRefused) {
  for (const std::vector<std::string>& args : {std::vector<std::string>{"stream", "0"},
                                              std::vector<std::string>{"streams", "x1"},
                                              std::vector<std::string>{"protocol", "70000"},
                                              std::vector<std::string>{"streams"}}) {
    ServerProcess server(args, /*capture_stderr=*/true);
    ASSERT_TRUE(server.started());
    const std::string out = server.read_all();
    EXPECT_NE(out.find("usage:"), std::string::npos) << out;
    EXPECT_NE(out.rfind("PORT ", 0), 0u) << out;  // no "PORT n" line: it never listened
    EXPECT_EQ(out.find("\nPORT "), std::string::npos) << out;
    const int status = server.wait();
    ASSERT_TRUE(WIFEXITED(status)) << args[0];
    EXPECT_EQ(WEXITSTATUS(status), 2) << args[0];
  }
}

}  // namespace
