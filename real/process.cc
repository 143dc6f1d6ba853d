#include "twinloop/real/process.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/real/epoll_backend.h"

extern char** environ;

// The generic syscall numbers (the same on every Linux architecture since
// 5.1/5.3), for headers older than the calls.
#ifndef SYS_pidfd_send_signal
#define SYS_pidfd_send_signal 424
#endif
#ifndef SYS_pidfd_open
#define SYS_pidfd_open 434
#endif

namespace twinloop::real {
namespace {

std::atomic<bool> g_force_waiters{false};
// Cleared once pidfd_open answers ENOSYS (kernel before 5.3) or EPERM (a
// seccomp filter); shared by all loops.
std::atomic<bool> g_have_pidfd{true};

// subprocess's os.defpath (posixpath.defpath) when no PATH is set.
constexpr std::string_view kDefaultPath = "/bin:/usr/bin";

int pidfd_open(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }
int pidfd_send_signal(int pidfd, int sig) {
  return static_cast<int>(::syscall(SYS_pidfd_send_signal, pidfd, sig, nullptr, 0));
}

// asyncio's returncode (os.waitstatus_to_exitcode): the exit status, or
// minus the signal that ended the child.
int returncode_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return 255;
}

// waitpid without EINTR.
pid_t wait_for(pid_t pid, int* status, int options) {
  while (true) {
    const pid_t r = ::waitpid(pid, status, options);
    if (r >= 0 || errno != EINTR) return r;
  }
}

// Starts a detached thread running `fn` with the asynchronous signals
// blocked, so that no signal handler ever runs on it (as the executor's
// workers, real/epoll_backend.cc). std::system_error if no thread can be
// started.
void run_detached(absl::AnyInvocable<void()> fn, const char* name) {
  sigset_t block, old;
  sigfillset(&block);
  for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGPROF}) sigdelset(&block, sig);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  try {
    std::thread t(std::move(fn));
    pthread_setname_np(t.native_handle(), name);
    t.detach();
  } catch (...) {
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    throw;
  }
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
}

// File descriptors closed when this goes out of scope (unless released).
class FdCloser {
 public:
  FdCloser() = default;
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  ~FdCloser() { close_all(); }
  void add(int fd) { fds_.push_back(fd); }
  void close_all() {
    for (int fd : fds_) ::close(fd);
    fds_.clear();
  }
  // `fd` has another owner now.
  void forget(int fd) { fds_.erase(std::remove(fds_.begin(), fds_.end(), fd), fds_.end()); }

 private:
  std::vector<int> fds_;
};

// ---- pipes

// write(2) that never raises SIGPIPE (see the header: pipes have no
// MSG_NOSIGNAL). SIGPIPE is blocked in this thread for the call, which is
// the thread the kernel sends it to; after EPIPE the SIGPIPE the write
// raised is consumed, unless one was pending already (then it is not ours
// to take, and ours merged with it). Returns write(2)'s result; errno as it
// left it.
ssize_t write_without_sigpipe(int fd, const char* buf, size_t n) {
  sigset_t pipe_only, old;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, &old);
  sigset_t pending;
  sigemptyset(&pending);
  ::sigpending(&pending);
  const bool was_pending = sigismember(&pending, SIGPIPE) == 1;
  ssize_t r;
  do {
    r = ::write(fd, buf, n);
  } while (r < 0 && errno == EINTR);
  const int err = errno;
  if (r < 0 && err == EPIPE && !was_pending) {
    const timespec zero{};
    while (::sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
    }
  }
  if (sigismember(&old, SIGPIPE) != 1) pthread_sigmask(SIG_SETMASK, &old, nullptr);
  errno = err;
  return r;
}

[[noreturn]] void throw_closed(const char* what) {
  throw std::system_error(EBADF, std::generic_category(), absl::StrCat(what, " on a closed pipe"));
}

// The parent's end of a child's stdin (write end) or stdout / stderr pipe
// (read end). The contract is ProcessChannel::take_pipe's.
class PipeChannel final : public StreamChannel {
 public:
  // Takes `fd`, a non-blocking pipe end.
  PipeChannel(EpollBackend* backend, int fd, bool write_end)
      : fd_(fd), write_end_(write_end), watch_(new ChannelWatch(backend, fd)) {}
  PipeChannel(const PipeChannel&) = delete;
  PipeChannel& operator=(const PipeChannel&) = delete;
  ~PipeChannel() override {
    close_fd();
    watch_->release();
  }

  void set_events(ChannelEvents* events) override {
    if (fd_ >= 0) watch_->set_events(events);
  }
  // On a write end EPOLLIN never fires; asked for, it keeps the fd in epoll,
  // which reports EPOLLERR (both directions) once the child's end closes.
  void want_read(bool on) override {
    if (fd_ >= 0) watch_->want(on, watch_->want_write());
  }
  void want_write(bool on) override {
    if (fd_ >= 0) watch_->want(watch_->want_read(), on);
  }

  std::ptrdiff_t read(char* buf, std::size_t n) override {
    if (n == 0) throw std::invalid_argument("StreamChannel::read of 0 bytes");
    if (write_end_) {
      if (shut_) return 0;
      if (fd_ < 0) throw_closed("read");
      // No data ever comes this way: only whether the child's end is gone.
      pollfd p{fd_, POLLOUT, 0};
      while (::poll(&p, 1, 0) < 0 && errno == EINTR) {
      }
      return (p.revents & POLLERR) ? 0 : kWouldBlock;
    }
    if (fd_ < 0) throw_closed("read");
    while (true) {
      const ssize_t r = ::read(fd_, buf, n);
      if (r >= 0) return r;
      const int err = errno;
      if (err == EAGAIN || err == EWOULDBLOCK) return kWouldBlock;
      if (err != EINTR) throw_system_error(err, "read");
    }
  }

  std::size_t write(const char* buf, std::size_t n) override {
    if (!write_end_) throw std::logic_error("write to a child's output pipe");
    if (shut_) throw_system_error(EPIPE, "write after shutdown_write");
    if (fd_ < 0) throw_closed("write");
    if (n == 0) return 0;
    const ssize_t r = write_without_sigpipe(fd_, buf, n);
    if (r >= 0) return static_cast<std::size_t>(r);
    const int err = errno;
    if (err == EAGAIN || err == EWOULDBLOCK) return 0;
    throw_system_error(err, "write");
  }

  // The child reads the end of its input. Nothing to do for an output pipe.
  void shutdown_write() override {
    if (!write_end_) return;
    if (shut_) return;
    if (fd_ < 0) throw_closed("shutdown_write");
    close_fd();
    shut_ = true;
  }

  void close(bool /*abort*/) override {
    close_fd();
    shut_ = false;
  }

  SocketAddress local_address() const override { return SocketAddress{}; }
  SocketAddress peer_address() const override { return SocketAddress{}; }
  int fileno() const override { return fd_; }

 private:
  void close_fd() {
    if (fd_ < 0) return;
    watch_->stop();  // before close(2): the number may be reused at once
    ::close(fd_);
    fd_ = -1;
  }

  int fd_;
  const bool write_end_;
  bool shut_ = false;  // shutdown_write closed the fd; reads give the end
  ChannelWatch* watch_;   // released by the destructor
};

// A pidfd on epoll: readable once the child has exited.
class PidWatch final : public FdWatch {
 public:
  PidWatch(EpollBackend* backend, int pidfd, absl::AnyInvocable<void()> exited)
      : FdWatch(backend, pidfd), exited_(std::move(exited)) {}

 private:
  ~PidWatch() override = default;
  void on_ready(uint32_t /*events*/) override { exited_(); }

  absl::AnyInvocable<void()> exited_;
};

bool has_nul(std::string_view s) { return s.find('\0') != std::string_view::npos; }

void check_request(const SpawnRequest& request) {
  if (request.argv.empty()) throw std::invalid_argument("spawn: an empty argv");
  if (request.stdin_mode == Redirect::kStdout) throw std::invalid_argument("spawn: stdin cannot be STDOUT");
  if (request.stdout_mode == Redirect::kStdout) throw std::invalid_argument("spawn: stdout cannot be STDOUT");
  for (const std::string& arg : request.argv) {
    if (has_nul(arg)) throw std::invalid_argument("spawn: embedded null byte in an argument");
  }
  if (has_nul(request.executable)) throw std::invalid_argument("spawn: embedded null byte in executable");
  if (has_nul(request.cwd)) throw std::invalid_argument("spawn: embedded null byte in cwd");
  if (request.env) {
    for (const std::string& entry : *request.env) {
      if (has_nul(entry)) throw std::invalid_argument("spawn: embedded null byte in an environment entry");
      const size_t eq = entry.find('=');
      if (eq == std::string::npos || eq == 0) {
        throw std::invalid_argument(absl::StrCat("spawn: an environment entry is not NAME=value: '", entry, "'"));
      }
    }
  }
}

// The file to run for `name`, as subprocess's _execute_child finds it: a
// name with a '/' as is (posix_spawn reports its errors); otherwise each
// directory of os.get_exec_path(env) in turn (an empty entry: the working
// directory), the first regular file we may execute. Errors as
// _posixsubprocess's child_exec: the first error other than ENOENT and
// ENOTDIR (EACCES: a candidate exists but cannot run), else ENOENT.
std::string find_program(const std::string& name, const SpawnRequest& request) {
  if (name.find('/') != std::string::npos) return name;
  std::string path(kDefaultPath);
  if (request.env) {
    for (const std::string& entry : *request.env) {
      if (entry.rfind("PATH=", 0) == 0) {
        path = entry.substr(5);
        break;
      }
    }
  } else if (const char* parent = ::getenv("PATH")) {
    path = parent;
  }
  int first_error = 0;
  if (!name.empty()) {
    for (absl::string_view dir : absl::StrSplit(path, ':')) {
      std::string candidate = dir.empty() ? name : absl::StrCat(dir, "/", name);
      // posix_spawn changes to cwd before exec: a relative candidate is
      // relative to it.
      const std::string check =
          (candidate[0] != '/' && !request.cwd.empty()) ? absl::StrCat(request.cwd, "/", candidate) : candidate;
      struct stat st {};
      int err = 0;
      if (::stat(check.c_str(), &st) != 0) {
        err = errno;
      } else if (!S_ISREG(st.st_mode)) {
        err = EACCES;  // what execve says of a directory
      } else if (::faccessat(AT_FDCWD, check.c_str(), X_OK, AT_EACCESS) != 0) {
        err = errno;
      } else {
        return candidate;
      }
      if (err != ENOENT && err != ENOTDIR && first_error == 0) first_error = err;
    }
  }
  throw_system_error(first_error != 0 ? first_error : ENOENT, absl::StrCat("cannot run '", name, "'"));
}

// Why changing to `cwd` fails, or 0.
int cwd_error(const std::string& cwd) {
  struct stat st {};
  if (::stat(cwd.c_str(), &st) != 0) return errno;
  if (!S_ISDIR(st.st_mode)) return ENOTDIR;
  if (::access(cwd.c_str(), X_OK) != 0) return errno;
  return 0;
}

// A new pipe: `parent` gets the parent's end (non-blocking), `child` the
// child's, moved to 3 or above when it is 0..2 (so that the dup2 onto one
// standard stream never clobbers the source of another; the low fd stays
// open in `child_side` until the spawn is over, so no later pipe gets it).
void make_pipe(bool child_reads, int* parent, int* child, FdCloser& child_side, FdCloser& parent_side) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) throw_system_error(errno, "pipe2");
  *child = child_reads ? p[0] : p[1];
  *parent = child_reads ? p[1] : p[0];
  child_side.add(*child);
  parent_side.add(*parent);
  const int flags = ::fcntl(*parent, F_GETFL);
  if (flags < 0 || ::fcntl(*parent, F_SETFL, flags | O_NONBLOCK) != 0) throw_system_error(errno, "fcntl");
  if (*child < 3) {
    const int high = ::fcntl(*child, F_DUPFD_CLOEXEC, 3);
    if (high < 0) throw_system_error(errno, "fcntl(F_DUPFD_CLOEXEC)");
    child_side.add(high);
    *child = high;
  }
}

class SpawnAttributes {
 public:
  SpawnAttributes() {
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
  }
  SpawnAttributes(const SpawnAttributes&) = delete;
  SpawnAttributes& operator=(const SpawnAttributes&) = delete;
  ~SpawnAttributes() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
};

void check_rc(int rc, const char* what) {
  if (rc != 0) throw_system_error(rc, what);
}

}  // namespace

// ---- children

// What a waiter thread and the loop thread share about one child: once the
// loop is gone the waiter reaps it, and send_signal must not signal a pid
// that was reaped (and may be reused).
struct WaiterLock {
  std::mutex mu;
  bool reaped = false;
};

struct EpollProcesses::Child {
  Child() = default;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child() {
    if (watch) watch->release();
    if (pidfd >= 0) ::close(pidfd);
  }

  pid_t pid = -1;
  int pidfd = -1;                       // kept until reaped, for signals
  FdWatch* watch = nullptr;             // the pidfd's, while the loop watches it
  std::shared_ptr<WaiterLock> waiter;   // the fallback's
  bool exited = false;                  // observed (and reaped)
  int returncode = 0;                   // once exited
  absl::AnyInvocable<void(int)> done;   // on_exit's
};

// The waiter threads' mailbox: the pids they saw exit, until the loop
// thread takes them. `owner` and `loop` are nullptr once the backend closed.
struct EpollProcesses::Mailbox {
  std::mutex mu;
  EpollProcesses* owner = nullptr;
  EventLoop* loop = nullptr;
  std::vector<pid_t> exited;
  bool posted = false;  // a drain is queued on the loop
};

class EpollProcesses::Channel final : public ProcessChannel {
 public:
  Channel(EventLoop& loop, std::shared_ptr<Child> child) : loop_(loop), child_(std::move(child)) {}
  ~Channel() override {
    // The transport that set `done` is going away; the child stays watched.
    child_->done = nullptr;
  }

  int pid() const override { return child_->pid; }

  std::unique_ptr<StreamChannel> take_pipe(int fd) override {
    if (fd < 0 || fd > 2) throw std::invalid_argument(absl::StrCat("take_pipe: no standard stream ", fd));
    return std::move(pipes_[fd]);
  }

  void on_exit(absl::AnyInvocable<void(int returncode)> done) override {
    if (!child_->exited) {
      child_->done = std::move(done);
    } else if (!loop_.is_closed()) {
      loop_.call_soon([done = std::move(done), rc = child_->returncode]() mutable { done(rc); });
    }
  }

  void send_signal(int sig) override {
    if (sig < 0 || sig >= NSIG) {
      throw std::invalid_argument(absl::StrFormat("send_signal: signal number %d out of range [0, %d)", sig, NSIG));
    }
    Child& c = *child_;
    if (c.exited) return;
    int r;
    if (c.pidfd >= 0) {
      // The pidfd names this child even after a reaper (once the loop
      // closed) has reaped it: never a reused pid.
      r = pidfd_send_signal(c.pidfd, sig);
      if (r != 0 && errno == ENOSYS) r = ::kill(c.pid, sig);
    } else if (c.waiter) {
      std::lock_guard<std::mutex> lock(c.waiter->mu);
      if (c.waiter->reaped) return;
      r = ::kill(c.pid, sig);
    } else {
      r = ::kill(c.pid, sig);
    }
    if (r == 0) return;
    const int err = errno;
    if (err == ESRCH) return;  // gone meanwhile (gh-87744: not an error)
    if (err == EINVAL) throw std::invalid_argument(absl::StrCat("send_signal: invalid signal ", sig));
    throw_system_error(err, absl::StrCat("send_signal(", sig, ") to pid ", c.pid));
  }

  bool exited() const override { return child_->exited; }

  std::unique_ptr<StreamChannel> pipes_[3];

 private:
  EventLoop& loop_;
  std::shared_ptr<Child> child_;
};

EpollProcesses::EpollProcesses(EpollBackend& backend, EventLoop& loop)
    : backend_(backend), loop_(loop), mailbox_(std::make_shared<Mailbox>()) {
  mailbox_->owner = this;
  mailbox_->loop = &loop;
}

EpollProcesses::~EpollProcesses() { close(); }

std::unique_ptr<ProcessChannel> EpollProcesses::spawn(const SpawnRequest& request) {
  if (closed_ || loop_.is_closed()) throw std::runtime_error("Event loop is closed");
  check_request(request);
  const std::string& name = request.executable.empty() ? request.argv[0] : request.executable;
  const std::string file = find_program(name, request);

  FdCloser child_side;   // closed once the child has them (or on failure)
  FdCloser parent_side;  // until the channels own them
  int parent_fd[3] = {-1, -1, -1};
  SpawnAttributes sa;
  static constexpr char kDevNull[] = "/dev/null";
  const Redirect modes[3] = {request.stdin_mode, request.stdout_mode, request.stderr_mode};
  for (int fd = 0; fd < 3; ++fd) {
    switch (modes[fd]) {
      case Redirect::kInherit:
        break;
      case Redirect::kPipe: {
        int child_fd;
        make_pipe(/*child_reads=*/fd == 0, &parent_fd[fd], &child_fd, child_side, parent_side);
        check_rc(posix_spawn_file_actions_adddup2(&sa.actions, child_fd, fd), "posix_spawn_file_actions_adddup2");
        break;
      }
      case Redirect::kDevNull:
        check_rc(posix_spawn_file_actions_addopen(&sa.actions, fd, kDevNull, fd == 0 ? O_RDONLY : O_WRONLY, 0),
                 "posix_spawn_file_actions_addopen");
        break;
      case Redirect::kStdout:  // stderr only (check_request)
        check_rc(posix_spawn_file_actions_adddup2(&sa.actions, 1, 2), "posix_spawn_file_actions_adddup2");
        break;
    }
  }
  // subprocess's close_fds=True: nothing but 0, 1 and 2 reaches the child,
  // even an fd the program opened without O_CLOEXEC.
  check_rc(posix_spawn_file_actions_addclosefrom_np(&sa.actions, 3), "posix_spawn_file_actions_addclosefrom_np");
  if (!request.cwd.empty()) {
    check_rc(posix_spawn_file_actions_addchdir_np(&sa.actions, request.cwd.c_str()),
             "posix_spawn_file_actions_addchdir_np");
  }

  sigset_t none;
  sigemptyset(&none);
  check_rc(posix_spawnattr_setsigmask(&sa.attr, &none), "posix_spawnattr_setsigmask");
  sigset_t defaults = backend_.watched_signals();
  sigaddset(&defaults, SIGPIPE);
  sigaddset(&defaults, SIGXFSZ);
  check_rc(posix_spawnattr_setsigdefault(&sa.attr, &defaults), "posix_spawnattr_setsigdefault");
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (request.new_session) {
    flags |= POSIX_SPAWN_SETSID;  // setsid: a new group too (setpgid after it would fail)
  } else if (request.new_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    check_rc(posix_spawnattr_setpgroup(&sa.attr, 0), "posix_spawnattr_setpgroup");
  }
  check_rc(posix_spawnattr_setflags(&sa.attr, flags), "posix_spawnattr_setflags");

  std::vector<char*> argv;
  argv.reserve(request.argv.size() + 1);
  for (const std::string& arg : request.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  if (request.env) {
    envp.reserve(request.env->size() + 1);
    for (const std::string& entry : *request.env) envp.push_back(const_cast<char*>(entry.c_str()));
    envp.push_back(nullptr);
  }

  pid_t pid = -1;
  const int rc = ::posix_spawn(&pid, file.c_str(), &sa.actions, &sa.attr, argv.data(),
                               request.env ? envp.data() : environ);
  child_side.close_all();
  if (rc != 0) {
    // posix_spawn says ENOENT for a missing working directory as for a
    // missing program; say which (as _posixsubprocess's "noexec:chdir").
    if (!request.cwd.empty() && (rc == ENOENT || rc == ENOTDIR || rc == EACCES)) {
      const int err = cwd_error(request.cwd);
      if (err != 0) throw_system_error(err, absl::StrCat("cannot change to working directory '", request.cwd, "'"));
    }
    throw_system_error(rc, absl::StrCat("cannot run '", name, "'"));
  }

  auto child = std::make_shared<Child>();
  child->pid = pid;
  // A pid of ours reaped by someone else and reused: the new child's.
  children_[pid] = child;
  bool watched = false;
  if (!g_force_waiters.load(std::memory_order_relaxed) && g_have_pidfd.load(std::memory_order_relaxed)) {
    const int pidfd = pidfd_open(pid);
    if (pidfd >= 0) {
      child->pidfd = pidfd;
      try {
        child->watch = new PidWatch(&backend_, pidfd, [this, c = child.get()] { reap(*c, false); });
        child->watch->set_interest(EPOLLIN);
        watched = true;
      } catch (...) {
        // Out of memory or epoll space: a waiter thread instead (the pidfd
        // stays, for signals).
        if (child->watch) child->watch->release();
        child->watch = nullptr;
      }
    } else if (errno == ENOSYS || errno == EPERM) {
      g_have_pidfd.store(false, std::memory_order_relaxed);
    }
  }
  if (!watched) {
    try {
      start_waiter(child);
    } catch (...) {
      // Nothing could watch it: do not leave it running unobserved.
      ::kill(pid, SIGKILL);
      int status;
      wait_for(pid, &status, 0);
      children_.erase(pid);
      throw;
    }
  }

  auto channel = std::make_unique<Channel>(loop_, child);
  for (int fd = 0; fd < 3; ++fd) {
    if (parent_fd[fd] < 0) continue;
    channel->pipes_[fd] = std::make_unique<PipeChannel>(&backend_, parent_fd[fd], /*write_end=*/fd == 0);
    parent_side.forget(parent_fd[fd]);
  }
  return channel;
}

void EpollProcesses::reap(Child& child, bool known_exited) {
  if (child.exited) return;
  int status = 0;
  pid_t r = -1;
  bool asked = false;
  if (child.pidfd >= 0) {
    // waitid(P_PIDFD) (Linux 5.4) reaps exactly this child, even if its pid
    // was reaped elsewhere and reused meanwhile.
    siginfo_t info{};
    int w;
    do {
      w = ::waitid(static_cast<idtype_t>(3 /* P_PIDFD */), static_cast<id_t>(child.pidfd), &info,
                   WEXITED | (known_exited ? 0 : WNOHANG));
    } while (w < 0 && errno == EINTR);
    if (w == 0 || errno != EINVAL) {
      asked = true;
      if (w == 0 && info.si_pid == 0) return;  // still running (a spurious wake-up)
      r = w == 0 ? child.pid : -1;
      if (w == 0) status = info.si_code == CLD_EXITED ? W_EXITCODE(info.si_status, 0) : info.si_status;
    }
  }
  if (!asked) r = wait_for(child.pid, &status, known_exited ? 0 : WNOHANG);
  if (r == 0) return;  // still running (a spurious wake-up)
  int rc;
  if (r < 0) {
    // Reaped by someone else (waitpid(-1) elsewhere, SIGCHLD ignored).
    std::fprintf(stderr, "twinloop: unknown child process pid %d, will report returncode 255\n",
                 static_cast<int>(child.pid));
    rc = 255;
  } else {
    rc = returncode_of(status);
  }
  std::shared_ptr<Child> keep;  // a dropped channel's child dies with this
  auto it = children_.find(child.pid);
  if (it != children_.end() && it->second.get() == &child) {
    keep = std::move(it->second);
    children_.erase(it);
  }
  child.exited = true;
  child.returncode = rc;
  if (child.watch) {
    child.watch->release();  // possibly from its own on_ready: deleted after
    child.watch = nullptr;
  }
  if (child.pidfd >= 0) {
    ::close(child.pidfd);
    child.pidfd = -1;
  }
  if (child.waiter) {
    std::lock_guard<std::mutex> lock(child.waiter->mu);
    child.waiter->reaped = true;
  }
  if (child.done) {
    loop_.call_soon([done = std::move(child.done), rc]() mutable { done(rc); });
    child.done = nullptr;
  }
}

void EpollProcesses::start_waiter(const std::shared_ptr<Child>& child) {
  child->waiter = std::make_shared<WaiterLock>();
  std::shared_ptr<WaiterLock> lock_state = child->waiter;
  std::shared_ptr<Mailbox> mailbox = mailbox_;
  const pid_t pid = child->pid;
  run_detached(
      [mailbox, lock_state, pid] {
        // WNOWAIT: see the exit, leave the zombie; the pid stays this
        // child's until the loop thread reaps it.
        siginfo_t info{};
        while (::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) != 0 && errno == EINTR) {
        }
        {
          std::lock_guard<std::mutex> lock(mailbox->mu);
          if (mailbox->loop) {
            mailbox->exited.push_back(pid);
            if (!mailbox->posted) {
              try {
                mailbox->loop->call_soon_threadsafe([mailbox] {
                  EpollProcesses* owner;
                  {
                    std::lock_guard<std::mutex> lock(mailbox->mu);
                    owner = mailbox->owner;
                  }
                  if (owner) owner->drain_mailbox();
                });
                mailbox->posted = true;
              } catch (...) {
                // The loop is closing: close() reaps what the mailbox holds.
              }
            }
            return;
          }
        }
        // The loop is gone: reap it here.
        std::lock_guard<std::mutex> lock(lock_state->mu);
        int status;
        if (!lock_state->reaped) wait_for(pid, &status, 0);
        lock_state->reaped = true;
      },
      "twinloop_wait");
}

void EpollProcesses::drain_mailbox() {
  std::vector<pid_t> pids;
  {
    std::lock_guard<std::mutex> lock(mailbox_->mu);
    pids.swap(mailbox_->exited);
    mailbox_->posted = false;
  }
  for (pid_t pid : pids) {
    auto it = children_.find(pid);
    if (it != children_.end()) reap(*it->second, /*known_exited=*/true);
  }
}

void EpollProcesses::close() {
  if (closed_) return;
  closed_ = true;
  std::vector<pid_t> seen;
  {
    std::lock_guard<std::mutex> lock(mailbox_->mu);
    mailbox_->owner = nullptr;
    mailbox_->loop = nullptr;
    seen.swap(mailbox_->exited);
  }
  std::vector<pid_t> running;
  for (auto& [pid, child] : children_) {
    Child& c = *child;
    c.done = nullptr;  // no callback runs any more
    if (c.watch) {
      c.watch->release();
      c.watch = nullptr;
    }
    // A last look: exited children are reaped here, without a callback.
    bool reaped = false;
    int status;
    if (c.waiter) {
      std::lock_guard<std::mutex> lock(c.waiter->mu);
      if (!c.waiter->reaped) {
        const bool known = std::find(seen.begin(), seen.end(), pid) != seen.end();
        const pid_t r = wait_for(pid, &status, known ? 0 : WNOHANG);
        c.waiter->reaped = r != 0;
      }
      reaped = c.waiter->reaped;
    } else {
      reaped = wait_for(pid, &status, WNOHANG) != 0;
    }
    if (reaped) {
      c.exited = true;
      if (c.pidfd >= 0) ::close(c.pidfd);
      c.pidfd = -1;
      continue;
    }
    running.push_back(pid);
    if (c.waiter) continue;  // its waiter reaps it, now that the loop is gone
    try {
      // A named copy: clang 14 cannot capture a structured binding.
      const pid_t reap = pid;
      run_detached(
          [reap] {
            int st;
            wait_for(reap, &st, 0);
          },
          "twinloop_reap");
    } catch (...) {
      std::fprintf(stderr, "twinloop: no thread to reap child process pid %d; it stays a zombie when it exits\n",
                   static_cast<int>(pid));
    }
  }
  children_.clear();
  if (!running.empty()) {
    // asyncio's "Loop ... that handles pid N is closed".
    std::fprintf(stderr,
                 "twinloop: event loop closed with child processes still running (pid %s); they are reaped in the "
                 "background when they exit\n",
                 absl::StrJoin(running, ", ").c_str());
  }
}

namespace process_internal {
void force_waiter_threads(bool on) { g_force_waiters.store(on, std::memory_order_relaxed); }
}  // namespace process_internal

}  // namespace twinloop::real
