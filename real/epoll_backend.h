// twinloop/real/epoll_backend.h: the real event loop's LoopBackend (Linux).
//
// EpollBackend supplies what api/loop_backend.h asks of a real loop:
//
//   clock     CLOCK_MONOTONIC in nanoseconds (asyncio's time.monotonic()).
//   I/O wait  epoll_pwait2 with a nanosecond timeout; epoll_wait with the
//             timeout rounded up to whole milliseconds where the kernel lacks
//             epoll_pwait2 (ENOSYS). Either way wait() never returns before
//             its deadline unless something happened, so timers never fire
//             early (the core fires a timer once when <= time_ns()).
//   wake      an eventfd, drained by wait() (asyncio's self-pipe).
//   signals   a sigaction handler that writes the signal number, one byte,
//             to a non-blocking self-pipe; wait() reads it and calls
//             EventLoop::deliver_signal on the loop thread.
//   executor  a lazily grown thread pool, asyncio's default
//             ThreadPoolExecutor: at most min(32, cores + 4) workers, a new
//             worker only when no worker is idle.
//   choose    always 0: the real loop takes the default branch of every
//             decision (timer ties in scheduling order, no injected faults).
//   net       non-blocking TCP (IPv4, IPv6) and Unix stream sockets on the
//             same epoll instance (real/net.h: EpollNet); names resolved
//             with getaddrinfo on the executor.
//   processes posix_spawn; pipes and pidfds on the same epoll instance
//             (real/process.h: EpollProcesses).
//
// Readiness (FdWatch below): every socket the network uses is an FdWatch,
// registered with this backend's epoll instance, level-triggered, with
// EPOLLIN / EPOLLOUT following what its owner wants. The kernel's interest
// list follows the wanted set with one epoll_ctl per change and none
// otherwise (ADD when something becomes wanted, MOD when the set changes,
// DEL when nothing is wanted: a hung-up socket that nobody reads, whose
// EPOLLHUP epoll reports whether asked or not, then cannot spin the loop).
// wait() records what epoll reported in the watch and queues the watch
// itself, at most once, on the loop's ready queue (LoopBackend::schedule_io):
// no allocation per notification, FIFO with every other callback. When it
// runs, it hands its owner the directions that were reported (EPOLLHUP and
// EPOLLERR count as both, so the owner's read or write meets the error or the
// end of the stream); the owner checks what it still wants. A watch that
// stopped watching (its socket closed) never notifies again, even when its
// notification was already queued; a watch whose owner let go while one was
// queued or running is deleted once it is dropped or has run.
//
// Most code never names this class; it uses twinloop::real::run
// (real/run.h) or real::new_event_loop(). To build a loop by hand:
//
//   twinloop::internal::Ref<twinloop::EventLoop> loop(
//       new twinloop::EventLoop(std::make_unique<twinloop::real::EpollBackend>()));
//   loop->call_later(absl::Milliseconds(10), [&] { loop->stop(); });
//   loop->run_forever();
//   loop->close();
//
// Threads: as with every LoopBackend, only wake() is thread-safe; everything
// else runs on the loop's thread. Executor jobs are moved to a worker, never
// copied, and are destroyed on the loop thread (after `done` ran, or inside
// close()), so they may hold loop-thread objects with non-atomic reference
// counts.
//
// Signals: the sigaction disposition is process-wide, so at most one loop at
// a time may watch a given signal (a second one gets std::runtime_error);
// different loops may watch different signals. Stopping restores the
// disposition found when watching began (SIG_DFL unless the program had set
// one; asyncio always restores the default, for SIGINT its
// KeyboardInterrupt handler, whose C++ counterpart is SIG_DFL). Worker
// threads block asynchronous signals, so handlers never interrupt executor
// work. A signal that arrives while the loop closes may be lost.
#ifndef TWINLOOP_REAL_EPOLL_BACKEND_H_
#define TWINLOOP_REAL_EPOLL_BACKEND_H_

#include <sys/epoll.h>

#include <atomic>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/loop_backend.h"
#include "twinloop/api/net_backend.h"

namespace twinloop::real {

class EpollBackend;
class EpollNet;        // real/net.h
class EpollProcesses;  // real/process.h

// A file descriptor watched by an EpollBackend's epoll instance, and the one
// notification it may have waiting on the loop's ready queue (see the header
// comment). Heap-allocated; its owner ends it with release(), never delete.
// Loop thread only.
class FdWatch : private internal::Runnable {
 public:
  FdWatch(const FdWatch&) = delete;
  FdWatch& operator=(const FdWatch&) = delete;

  int fd() const { return fd_; }
  // The readiness wanted: EPOLLIN, EPOLLOUT, both or 0. One epoll_ctl when it
  // differs from the current set, none otherwise; 0 removes the fd from
  // epoll. std::system_error if the kernel refuses (ENOMEM, ENOSPC).
  // Nothing happens after stop_watching() or once the backend closed.
  void set_interest(uint32_t events);
  uint32_t interest() const { return interest_; }
  // Queues a notification of `events` now, as if epoll had reported them:
  // for results known at once (a connect that finished or failed inside
  // connect(2)). Nothing happens once the loop closed.
  void post(uint32_t events);
  // Removes the fd from epoll (call it before closing the fd) and cancels a
  // queued notification: on_ready is never called again. Idempotent.
  void stop_watching();
  // The owner lets go: stops watching, and the watch is deleted now, or once
  // its queued notification is dropped or its running one returns.
  void release();
  // nullptr once the backend closed.
  EpollBackend* backend() const { return backend_; }

 protected:
  // `backend` may be nullptr (closed): the watch then never notifies.
  FdWatch(EpollBackend* backend, int fd);
  virtual ~FdWatch();

  // On the loop thread, from the ready queue: EPOLLIN and/or EPOLLOUT
  // (EPOLLHUP / EPOLLERR become both), as reported since the last call; the
  // owner filters by what it still wants. An exception goes to the loop's
  // exception handler, as a callback's would.
  virtual void on_ready(uint32_t events) = 0;
  // The backend closed: the fd is no longer watched (it stays open).
  virtual void on_backend_closed() {}

  int fd_;

 private:
  friend class EpollBackend;

  void run() final;
  void drop() final;

  EpollBackend* backend_;
  EventLoop* loop_;
  // The backend's list of live watches, detached when it closes.
  FdWatch* prev_ = nullptr;
  FdWatch* next_ = nullptr;
  uint32_t interest_ = 0;  // what the kernel's interest list holds (0: absent)
  uint32_t pending_ = 0;   // reported since the last run
  bool queued_ = false;
  bool dispatching_ = false;
  bool stopped_ = false;
  bool released_ = false;
};

// The watch behind a byte-stream channel (a socket, a listener, a pipe): what
// its owner wants (read, write) and whom it tells (ChannelEvents). It
// outlives its owner while a notification is queued (FdWatch). Used by
// real/net.cc and real/process.cc.
class ChannelWatch final : public FdWatch {
 public:
  ChannelWatch(EpollBackend* backend, int fd) : FdWatch(backend, fd) {}

  void want(bool read, bool write) {
    want_read_ = read;
    want_write_ = write;
    set_interest((read ? uint32_t{EPOLLIN} : 0) | (write ? uint32_t{EPOLLOUT} : 0));
  }
  bool want_read() const { return want_read_; }
  bool want_write() const { return want_write_; }
  void set_events(ChannelEvents* events) { events_ = events; }

  // Stops watching and forgets the owner; the fd is the caller's to close.
  void stop() {
    events_ = nullptr;
    want_read_ = want_write_ = false;
    stop_watching();
  }

 private:
  ~ChannelWatch() override = default;

  void on_ready(uint32_t events) override {
    // Each direction only while it is still wanted: the owner may change its
    // mind (or close) in between, even inside on_readable.
    if ((events & EPOLLIN) && want_read_ && events_) events_->on_readable();
    if ((events & EPOLLOUT) && want_write_ && events_) events_->on_writable();
  }

  ChannelEvents* events_ = nullptr;
  bool want_read_ = false;
  bool want_write_ = false;
};

struct EpollBackendOptions {
  // Use epoll_pwait2's nanosecond timeout when the kernel has it. false forces
  // the epoll_wait fallback (millisecond timeouts, rounded up); for tests.
  bool nanosecond_timeouts = true;
  // The executor's thread limit; 0 means asyncio's default,
  // min(32, std::thread::hardware_concurrency() + 4).
  size_t max_workers = 0;
};

class EpollBackend final : public LoopBackend {
 public:
  // Creates the epoll instance, the eventfd and the signal pipe.
  // std::system_error if the kernel refuses.
  EpollBackend();
  explicit EpollBackend(const EpollBackendOptions& options);
  EpollBackend(const EpollBackend&) = delete;
  EpollBackend& operator=(const EpollBackend&) = delete;
  ~EpollBackend() override;

  void attach(EventLoop& loop) override;
  int64_t time_ns() override;
  void wait(int64_t deadline_ns) override;
  void wake() override;
  void submit(absl::AnyInvocable<void()> work, absl::AnyInvocable<void()> done) override;
  uint64_t choose(std::string_view site, uint64_t n) override;
  // std::runtime_error if another loop watches `sig`, or if sigaction fails.
  void watch_signal(int sig, bool on) override;
  // True on the process's main thread while `sig`'s disposition is SIG_DFL
  // (neither the program nor another loop has claimed it).
  bool signal_is_default(int sig) override;
  // Stops the executor: work not started yet is dropped (destroyed here, on
  // the loop thread, without its `done`); work already running finishes
  // first (close() joins the workers, unlike asyncio's shutdown(wait=False):
  // no thread may outlive the loop it reports to). Connects in progress are
  // abandoned (socket closed, callback destroyed without running); channels
  // and listeners stay open but are no longer watched. Children still
  // running are named on stderr and reaped in the background
  // (EpollProcesses::close). Then the backend's file descriptors are closed.
  // Idempotent.
  void close() override;

  // The executor's thread limit.
  size_t max_workers() const;
  // Worker threads started so far (they are never retired before close()).
  size_t worker_count() const;

  // The network (real/net.h): TCP and Unix stream sockets on this epoll
  // instance. Available once attached.
  NetBackend* net() override;

  // Child processes (real/process.h): posix_spawn, pipes and pidfds on this
  // epoll instance. Available once attached.
  ProcessBackend* processes() override;

  // The signals this loop watches (watch_signal): a child starts with them
  // at their default action.
  sigset_t watched_signals() const;

  // epoll_ctl calls made for FdWatches so far (tests check that an
  // unchanged interest set costs none).
  uint64_t interest_changes() const { return interest_changes_; }

 private:
  class ThreadPool;  // epoll_backend.cc
  friend class FdWatch;

  // FdWatch's bookkeeping.
  void link(FdWatch* w);
  void unlink(FdWatch* w);
  void update_interest(FdWatch& w, uint32_t events);
  void notify(FdWatch& w, uint32_t events);

  void drain_wake();
  void drain_signals();
  void check_open() const;

  EventLoop* loop_ = nullptr;
  bool nanosecond_timeouts_;
  size_t max_workers_ = 0;
  bool closed_ = false;
  int epoll_fd_ = -1;
  int signal_read_fd_ = -1;
  int signal_write_fd_ = -1;

  // wake() may race with close(): the eventfd is written and closed under
  // this mutex, and only when no wake-up is pending already.
  std::mutex wake_mu_;
  int wake_fd_ = -1;
  std::atomic<bool> wake_pending_{false};

  // Dispositions replaced by watch_signal(sig, true), restored on false.
  std::map<int, struct sigaction> saved_actions_;

  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<EpollNet> net_;
  std::unique_ptr<EpollProcesses> processes_;

  FdWatch* watches_ = nullptr;  // live watches (FdWatch::prev_ / next_)
  uint64_t interest_changes_ = 0;
};

}  // namespace twinloop::real

#endif  // TWINLOOP_REAL_EPOLL_BACKEND_H_
