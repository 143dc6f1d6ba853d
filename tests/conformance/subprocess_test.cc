// Cross-loop conformance: asyncio's subprocesses (create_subprocess_exec /
// _shell, Process, loop.subprocess_exec with a SubprocessProtocol). On the
// real loop the cases run real programs (/bin/sh, cat, true, false, sleep,
// head, printenv, pwd); on the simulated loop, registered equivalents
// (install_programs below: each does what the real program does with the
// arguments these cases give it). CPython 3.14 is the spec
// (Lib/test/test_asyncio/test_subprocess.py); each case names what it
// mirrors.
#include <csignal>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/process.h"
#include "twinloop/tests/conformance/loop_fixture.h"

namespace twinloop::conformance {
namespace {

using Output = std::pair<std::optional<std::string>, std::optional<std::string>>;

// ---- the simulated programs: what the real ones do with these arguments

Coro<void> emit(StreamWriter& w, std::string data) {
  w.write(data);
  co_await w.drain();
}

Coro<int> sim_true(sim::ProgramContext&) { co_return 0; }
Coro<int> sim_false(sim::ProgramContext&) { co_return 1; }

Coro<int> sim_cat(sim::ProgramContext& ctx) {
  while (true) {
    std::string chunk = co_await ctx.stdin().read(64 * 1024);
    if (chunk.empty()) break;
    co_await emit(ctx.stdout(), std::move(chunk));
  }
  co_return 0;
}

// sleep SECONDS
Coro<int> sim_sleep(sim::ProgramContext& ctx) {
  double seconds = 0;
  if (ctx.argv().size() < 2 || !absl::SimpleAtod(ctx.argv()[1], &seconds)) co_return 1;
  co_await sleep(absl::Seconds(seconds));
  co_return 0;
}

// head -c N /dev/zero
Coro<int> sim_head(sim::ProgramContext& ctx) {
  size_t n = 0;
  if (ctx.argv().size() != 4 || ctx.argv()[1] != "-c" || !absl::SimpleAtoi(ctx.argv()[2], &n)) co_return 1;
  co_await emit(ctx.stdout(), std::string(n, '\0'));
  co_return 0;
}

// printenv NAME: its value, or status 1 when unset.
Coro<int> sim_printenv(sim::ProgramContext& ctx) {
  if (ctx.argv().size() != 2) co_return 2;
  std::optional<std::string> value = ctx.getenv(ctx.argv()[1]);
  if (!value) co_return 1;
  co_await emit(ctx.stdout(), *value + "\n");
  co_return 0;
}

Coro<int> sim_pwd(sim::ProgramContext& ctx) {
  co_await emit(ctx.stdout(), ctx.cwd() + "\n");
  co_return 0;
}

constexpr char kEchoBoth[] = "echo out; echo err >&2";
constexpr char kEchoTwoLines[] = "echo a; echo b";
constexpr char kExit7[] = "exit 7";
constexpr char kTrapTerm[] = "trap 'exit 3' TERM; echo ready; while :; do sleep 0.01; done";
constexpr char kBigBoth[] = "head -c 300000 /dev/zero; head -c 200000 /dev/zero >&2";
// exec: the sleep holds the pipe, and kill() must reach it (dash does not
// exec a last command by itself).
constexpr char kEchoThenWait[] = "echo started; exec sleep 3600";

// /bin/sh -c SCRIPT, for the scripts these cases run.
Coro<int> sim_sh(sim::ProgramContext& ctx) {
  if (ctx.argv().size() != 3 || ctx.argv()[1] != "-c") co_return 2;
  const std::string& script = ctx.argv()[2];
  if (script == kExit7) co_return 7;
  if (script == kEchoBoth) {
    co_await emit(ctx.stdout(), "out\n");
    co_await emit(ctx.stderr(), "err\n");
    co_return 0;
  }
  if (script == kEchoTwoLines) {
    co_await emit(ctx.stdout(), "a\n");
    co_await emit(ctx.stdout(), "b\n");
    co_return 0;
  }
  if (script == kTrapTerm) {
    ctx.handle_signal(SIGTERM);
    co_await emit(ctx.stdout(), "ready\n");
    const int sig = co_await ctx.next_signal();
    co_return sig == SIGTERM ? 3 : 4;
  }
  if (script == kBigBoth) {
    co_await emit(ctx.stdout(), std::string(300000, '\0'));
    co_await emit(ctx.stderr(), std::string(200000, '\0'));
    co_return 0;
  }
  if (script == kEchoThenWait) {
    co_await emit(ctx.stdout(), "started\n");
    co_await sleep(absl::Hours(1));
    co_return 0;
  }
  co_await emit(ctx.stderr(), "sh: a script the simulated sh does not know\n");
  co_return 127;
}

// Registers the programs on a simulated loop; nothing on any other loop
// (the real programs are on PATH).
void install_programs() {
  EventLoop& loop = get_running_loop();
  if (!dynamic_cast<sim::SimBackend*>(&loop.backend())) return;
  sim::register_program(loop, "true", sim_true);
  sim::register_program(loop, "false", sim_false);
  sim::register_program(loop, "cat", sim_cat);
  sim::register_program(loop, "sleep", sim_sleep);
  sim::register_program(loop, "head", sim_head);
  sim::register_program(loop, "printenv", sim_printenv);
  sim::register_program(loop, "pwd", sim_pwd);
  sim::register_program(loop, "/bin/sh", sim_sh);
}

SubprocessOptions pipes(bool in, bool out, bool err) {
  SubprocessOptions o;
  if (in) o.stdin = subprocess::PIPE;
  if (out) o.stdout = subprocess::PIPE;
  if (err) o.stderr = subprocess::PIPE;
  return o;
}

Coro<Process> exec(std::string program, std::vector<std::string> args, SubprocessOptions options) {
  co_return co_await create_subprocess_exec(std::move(program), std::move(args), std::move(options));
}

Coro<Process> sleeper() {
  std::vector<std::string> args = {"3600"};
  co_return co_await exec("sleep", std::move(args), SubprocessOptions());
}

class SubprocessConformance : public LoopTest {};

// ---- exit codes

// test_subprocess: test_returncode / test_start_new_session-style: true
// exits 0, and returncode is then set.
TEST_P(SubprocessConformance, TrueExitsZero) {
  const int code = run([]() -> Coro<int> {
    install_programs();
    Process p = co_await create_subprocess_exec("true");
    EXPECT_GT(p.pid(), 0);
    const int rc = co_await p.wait();
    EXPECT_EQ(p.returncode(), rc);
    co_return rc;
  }());
  EXPECT_EQ(code, 0);
}

TEST_P(SubprocessConformance, FalseExitsOne) {
  EXPECT_EQ(run([]() -> Coro<int> {
              install_programs();
              Process p = co_await create_subprocess_exec("false");
              co_return co_await p.wait();
            }()),
            1);
}

// test_subprocess: test_shell: create_subprocess_shell runs "/bin/sh -c cmd".
TEST_P(SubprocessConformance, ShellExitStatus) {
  EXPECT_EQ(run([]() -> Coro<int> {
              install_programs();
              Process p = co_await create_subprocess_shell(kExit7);
              co_return co_await p.wait();
            }()),
            7);
}

// returncode is None until the exit is observed.
TEST_P(SubprocessConformance, ReturncodeIsEmptyWhileRunning) {
  run([]() -> Coro<void> {
    install_programs();
    Process p = co_await sleeper();
    co_await sleep(absl::Milliseconds(5));
    EXPECT_EQ(p.returncode(), std::nullopt);
    p.kill();
    co_await p.wait();
  }());
}

// Two processes have two pids.
TEST_P(SubprocessConformance, EachProcessHasItsOwnPid) {
  run([]() -> Coro<void> {
    install_programs();
    Process a = co_await create_subprocess_exec("true");
    Process b = co_await create_subprocess_exec("true");
    EXPECT_NE(a.pid(), b.pid());
    co_await a.wait();
    co_await b.wait();
  }());
}

// ---- signals

// test_subprocess: test_kill: returncode is -SIGKILL.
TEST_P(SubprocessConformance, KillGivesMinusSigkill) {
  EXPECT_EQ(run([]() -> Coro<int> {
              install_programs();
              Process p = co_await sleeper();
              p.kill();
              co_return co_await p.wait();
            }()),
            -SIGKILL);
}

// test_subprocess: test_terminate: returncode is -SIGTERM.
TEST_P(SubprocessConformance, TerminateGivesMinusSigterm) {
  EXPECT_EQ(run([]() -> Coro<int> {
              install_programs();
              Process p = co_await sleeper();
              p.terminate();
              co_return co_await p.wait();
            }()),
            -SIGTERM);
}

// test_subprocess: test_send_signal (a child that handles the signal).
TEST_P(SubprocessConformance, SigtermCanBeHandled) {
  EXPECT_EQ(run([]() -> Coro<int> {
              install_programs();
              SubprocessOptions o = pipes(false, true, false);

              Process p = co_await create_subprocess_shell(kTrapTerm, o);
              const std::string line = co_await p.stdout()->readline();
              EXPECT_EQ(line, "ready\n");
              p.send_signal(SIGTERM);
              co_return co_await p.wait();
            }()),
            3);
}

// _check_proc: once the transport has closed (wait() returned), signals
// raise ProcessLookupError.
TEST_P(SubprocessConformance, SignalAfterTheTransportClosedRaisesProcessLookupError) {
  run([]() -> Coro<void> {
    install_programs();
    Process p = co_await create_subprocess_exec("true");
    co_await p.wait();
    co_await sleep(absl::Milliseconds(1));
    EXPECT_THROW(p.kill(), ProcessLookupError);
    EXPECT_THROW(p.send_signal(SIGTERM), ProcessLookupError);
  }());
}

// ---- communicate

// test_subprocess: test_communicate with more data than a pipe buffer holds
// in both directions (cat echoes 1 MiB while communicate feeds it).
TEST_P(SubprocessConformance, CommunicateRoundTripsMoreThanAPipeBuffer) {
  run([]() -> Coro<void> {
    install_programs();
    std::string input(1 << 20, 'x');
    for (size_t i = 0; i < input.size(); i += 4093) input[i] = static_cast<char>('a' + i % 26);
    std::vector<std::string> no_args;
    SubprocessOptions o = pipes(true, true, false);

    Process p = co_await exec("cat", std::move(no_args), o);
    Output out = co_await p.communicate(input);
    EXPECT_EQ(out.first, input);
    EXPECT_EQ(out.second, std::nullopt);
    EXPECT_EQ(p.returncode(), 0);
  }());
}

// Large outputs on both stdout and stderr at once: no pipe deadlock.
TEST_P(SubprocessConformance, CommunicateReadsBothLargeOutputsConcurrently) {
  run([]() -> Coro<void> {
    install_programs();
    SubprocessOptions o = pipes(false, true, true);

    Process p = co_await create_subprocess_shell(kBigBoth, o);
    Output out = co_await p.communicate();
    EXPECT_EQ(out.first, std::string(300000, '\0'));
    EXPECT_EQ(out.second, std::string(200000, '\0'));
    EXPECT_EQ(p.returncode(), 0);
  }());
}

// communicate() gives None for streams that are not PIPEs.
TEST_P(SubprocessConformance, CommunicateWithoutPipesGivesNothing) {
  run([]() -> Coro<void> {
    install_programs();
    Process p = co_await create_subprocess_exec("true");
    Output out = co_await p.communicate();
    EXPECT_EQ(out.first, std::nullopt);
    EXPECT_EQ(out.second, std::nullopt);
    EXPECT_EQ(p.returncode(), 0);
  }());
}

// communicate(input) ignores input when stdin is not a PIPE.
TEST_P(SubprocessConformance, CommunicateIgnoresInputWithoutAStdinPipe) {
  run([]() -> Coro<void> {
    install_programs();
    SubprocessOptions o = pipes(false, true, false);
    o.stdin = subprocess::DEVNULL;
    std::vector<std::string> no_args;
    Process p = co_await exec("cat", std::move(no_args), o);
    EXPECT_EQ(p.stdin(), nullptr);
    Output out = co_await p.communicate("ignored");
    EXPECT_EQ(out.first, "");
  }());
}

// test_subprocess: test_stdin_stdout / stderr separate.
TEST_P(SubprocessConformance, StdoutAndStderrAreSeparatePipes) {
  run([]() -> Coro<void> {
    install_programs();
    SubprocessOptions o = pipes(false, true, true);

    Process p = co_await create_subprocess_shell(kEchoBoth, o);
    Output out = co_await p.communicate();
    EXPECT_EQ(out.first, "out\n");
    EXPECT_EQ(out.second, "err\n");
  }());
}

// stderr=STDOUT: both in the stdout pipe, in the order written.
TEST_P(SubprocessConformance, StderrMergedIntoStdout) {
  run([]() -> Coro<void> {
    install_programs();
    SubprocessOptions o = pipes(false, true, false);
    o.stderr = subprocess::STDOUT;
    Process p = co_await create_subprocess_shell(kEchoBoth, o);
    EXPECT_EQ(p.stderr(), nullptr);
    Output out = co_await p.communicate();
    EXPECT_EQ(out.first, "out\nerr\n");
    EXPECT_EQ(out.second, std::nullopt);
  }());
}

// stdout=DEVNULL: the output goes nowhere and the child still succeeds.
TEST_P(SubprocessConformance, StdoutToDevNull) {
  run([]() -> Coro<void> {
    install_programs();
    SubprocessOptions o;
    o.stdout = subprocess::DEVNULL;
    o.stderr = subprocess::PIPE;
    Process p = co_await create_subprocess_shell(kBigBoth, o);
    EXPECT_EQ(p.stdout(), nullptr);
    Output out = co_await p.communicate();
    EXPECT_EQ(out.first, std::nullopt);
    EXPECT_EQ(out.second, std::string(200000, '\0'));
    EXPECT_EQ(p.returncode(), 0);
  }());
}

// stdin=DEVNULL: the child reads the end of its input at once.
TEST_P(SubprocessConformance, StdinFromDevNullReadsNothing) {
  run([]() -> Coro<void> {
    install_programs();
    SubprocessOptions o = pipes(false, true, false);
    o.stdin = subprocess::DEVNULL;
    std::vector<std::string> no_args;
    Process p = co_await exec("cat", std::move(no_args), o);
    std::string all = co_await p.stdout()->read();
    EXPECT_EQ(all, "");
    const int rc1 = co_await p.wait();
    EXPECT_EQ(rc1, 0);
  }());
}

// test_subprocess: test_communicate_ignore_broken_pipe: a child that exits
// without reading its input does not make communicate() fail.
TEST_P(SubprocessConformance, CommunicateIgnoresABrokenStdinPipe) {
  run([]() -> Coro<void> {
    install_programs();
    std::vector<std::string> no_args;
    SubprocessOptions o = pipes(true, false, false);

    Process p = co_await exec("true", std::move(no_args), o);
    Output out = co_await p.communicate(std::string(4 << 20, 'x'));
    EXPECT_EQ(out.first, std::nullopt);
    EXPECT_EQ(p.returncode(), 0);
  }());
}

// test_subprocess: test_stdin_broken_pipe: writing and draining into a
// child that exited raises BrokenPipeError or ConnectionResetError.
TEST_P(SubprocessConformance, DrainIntoAnExitedChildRaises) {
  run([]() -> Coro<void> {
    install_programs();
    std::vector<std::string> no_args;
    SubprocessOptions o = pipes(true, false, false);

    Process p = co_await exec("true", std::move(no_args), o);
    co_await p.wait();
    bool raised = false;
    try {
      for (int i = 0; i < 64 && !raised; ++i) {
        p.stdin()->write(std::string(1 << 16, 'x'));
        co_await p.stdin()->drain();
      }
    } catch (const BrokenPipeError&) {
      raised = true;
    } catch (const ConnectionResetError&) {
      raised = true;
    }
    EXPECT_TRUE(raised);
  }());
}

// Writing to stdin and closing it: cat echoes and exits.
TEST_P(SubprocessConformance, StdinWriteThenCloseReachesTheChild) {
  run([]() -> Coro<void> {
    install_programs();
    std::vector<std::string> no_args;
    SubprocessOptions o = pipes(true, true, false);

    Process p = co_await exec("cat", std::move(no_args), o);
    p.stdin()->write("hello\n");
    co_await p.stdin()->drain();
    std::string line = co_await p.stdout()->readline();
    EXPECT_EQ(line, "hello\n");
    p.stdin()->close();
    std::string rest = co_await p.stdout()->read();
    EXPECT_EQ(rest, "");
    const int rc2 = co_await p.wait();
    EXPECT_EQ(rc2, 0);
  }());
}

// Reading the stdout stream line by line.
TEST_P(SubprocessConformance, StdoutReadlines) {
  run([]() -> Coro<void> {
    install_programs();
    SubprocessOptions o = pipes(false, true, false);

    Process p = co_await create_subprocess_shell(kEchoTwoLines, o);
    std::string a = co_await p.stdout()->readline();
    std::string b = co_await p.stdout()->readline();
    std::string end = co_await p.stdout()->readline();
    EXPECT_EQ(a, "a\n");
    EXPECT_EQ(b, "b\n");
    EXPECT_EQ(end, "");
    EXPECT_TRUE(p.stdout()->at_eof());
    const int rc3 = co_await p.wait();
    EXPECT_EQ(rc3, 0);
  }());
}

// A small limit: the reader pauses the pipe above 2 * limit and resumes as
// it is read, so all the output arrives.
TEST_P(SubprocessConformance, ASmallLimitStillReadsEverything) {
  run([]() -> Coro<void> {
    install_programs();
    SubprocessOptions o = pipes(false, true, false);
    o.limit = 1024;
    std::vector<std::string> args = {"-c", "300000", "/dev/zero"};
    Process p = co_await exec("head", std::move(args), o);
    size_t total = 0;
    while (true) {
      std::string chunk = co_await p.stdout()->read(4096);
      if (chunk.empty()) break;
      EXPECT_LE(p.stdout()->buffered(), 2 * 1024 + 64 * 1024u);
      total += chunk.size();
    }
    EXPECT_EQ(total, 300000u);
    const int rc4 = co_await p.wait();
    EXPECT_EQ(rc4, 0);
  }());
}

// ---- waiting

// test_subprocess: test_subprocess_concurrent_wait.
TEST_P(SubprocessConformance, ConcurrentWaitsAllGetTheReturncode) {
  run([]() -> Coro<void> {
    install_programs();
    Process p = co_await sleeper();
    Task<int> a = create_task(p.wait());
    Task<int> b = create_task(p.wait());
    co_await sleep(absl::Milliseconds(5));
    p.kill();
    const int rc5 = co_await a;
    EXPECT_EQ(rc5, -SIGKILL);
    const int rc6 = co_await b;
    EXPECT_EQ(rc6, -SIGKILL);
    const int rc7 = co_await p.wait();
    EXPECT_EQ(rc7, -SIGKILL);
  }());
}

// test_subprocess: test_cancel_process_wait: cancelling wait() leaves the
// child running; it can be waited for again.
TEST_P(SubprocessConformance, CancellingWaitLeavesTheChildRunning) {
  run([]() -> Coro<void> {
    install_programs();
    Process p = co_await sleeper();
    bool timed_out = false;
    try {
      co_await wait_for(p.wait(), absl::Milliseconds(10));
    } catch (const TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(p.returncode(), std::nullopt);
    p.kill();
    const int rc8 = co_await p.wait();
    EXPECT_EQ(rc8, -SIGKILL);
  }());
}

// test_subprocess: test_cancel_make_subprocess_transport_exec-like:
// cancelling communicate() leaves the child running too.
TEST_P(SubprocessConformance, CancellingCommunicateLeavesTheChildRunning) {
  run([]() -> Coro<void> {
    install_programs();
    SubprocessOptions o = pipes(false, true, false);

    Process p = co_await create_subprocess_shell(kEchoThenWait, o);
    bool timed_out = false;
    try {
      co_await wait_for(p.communicate(), absl::Milliseconds(20));
    } catch (const TimeoutError&) {
      timed_out = true;
    }
    EXPECT_TRUE(timed_out);
    EXPECT_EQ(p.returncode(), std::nullopt);
    p.kill();
    const int rc9 = co_await p.wait();
    EXPECT_EQ(rc9, -SIGKILL);
  }());
}

// ---- environment, working directory, missing programs

// env= replaces the whole environment.
TEST_P(SubprocessConformance, EnvironmentIsPassed) {
  run([]() -> Coro<void> {
    install_programs();
    SubprocessOptions o = pipes(false, true, false);
    o.env = std::map<std::string, std::string>{{"GREETING", "hello"}, {"PATH", "/usr/bin:/bin"}};
    std::vector<std::string> args = {"GREETING"};
    Process p = co_await exec("printenv", std::move(args), o);
    Output out = co_await p.communicate();
    EXPECT_EQ(out.first, "hello\n");
    EXPECT_EQ(p.returncode(), 0);
  }());
}

TEST_P(SubprocessConformance, EnvironmentReplacesTheParents) {
  run([]() -> Coro<void> {
    install_programs();
    SubprocessOptions o = pipes(false, true, false);
    o.env = std::map<std::string, std::string>{{"PATH", "/usr/bin:/bin"}};
    std::vector<std::string> args = {"GREETING"};
    Process p = co_await exec("printenv", std::move(args), o);
    Output out = co_await p.communicate();
    EXPECT_EQ(out.first, "");
    EXPECT_EQ(p.returncode(), 1);
  }());
}

TEST_P(SubprocessConformance, WorkingDirectoryIsPassed) {
  run([]() -> Coro<void> {
    install_programs();
    SubprocessOptions o = pipes(false, true, false);
    o.cwd = "/";
    std::vector<std::string> no_args;
    Process p = co_await exec("pwd", std::move(no_args), o);
    Output out = co_await p.communicate();
    EXPECT_EQ(out.first, "/\n");
  }());
}

// A missing program raises the OSError for ENOENT from the start itself.
TEST_P(SubprocessConformance, AMissingProgramRaisesEnoent) {
  run([]() -> Coro<void> {
    install_programs();
    int code = 0;
    try {
      co_await create_subprocess_exec("twinloop-no-such-program-7f3a");
    } catch (const std::system_error& e) {
      code = e.code().value();
    }
    EXPECT_EQ(code, ENOENT);
  }());
}

// subprocess.Popen's ValueErrors.
TEST_P(SubprocessConformance, InvalidOptionsRaise) {
  run([]() -> Coro<void> {
    install_programs();
    SubprocessOptions bad_stdin;
    bad_stdin.stdin = subprocess::STDOUT;
    SubprocessOptions no_limit = pipes(false, true, false);
    no_limit.limit = 0;
    std::vector<std::string> no_args;
    bool stdin_raised = false;
    bool limit_raised = false;
    try {
      co_await exec("true", no_args, bad_stdin);
    } catch (const std::invalid_argument&) {
      stdin_raised = true;
    }
    try {
      co_await exec("true", no_args, no_limit);
    } catch (const std::invalid_argument&) {
      limit_raised = true;
    }
    EXPECT_TRUE(stdin_raised);
    EXPECT_TRUE(limit_raised);
  }());
}

// ---- the low-level layer: loop.subprocess_exec with a SubprocessProtocol

class RecordingProtocol : public SubprocessProtocol {
 public:
  void connection_made(std::shared_ptr<SubprocessTransport> t) override {
    events.push_back("made");
    transport = std::move(t);
  }
  void pipe_data_received(int fd, std::string_view data) override { out[fd] += std::string(data); }
  void pipe_connection_lost(int fd, std::exception_ptr) override { events.push_back(absl::StrCat("lost ", fd)); }
  void process_exited() override { events.push_back("exited"); }
  void connection_lost(std::exception_ptr) override {
    events.push_back("closed");
    transport.reset();
    if (!done.done()) done.set_result();
  }
  std::vector<std::string> events;
  std::string out[3];
  std::shared_ptr<SubprocessTransport> transport;
  Future<void> done = create_future<void>();
};

// test_subprocess: SubprocessMixin.test_subprocess_exec (low level):
// connection_made first, data, each pipe's loss and the exit, then
// connection_lost last.
TEST_P(SubprocessConformance, SubprocessProtocolSeesEveryEventThenConnectionLost) {
  run([]() -> Coro<void> {
    install_programs();
    auto factory = [] { return std::make_shared<RecordingProtocol>(); };
    SubprocessOptions o = pipes(false, true, true);

    auto started = co_await subprocess_shell(factory, kEchoBoth, o);
    std::shared_ptr<RecordingProtocol> proto = started.second;
    EXPECT_EQ(proto->events.at(0), "made");
    co_await proto->done;
    EXPECT_EQ(proto->out[1], "out\n");
    EXPECT_EQ(proto->out[2], "err\n");
    EXPECT_EQ(proto->events.back(), "closed");
    EXPECT_EQ(std::count(proto->events.begin(), proto->events.end(), "lost 1"), 1);
    EXPECT_EQ(std::count(proto->events.begin(), proto->events.end(), "lost 2"), 1);
    EXPECT_EQ(std::count(proto->events.begin(), proto->events.end(), "exited"), 1);
    EXPECT_EQ(started.first->get_returncode(), 0);
  }());
}

// test_subprocess: test_close_kill_running: closing the transport of a
// running child kills it.
TEST_P(SubprocessConformance, ClosingTheTransportKillsARunningChild) {
  run([]() -> Coro<void> {
    install_programs();
    auto factory = [] { return std::make_shared<RecordingProtocol>(); };
    std::vector<std::string> args = {"3600"};
    auto started = co_await subprocess_exec(factory, "sleep", std::move(args));
    started.first->close();
    EXPECT_TRUE(started.first->is_closing());
    co_await started.second->done;
    EXPECT_EQ(started.first->get_returncode(), -SIGKILL);
  }());
}

// test_subprocess: test_close_dont_kill_finished: a child that exited is
// not killed by close(), whose return code stays its own.
TEST_P(SubprocessConformance, ClosingTheTransportDoesNotKillAFinishedChild) {
  run([]() -> Coro<void> {
    install_programs();
    auto factory = [] { return std::make_shared<RecordingProtocol>(); };
    std::vector<std::string> args;
    auto started = co_await subprocess_exec(factory, "false", std::move(args));
    co_await started.second->done;
    started.first->close();
    EXPECT_EQ(started.first->get_returncode(), 1);
  }());
}

TWINLOOP_INSTANTIATE_ON_BOTH_LOOPS(SubprocessConformance);

}  // namespace
}  // namespace twinloop::conformance
