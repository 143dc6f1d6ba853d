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

#include <atomic>
#include <csignal>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string_view>

#include "absl/functional/any_invocable.h"
#include "twinloop/api/loop_backend.h"

namespace twinloop::real {

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
  // no thread may outlive the loop it reports to). Then the file descriptors
  // are closed. Idempotent.
  void close() override;

  // The executor's thread limit.
  size_t max_workers() const;
  // Worker threads started so far (they are never retired before close()).
  size_t worker_count() const;

 private:
  class ThreadPool;  // epoll_backend.cc

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
};

}  // namespace twinloop::real

#endif  // TWINLOOP_REAL_EPOLL_BACKEND_H_
