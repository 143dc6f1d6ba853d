// The real loop's child processes (real/process.h), driven through the seam
// (api/process_backend.h) with a real loop stepped by hand. Most cases run
// twice: exits observed with pidfds, and with the waiter-thread fallback
// (process_internal::force_waiter_threads).
#include "twinloop/real/process.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/net_backend.h"
#include "twinloop/api/process_backend.h"
#include "twinloop/real/epoll_backend.h"
#include "twinloop/real/run.h"
#include "twinloop/tests/proc_probes.h"

namespace twinloop::real {
namespace {

using ::twinloop::test_util::open_fds;
using ::twinloop::test_util::zombie_children;
using ::twinloop::test_util::proc_stat;

using Clock = std::chrono::steady_clock;
constexpr auto kPatience = std::chrono::seconds(10);

// ---- process probes

size_t pidfds_open() {
  size_t n = 0;
  for (const auto& fd : open_fds()) n += fd.second == "anon_inode:[pidfd]";
  return n;
}

// Whether our child `pid` is gone: reaped (no /proc entry, or the pid is
// someone else's now). A zombie is not gone.
bool child_gone(int pid) {
  char state = 0;
  int ppid = 0;
  return !proc_stat(pid, &state, &ppid) || ppid != ::getpid();
}

bool wait_until(const std::function<bool()>& done) {
  const Clock::time_point give_up = Clock::now() + kPatience;
  while (!done()) {
    if (Clock::now() > give_up) return false;
    ::usleep(1000);
  }
  return true;
}

std::error_code code_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::system_error& error) {
    return error.code();
  } catch (...) {
    return std::error_code(-1, std::generic_category());
  }
}

// ---- pipe drivers

// Reads a pipe to its end.
class Reader final : public ChannelEvents {
 public:
  explicit Reader(std::unique_ptr<StreamChannel> channel) : channel_(std::move(channel)) {
    channel_->set_events(this);
    channel_->want_read(true);
  }
  void on_readable() override {
    char buf[16384];
    while (!eof) {
      const std::ptrdiff_t n = channel_->read(buf, sizeof buf);
      if (n == StreamChannel::kWouldBlock) return;
      if (n == 0) {
        eof = true;
        channel_->want_read(false);
        return;
      }
      data.append(buf, static_cast<size_t>(n));
    }
  }
  void on_writable() override {}

  std::string data;
  bool eof = false;

 private:
  std::unique_ptr<StreamChannel> channel_;
};

// Writes `data` to a pipe, then shuts it; records a write error.
class Writer final : public ChannelEvents {
 public:
  Writer(std::unique_ptr<StreamChannel> channel, std::string data)
      : channel_(std::move(channel)), data_(std::move(data)) {
    channel_->set_events(this);
    pump();
  }
  void on_readable() override {}
  void on_writable() override { pump(); }

  StreamChannel& channel() { return *channel_; }
  size_t written = 0;
  bool finished = false;
  std::exception_ptr error;

 private:
  void pump() {
    try {
      while (written < data_.size()) {
        const size_t n = channel_->write(data_.data() + written, data_.size() - written);
        if (n == 0) {
          channel_->want_write(true);
          return;
        }
        written += n;
      }
      channel_->want_write(false);
      channel_->shutdown_write();
    } catch (...) {
      error = std::current_exception();
      channel_->want_write(false);
    }
    finished = true;
  }

  std::unique_ptr<StreamChannel> channel_;
  std::string data_;
};

struct Exit {
  bool done = false;
  int returncode = 0;
};

SpawnRequest command(std::vector<std::string> argv) {
  SpawnRequest r;
  r.argv = std::move(argv);
  return r;
}

std::string test_tmpdir() {
  const char* dir = std::getenv("TEST_TMPDIR");
  return dir ? dir : "/tmp";
}

// ---- the fixture

class ProcessTest : public ::testing::TestWithParam<bool> {
 protected:
  ProcessTest() : loop_(new_event_loop()) { process_internal::force_waiter_threads(GetParam()); }
  ~ProcessTest() override {
    if (!loop_->is_closed()) loop_->close();
    process_internal::force_waiter_threads(false);
  }

  bool waiters() const { return GetParam(); }
  ProcessBackend& processes() { return *loop_->backend().processes(); }
  EpollProcesses& epoll_processes() { return static_cast<EpollProcesses&>(processes()); }

  // Runs loop iterations until `done()` holds (true) or kPatience passed.
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

  std::shared_ptr<Exit> watch_exit(ProcessChannel& child) {
    auto exit = std::make_shared<Exit>();
    child.on_exit([exit](int rc) {
      exit->done = true;
      exit->returncode = rc;
    });
    EXPECT_FALSE(exit->done) << "on_exit ran inside the call";
    return exit;
  }

  // The return code of `request`'s child, run to its end.
  int run_to_exit(const SpawnRequest& request) {
    std::unique_ptr<ProcessChannel> child = processes().spawn(request);
    std::shared_ptr<Exit> exit = watch_exit(*child);
    EXPECT_TRUE(run_until([&] { return exit->done; }));
    EXPECT_TRUE(child->exited());
    EXPECT_TRUE(child_gone(child->pid())) << "not reaped";
    return exit->returncode;
  }

  // The child's stdout (and its exit), with stdout a pipe.
  std::string output_of(SpawnRequest request, int* returncode = nullptr) {
    request.stdout_mode = Redirect::kPipe;
    std::unique_ptr<ProcessChannel> child = processes().spawn(request);
    std::shared_ptr<Exit> exit = watch_exit(*child);
    Reader out(child->take_pipe(1));
    EXPECT_TRUE(run_until([&] { return exit->done && out.eof; }));
    if (returncode) *returncode = exit->returncode;
    return out.data;
  }

  EventLoopRef loop_;
};

INSTANTIATE_TEST_SUITE_P(Watchers, ProcessTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("WaiterThreads") : std::string("Pidfd");
                         });

// ---- exit codes and signals

TEST_P(ProcessTest, ExitCodes) {
  EXPECT_EQ(run_to_exit(command({"/bin/true"})), 0);
  EXPECT_EQ(run_to_exit(command({"/bin/false"})), 1);
  EXPECT_EQ(run_to_exit(command({"/bin/sh", "-c", "exit 7"})), 7);
  EXPECT_EQ(run_to_exit(command({"/bin/sh", "-c", "exit 255"})), 255);
  EXPECT_EQ(epoll_processes().running(), 0u);
}

TEST_P(ProcessTest, TheWatcherInUse) {
  // A pidfd per running child, or none with waiter threads.
  const size_t before = pidfds_open();
  std::unique_ptr<ProcessChannel> child = processes().spawn(command({"/bin/sleep", "30"}));
  EXPECT_EQ(pidfds_open(), before + (waiters() ? 0 : 1));
  std::shared_ptr<Exit> exit = watch_exit(*child);
  child->send_signal(SIGKILL);
  ASSERT_TRUE(run_until([&] { return exit->done; }));
  EXPECT_EQ(pidfds_open(), before);
}

TEST_P(ProcessTest, KillAndTerminateGiveMinusTheSignal) {
  for (int sig : {SIGKILL, SIGTERM}) {
    std::unique_ptr<ProcessChannel> child = processes().spawn(command({"/bin/sleep", "30"}));
    std::shared_ptr<Exit> exit = watch_exit(*child);
    EXPECT_FALSE(child->exited());
    child->send_signal(sig);
    ASSERT_TRUE(run_until([&] { return exit->done; }));
    EXPECT_EQ(exit->returncode, -sig);
    EXPECT_TRUE(child->exited());
  }
}

TEST_P(ProcessTest, SignalZeroProbesARunningChild) {
  std::unique_ptr<ProcessChannel> child = processes().spawn(command({"/bin/sleep", "30"}));
  std::shared_ptr<Exit> exit = watch_exit(*child);
  child->send_signal(0);
  EXPECT_FALSE(child->exited());
  child->send_signal(SIGKILL);
  ASSERT_TRUE(run_until([&] { return exit->done; }));
}

TEST_P(ProcessTest, SendSignalAfterTheExitDoesNothing) {
  std::unique_ptr<ProcessChannel> child = processes().spawn(command({"/bin/true"}));
  std::shared_ptr<Exit> exit = watch_exit(*child);
  ASSERT_TRUE(run_until([&] { return exit->done; }));
  child->send_signal(SIGKILL);
  child->send_signal(SIGTERM);
  EXPECT_EQ(exit->returncode, 0);
}

TEST_P(ProcessTest, AnInvalidSignalIsInvalidArgument) {
  std::unique_ptr<ProcessChannel> child = processes().spawn(command({"/bin/sleep", "30"}));
  std::shared_ptr<Exit> exit = watch_exit(*child);
  EXPECT_THROW(child->send_signal(-1), std::invalid_argument);
  EXPECT_THROW(child->send_signal(NSIG), std::invalid_argument);
  EXPECT_THROW(child->send_signal(1000), std::invalid_argument);
  EXPECT_FALSE(child->exited());
  child->send_signal(SIGKILL);
  ASSERT_TRUE(run_until([&] { return exit->done; }));
  EXPECT_THROW(child->send_signal(-1), std::invalid_argument);
}

TEST_P(ProcessTest, OnExitAfterTheExitStillRunsLater) {
  std::unique_ptr<ProcessChannel> child = processes().spawn(command({"/bin/sh", "-c", "exit 3"}));
  std::shared_ptr<Exit> first = watch_exit(*child);
  ASSERT_TRUE(run_until([&] { return first->done; }));
  std::shared_ptr<Exit> late = watch_exit(*child);
  ASSERT_TRUE(run_until([&] { return late->done; }));
  EXPECT_EQ(late->returncode, 3);
}

TEST_P(ProcessTest, AChildReapedElsewhereReports255) {
  // asyncio: "Unknown child process pid %d, will report returncode 255".
  std::unique_ptr<ProcessChannel> child = processes().spawn(command({"/bin/sleep", "30"}));
  std::shared_ptr<Exit> exit = watch_exit(*child);
  ASSERT_EQ(::kill(child->pid(), SIGKILL), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(child->pid(), &status, 0), child->pid());
  testing::internal::CaptureStderr();
  const bool done = run_until([&] { return exit->done; });
  const std::string warning = testing::internal::GetCapturedStderr();
  ASSERT_TRUE(done);
  EXPECT_EQ(exit->returncode, 255);
  EXPECT_NE(warning.find(absl::StrCat("pid ", child->pid())), std::string::npos) << warning;
  EXPECT_EQ(epoll_processes().running(), 0u);
}

// ---- pipes

TEST_P(ProcessTest, PipesRoundTripThroughCatBeyondThePipeBuffer) {
  // 1 MiB each way, many times a pipe's 64 KiB: neither side may block.
  std::string data(1 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>('a' + (i * 7919) % 26);
  SpawnRequest request = command({"cat"});
  request.stdin_mode = request.stdout_mode = Redirect::kPipe;
  std::unique_ptr<ProcessChannel> child = processes().spawn(request);
  std::shared_ptr<Exit> exit = watch_exit(*child);
  EXPECT_EQ(child->take_pipe(2), nullptr);  // not asked for
  Writer in(child->take_pipe(0), data);
  Reader out(child->take_pipe(1));
  EXPECT_EQ(child->take_pipe(0), nullptr);  // taken already
  ASSERT_TRUE(run_until([&] { return exit->done && out.eof && in.finished; }));
  EXPECT_EQ(in.error, nullptr);
  EXPECT_EQ(in.written, data.size());
  EXPECT_EQ(out.data.size(), data.size());
  EXPECT_TRUE(out.data == data);
  EXPECT_EQ(exit->returncode, 0);
}

TEST_P(ProcessTest, StderrPipeBeyondThePipeBuffer) {
  SpawnRequest request = command({"/bin/sh", "-c", "head -c 300000 /dev/zero >&2; echo done"});
  request.stdout_mode = request.stderr_mode = Redirect::kPipe;
  std::unique_ptr<ProcessChannel> child = processes().spawn(request);
  std::shared_ptr<Exit> exit = watch_exit(*child);
  Reader out(child->take_pipe(1));
  Reader err(child->take_pipe(2));
  ASSERT_TRUE(run_until([&] { return exit->done && out.eof && err.eof; }));
  EXPECT_EQ(err.data, std::string(300000, '\0'));
  EXPECT_EQ(out.data, "done\n");
}

TEST_P(ProcessTest, StdoutEndsWhenTheChildExits) {
  int rc = -1;
  EXPECT_EQ(output_of(command({"/bin/echo", "hello"}), &rc), "hello\n");
  EXPECT_EQ(rc, 0);
  // Nothing at all: the end at once.
  EXPECT_EQ(output_of(command({"/bin/true"})), "");
}

TEST_P(ProcessTest, ABrokenStdinPipeIsBrokenPipeErrorNotSIGPIPE) {
  // SIGPIPE at its default: a write that raised it would kill this test.
  struct sigaction dfl {}, previous{};
  dfl.sa_handler = SIG_DFL;
  ASSERT_EQ(::sigaction(SIGPIPE, &dfl, &previous), 0);
  SpawnRequest request = command({"/bin/true"});
  request.stdin_mode = Redirect::kPipe;
  std::unique_ptr<ProcessChannel> child = processes().spawn(request);
  std::shared_ptr<Exit> exit = watch_exit(*child);
  std::unique_ptr<StreamChannel> in = child->take_pipe(0);
  ASSERT_TRUE(run_until([&] { return exit->done; }));
  // The reader is gone: read() says so, and the watch reports it.
  char c;
  EXPECT_EQ(in->read(&c, 1), 0);
  struct Events final : ChannelEvents {
    int readable = 0;
    void on_readable() override { ++readable; }
    void on_writable() override {}
  } events;
  in->set_events(&events);
  in->want_read(true);
  ASSERT_TRUE(run_until([&] { return events.readable > 0; }));
  in->want_read(false);
  try {
    in->write("x", 1);
    ADD_FAILURE() << "write to a pipe without a reader succeeded";
  } catch (const BrokenPipeError& e) {
    EXPECT_EQ(e.code().value(), EPIPE);
  }
  sigset_t pending;
  sigemptyset(&pending);
  ::sigpending(&pending);
  EXPECT_FALSE(sigismember(&pending, SIGPIPE)) << "a SIGPIPE was left pending";
  ::sigaction(SIGPIPE, &previous, nullptr);
}

TEST_P(ProcessTest, AChildThatStopsReadingBreaksTheWriterMidStream) {
  struct sigaction dfl {}, previous{};
  dfl.sa_handler = SIG_DFL;
  ASSERT_EQ(::sigaction(SIGPIPE, &dfl, &previous), 0);
  // Reads one line, then exits: the rest cannot be written.
  SpawnRequest request = command({"/bin/sh", "-c", "read line"});
  request.stdin_mode = Redirect::kPipe;
  std::unique_ptr<ProcessChannel> child = processes().spawn(request);
  std::shared_ptr<Exit> exit = watch_exit(*child);
  Writer in(child->take_pipe(0), "first\n" + std::string(4 << 20, 'x'));
  ASSERT_TRUE(run_until([&] { return exit->done && in.finished; }));
  EXPECT_EQ(code_of(in.error), std::error_code(EPIPE, std::generic_category()));
  EXPECT_LT(in.written, 4u << 20);
  ::sigaction(SIGPIPE, &previous, nullptr);
}

TEST_P(ProcessTest, ReadOfStdinIsWouldBlockWhileTheChildReads) {
  SpawnRequest request = command({"cat"});
  request.stdin_mode = Redirect::kPipe;
  request.stdout_mode = Redirect::kDevNull;
  std::unique_ptr<ProcessChannel> child = processes().spawn(request);
  std::shared_ptr<Exit> exit = watch_exit(*child);
  std::unique_ptr<StreamChannel> in = child->take_pipe(0);
  char c;
  EXPECT_EQ(in->read(&c, 1), StreamChannel::kWouldBlock);
  in->shutdown_write();  // cat reads the end and exits
  EXPECT_EQ(in->read(&c, 1), 0);
  EXPECT_THROW(in->write("x", 1), BrokenPipeError);
  ASSERT_TRUE(run_until([&] { return exit->done; }));
  EXPECT_EQ(exit->returncode, 0);
  in->close(false);
  EXPECT_THROW(in->write("x", 1), std::system_error);
}

// ---- redirects

TEST_P(ProcessTest, DevNull) {
  // stdin from /dev/null: cat sees the end at once.
  SpawnRequest cat = command({"cat"});
  cat.stdin_mode = Redirect::kDevNull;
  int rc = -1;
  EXPECT_EQ(output_of(cat, &rc), "");
  EXPECT_EQ(rc, 0);
  // Where readlink's own streams point: /dev/null, the pipe, /dev/null.
  SpawnRequest links = command({"/bin/readlink", "/proc/self/fd/0", "/proc/self/fd/1", "/proc/self/fd/2"});
  links.stdin_mode = Redirect::kDevNull;
  links.stderr_mode = Redirect::kDevNull;
  std::vector<std::string> lines = absl::StrSplit(output_of(links, &rc), '\n');
  EXPECT_EQ(rc, 0);
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0], "/dev/null");
  EXPECT_EQ(lines[1].rfind("pipe:", 0), 0u) << lines[1];
  EXPECT_EQ(lines[2], "/dev/null");
  // stdout to /dev/null: the shell's exit code tells where its fd 1 went.
  SpawnRequest check = command({"/bin/sh", "-c", "test \"$(readlink /proc/$$/fd/1)\" = /dev/null"});
  check.stdout_mode = Redirect::kDevNull;
  EXPECT_EQ(run_to_exit(check), 0);
}

TEST_P(ProcessTest, StderrMergedIntoStdout) {
  SpawnRequest request = command({"/bin/sh", "-c", "echo out; echo err >&2; echo out2"});
  request.stderr_mode = Redirect::kStdout;
  std::unique_ptr<ProcessChannel> child = [&] {
    request.stdout_mode = Redirect::kPipe;
    return processes().spawn(request);
  }();
  EXPECT_EQ(child->take_pipe(2), nullptr);
  std::shared_ptr<Exit> exit = watch_exit(*child);
  Reader out(child->take_pipe(1));
  ASSERT_TRUE(run_until([&] { return exit->done && out.eof; }));
  EXPECT_EQ(out.data, "out\nerr\nout2\n");
}

TEST_P(ProcessTest, StderrMergedIntoDevNullStdout) {
  // readlink's answer goes to /dev/null too: the exit code tells.
  SpawnRequest check = command({"/bin/sh", "-c", "test \"$(readlink /proc/$$/fd/2)\" = /dev/null"});
  check.stdout_mode = Redirect::kDevNull;
  check.stderr_mode = Redirect::kStdout;
  EXPECT_EQ(run_to_exit(check), 0);
}

// ---- environment, working directory, program lookup

TEST_P(ProcessTest, EnvironmentAndWorkingDirectory) {
  const std::string dir = test_tmpdir();
  char real[PATH_MAX];
  ASSERT_NE(::realpath(dir.c_str(), real), nullptr);
  SpawnRequest request = command({"sh", "-c", "echo \"$FOO|$HOME\"; pwd -P"});
  request.env = std::vector<std::string>{"FOO=bar baz", "PATH=/usr/bin:/bin"};
  request.cwd = dir;
  EXPECT_EQ(output_of(request), absl::StrCat("bar baz|\n", real, "\n"));
}

TEST_P(ProcessTest, TheParentsEnvironmentWhenNoneIsGiven) {
  ASSERT_EQ(::setenv("TWINLOOP_PROCESS_TEST", "inherited", 1), 0);
  EXPECT_EQ(output_of(command({"/bin/sh", "-c", "echo $TWINLOOP_PROCESS_TEST"})), "inherited\n");
  ::unsetenv("TWINLOOP_PROCESS_TEST");
}

TEST_P(ProcessTest, TheProgramIsLookedUpInTheGivenEnvironmentsPath) {
  SpawnRequest request = command({"sh", "-c", "exit 4"});
  // The given environment's PATH, not the parent's.
  request.env = std::vector<std::string>{"PATH=/nonexistent-twinloop"};
  try {
    processes().spawn(request);
    ADD_FAILURE() << "sh found outside the given PATH";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::error_code(ENOENT, std::generic_category())) << e.what();
  }
  // No PATH in it: os.defpath, /bin:/usr/bin.
  request.env = std::vector<std::string>{"FOO=1"};
  EXPECT_EQ(run_to_exit(request), 4);
}

TEST_P(ProcessTest, ExecutableReplacesArgvZeroAsTheFile) {
  SpawnRequest request = command({"my-name", "-c", "echo $0"});
  request.executable = "/bin/sh";
  EXPECT_EQ(output_of(request), "my-name\n");
}

TEST_P(ProcessTest, AMissingProgramIsENOENTFromSpawn) {
  for (const char* program : {"/nonexistent/twinloop-prog", "twinloop-no-such-program"}) {
    const size_t fds = open_fds().size();
    try {
      SpawnRequest request = command({program});
      request.stdin_mode = request.stdout_mode = request.stderr_mode = Redirect::kPipe;
      processes().spawn(request);
      ADD_FAILURE() << program << " spawned";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::error_code(ENOENT, std::generic_category())) << e.what();
      EXPECT_NE(std::string(e.what()).find(program), std::string::npos) << e.what();
    }
    EXPECT_EQ(open_fds().size(), fds) << "the pipes of a failed spawn leaked";
  }
  EXPECT_EQ(epoll_processes().running(), 0u);
}

TEST_P(ProcessTest, AMissingWorkingDirectoryIsENOENTFromSpawn) {
  SpawnRequest request = command({"/bin/true"});
  request.cwd = "/nonexistent/twinloop-dir";
  try {
    processes().spawn(request);
    ADD_FAILURE() << "spawned in a missing directory";
  } catch (const std::system_error& e) {
    EXPECT_EQ(e.code(), std::error_code(ENOENT, std::generic_category())) << e.what();
    EXPECT_NE(std::string(e.what()).find("/nonexistent/twinloop-dir"), std::string::npos) << e.what();
  }
}

TEST_P(ProcessTest, AFileWeMayNotRunIsEACCES) {
  const std::string dir = absl::StrCat(test_tmpdir(), "/eacces_", ::getpid(), "_", waiters());
  ASSERT_EQ(::mkdir(dir.c_str(), 0755), 0);
  const std::string file = dir + "/twinloop-not-executable";
  { std::ofstream(file) << "#!/bin/sh\nexit 0\n"; }
  ASSERT_EQ(::chmod(file.c_str(), 0644), 0);
  for (const std::string& program : {file, std::string("twinloop-not-executable")}) {
    SpawnRequest request = command({program});
    request.env = std::vector<std::string>{"PATH=/nonexistent-twinloop:" + dir};
    try {
      processes().spawn(request);
      ADD_FAILURE() << program << " spawned";
    } catch (const std::system_error& e) {
      EXPECT_EQ(e.code(), std::error_code(EACCES, std::generic_category())) << e.what();
    }
  }
  // Executable later on the path: found there.
  const std::string dir2 = dir + "/bin";
  ASSERT_EQ(::mkdir(dir2.c_str(), 0755), 0);
  { std::ofstream(dir2 + "/twinloop-not-executable") << "#!/bin/sh\nexit 6\n"; }
  ASSERT_EQ(::chmod((dir2 + "/twinloop-not-executable").c_str(), 0755), 0);
  SpawnRequest request = command({"twinloop-not-executable"});
  request.env = std::vector<std::string>{"PATH=" + dir + ":" + dir2};
  EXPECT_EQ(run_to_exit(request), 6);
}

TEST_P(ProcessTest, MalformedRequestsAreInvalidArgument) {
  EXPECT_THROW(processes().spawn(command({})), std::invalid_argument);
  SpawnRequest request = command({"/bin/true"});
  request.stdin_mode = Redirect::kStdout;
  EXPECT_THROW(processes().spawn(request), std::invalid_argument);
  request = command({"/bin/true"});
  request.stdout_mode = Redirect::kStdout;
  EXPECT_THROW(processes().spawn(request), std::invalid_argument);
  request = command({"/bin/true", std::string("a\0b", 3)});
  EXPECT_THROW(processes().spawn(request), std::invalid_argument);
  request = command({"/bin/true"});
  request.env = std::vector<std::string>{"NOEQUALS"};
  EXPECT_THROW(processes().spawn(request), std::invalid_argument);
  EXPECT_EQ(epoll_processes().running(), 0u);
}

// ---- process groups

TEST_P(ProcessTest, NewProcessGroupAndSession) {
  SpawnRequest request = command({"/bin/sleep", "30"});
  request.new_process_group = true;
  std::unique_ptr<ProcessChannel> child = processes().spawn(request);
  EXPECT_EQ(::getpgid(child->pid()), child->pid());
  EXPECT_EQ(::getsid(child->pid()), ::getsid(0));
  request.new_process_group = false;
  request.new_session = true;
  std::unique_ptr<ProcessChannel> leader = processes().spawn(request);
  EXPECT_EQ(::getsid(leader->pid()), leader->pid());
  EXPECT_EQ(::getpgid(leader->pid()), leader->pid());
  request.new_session = false;
  std::unique_ptr<ProcessChannel> plain = processes().spawn(request);
  EXPECT_EQ(::getpgid(plain->pid()), ::getpgid(0));
  std::vector<std::shared_ptr<Exit>> exits;
  for (ProcessChannel* c : {child.get(), leader.get(), plain.get()}) {
    exits.push_back(watch_exit(*c));
    c->send_signal(SIGKILL);
  }
  ASSERT_TRUE(run_until([&] { return std::all_of(exits.begin(), exits.end(), [](auto& e) { return e->done; }); }));
}

// The child starts with an empty signal mask and SIGPIPE at its default,
// whatever the parent blocks or ignores.
TEST_P(ProcessTest, TheChildStartsWithCleanSignals) {
  struct sigaction ignore {}, previous{};
  ignore.sa_handler = SIG_IGN;
  ASSERT_EQ(::sigaction(SIGPIPE, &ignore, &previous), 0);
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGUSR1);
  sigaddset(&block, SIGTERM);
  ASSERT_EQ(pthread_sigmask(SIG_BLOCK, &block, &old), 0);
  // grep's own SigBlk and SigIgn, in hex (inherited through exec).
  const std::string out = output_of(command({"grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status"}));
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ::sigaction(SIGPIPE, &previous, nullptr);
  ASSERT_NE(out.find("SigBlk:\t0000000000000000"), std::string::npos) << out;
  // SIGPIPE is signal 13: bit 12 (0x1000) of SigIgn.
  const size_t ign = out.find("SigIgn:\t");
  ASSERT_NE(ign, std::string::npos) << out;
  const unsigned long long ignored = std::stoull(out.substr(ign + 8, 16), nullptr, 16);
  EXPECT_EQ(ignored & (1ull << (SIGPIPE - 1)), 0u) << out;
}

// ---- reaping

TEST_P(ProcessTest, ADroppedChannelsChildIsStillReaped) {
  SpawnRequest request = command({"cat"});
  request.stdin_mode = Redirect::kPipe;
  std::unique_ptr<ProcessChannel> child = processes().spawn(request);
  const int pid = child->pid();
  bool ran = false;
  child->on_exit([&ran](int) { ran = true; });
  std::unique_ptr<StreamChannel> in = child->take_pipe(0);
  child.reset();  // the child runs on
  EXPECT_EQ(epoll_processes().running(), 1u);
  EXPECT_FALSE(child_gone(pid));
  in->close(false);  // cat reads the end and exits
  ASSERT_TRUE(run_until([&] { return epoll_processes().running() == 0; }));
  EXPECT_TRUE(child_gone(pid)) << "a zombie";
  EXPECT_FALSE(ran) << "the dropped channel's on_exit ran";
}

TEST_P(ProcessTest, ClosingTheLoopWithARunningChildReturnsAtOnceAndTheChildIsReapedLater) {
  SpawnRequest request = command({"cat"});
  request.stdin_mode = Redirect::kPipe;
  std::unique_ptr<ProcessChannel> child = processes().spawn(request);
  const int pid = child->pid();
  // A child that exited but whose exit the loop never looked at: reaped by
  // close(), not named.
  std::unique_ptr<ProcessChannel> done = processes().spawn(command({"/bin/true"}));
  const int done_pid = done->pid();
  ASSERT_TRUE(wait_until([&] {
    char state = 0;
    int ppid = 0;
    return proc_stat(done_pid, &state, &ppid) && state == 'Z';
  }));
  std::unique_ptr<StreamChannel> in = child->take_pipe(0);
  testing::internal::CaptureStderr();
  const Clock::time_point start = Clock::now();
  loop_->close();
  const auto took = Clock::now() - start;
  const std::string warning = testing::internal::GetCapturedStderr();
  EXPECT_LT(took, std::chrono::seconds(1));
  EXPECT_NE(warning.find(absl::StrCat("pid ", pid)), std::string::npos) << warning;
  EXPECT_EQ(warning.find(absl::StrCat(done_pid)), std::string::npos) << warning;
  EXPECT_EQ(std::count(warning.begin(), warning.end(), '\n'), 1) << warning;
  EXPECT_TRUE(child_gone(done_pid));
  EXPECT_FALSE(child_gone(pid));
  EXPECT_FALSE(child->exited());
  // Still ours to signal until it is reaped.
  child->send_signal(0);
  in->close(false);  // cat exits
  EXPECT_TRUE(wait_until([&] { return child_gone(pid); })) << "never reaped";
  child->send_signal(SIGKILL);  // reaped meanwhile: nothing, no error
  EXPECT_THROW(processes().spawn(command({"/bin/true"})), std::runtime_error);
}

TEST_P(ProcessTest, ClosingTheLoopWithAKilledChildStillReapsIt) {
  std::unique_ptr<ProcessChannel> child = processes().spawn(command({"/bin/sleep", "30"}));
  const int pid = child->pid();
  testing::internal::CaptureStderr();
  loop_->close();
  testing::internal::GetCapturedStderr();
  child->send_signal(SIGKILL);
  EXPECT_TRUE(wait_until([&] { return child_gone(pid); })) << "never reaped";
  child.reset();
}

// ---- descriptors

TEST_P(ProcessTest, EveryDescriptorTheLoopOpensIsCloseOnExec) {
  const std::map<int, std::string> before = open_fds();
  EventLoopRef other = new_event_loop();  // epoll, eventfd, signal pipe
  NetBackend& net = *other->backend().net();
  std::unique_ptr<StreamListener> listener = net.listen(SocketAddress::inet("127.0.0.1", 0), {});
  bool connected = false;
  std::unique_ptr<StreamChannel> client;
  net.connect(listener->local_address(), {}, [&](std::unique_ptr<StreamChannel> c, std::exception_ptr) {
    client = std::move(c);
    connected = true;
  });
  while (!connected) {
    TimerHandle tick = other->call_later(absl::Milliseconds(5), [] {});
    other->run_once();
    tick.cancel();
  }
  std::unique_ptr<StreamChannel> server = listener->accept();
  SpawnRequest request = command({"cat"});
  request.stdin_mode = request.stdout_mode = request.stderr_mode = Redirect::kPipe;
  std::unique_ptr<ProcessChannel> child = other->backend().processes()->spawn(request);
  std::vector<std::unique_ptr<StreamChannel>> pipes;
  for (int fd = 0; fd < 3; ++fd) pipes.push_back(child->take_pipe(fd));
  const std::map<int, std::string> after = open_fds();
  int checked = 0;
  for (const auto& [fd, target] : after) {
    if (before.count(fd)) continue;
    ++checked;
    const int flags = ::fcntl(fd, F_GETFD);
    EXPECT_TRUE(flags >= 0 && (flags & FD_CLOEXEC)) << "fd " << fd << " (" << target << ") lacks FD_CLOEXEC";
  }
  // epoll, eventfd, 2 signal pipe ends, listener, 2 sockets, 3 pipes, and
  // the pidfd unless waiter threads watch.
  EXPECT_EQ(checked, 10 + (waiters() ? 0 : 1));
  pipes.clear();
  child->send_signal(SIGKILL);
  bool exited = false;
  child->on_exit([&](int) { exited = true; });
  while (!exited) {
    TimerHandle tick = other->call_later(absl::Milliseconds(5), [] {});
    other->run_once();
    tick.cancel();
  }
  child.reset();
  client.reset();
  server.reset();
  listener.reset();
  other->close();
}

TEST_P(ProcessTest, AChildSeesOnlyItsStandardStreams) {
  // The loop has sockets and pipes open, and the program an fd of its own
  // without O_CLOEXEC (closed in the child too: close_fds=True).
  NetBackend& net = *loop_->backend().net();
  std::unique_ptr<StreamListener> listener = net.listen(SocketAddress::inet("127.0.0.1", 0), {});
  SpawnRequest cat = command({"cat"});
  cat.stdin_mode = cat.stdout_mode = Redirect::kPipe;
  std::unique_ptr<ProcessChannel> other = processes().spawn(cat);
  std::unique_ptr<StreamChannel> other_in = other->take_pipe(0);
  const int inheritable = ::open("/dev/null", O_RDONLY);
  ASSERT_GE(inheritable, 0);
  // ls opens the directory it lists: 0, 1, 2 and that one.
  const std::string out = output_of(command({"/bin/ls", "/proc/self/fd"}));
  ::close(inheritable);
  std::vector<std::string> fds = absl::StrSplit(out, '\n', absl::SkipEmpty());
  EXPECT_EQ(fds, (std::vector<std::string>{"0", "1", "2", "3"})) << out;
  std::shared_ptr<Exit> exit = watch_exit(*other);
  other_in->close(false);
  ASSERT_TRUE(run_until([&] { return exit->done; }));
}

// ---- robustness

TEST_P(ProcessTest, ManySpawnsLeaveNoZombieAndNoDescriptor) {
  const Clock::time_point start = Clock::now();
  const size_t fds_before = open_fds().size();
  const int sequential = 1000;
  const int concurrent = 100;
  SpawnRequest request = command({"/bin/true"});
  request.stdout_mode = Redirect::kPipe;  // a pipe too, read to its end
  for (int i = 0; i < sequential; ++i) {
    std::unique_ptr<ProcessChannel> child = processes().spawn(request);
    std::shared_ptr<Exit> exit = watch_exit(*child);
    Reader out(child->take_pipe(1));
    ASSERT_TRUE(run_until([&] { return exit->done && out.eof; })) << i;
    ASSERT_EQ(exit->returncode, 0);
  }
  std::vector<std::unique_ptr<ProcessChannel>> children;
  std::vector<std::shared_ptr<Exit>> exits;
  for (int i = 0; i < concurrent; ++i) {
    children.push_back(processes().spawn(command({"/bin/true"})));
    exits.push_back(watch_exit(*children.back()));
  }
  ASSERT_TRUE(run_until([&] { return std::all_of(exits.begin(), exits.end(), [](auto& e) { return e->done; }); }));
  for (auto& e : exits) EXPECT_EQ(e->returncode, 0);
  children.clear();
  EXPECT_EQ(epoll_processes().running(), 0u);
  EXPECT_EQ(zombie_children(), std::vector<int>{});
  EXPECT_EQ(open_fds().size(), fds_before);
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf("%d sequential + %d concurrent spawns in %.2f s\n", sequential, concurrent, seconds);
}

}  // namespace
}  // namespace twinloop::real
