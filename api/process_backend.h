// twinloop/api/process_backend.h: the child-process half of the seam between
// the shared API and a loop implementation.
//
// asyncio splits subprocesses as it splits networking: the loop offers a
// subprocess transport (loop.subprocess_exec / subprocess_shell, built on
// pipe transports and a child watcher), and asyncio.subprocess's Process is
// shared code on top of it. twinloop does the same. A loop's side is this
// interface: start a child with its standard streams redirected
// (ProcessBackend::spawn), its pipes as StreamChannels (api/net_backend.h,
// the same readiness model as sockets), its exit reported once
// (ProcessChannel::on_exit), signals sent to it (send_signal).
// api/subprocess.h implements asyncio's SubprocessTransport and Process once
// on top of it.
//
//   real/  posix_spawn; pipes on epoll; the exit observed with a pidfd (or a
//          fallback where pidfds are unavailable); every child reaped.
//   sim/   registered programs (coroutines) run on the spawning host; pipes
//          are in-memory; spawn failures, crashes, hangs and slow output are
//          named draws.
//
// Threads: every call on the loop thread.
#ifndef TWINLOOP_API_PROCESS_BACKEND_H_
#define TWINLOOP_API_PROCESS_BACKEND_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "twinloop/api/net_backend.h"

namespace twinloop {

// Where a child's standard stream goes: asyncio's stdin= / stdout= /
// stderr= arguments (None, PIPE, DEVNULL, STDOUT; api/subprocess.h names
// them twinloop::subprocess::PIPE, ...).
enum class Redirect : uint8_t {
  kInherit,  // the parent's stream (None)
  kPipe,     // a pipe to the parent (PIPE)
  kDevNull,  // /dev/null (DEVNULL)
  kStdout,   // stderr only: wherever stdout goes (STDOUT)
};

// What to start. api/subprocess.h fills it in from asyncio's arguments
// (create_subprocess_shell: argv = {"/bin/sh", "-c", cmd}).
struct SpawnRequest {
  // argv[0] names the program: a path with a '/' is used as is, a bare name
  // is looked up in PATH (execvp's rule; the PATH of `env` when given, else
  // the parent's). Never empty.
  std::vector<std::string> argv;
  // The file to run instead of argv[0] (asyncio's executable=); "": argv[0].
  std::string executable;
  // The child's whole environment as "NAME=value" entries; nullopt: the
  // parent's (on the simulated loop: the spawning host's, see sim/process.h).
  std::optional<std::vector<std::string>> env;
  // The child's working directory; "": the parent's.
  std::string cwd;
  Redirect stdin_mode = Redirect::kInherit;
  Redirect stdout_mode = Redirect::kInherit;
  // kStdout is allowed here only.
  Redirect stderr_mode = Redirect::kInherit;
  // setpgid(0, 0) in the child: a new process group whose id is its pid
  // (asyncio's process_group=0).
  bool new_process_group = false;
  // setsid() in the child (asyncio's start_new_session=True).
  bool new_session = false;
};

// A started child. Owned by one subprocess transport.
class ProcessChannel {
 public:
  virtual ~ProcessChannel() = default;

  // The child's process id (on the simulated loop: a per-run counter).
  virtual int pid() const = 0;

  // The parent's end of the pipe for standard stream `fd` (0, 1 or 2), when
  // the request asked for kPipe there; nullptr otherwise, and on a second
  // call. fd 0 is write-only: its read() never returns data, only 0 once
  // the child's end is closed (the child closed its stdin or exited), else
  // kWouldBlock, and on_readable is notified for that end (asyncio's
  // _UnixWritePipeTransport watches its pipe for readability to learn the
  // same); its write() throws BrokenPipeError (EPIPE) after that. fds 1 and
  // 2 are read-only: read() gives the child's output, 0 at its end; write()
  // is never called on them. shutdown_write() and close() of fd 0 close the
  // parent's end: the child reads the end of its input.
  virtual std::unique_ptr<StreamChannel> take_pipe(int fd) = 0;

  // `done` runs once, on the loop thread through the ready queue (never
  // inside this call), after the child has exited and been reaped, with its
  // return code: the exit status (0..255), or -N when signal N ended it
  // (asyncio's returncode). Set once, before the child can be observed to
  // exit.
  virtual void on_exit(absl::AnyInvocable<void(int returncode)> done) = 0;

  // Sends signal `sig` to the child, unless its exit has been observed
  // already (then nothing: subprocess.Popen.send_signal does the same, so
  // that a reused pid is never signalled). std::invalid_argument for a
  // signal number that is not valid.
  virtual void send_signal(int sig) = 0;

  // Whether the child's exit has been observed (on_exit's callback is
  // queued or has run).
  virtual bool exited() const = 0;
};

// Starting children. A loop without processes returns nullptr from
// LoopBackend::processes(), and the API raises std::runtime_error
// ("subprocesses are not supported by this event loop").
class ProcessBackend {
 public:
  virtual ~ProcessBackend() = default;

  // Starts a child as `request` says. Throws std::system_error with the
  // errno of the failure, from this call (never later): ENOENT for a
  // missing program or working directory, EACCES, ENOEXEC, EAGAIN (too many
  // processes), EMFILE. Throws std::invalid_argument for a malformed request
  // (an empty argv, kStdout for stdin or stdout).
  //
  // The channel's owner may drop it at any time: a child still running
  // keeps running, and is still reaped when it exits (no zombie); its pipes
  // already taken stay with whoever took them.
  virtual std::unique_ptr<ProcessChannel> spawn(const SpawnRequest& request) = 0;
};

}  // namespace twinloop

#endif  // TWINLOOP_API_PROCESS_BACKEND_H_
