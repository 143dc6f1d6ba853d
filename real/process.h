// twinloop/real/process.h: the real loop's child processes
// (api/process_backend.h's ProcessBackend on Linux).
//
// EpollBackend::processes() returns an EpollProcesses; the shared
// subprocess transport and Process (api/subprocess.h) run on top of it. Few
// programs name it:
//
//   twinloop::EventLoopRef loop = twinloop::real::new_event_loop();
//   twinloop::SpawnRequest request;
//   request.argv = {"cat"};
//   request.stdin_mode = request.stdout_mode = twinloop::Redirect::kPipe;
//   std::unique_ptr<twinloop::ProcessChannel> child = loop->backend().processes()->spawn(request);
//   std::unique_ptr<twinloop::StreamChannel> in = child->take_pipe(0), out = child->take_pipe(1);
//   child->on_exit([](int returncode) { ... });
//
// What it is made of, and where it follows asyncio and subprocess (CPython
// 3.14 Lib/asyncio/unix_events.py, Lib/subprocess.py,
// Modules/_posixsubprocess.c):
//
//   spawn     posix_spawn (glibc's clone(CLONE_VM | CLONE_VFORK): no copy of
//             the parent's memory). The child starts with an empty signal
//             mask (POSIX_SPAWN_SETSIGMASK) and SIGPIPE, SIGXFSZ and the
//             signals the loop watches at their default action
//             (POSIX_SPAWN_SETSIGDEF; subprocess's restore_signals=True
//             resets SIGPIPE and SIGXFSZ, which Python ignores). Every fd
//             from 3 up is closed in the child (posix_spawn_file_actions_
//             addclosefrom_np; subprocess's close_fds=True), on top of every
//             fd twinloop opens being close-on-exec. new_process_group:
//             POSIX_SPAWN_SETPGROUP with 0; new_session: POSIX_SPAWN_SETSID
//             (which makes a new group too, so new_process_group is then
//             implied). cwd: posix_spawn_file_actions_addchdir_np.
//   program   a name without '/' is looked up in PATH as subprocess does
//             (os.get_exec_path(env): the PATH of the request's env when it
//             has one, else the parent's, else os.defpath "/bin:/usr/bin"):
//             the first regular, executable file; EACCES when only
//             unexecutable candidates exist, else ENOENT. A relative
//             candidate is relative to cwd (subprocess's documented rule).
//             `executable` replaces argv[0] as the file to run.
//   redirects kPipe: pipe2(O_CLOEXEC), the parent's end O_NONBLOCK, the
//             child's dup2'd onto 0/1/2 (kept off 0..2 in the parent first,
//             so that one redirect never clobbers another: subprocess's
//             #12607); kDevNull: /dev/null opened in the child; kStdout
//             (stderr): dup2(1, 2) after stdout's redirect.
//   pipes     StreamChannels on the backend's epoll, level-triggered
//             (FdWatch, real/epoll_backend.h), as real/net.h's sockets.
//             stdout / stderr: read() is one read(2), 0 at the end, kWouldBlock
//             on EAGAIN. stdin: write() is one write(2) (0 on EAGAIN);
//             read() is 0 once the child's end is closed (poll(2) reports
//             POLLERR on a write end without readers), else kWouldBlock,
//             and want_read() watches for that (epoll reports EPOLLERR on
//             the write end; asyncio's _UnixWritePipeTransport watches its
//             pipe for readability to learn the same). shutdown_write() and
//             close() close the parent's end.
//   exit      pidfd_open(2) on epoll (asyncio's PidfdChildWatcher), the
//             child reaped with waitpid(WNOHANG) when the pidfd is readable.
//             Where pidfds are unavailable (ENOSYS on kernels before 5.3,
//             EPERM under some seccomp filters; any other pidfd_open failure
//             for that child alone) a thread per child waits (asyncio's
//             ThreadedChildWatcher): waitid(WEXITED | WNOWAIT), which sees
//             the exit without reaping, then hands the pid to the loop
//             thread (call_soon_threadsafe), which reaps it. The pid stays
//             reserved (a zombie) until the loop knows, so send_signal can
//             never reach a reused pid. A child that someone else reaped
//             (waitpid(-1) elsewhere, SIGCHLD ignored) reports 255 with a
//             warning, as asyncio's "Unknown child process pid %d, will
//             report returncode 255".
//   signals   send_signal: pidfd_send_signal when the child has a pidfd,
//             else kill(2); nothing once the exit was observed
//             (Popen.send_signal); ESRCH swallowed (gh-87744);
//             std::invalid_argument for a signal outside [0, NSIG).
//
// SIGPIPE. A pipe has no MSG_NOSIGNAL, and twinloop does not change the
// process's SIGPIPE disposition (docs/network.md). Every write to a stdin
// pipe runs with SIGPIPE blocked in the calling thread (a SIGPIPE from
// write(2) is sent to the writing thread); when it fails with EPIPE and no
// SIGPIPE was pending before, the one it raised is consumed with
// sigtimedwait (zero timeout) before the mask is restored. So the write is
// BrokenPipeError, never a signal, whatever the disposition, and a SIGPIPE
// the program had pending is left alone.
//
// Errors. spawn() throws std::system_error (twinloop::make_system_error,
// api/errors.h) from the call itself: ENOENT for a missing program ("cannot
// run 'nope': No such file or directory") or working directory ("cannot
// change to working directory '/nope': ..."), EACCES, ENOEXEC (a file
// without a #! line: posix_spawn, like Popen, does not try /bin/sh), EAGAIN,
// EMFILE. std::invalid_argument for an empty argv, kStdout for stdin or
// stdout, a NUL byte in any string, an env entry without "NAME=".
//
// Every child is reaped. A ProcessChannel dropped while its child runs
// leaves the child watched; it is reaped when it exits. When the loop closes
// with children still running, close() neither waits nor kills: it writes
// one line to stderr naming their pids, and each is then reaped by a
// detached thread blocked in waitpid (the fallback's waiter thread, which
// reaps it itself once the loop is gone). After the loop closed, a channel's
// send_signal still reaches its child until it is reaped (pidfd, or under
// the waiter's lock), and exited() stays false.
//
// Threads: the loop thread only; the fallback's waiter threads and the
// reapers started by close() touch only their own pid and a locked mailbox.
#ifndef TWINLOOP_REAL_PROCESS_H_
#define TWINLOOP_REAL_PROCESS_H_

#include <sys/types.h>

#include <cstddef>
#include <map>
#include <memory>

#include "twinloop/api/process_backend.h"

namespace twinloop {
class EventLoop;
}  // namespace twinloop

namespace twinloop::real {

class EpollBackend;

class EpollProcesses final : public ProcessBackend {
 public:
  // Created by EpollBackend::attach; pipes and pidfds are watched by
  // `backend`.
  EpollProcesses(EpollBackend& backend, EventLoop& loop);
  EpollProcesses(const EpollProcesses&) = delete;
  EpollProcesses& operator=(const EpollProcesses&) = delete;
  ~EpollProcesses() override;

  std::unique_ptr<ProcessChannel> spawn(const SpawnRequest& request) override;

  // The loop is closing (EpollBackend::close): children still running are
  // named on stderr and left to detached reaper threads; no callback runs
  // any more. Idempotent.
  void close();

  // Children started and not reaped yet, dropped channels' included.
  size_t running() const { return children_.size(); }


 private:
  struct Child;    // one started child (process.cc)
  struct Mailbox;  // what waiter threads hand to the loop thread
  class Channel;   // the ProcessChannel

  // The loop thread reaps `child` if it has exited (waitpid WNOHANG);
  // `known_exited`: a waiter saw the exit, so waitpid may block.
  void reap(Child& child, bool known_exited);
  // On the loop thread: the pids the waiter threads saw exit.
  void drain_mailbox();
  void start_waiter(const std::shared_ptr<Child>& child);

  EpollBackend& backend_;
  EventLoop& loop_;
  bool closed_ = false;
  std::map<pid_t, std::shared_ptr<Child>> children_;  // not reaped yet
  std::shared_ptr<Mailbox> mailbox_;
};

// For tests only.
namespace process_internal {
// true: spawn() watches new children with waiter threads, as where
// pidfd_open is unavailable; false (the default): pidfds when the kernel has
// them.
void force_waiter_threads(bool on);
}  // namespace process_internal

}  // namespace twinloop::real

#endif  // TWINLOOP_REAL_PROCESS_H_
