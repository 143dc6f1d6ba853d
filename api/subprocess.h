// twinloop/api/subprocess.h: asyncio's subprocesses (CPython 3.14
// Lib/asyncio/subprocess.py, base_subprocess.py, unix_events.py), on both
// loops.
//
//   twinloop::SubprocessOptions o;
//   o.stdin = twinloop::subprocess::PIPE;
//   o.stdout = twinloop::subprocess::PIPE;
//   twinloop::Process p = co_await twinloop::create_subprocess_exec("sort", {"-r"}, o);
//   auto [out, err] = co_await p.communicate("b\na\nc\n");   // out: "c\nb\na\n"
//   int code = *p.returncode();                                // 0
//
// Two layers, as asyncio's:
//  - subprocess_exec / subprocess_shell (asyncio's loop.subprocess_exec):
//    a SubprocessTransport and a SubprocessProtocol that gets the pipes'
//    data and the exit;
//  - create_subprocess_exec / create_subprocess_shell: a Process whose pipes
//    are StreamWriter / StreamReaders (api/streams.h).
// The loop supplies the child (api/process_backend.h): a real child process
// on the real loop (real/process.h), a registered simulated program on the
// simulated loop (sim/process.h). Nothing here knows which.
//
// Semantics (asyncio's; CPython 3.14):
//  - returncode() is empty until the exit is observed; then the exit status,
//    or -N when signal N ended the child.
//  - wait() returns at once when the return code is known; otherwise it
//    returns once the child has exited AND every pipe has closed
//    (BaseSubprocessTransport._wait / _call_connection_lost). An unread PIPE
//    can therefore stall the child and wait() (the reader pauses the pipe
//    above 2 * limit): use communicate(). Cancelling wait() or
//    communicate() leaves the child running; it can be waited for again.
//  - communicate(input) feeds stdin (then closes it), reads stdout and
//    stderr to their ends, all three at once (no pipe deadlock), then waits.
//    BrokenPipeError and ConnectionResetError while feeding stdin are
//    ignored (the child exited without reading). Its result is (stdout,
//    stderr), nullopt for a stream that is not a PIPE. `input` is ignored
//    when stdin is not a PIPE.
//  - send_signal / terminate / kill: nothing once the exit was observed but
//    the transport is still open (Popen.send_signal); ProcessLookupError
//    (std::system_error with ESRCH) once the transport has closed
//    (_check_proc).
//  - SubprocessTransport::close() closes the pipes and kills a child that is
//    still running, not one that has exited (test_close_kill_running,
//    test_close_dont_kill_finished). A loop that closes while a child runs
//    closes its transport so (asyncio: the transport's __del__).
// Threads: the loop's thread only.
#ifndef TWINLOOP_API_SUBPROCESS_H_
#define TWINLOOP_API_SUBPROCESS_H_

#include <cstddef>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "twinloop/api/coro.h"
#include "twinloop/api/process_backend.h"
#include "twinloop/api/streams.h"
#include "twinloop/api/transports.h"

namespace twinloop {

// asyncio.subprocess's constants: where a standard stream goes.
namespace subprocess {
inline constexpr Redirect PIPE = Redirect::kPipe;
inline constexpr Redirect STDOUT = Redirect::kStdout;
inline constexpr Redirect DEVNULL = Redirect::kDevNull;
// stdin=None / stdout=None / stderr=None: the parent's stream.
inline constexpr Redirect INHERIT = Redirect::kInherit;
}  // namespace subprocess

// The keyword arguments of create_subprocess_exec / _shell and
// loop.subprocess_exec / _shell that mean something here.
struct SubprocessOptions {
  // (glibc defines the macros stdin, stdout and stderr as themselves, so
  // these names are usable.)
  Redirect stdin = Redirect::kInherit;
  Redirect stdout = Redirect::kInherit;
  // subprocess::STDOUT: into stdout's pipe (or wherever stdout goes).
  Redirect stderr = Redirect::kInherit;
  // The pipes' StreamReader limit (create_subprocess_*'s limit=).
  size_t limit = kDefaultStreamLimit;
  // The working directory; "": the parent's (cwd=None).
  std::string cwd = {};
  // The whole environment; nullopt: the parent's (env=None).
  std::optional<std::map<std::string, std::string>> env = std::nullopt;
  // The file to run instead of the program / "/bin/sh" (executable=).
  std::string executable = {};
  // A new process group whose id is the child's pid (process_group=0).
  bool new_process_group = false;
  // A new session (start_new_session=True).
  bool start_new_session = false;
};

class SubprocessTransport;

// asyncio.SubprocessProtocol.
class SubprocessProtocol {
 public:
  virtual ~SubprocessProtocol() = default;
  // The child started and its pipes are connected.
  virtual void connection_made(std::shared_ptr<SubprocessTransport> transport) { static_cast<void>(transport); }
  // The transport closed (the child exited and every pipe closed). Last.
  virtual void connection_lost(std::exception_ptr error) { static_cast<void>(error); }
  // The stdin pipe's buffer went above its high-water mark / drained.
  virtual void pause_writing() {}
  virtual void resume_writing() {}
  // The child wrote `data` to pipe `fd` (1: stdout, 2: stderr).
  virtual void pipe_data_received(int fd, std::string_view data) {
    static_cast<void>(fd);
    static_cast<void>(data);
  }
  // Pipe `fd` closed (nullptr: normally).
  virtual void pipe_connection_lost(int fd, std::exception_ptr error) {
    static_cast<void>(fd);
    static_cast<void>(error);
  }
  // The child exited (the transport's get_returncode() tells how).
  virtual void process_exited() {}
};

// asyncio.SubprocessTransport (base_subprocess.BaseSubprocessTransport).
class SubprocessTransport {
 public:
  virtual ~SubprocessTransport() = default;
  virtual int get_pid() const = 0;
  // Empty until the exit is observed.
  virtual std::optional<int> get_returncode() const = 0;
  // The transport of pipe `fd` (0, 1, 2); nullptr when that stream is not a
  // PIPE (or the transport has closed it).
  virtual std::shared_ptr<Transport> get_pipe_transport(int fd) const = 0;
  // ProcessLookupError (std::system_error, ESRCH) once closed; nothing once
  // the exit was observed. std::invalid_argument for an invalid signal.
  virtual void send_signal(int sig) = 0;
  virtual void terminate() = 0;
  virtual void kill() = 0;
  // Closes the pipes; kills the child if it still runs.
  virtual void close() = 0;
  virtual bool is_closing() const = 0;
};

namespace internal {
class ProcessState;
using AnySubprocessFactory = std::function<std::shared_ptr<SubprocessProtocol>()>;
Coro<std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<SubprocessProtocol>>> subprocess_any(
    AnySubprocessFactory factory, std::vector<std::string> argv, SubprocessOptions options);
template <class P>
Coro<std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<P>>> typed_subprocess(
    Coro<std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<SubprocessProtocol>>> starting) {
  std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<SubprocessProtocol>> started =
      co_await std::move(starting);
  co_return std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<P>>(
      std::move(started.first), std::static_pointer_cast<P>(std::move(started.second)));
}
template <class F>
AnySubprocessFactory any_subprocess_factory(F f) {
  return [f = std::move(f)]() mutable -> std::shared_ptr<SubprocessProtocol> { return f(); };
}
std::vector<std::string> exec_argv(std::string program, std::vector<std::string> args);
std::vector<std::string> shell_argv(std::string cmd);
}  // namespace internal

// loop.subprocess_exec(protocol_factory, program, *args, ...): starts
// `program` with `args` and returns once the protocol's connection_made has
// run. std::system_error from the start (ENOENT for a missing program).
template <class F, class P = protocol_of<F>>
Coro<std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<P>>> subprocess_exec(
    F protocol_factory, std::string program, std::vector<std::string> args, SubprocessOptions options) {
  std::vector<std::string> argv = internal::exec_argv(std::move(program), std::move(args));
  return internal::typed_subprocess<P>(
      internal::subprocess_any(internal::any_subprocess_factory(std::move(protocol_factory)), std::move(argv),
                               std::move(options)));
}
// loop.subprocess_shell(protocol_factory, cmd, ...): "/bin/sh -c cmd".
template <class F, class P = protocol_of<F>>
Coro<std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<P>>> subprocess_shell(
    F protocol_factory, std::string cmd, SubprocessOptions options) {
  std::vector<std::string> argv = internal::shell_argv(std::move(cmd));
  return internal::typed_subprocess<P>(
      internal::subprocess_any(internal::any_subprocess_factory(std::move(protocol_factory)), std::move(argv),
                               std::move(options)));
}

template <class F, class P = protocol_of<F>>
Coro<std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<P>>> subprocess_exec(
    F protocol_factory, std::string program, std::vector<std::string> args) {
  return subprocess_exec(std::move(protocol_factory), std::move(program), std::move(args), SubprocessOptions());
}
template <class F, class P = protocol_of<F>>
Coro<std::pair<std::shared_ptr<SubprocessTransport>, std::shared_ptr<P>>> subprocess_shell(F protocol_factory,
                                                                                          std::string cmd) {
  return subprocess_shell(std::move(protocol_factory), std::move(cmd), SubprocessOptions());
}

// asyncio.subprocess.Process. A handle: copies share the process.
class Process {
 public:
  Process();
  ~Process();
  Process(const Process&);
  Process& operator=(const Process&);
  Process(Process&&) noexcept;
  Process& operator=(Process&&) noexcept;

  int pid() const;
  std::optional<int> returncode() const;
  // The pipes; nullptr for a stream that is not a PIPE (asyncio's None).
  StreamWriter* stdin() const;
  StreamReader* stdout() const;
  StreamReader* stderr() const;

  Coro<int> wait() const;
  Coro<std::pair<std::optional<std::string>, std::optional<std::string>>> communicate() const;
  Coro<std::pair<std::optional<std::string>, std::optional<std::string>>> communicate(std::string input) const;

  void send_signal(int sig) const;
  void terminate() const;  // SIGTERM
  void kill() const;       // SIGKILL

  const std::shared_ptr<SubprocessTransport>& transport() const;

  explicit Process(std::shared_ptr<internal::ProcessState> state);

 private:
  std::shared_ptr<internal::ProcessState> state_;
};

// asyncio.create_subprocess_exec(program, *args, ...).
Coro<Process> create_subprocess_exec(std::string program);
Coro<Process> create_subprocess_exec(std::string program, std::vector<std::string> args);
Coro<Process> create_subprocess_exec(std::string program, std::vector<std::string> args, SubprocessOptions options);
// asyncio.create_subprocess_shell(cmd, ...): "/bin/sh -c cmd".
Coro<Process> create_subprocess_shell(std::string cmd);
Coro<Process> create_subprocess_shell(std::string cmd, SubprocessOptions options);

}  // namespace twinloop

#endif  // TWINLOOP_API_SUBPROCESS_H_
