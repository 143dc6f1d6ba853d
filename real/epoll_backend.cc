#include "twinloop/real/epoll_backend.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <condition_variable>
#include <exception>
#include <list>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/net_backend.h"
#include "twinloop/real/net.h"
#include "twinloop/real/process.h"

// ThreadSanitizer (GCC 12, LLVM 14) does not intercept epoll_pwait2. Without
// an interceptor it cannot tell that the thread is blocked in a system call,
// so it defers a signal handler until the next intercepted call, and a loop
// blocked in epoll_pwait2 would never see the signal. Under TSan we use the
// intercepted epoll_wait (millisecond timeouts) instead.
#if defined(__SANITIZE_THREAD__)
#define TWINLOOP_REAL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TWINLOOP_REAL_TSAN 1
#endif
#endif
#ifndef TWINLOOP_REAL_TSAN
#define TWINLOOP_REAL_TSAN 0
#endif

namespace twinloop::real {
namespace {

// Events taken per epoll call; more ready descriptors wait for the next call
// (level-triggered, nothing is lost).
constexpr int kMaxEvents = 128;

[[noreturn]] void throw_errno(int err, const char* what) {
  throw std::system_error(err, std::system_category(), what);
}

// Cleared once the kernel answers ENOSYS; shared by all loops.
std::atomic<bool> g_have_epoll_pwait2{!TWINLOOP_REAL_TSAN};

// Signal number -> write end of the self-pipe of the loop watching it, plus
// one (0: nobody watches). Read by the signal handler, so lock-free atomics.
static_assert(std::atomic<int>::is_always_lock_free);
std::atomic<int> g_signal_fds[NSIG];

extern "C" void twinloop_real_on_signal(int sig) {
  const int saved_errno = errno;
  if (sig > 0 && sig < NSIG) {
    const int fd = g_signal_fds[sig].load(std::memory_order_relaxed) - 1;
    if (fd >= 0) {
      // A full pipe drops the byte: signals coalesce, as POSIX signals do.
      const unsigned char byte = static_cast<unsigned char>(sig);
      [[maybe_unused]] ssize_t written = ::write(fd, &byte, 1);
    }
  }
  errno = saved_errno;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

}  // namespace

// asyncio's default ThreadPoolExecutor (concurrent/futures/thread.py): a FIFO
// of jobs, workers started lazily up to a limit, a new worker only when no
// idle worker is left to take the job.
//
// Each job lives in one std::list node from submit() until it is destroyed on
// the loop thread; the node is spliced between lists (queued -> running ->
// finished) under mu_, so a worker only ever moves it. A finished job is
// handed to the loop with call_soon_threadsafe as a callback holding just an
// iterator: if the loop refuses (it closed meanwhile), the job stays in
// finished_ and shutdown() destroys it on the loop thread.
class EpollBackend::ThreadPool {
 public:
  ThreadPool(EventLoop& loop, size_t max_workers) : loop_(loop), max_workers_(max_workers) {}
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;
  ~ThreadPool() { shutdown(); }

  void submit(absl::AnyInvocable<void()> work, absl::AnyInvocable<void()> done) {
    std::unique_lock<std::mutex> lock(mu_);
    if (stopping_) throw std::runtime_error("cannot schedule new futures after shutdown");
    queued_.push_back(Job{std::move(work), std::move(done), nullptr});
    // Every queued job pairs with an idle worker, or we start one.
    if (idle_ < queued_.size() && workers_.size() < max_workers_) {
      try {
        start_worker();
      } catch (...) {
        // With a worker left the job waits for it; with none it cannot run.
        if (workers_.empty()) {
          std::list<Job> undo;  // destroyed on this (the loop) thread
          undo.splice(undo.end(), queued_, std::prev(queued_.end()));
          lock.unlock();
          throw;
        }
      }
    }
    lock.unlock();
    cv_.notify_one();
  }

  // Drops queued work, lets running work finish, joins the workers and
  // destroys every job left, all on the calling (loop) thread. Idempotent.
  void shutdown() {
    std::list<Job> dropped;
    std::vector<std::thread> workers;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      dropped.splice(dropped.end(), queued_);
      workers.swap(workers_);
    }
    cv_.notify_all();
    for (std::thread& t : workers) t.join();
    std::lock_guard<std::mutex> lock(mu_);
    dropped.splice(dropped.end(), finished_);  // refused by the closed loop
    // running_ is empty: every worker has left.
  }

  size_t max_workers() const { return max_workers_; }
  size_t worker_count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return started_;
  }

 private:
  struct Job {
    absl::AnyInvocable<void()> work;
    absl::AnyInvocable<void()> done;
    std::exception_ptr error;  // what `work` threw
  };
  using JobIt = std::list<Job>::iterator;

  // mu_ held.
  void start_worker() {
    // The worker inherits this thread's signal mask: block the asynchronous
    // signals so that their handlers never run on (and interrupt) a worker.
    sigset_t block, old;
    sigfillset(&block);
    for (int sig : {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGTRAP, SIGSYS, SIGPROF}) sigdelset(&block, sig);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    try {
      workers_.emplace_back([this] { worker_main(); });
    } catch (...) {
      pthread_sigmask(SIG_SETMASK, &old, nullptr);
      throw;
    }
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    const std::string name = absl::StrFormat("twinloop_%d", started_);
    pthread_setname_np(workers_.back().native_handle(), name.substr(0, 15).c_str());
    ++started_;
  }

  void worker_main() {
    std::unique_lock<std::mutex> lock(mu_);
    ++idle_;
    while (true) {
      cv_.wait(lock, [this] { return stopping_ || !queued_.empty(); });
      --idle_;
      if (stopping_) return;  // queued jobs are shutdown()'s to drop
      JobIt job = queued_.begin();
      running_.splice(running_.end(), queued_, job);
      lock.unlock();
      try {
        job->work();
      } catch (...) {
        job->error = std::current_exception();
      }
      lock.lock();
      finished_.splice(finished_.end(), running_, job);
      // Idle again before `done` can run: a job submitted from `done` finds
      // this worker instead of starting another.
      ++idle_;
      lock.unlock();
      try {
        loop_.call_soon_threadsafe([this, job] { deliver(job); });
      } catch (...) {
        // The loop is closed: shutdown() destroys the job on its thread.
      }
      lock.lock();
    }
  }

  // On the loop thread.
  void deliver(JobIt it) {
    std::list<Job> mine;  // the job dies with it, on this thread
    {
      std::lock_guard<std::mutex> lock(mu_);
      mine.splice(mine.end(), finished_, it);
    }
    Job& job = mine.front();
    if (job.error) {
      loop_.call_exception_handler(ExceptionContext::of("Exception in executor work", job.error));
    }
    job.done();
  }

  EventLoop& loop_;
  const size_t max_workers_;

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::list<Job> queued_;
  std::list<Job> running_;
  std::list<Job> finished_;
  std::vector<std::thread> workers_;
  size_t started_ = 0;
  size_t idle_ = 0;  // workers waiting for a job, or about to
  bool stopping_ = false;
};

EpollBackend::EpollBackend() : EpollBackend(EpollBackendOptions{}) {}

EpollBackend::EpollBackend(const EpollBackendOptions& options)
    : nanosecond_timeouts_(options.nanosecond_timeouts) {
  try {
    epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
    if (epoll_fd_ < 0) throw_errno(errno, "epoll_create1");
    wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) throw_errno(errno, "eventfd");
    int fds[2];
    if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0) throw_errno(errno, "pipe2");
    signal_read_fd_ = fds[0];
    signal_write_fd_ = fds[1];
    // epoll's data is a pointer: an FdWatch, or the address of one of these
    // two members.
    for (int* fd : {&wake_fd_, &signal_read_fd_}) {
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.ptr = fd;
      if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, *fd, &ev) != 0) throw_errno(errno, "epoll_ctl");
    }
  } catch (...) {
    close_fd(epoll_fd_);
    close_fd(wake_fd_);
    close_fd(signal_read_fd_);
    close_fd(signal_write_fd_);
    throw;
  }
  size_t max_workers = options.max_workers;
  if (max_workers == 0) {
    const size_t cores = std::max(1u, std::thread::hardware_concurrency());
    max_workers = std::min<size_t>(32, cores + 4);
  }
  max_workers_ = max_workers;  // the pool starts in attach(), with the loop
}

EpollBackend::~EpollBackend() { close(); }

void EpollBackend::attach(EventLoop& loop) {
  loop_ = &loop;
  pool_ = std::make_unique<ThreadPool>(loop, max_workers_);
  net_ = std::make_unique<EpollNet>(*this, loop);
  processes_ = std::make_unique<EpollProcesses>(*this, loop);
}

NetBackend* EpollBackend::net() { return net_.get(); }

ProcessBackend* EpollBackend::processes() { return processes_.get(); }

sigset_t EpollBackend::watched_signals() const {
  sigset_t set;
  sigemptyset(&set);
  for (const auto& [sig, action] : saved_actions_) sigaddset(&set, sig);
  return set;
}

int64_t EpollBackend::time_ns() {
  timespec ts;
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

void EpollBackend::wait(int64_t deadline_ns) {
  check_open();
  // Time left until the deadline; -1 blocks.
  int64_t remaining_ns;
  if (deadline_ns == kNoDeadline) {
    remaining_ns = -1;
  } else if (deadline_ns == kPollOnly) {
    remaining_ns = 0;
  } else {
    remaining_ns = std::max<int64_t>(0, deadline_ns - time_ns());
  }

  epoll_event events[kMaxEvents];
  int n = -1;
  bool done = false;
  if (nanosecond_timeouts_ && g_have_epoll_pwait2.load(std::memory_order_relaxed)) {
    timespec ts{};
    if (remaining_ns >= 0) {
      ts.tv_sec = remaining_ns / 1'000'000'000;
      ts.tv_nsec = remaining_ns % 1'000'000'000;
    }
    n = ::epoll_pwait2(epoll_fd_, events, kMaxEvents, remaining_ns >= 0 ? &ts : nullptr, nullptr);
    if (n >= 0 || errno != ENOSYS) {
      done = true;
    } else {
      g_have_epoll_pwait2.store(false, std::memory_order_relaxed);
    }
  }
  if (!done) {
    // Round up: a timeout rounded down would wake before the deadline and
    // spin until it passes. Longer waits are capped (wait may return early).
    int timeout_ms = -1;
    if (remaining_ns >= 0) {
      const int64_t ms = remaining_ns / 1'000'000 + (remaining_ns % 1'000'000 != 0 ? 1 : 0);
      timeout_ms = static_cast<int>(std::min<int64_t>(ms, INT_MAX));
    }
    n = ::epoll_wait(epoll_fd_, events, kMaxEvents, timeout_ms);
  }
  if (n < 0) {
    if (errno == EINTR) return;  // a signal: its byte is in the pipe, read next time
    throw_errno(errno, "epoll_wait");
  }
  for (int i = 0; i < n; ++i) {
    void* const tag = events[i].data.ptr;
    if (tag == &wake_fd_) {
      drain_wake();
    } else if (tag == &signal_read_fd_) {
      drain_signals();
    } else {
      // Only registered watches are in the interest list, and none is
      // deleted before it left it (stop_watching, or the backend closing).
      notify(*static_cast<FdWatch*>(tag), events[i].events);
    }
  }
}

void EpollBackend::notify(FdWatch& w, uint32_t events) {
  w.pending_ |= events;
  if (w.queued_) return;  // one notification at a time; it carries both
  w.queued_ = true;
  schedule_io(*loop_, &w);
}

void EpollBackend::link(FdWatch* w) {
  w->prev_ = nullptr;
  w->next_ = watches_;
  if (watches_) watches_->prev_ = w;
  watches_ = w;
}

void EpollBackend::unlink(FdWatch* w) {
  if (w->prev_) {
    w->prev_->next_ = w->next_;
  } else {
    watches_ = w->next_;
  }
  if (w->next_) w->next_->prev_ = w->prev_;
  w->prev_ = w->next_ = nullptr;
}

void EpollBackend::update_interest(FdWatch& w, uint32_t events) {
  epoll_event ev{};
  ev.events = events;
  ev.data.ptr = &w;
  const int op = w.interest_ == 0 ? EPOLL_CTL_ADD : events == 0 ? EPOLL_CTL_DEL : EPOLL_CTL_MOD;
  ++interest_changes_;
  if (::epoll_ctl(epoll_fd_, op, w.fd_, &ev) != 0) throw_errno(errno, "epoll_ctl");
  w.interest_ = events;
}

// ---- FdWatch

FdWatch::FdWatch(EpollBackend* backend, int fd) : fd_(fd), backend_(backend), loop_(nullptr) {
  if (backend_ && backend_->closed_) backend_ = nullptr;
  if (backend_) {
    loop_ = backend_->loop_;
    backend_->link(this);
  }
}

FdWatch::~FdWatch() {
  if (backend_) backend_->unlink(this);
}

void FdWatch::set_interest(uint32_t events) {
  if (events == interest_ || stopped_ || !backend_) return;
  backend_->update_interest(*this, events);
}

void FdWatch::post(uint32_t events) {
  if (stopped_ || !backend_ || loop_->is_closed()) return;
  backend_->notify(*this, events);
}

void FdWatch::stop_watching() {
  if (stopped_) return;
  stopped_ = true;
  pending_ = 0;
  if (interest_ != 0 && backend_) {
    epoll_event ev{};
    ++backend_->interest_changes_;
    // Cannot fail for a registered fd that is still open.
    ::epoll_ctl(backend_->epoll_fd_, EPOLL_CTL_DEL, fd_, &ev);
  }
  interest_ = 0;
}

void FdWatch::release() {
  stop_watching();
  released_ = true;
  if (!queued_ && !dispatching_) delete this;
}

void FdWatch::run() {
  queued_ = false;
  uint32_t events = pending_;
  pending_ = 0;
  if (released_) {
    delete this;
    return;
  }
  if (stopped_) return;
  if (events & (EPOLLERR | EPOLLHUP)) events |= EPOLLIN | EPOLLOUT;
  events &= EPOLLIN | EPOLLOUT;
  dispatching_ = true;
  try {
    on_ready(events);
  } catch (...) {
    if (loop_) loop_->call_exception_handler(ExceptionContext::of("Exception in I/O callback", std::current_exception()));
  }
  dispatching_ = false;
  if (released_) delete this;
}

void FdWatch::drop() {
  queued_ = false;
  pending_ = 0;
  // A watch its owner still holds stays; the backend, which closes next,
  // detaches it (and deletes the network's own, on_backend_closed).
  if (released_) delete this;
}

void EpollBackend::drain_wake() {
  uint64_t count;
  [[maybe_unused]] ssize_t r = ::read(wake_fd_, &count, sizeof count);
  // After the read: a wake() that skips its write because the flag is still
  // set happened before this exchange, so (acq_rel) everything it published
  // before waking is visible once wait() returns.
  wake_pending_.exchange(false, std::memory_order_acq_rel);
}

void EpollBackend::drain_signals() {
  unsigned char buf[64];
  while (true) {
    const ssize_t r = ::read(signal_read_fd_, buf, sizeof buf);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return;
    for (ssize_t i = 0; i < r; ++i) deliver_signal(*loop_, buf[i]);
    if (static_cast<size_t>(r) < sizeof buf) return;
  }
}

void EpollBackend::wake() {
  // One write per batch of wake-ups: the flag stays set until wait() drained
  // the eventfd.
  if (wake_pending_.exchange(true, std::memory_order_acq_rel)) return;
  std::lock_guard<std::mutex> lock(wake_mu_);
  if (wake_fd_ < 0) return;  // closed
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t r = ::write(wake_fd_, &one, sizeof one);  // EAGAIN: already readable
}

void EpollBackend::submit(absl::AnyInvocable<void()> work, absl::AnyInvocable<void()> done) {
  check_open();
  if (!pool_) throw std::logic_error("EpollBackend::submit before attach");
  pool_->submit(std::move(work), std::move(done));
}

uint64_t EpollBackend::choose(std::string_view /*site*/, uint64_t /*n*/) { return 0; }

void EpollBackend::watch_signal(int sig, bool on) {
  if (sig <= 0 || sig >= NSIG) throw std::invalid_argument(absl::StrFormat("sig %d out of range(1, %d)", sig, NSIG));
  const int mine = signal_write_fd_ + 1;
  if (on) {
    check_open();
    int owner = 0;
    if (!g_signal_fds[sig].compare_exchange_strong(owner, mine)) {
      if (owner == mine) return;  // already watching
      throw std::runtime_error(absl::StrFormat("signal %d is already watched by another event loop", sig));
    }
    // The table entry is in place before the handler can run.
    struct sigaction action {};
    action.sa_handler = twinloop_real_on_signal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    struct sigaction previous {};
    if (::sigaction(sig, &action, &previous) != 0) {
      const int err = errno;
      g_signal_fds[sig].store(0);
      throw_errno(err, "sigaction");
    }
    saved_actions_[sig] = previous;
    return;
  }
  auto it = saved_actions_.find(sig);
  if (it == saved_actions_.end()) return;
  // Restore first, then clear the entry: a signal in between finds it and
  // writes a byte nobody reads for long, which is harmless.
  ::sigaction(sig, &it->second, nullptr);
  saved_actions_.erase(it);
  int expected = mine;
  g_signal_fds[sig].compare_exchange_strong(expected, 0);
}

bool EpollBackend::signal_is_default(int sig) {
  if (sig <= 0 || sig >= NSIG) return false;
  // asyncio's Runner: threading.current_thread() is threading.main_thread().
  if (::gettid() != ::getpid()) return false;
  struct sigaction current {};
  if (::sigaction(sig, nullptr, &current) != 0) return false;
  return (current.sa_flags & SA_SIGINFO) == 0 && current.sa_handler == SIG_DFL;
}

void EpollBackend::close() {
  if (closed_) return;
  closed_ = true;
  while (!saved_actions_.empty()) watch_signal(saved_actions_.begin()->first, false);
  if (pool_) pool_->shutdown();
  // Before the watches are detached: it releases its pidfds' own.
  if (processes_) processes_->close();
  // The loop has dropped its ready queue, so no watch is queued. Owners keep
  // their sockets (closing them later only closes the fd); the network's own
  // watches (connects in progress) delete themselves here.
  while (watches_) {
    FdWatch* w = watches_;
    unlink(w);
    w->backend_ = nullptr;
    w->interest_ = 0;
    w->on_backend_closed();
  }
  {
    std::lock_guard<std::mutex> lock(wake_mu_);
    close_fd(wake_fd_);
  }
  close_fd(signal_read_fd_);
  close_fd(signal_write_fd_);
  close_fd(epoll_fd_);
}

size_t EpollBackend::max_workers() const { return max_workers_; }

size_t EpollBackend::worker_count() const { return pool_ ? pool_->worker_count() : 0; }

void EpollBackend::check_open() const {
  if (closed_) throw std::runtime_error("Event loop is closed");
}

}  // namespace twinloop::real
