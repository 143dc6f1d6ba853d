#include "twinloop/sim/harness/sweep.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <climits>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <iostream>
#include <new>
#include <set>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_format.h"

namespace twinloop::sim {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

void check_shard(Shard s) {
  if (s.count < 1) {
    throw std::invalid_argument(
        absl::StrFormat("invalid shard %d of %d: the shard count must be at least 1", s.index, s.count));
  }
  if (s.index < 0 || s.index >= s.count) {
    throw std::invalid_argument(absl::StrFormat(
        "invalid shard %d of %d: the shard index must be in [0, %d)", s.index, s.count, s.count));
  }
}

void check_range(uint64_t first, uint64_t count) {
  if (count > 0 && count - 1 > UINT64_MAX - first) {
    throw std::invalid_argument(
        absl::StrFormat("invalid seed range: %d seeds from %d pass the largest seed (2^64 - 1)", count, first));
  }
}

// The seeds of a shard are indexed 0 .. n-1 (the shard-local index k).
uint64_t shard_size(uint64_t count, Shard s) {
  const auto index = static_cast<uint64_t>(s.index);
  const auto k = static_cast<uint64_t>(s.count);
  return count > index ? (count - 1 - index) / k + 1 : 0;
}

uint64_t seed_at(uint64_t first, Shard s, uint64_t k) {
  return first + static_cast<uint64_t>(s.index) + k * static_cast<uint64_t>(s.count);
}

// ---------------------------------------------------------------- environment

struct EnvValue {
  std::string name;  // the variable the value came from (or the primary one)
  std::string value;
  bool set = false;
};

// `primary` if set and non-empty, else `fallback` if set and non-empty.
EnvValue env_of(const char* primary, const char* fallback) {
  for (const char* name : {primary, fallback}) {
    const char* v = std::getenv(name);
    if (v != nullptr && *v != '\0') return EnvValue{name, v, true};
  }
  return EnvValue{primary, "", false};
}

int parse_nonnegative(const EnvValue& e) {
  const std::string& s = e.value;
  long long v = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec == std::errc() && end == s.data() + s.size()) {
    if (v < 0) throw std::invalid_argument(absl::StrFormat("invalid sharding: %s=\"%s\" is negative", e.name, s));
    if (v <= INT_MAX) return static_cast<int>(v);
  }
  if (ec == std::errc::result_out_of_range || (ec == std::errc() && end == s.data() + s.size())) {
    throw std::invalid_argument(absl::StrFormat("invalid sharding: %s=\"%s\" is out of range", e.name, s));
  }
  throw std::invalid_argument(absl::StrFormat("invalid sharding: %s=\"%s\" is not a decimal integer", e.name, s));
}

// ---------------------------------------------------------------- running one seed

bool run_guarded(const std::function<bool(uint64_t)>& run_seed, uint64_t seed) {
  try {
    return run_seed(seed);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "twinloop sweep: seed %llu: run_seed threw: %s\n", static_cast<unsigned long long>(seed),
                 e.what());
  } catch (...) {
    std::fprintf(stderr, "twinloop sweep: seed %llu: run_seed threw a non-standard exception\n",
                 static_cast<unsigned long long>(seed));
  }
  return true;
}

// ---------------------------------------------------------------- progress line

class ProgressLine {
 public:
  ProgressLine(bool on, uint64_t total, Clock::time_point start) : on_(on), total_(total), start_(start) {}

  void update(uint64_t run, uint64_t failures, bool force = false) {
    if (!on_) return;
    const Clock::time_point now = Clock::now();
    if (!force && now < next_) return;
    next_ = now + std::chrono::milliseconds(100);
    const double s = std::chrono::duration<double>(now - start_).count();
    const double rate = s > 0 ? static_cast<double>(run) / s : 0;
    const std::string line = absl::StrFormat("seeds %d/%d  %.0f seeds/s  failures %d", run, total_, rate, failures);
    const int pad = last_len_ > line.size() ? static_cast<int>(last_len_ - line.size()) : 0;
    std::fprintf(stderr, "\r%s%*s", line.c_str(), pad, "");
    std::fflush(stderr);
    last_len_ = line.size();
  }

  void finish(uint64_t run, uint64_t failures) {
    if (!on_) return;
    update(run, failures, /*force=*/true);
    std::fputc('\n', stderr);
    std::fflush(stderr);
  }

 private:
  bool on_;
  uint64_t total_;
  Clock::time_point start_;
  Clock::time_point next_{};
  size_t last_len_ = 0;
};

// ---------------------------------------------------------------- in this process

SweepResult sweep_in_process(const SweepOptions& o, uint64_t n, const std::function<bool(uint64_t)>& run_seed,
                             Clock::time_point start) {
  SweepResult r;
  ProgressLine progress(o.progress, n, start);
  const auto m = static_cast<uint64_t>(o.max_failures);
  for (uint64_t k = 0; k < n; ++k) {
    const uint64_t seed = seed_at(o.first_seed, o.shard, k);
    const bool failed = run_guarded(run_seed, seed);
    ++r.seeds_run;
    if (failed) {
      r.failed_seeds.push_back(seed);
      if (m > 0 && r.failed_seeds.size() >= m) {
        r.stopped_early = k + 1 < n;
        break;
      }
    }
    progress.update(r.seeds_run, r.failed_seeds.size());
  }
  progress.finish(r.seeds_run, r.failed_seeds.size());
  return r;
}

// ---------------------------------------------------------------- worker processes
//
// One AF_UNIX stream socket per worker. Parent -> worker: shard-local
// indices (uint64_t each), which the worker runs in the order received.
// Worker -> parent: one Report per index, in the same order. The parent thus
// knows at all times which indices a worker holds (its queue, front first).
//
// Reports of passing seeds are batched (sent at most ~1 ms late, at 64, or
// when the worker runs out of work); a failure is sent at once with the
// passes before it. So that a worker's death can be attributed, the worker
// also keeps two counters in a page it shares with the parent: the index it
// is running (+1; 0 between seeds) and how many seeds it has completed. When
// the worker dies the parent counts its completed-but-unreported seeds as
// passed (only passes are ever held back), the running one as crashed, and
// requeues the rest.

struct Report {
  uint64_t index;
  uint64_t failed;
};
// A Report whose index is kNewsTag announces `failed` bytes of news
// (SweepOptions::worker_news) that follow it.
constexpr uint64_t kNewsTag = ~uint64_t{0};

struct SharedState {
  std::atomic<uint64_t> running{0};    // index + 1 of the seed being run, 0: none
  std::atomic<uint64_t> completed{0};  // seeds completed (reported or held back)
};
static_assert(std::atomic<uint64_t>::is_always_lock_free);

constexpr size_t kMaxHeldReports = 64;
constexpr auto kMaxReportDelay = std::chrono::milliseconds(1);

void flush_output() {
  std::cout.flush();
  std::cerr.flush();
  std::clog.flush();
  std::fflush(nullptr);
}

bool send_all(int fd, const void* data, size_t len) {
  const char* p = static_cast<const char*>(data);
  while (len > 0) {
    const ssize_t w = ::send(fd, p, len, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    len -= static_cast<size_t>(w);
  }
  return true;
}

[[noreturn]] void worker_exit(int code, bool flush) {
  if (flush) {
    std::cout.flush();
    std::cerr.flush();
    std::fflush(stdout);
    std::fflush(stderr);
  }
  ::_exit(code);
}

[[noreturn]] void worker_main(int fd, SharedState* shared, const SweepOptions& o,
                              const std::function<bool(uint64_t)>& run_seed) {
  Report held[kMaxHeldReports];
  size_t nheld = 0;
  Clock::time_point last_send = Clock::now();
  const auto send_held = [&] {
    if (nheld > 0 && !send_all(fd, held, nheld * sizeof(Report))) worker_exit(3, o.worker_output);
    nheld = 0;
    last_send = Clock::now();
  };
  char buf[4096];
  size_t have = 0;
  uint64_t completed = 0;
  for (;;) {
    send_held();  // before waiting for more work
    const ssize_t r = ::read(fd, buf + have, sizeof buf - have);
    if (r == 0) break;  // the parent has no more work for us
    if (r < 0) {
      if (errno == EINTR) continue;
      worker_exit(2, o.worker_output);
    }
    have += static_cast<size_t>(r);
    size_t off = 0;
    for (; have - off >= sizeof(uint64_t); off += sizeof(uint64_t)) {
      uint64_t k;
      std::memcpy(&k, buf + off, sizeof k);
      shared->running.store(k + 1, std::memory_order_relaxed);
      const bool failed = run_guarded(run_seed, seed_at(o.first_seed, o.shard, k));
      if (o.worker_news) {
        // Before the seed's verdict, so the parent has it when it counts.
        std::string news = o.worker_news();
        if (!news.empty()) {
          send_held();
          const Report tag{kNewsTag, news.size()};
          if (!send_all(fd, &tag, sizeof tag) || !send_all(fd, news.data(), news.size())) {
            worker_exit(3, o.worker_output);
          }
        }
      }
      held[nheld++] = Report{k, failed ? 1u : 0u};
      // A failure is sent before it counts as completed: a held-back
      // completed seed is always a pass.
      if (failed || nheld == kMaxHeldReports || Clock::now() - last_send >= kMaxReportDelay) send_held();
      shared->completed.store(++completed, std::memory_order_relaxed);
      shared->running.store(0, std::memory_order_relaxed);
    }
    std::memmove(buf, buf + off, have - off);
    have -= off;
  }
  send_held();
  worker_exit(0, o.worker_output);
}

std::string describe_status(int status) {
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    const char* name = ::strsignal(sig);
    return absl::StrFormat("killed by signal %d (%s)", sig, name ? name : "?");
  }
  if (WIFEXITED(status)) return absl::StrFormat("exited with status %d", WEXITSTATUS(status));
  return "ended";
}

class ForkedSweep {
 public:
  ForkedSweep(const SweepOptions& o, uint64_t n, int jobs, const std::function<bool(uint64_t)>& run_seed,
              Clock::time_point start)
      : o_(o),
        n_(n),
        jobs_(static_cast<size_t>(std::min<uint64_t>(static_cast<uint64_t>(jobs), n))),
        m_(static_cast<uint64_t>(o.max_failures)),
        run_seed_(run_seed),
        limit_(n),
        progress_(o.progress, n, start) {}

  ForkedSweep(const ForkedSweep&) = delete;
  ForkedSweep& operator=(const ForkedSweep&) = delete;

  ~ForkedSweep() {
    for (Worker& w : workers_) kill_worker(w);
  }

  SweepResult run() {
    top_up();
    while (!workers_.empty()) {
      std::vector<pollfd> fds;
      fds.reserve(workers_.size());
      for (const Worker& w : workers_) fds.push_back(pollfd{w.fd, POLLIN, 0});
      const int ready = ::poll(fds.data(), fds.size(), o_.progress ? 100 : -1);
      if (ready < 0 && errno != EINTR) throw std::system_error(errno, std::generic_category(), "sweep: poll");
      bool got = false;
      if (ready > 0) {
        for (size_t i = 0; i < fds.size(); ++i) {
          if (fds[i].revents == 0) continue;
          got = true;
          drain(workers_[i]);
        }
      }
      // Workers whose socket reached end-of-file have exited (or crashed).
      for (Worker& w : workers_) {
        if (w.eof) reap(w);
      }
      std::erase_if(workers_, [](const Worker& w) { return w.pid < 0; });
      top_up();
      progress_.update(results_, failures_.size());
      // Let results pile up a little instead of waking once per seed; the
      // queues hold ~5 ms of work. Not while stopping: then latency matters.
      if (got && limit_ == n_) sleep_us(500);
    }
    progress_.finish(results_, failures_.size());

    SweepResult r;
    r.seeds_run = results_;
    for (uint64_t k : failures_) {
      r.failed_seeds.push_back(seed_at(o_.first_seed, o_.shard, k));
      if (crashed_.count(k)) r.crashed_seeds.push_back(seed_at(o_.first_seed, o_.shard, k));
    }
    r.stopped_early = m_ > 0 && failures_.size() >= m_ && *failures_.rbegin() + 1 < n_;
    return r;
  }

 private:
  struct Worker {
    pid_t pid = -1;
    int fd = -1;
    std::deque<uint64_t> queue;  // sent, not yet reported, in running order
    char partial[sizeof(Report)] = {};
    size_t partial_len = 0;
    // News being received (SweepOptions::worker_news): bytes still due.
    uint64_t news_due = 0;
    std::string news;
    bool eof = false;
    bool closing = false;  // told there is no more work
    uint64_t done = 0;  // reports received
    Clock::time_point started;
    SharedState* shared = nullptr;  // a MAP_SHARED page
  };

  static void sleep_us(long us) {
    timespec ts{0, us * 1000};
    while (::nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
  }

  bool has_work() const { return (!requeued_.empty() && *requeued_.begin() < limit_) || next_ < limit_; }

  bool take(uint64_t* k) {
    if (!requeued_.empty() && *requeued_.begin() < limit_) {
      *k = *requeued_.begin();
      requeued_.erase(requeued_.begin());
      return true;
    }
    if (next_ < limit_) {
      *k = next_++;
      return true;
    }
    return false;
  }

  void spawn() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
      throw std::system_error(errno, std::generic_category(), "sweep: socketpair");
    }
    void* page = ::mmap(nullptr, sizeof(SharedState), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
      const int err = errno;
      ::close(sv[0]);
      ::close(sv[1]);
      throw std::system_error(err, std::generic_category(), "sweep: mmap");
    }
    auto* shared = new (page) SharedState;
    const pid_t parent = ::getpid();
    flush_output();
    const pid_t pid = ::fork();
    if (pid < 0) {
      const int err = errno;
      ::close(sv[0]);
      ::close(sv[1]);
      ::munmap(page, sizeof(SharedState));
      throw std::system_error(err, std::generic_category(), "sweep: fork");
    }
    if (pid == 0) {
      // The worker. Never returns; leaves with _exit().
      try {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (::getppid() != parent) ::_exit(1);
        ::close(sv[0]);
        for (const Worker& w : workers_) ::close(w.fd);
        if (!o_.worker_output) {
          const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
          if (null >= 0) {
            ::dup2(null, STDOUT_FILENO);
            ::dup2(null, STDERR_FILENO);
            ::close(null);
          }
        }
        worker_main(sv[1], shared, o_, run_seed_);
      } catch (...) {
        ::_exit(4);
      }
    }
    ::close(sv[1]);
    Worker w;
    w.pid = pid;
    w.fd = sv[0];
    w.started = Clock::now();
    w.shared = shared;
    workers_.push_back(std::move(w));
    refill(workers_.back());
  }

  // Keeps ~5 ms of work (by the worker's rate so far) queued, 2 to 256 seeds.
  void refill(Worker& w) {
    const double s = seconds_since(w.started);
    const double rate = s > 0 ? static_cast<double>(w.done) / s : 0;
    const size_t depth = std::clamp<size_t>(static_cast<size_t>(std::ceil(rate * 0.005)), 2, 256);
    if (w.closing || w.queue.size() >= depth) return;
    std::vector<uint64_t> batch;
    uint64_t k;
    while (w.queue.size() + batch.size() < depth && take(&k)) batch.push_back(k);
    if (batch.empty()) return;
    w.queue.insert(w.queue.end(), batch.begin(), batch.end());
    // A failed send means the worker is gone; its end-of-file is seen by
    // poll, and the queued indices go back to the pool then.
    send_all(w.fd, batch.data(), batch.size() * sizeof(uint64_t));
  }

  void drain(Worker& w) {
    char buf[1 << 14];
    for (;;) {
      const ssize_t r = ::recv(w.fd, buf, sizeof buf, MSG_DONTWAIT);
      if (r > 0) {
        consume(w, buf, static_cast<size_t>(r));
        continue;
      }
      if (r < 0 && errno == EINTR) continue;
      if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      w.eof = true;  // 0: end-of-file; other errors: the worker is gone too
      return;
    }
  }

  void consume(Worker& w, const char* data, size_t len) {
    while (len > 0) {
      if (w.news_due > 0) {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(w.news_due, len));
        w.news.append(data, n);
        data += n;
        len -= n;
        w.news_due -= n;
        if (w.news_due == 0) {
          if (o_.absorb_news) o_.absorb_news(w.news);
          w.news.clear();
        }
        continue;
      }
      const size_t take_n = std::min(len, sizeof(Report) - w.partial_len);
      std::memcpy(w.partial + w.partial_len, data, take_n);
      w.partial_len += take_n;
      data += take_n;
      len -= take_n;
      if (w.partial_len < sizeof(Report)) return;
      w.partial_len = 0;
      Report report;
      std::memcpy(&report, w.partial, sizeof report);
      if (report.index == kNewsTag) {
        w.news_due = report.failed;
        continue;
      }
      if (w.queue.empty() || w.queue.front() != report.index) {
        throw std::logic_error(absl::StrFormat("sweep: worker %d reported seed index %d out of order", w.pid,
                                               report.index));
      }
      w.queue.pop_front();
      ++w.done;
      record(report.index, report.failed != 0, /*crashed=*/false);
    }
  }

  void record(uint64_t k, bool failed, bool crashed) {
    ++results_;
    if (!failed) return;
    failures_.insert(k);
    if (crashed) crashed_.insert(k);
    if (m_ == 0) return;
    // Keep the m lowest failures. Once there are m, nothing above the m-th
    // (F) can change the answer: stop handing out indices above F.
    while (failures_.size() > m_) {
      crashed_.erase(*failures_.rbegin());
      failures_.erase(std::prev(failures_.end()));
    }
    if (failures_.size() == m_) limit_ = std::min(limit_, *failures_.rbegin());
  }

  // The worker's socket reached end-of-file (its reports are all read):
  // collect its exit status. If it still held seeds: those it completed
  // without reporting them passed, the one it was running crashed, and the
  // rest go back to the pool.
  void reap(Worker& w) {
    ::close(w.fd);
    w.fd = -1;
    int status = 0;
    pid_t got;
    do {
      got = ::waitpid(w.pid, &status, 0);
    } while (got < 0 && errno == EINTR);
    const std::string how = got == w.pid ? describe_status(status) : "ended";
    const uint64_t running = w.shared->running.load(std::memory_order_relaxed);
    const uint64_t completed = w.shared->completed.load(std::memory_order_relaxed);
    unmap(w);
    w.pid = -1;
    if (w.queue.empty()) return;
    size_t passed = completed > w.done ? static_cast<size_t>(completed - w.done) : 0;
    bool crashed = false;
    if (running != 0) {
      const auto it = std::find(w.queue.begin(), w.queue.end(), running - 1);
      if (it != w.queue.end()) {
        passed = static_cast<size_t>(it - w.queue.begin());
        crashed = true;
      }
    }
    passed = std::min(passed, w.queue.size());
    for (size_t i = 0; i < passed; ++i) {
      record(w.queue.front(), /*failed=*/false, /*crashed=*/false);
      w.queue.pop_front();
    }
    if (crashed) {
      const uint64_t k = w.queue.front();
      w.queue.pop_front();
      std::fprintf(stderr, "twinloop sweep: the worker running seed %llu %s; the seed counts as failed\n",
                   static_cast<unsigned long long>(seed_at(o_.first_seed, o_.shard, k)), how.c_str());
      record(k, /*failed=*/true, /*crashed=*/true);
    } else if (!w.queue.empty()) {
      std::fprintf(stderr, "twinloop sweep: a worker %s between seeds; its %zu queued seeds are run again\n",
                   how.c_str(), w.queue.size());
    }
    for (uint64_t rest : w.queue) requeued_.insert(rest);
    w.queue.clear();
  }

  void unmap(Worker& w) {
    if (w.shared != nullptr) ::munmap(w.shared, sizeof(SharedState));
    w.shared = nullptr;
  }

  void kill_worker(Worker& w) {
    if (w.pid < 0) return;
    ::kill(w.pid, SIGKILL);
    if (w.fd >= 0) ::close(w.fd);
    w.fd = -1;
    while (::waitpid(w.pid, nullptr, 0) < 0 && errno == EINTR) {
    }
    unmap(w);
    for (uint64_t k : w.queue) requeued_.insert(k);
    w.queue.clear();
    w.pid = -1;
  }

  // After results and exits. While stopping, SIGKILL the workers that hold
  // nothing below the limit (their queued indices go back to the pool).
  // Then give every worker work, replace workers that died while work
  // remains, and close the socket of workers left without work (end of the
  // range, or of what is still needed), so that they exit.
  void top_up() {
    if (limit_ < n_) {
      for (Worker& w : workers_) {
        if (std::none_of(w.queue.begin(), w.queue.end(), [&](uint64_t k) { return k < limit_; })) kill_worker(w);
      }
      std::erase_if(workers_, [](const Worker& w) { return w.pid < 0; });
    }
    for (Worker& w : workers_) refill(w);
    while (workers_.size() < jobs_ && has_work()) spawn();
    for (Worker& w : workers_) {
      if (w.queue.empty() && !w.closing) {
        w.closing = true;
        ::shutdown(w.fd, SHUT_WR);
      }
    }
  }

  const SweepOptions& o_;
  const uint64_t n_;
  const size_t jobs_;
  const uint64_t m_;
  const std::function<bool(uint64_t)>& run_seed_;
  std::vector<Worker> workers_;
  std::set<uint64_t> requeued_;  // handed out once, to a worker that died
  uint64_t next_ = 0;            // the lowest index never handed out
  uint64_t limit_;               // indices >= limit_ are not needed
  std::set<uint64_t> failures_;  // shard-local indices (the m lowest if m > 0)
  std::set<uint64_t> crashed_;
  uint64_t results_ = 0;
  ProgressLine progress_;
};

}  // namespace

Shard shard_from_env() {
  const EnvValue index = env_of("GTEST_SHARD_INDEX", "TEST_SHARD_INDEX");
  const EnvValue total = env_of("GTEST_TOTAL_SHARDS", "TEST_TOTAL_SHARDS");
  if (!index.set && !total.set) return Shard{};
  if (!total.set) {
    throw std::invalid_argument(absl::StrFormat(
        "invalid sharding: %s=\"%s\" is set but neither GTEST_TOTAL_SHARDS nor TEST_TOTAL_SHARDS is", index.name,
        index.value));
  }
  if (!index.set) {
    throw std::invalid_argument(absl::StrFormat(
        "invalid sharding: %s=\"%s\" is set but neither GTEST_SHARD_INDEX nor TEST_SHARD_INDEX is", total.name,
        total.value));
  }
  Shard s;
  s.index = parse_nonnegative(index);
  s.count = parse_nonnegative(total);
  if (s.count < 1) {
    throw std::invalid_argument(
        absl::StrFormat("invalid sharding: %s=\"%s\": the shard count must be at least 1", total.name, total.value));
  }
  if (s.index >= s.count) {
    throw std::invalid_argument(absl::StrFormat("invalid sharding: %s=\"%s\" is not below %s=\"%s\"", index.name,
                                                index.value, total.name, total.value));
  }
  return s;
}

std::vector<uint64_t> seeds_for_shard(uint64_t first, uint64_t count, Shard shard) {
  check_shard(shard);
  check_range(first, count);
  const uint64_t n = shard_size(count, shard);
  std::vector<uint64_t> seeds;
  seeds.reserve(n);
  for (uint64_t k = 0; k < n; ++k) seeds.push_back(seed_at(first, shard, k));
  return seeds;
}

uint64_t shard_seed_count(uint64_t count, Shard shard) {
  check_shard(shard);
  return shard_size(count, shard);
}

void acknowledge_sharding() {
  const char* path = std::getenv("TEST_SHARD_STATUS_FILE");
  if (path == nullptr || *path == '\0') return;
  const int fd = ::open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
  if (fd < 0) {
    throw std::system_error(errno, std::generic_category(),
                            std::string("cannot create TEST_SHARD_STATUS_FILE ") + path);
  }
  ::futimens(fd, nullptr);
  ::close(fd);
}

SweepResult run_sweep(const SweepOptions& options, const std::function<bool(uint64_t seed)>& run_seed) {
  check_shard(options.shard);
  check_range(options.first_seed, options.seeds);
  if (options.jobs < 0) {
    throw std::invalid_argument(absl::StrFormat("run_sweep: jobs = %d; expected 0 (all cores) or more", options.jobs));
  }
  if (options.max_failures < 0) {
    throw std::invalid_argument(
        absl::StrFormat("run_sweep: max_failures = %d; expected 0 (collect all) or more", options.max_failures));
  }
  if (!run_seed) throw std::invalid_argument("run_sweep: run_seed is empty");
  int jobs = options.jobs;
  if (jobs == 0) jobs = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));

  const Clock::time_point start = Clock::now();
  const uint64_t n = shard_size(options.seeds, options.shard);
  SweepResult r;
  if (jobs == 1) {
    r = sweep_in_process(options, n, run_seed, start);
  } else if (n > 0) {
    ForkedSweep sweep(options, n, jobs, run_seed, start);
    r = sweep.run();
  }
  r.seconds = seconds_since(start);
  return r;
}

std::string format_rate(const SweepResult& r) {
  const double rate = r.seconds > 0 ? static_cast<double>(r.seeds_run) / r.seconds : 0;
  const std::string secs = r.seconds >= 0.01 || r.seconds == 0 ? absl::StrFormat("%.2f", r.seconds)
                                                               : absl::StrFormat("%.2g", r.seconds);
  const size_t failures = r.failed_seeds.size();
  return absl::StrFormat("%d seeds in %s s (%.0f seeds/s), %d %s", r.seeds_run, secs, rate, failures,
                         failures == 1 ? "failure" : "failures");
}

}  // namespace twinloop::sim
