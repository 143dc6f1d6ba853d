// twinloop/sim/process.h: the simulated loop's child processes, its side of
// the child-process seam (api/process_backend.h).
//
//   twinloop::sim::register_program(loop, "/bin/cat", [](twinloop::sim::ProgramContext& p) -> twinloop::Coro<int> {
//     std::string all = co_await p.stdin().read();
//     p.stdout().write(all);
//     co_return 0;
//   });
//   // then create_subprocess_exec("cat", ...) (api/subprocess.h) runs it
//
// The model (docs/subprocess.md, "The simulated loop"):
//  - Programs are registered by name for every host of the simulation.
//    spawn() looks argv[0] (or SpawnRequest::executable) up exactly as
//    registered, and a name without '/' also as "<dir>/<name>" for each
//    directory of PATH (the request's env PATH, else the host's environment's
//    PATH, by default "/usr/bin:/bin"), first match wins. Nothing
//    registered: std::system_error ENOENT from spawn(), as a missing binary.
//    The working directory is passed through as is (the simulated file
//    system has no directories, so no cwd is missing); "" is the host's,
//    "/".
//  - A program runs as a task on the loop, on the host whose code spawned it
//    (sim/network.h), in a fresh context: the tasks and callbacks it creates
//    belong to the process. When its coroutine returns, the tasks it left
//    end as a crash ends them (LoopBackend::abandon), its stdin closes and
//    its stdout and stderr close once what it wrote to them has gone into
//    the pipes (a real process blocks in write() until then); then, after a
//    drawn latency, the parent observes the exit (on_exit). An exception
//    escaping the program: exit status 1, and one line on its stderr,
//    "<argv[0]>: uncaught exception: <what()>" (as an uncaught Python
//    exception ends the interpreter with status 1 and a traceback).
//  - Pipes are in memory, 64 KiB each (Linux's default pipe capacity): a
//    writer that fills one gets 0 from write() until the reader takes bytes.
//    Each transfer becomes readable after a drawn latency. Writing to a pipe
//    whose reader closed raises BrokenPipeError (EPIPE), and a program doing
//    so also gets SIGPIPE (its default action ends it with -13).
//  - Signals (send_signal) arrive after a drawn latency. SIGKILL ends the
//    program at once, as a crash (no code of it runs again), and so does
//    every signal whose default action terminates (SIGTERM, SIGINT, SIGHUP,
//    SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM, SIGSEGV, SIGABRT, ...)
//    unless the program called handle_signal(sig): then it queues for
//    next_signal(). SIGCHLD, SIGCONT, SIGURG and SIGWINCH are ignored unless
//    handled; SIGSTOP and the terminal stop signals are not modelled
//    (ignored). Signal 0 checks existence only.
//  - A host crash (sim/world.h) kills the host's processes (-SIGKILL).
//  - Faults (World::inject with a FaultProfile's process_* chances,
//    sim/faults.h): spawn failure, crash by a signal, hang, slow output,
//    chunked output, non-zero exit. Each is a named draw (sim/draw_sites.h)
//    and a line of the world's fault log.
//
// Every latency and fault is a draw, so a seed replays exactly; nothing
// depends on the wall clock, addresses or unordered iteration.
//
// Threads: the loop thread only, as the loop.
#ifndef TWINLOOP_SIM_PROCESS_H_
#define TWINLOOP_SIM_PROCESS_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/future.h"
#include "twinloop/api/process_backend.h"
#include "twinloop/api/streams.h"

namespace twinloop::sim {

class SimBackend;
class Processes;
struct ProcessState;

// What a simulated program receives.
class ProgramContext {
 public:
  ProgramContext(const ProgramContext&) = delete;
  ProgramContext& operator=(const ProgramContext&) = delete;
  ~ProgramContext();

  // argv[0] as spawned (not the path it was found at).
  const std::vector<std::string>& argv() const { return argv_; }
  // "NAME=value" entries.
  const std::vector<std::string>& env() const { return env_; }
  // The value of the first entry named `name`, if any.
  std::optional<std::string> getenv(std::string_view name) const;
  const std::string& cwd() const { return cwd_; }
  int pid() const { return pid_; }

  // Always usable. stdin: the parent's pipe, else (DEVNULL, inherit) an
  // empty input (EOF at once). stdout / stderr: the parent's pipe, or
  // discarded (DEVNULL), or the host's console (inherit: console_output);
  // stderr with STDOUT writes where stdout does.
  StreamReader& stdin() { return stdin_; }
  StreamWriter& stdout() { return stdout_; }
  StreamWriter& stderr() { return stderr_; }

  // From now on signal `sig` queues for next_signal() instead of taking its
  // default action. std::invalid_argument for SIGKILL, SIGSTOP (they cannot
  // be caught) and numbers that are no signal.
  void handle_signal(int sig);
  // The next handled signal that arrived, waiting for one if none has.
  Coro<int> next_signal();

 private:
  friend class Processes;
  ProgramContext() = default;

  std::vector<std::string> argv_;
  std::vector<std::string> env_;
  std::string cwd_;
  int pid_ = 0;
  StreamReader stdin_;
  StreamWriter stdin_writer_;  // keeps stdin's transport open (unused)
  StreamWriter stdout_;
  StreamWriter stderr_;
  std::set<int> handled_;
  std::deque<int> arrived_;
  std::optional<Future<int>> waiter_;
};

// A simulated program: returns its exit status (masked with 0xff).
using Program = std::function<Coro<int>(ProgramContext&)>;

// Registers `program` under `name` for every host of the simulation that
// `loop` runs (a later registration of the same name replaces it).
// std::runtime_error for a loop that is not simulated; std::invalid_argument
// for an empty name or program.
void register_program(EventLoop& loop, std::string name, Program program);
// Sets the environment processes spawned on `host` get when the request
// gives none (and whose PATH bare names are looked up in); by default
// {"PATH=/usr/bin:/bin"}.
void set_host_environment(EventLoop& loop, std::string_view host, std::vector<std::string> env);
// What processes on `host` wrote to an inherited stdout or stderr, in order.
std::string console_output(EventLoop& loop, std::string_view host);

// The simulated loop's processes: SimBackend::processes(). Reached through
// the functions above; tests may use it directly.
class Processes final : public ProcessBackend {
 public:
  explicit Processes(SimBackend& backend);
  ~Processes() override;
  Processes(const Processes&) = delete;
  Processes& operator=(const Processes&) = delete;

  // The simulated loop's processes; std::runtime_error for another loop.
  static Processes& of(EventLoop& loop);

  void register_program(std::string name, Program program);
  void set_host_environment(std::string_view host, std::vector<std::string> env);
  std::string console_output(std::string_view host) const;

  std::unique_ptr<ProcessChannel> spawn(const SpawnRequest& request) override;

  // Processes running (started, exit not yet reported) now.
  size_t running() const;
  // The pids of the processes started so far, in order, and what ended each
  // so far ("" while running; "exit 3", "signal 9").
  std::string describe() const;

  // ---- for World and the backend
  // Kills every process of `host` (its crash): returns how many.
  size_t host_crashed(std::string_view host);
  // The loop closed: nothing more is scheduled.
  void shutdown();

 private:
  friend struct Pipe;
  friend struct PipeEnd;
  friend class SimProcessChannel;

  EventLoop& loop() const;
  int64_t backend_time() const;
  uint64_t choose(std::string_view site, uint64_t n);
  // A host's name as the network spells it; std::invalid_argument if unknown.
  std::string host_name(std::string_view host) const;
  const Program* find_program(const std::string& file, const std::vector<std::string>& env,
                              const std::string& host, std::string* found) const;
  void start(const std::shared_ptr<ProcessState>& p);
  void program_done(const std::shared_ptr<ProcessState>& p, Future<int> f);
  void deliver(const std::shared_ptr<ProcessState>& p, int sig);
  void sigpipe(const std::shared_ptr<ProcessState>& p);
  void terminate(const std::shared_ptr<ProcessState>& p, int sig);
  void output_closed(ProcessState& p);
  void maybe_exit(const std::shared_ptr<ProcessState>& p);
  void report_exit(const std::shared_ptr<ProcessState>& p);
  void fault(std::string what);
  // Runs `fn` at loop time now + delay_ns through the timer heap and the
  // ready queue (in the context of no task).
  void at(int64_t delay_ns, std::function<void()> fn);
  bool closed() const;

  SimBackend& backend_;
  std::map<std::string, Program, std::less<>> programs_;
  std::map<std::string, std::vector<std::string>, std::less<>> host_env_;
  std::map<std::string, std::string, std::less<>> console_;
  // Every process started, by pid (for describe and host_crashed).
  std::map<int, std::shared_ptr<ProcessState>> procs_;
  int next_pid_ = 1000;
  uint64_t next_pipe_id_ = 1;
  uint64_t next_timer_id_ = 0;
  bool shut_down_ = false;
};

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_PROCESS_H_
