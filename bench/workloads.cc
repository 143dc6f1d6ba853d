#include "twinloop/bench/workloads.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/bench/bench_util.h"

namespace twinloop_bench {

using twinloop::Coro;
using twinloop::Future;
using twinloop::Task;

namespace {

// ---------------------------------------------------------------- ping-pong
//
// One future per hand-off. The receiver of the next hand-off creates and
// publishes its future before it sends, so a sender always finds the
// receiver's current future in the shared struct:
//   A: next_a = new; to_a = next_a; to_b.set_result(i); sum += await next_a
//   B: v = await mine; next_b = new; to_b = next_b; to_a.set_result(v + 1); mine = next_b
// to_b is set before either task starts; B only ever awaits futures it
// created (or the initial one), A only its own.
struct Mailboxes {
  Future<long> to_a;
  Future<long> to_b;
};

Coro<void> ping(Mailboxes& m, long rounds, long& sum) {
  for (long i = 0; i < rounds; ++i) {
    Future<long> next_a = twinloop::create_future<long>();
    m.to_a = next_a;
    m.to_b.set_result(i);
    sum += co_await next_a;
  }
}

Coro<void> pong(Mailboxes& m, long rounds) {
  Future<long> mine = m.to_b;
  for (long i = 0; i < rounds; ++i) {
    long v = co_await mine;
    Future<long> next_b = twinloop::create_future<long>();
    m.to_b = next_b;
    m.to_a.set_result(v + 1);
    mine = std::move(next_b);
  }
}

Coro<PingPongResult> pingpong_main(long n) {
  PingPongResult r;
  r.handoffs = n;
  long sum = 0;
  const double t0 = now_s();
  {
    Mailboxes m;
    m.to_b = twinloop::create_future<long>();
    Task<void> a = twinloop::create_task(ping(m, n / 2, sum));
    Task<void> b = twinloop::create_task(pong(m, n / 2));
    co_await a;
    co_await b;
  }
  r.wall_s = now_s() - t0;
  r.check = sum;
  co_return r;
}

// ---------------------------------------------------------------- spawn
Coro<void> trivial(long& counter) {
  ++counter;
  co_return;
}

Coro<SpawnResult> spawn_main(long n, Join join) {
  SpawnResult r;
  r.tasks = n;
  long counter = 0;
  const double t0 = now_s();
  {
    std::vector<Task<void>> tasks;
    tasks.reserve(static_cast<size_t>(n));
    for (long i = 0; i < n; ++i) tasks.push_back(twinloop::create_task(trivial(counter)));
    if (join == Join::kEach) {
      for (Task<void>& t : tasks) co_await t;
      tasks.clear();  // destroys the tasks (the loop let go of them when they finished)
    } else {
      // The gather future owns the tasks; it and they die at the end of the statement.
      co_await twinloop::gather(std::move(tasks));
    }
  }
  r.wall_s = now_s() - t0;
  r.check = counter;
  co_return r;
}

// ---------------------------------------------------------------- virtual sleep
uint64_t splitmix(uint64_t& s) {
  uint64_t z = (s += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

Coro<void> sleeper(uint64_t seed, long iters, long scale, long& done) {
  for (long i = 0; i < iters; ++i) {
    const uint64_t ms = 1 + splitmix(seed) % 1000;  // 1..1000 ms
    co_await twinloop::sleep(absl::Nanoseconds(static_cast<int64_t>(ms * 1'000'000 / scale)));
    ++done;
  }
}

Coro<VsleepResult> vsleep_main(long tasks, long iters, long scale) {
  VsleepResult r;
  r.sleeps = tasks * iters;
  long done = 0;
  twinloop::EventLoop& loop = twinloop::get_running_loop();
  const int64_t start_ns = loop.time_ns();
  const double t0 = now_s();
  {
    std::vector<Task<void>> all;
    all.reserve(static_cast<size_t>(tasks));
    for (long t = 0; t < tasks; ++t)
      all.push_back(twinloop::create_task(sleeper(static_cast<uint64_t>(t + 1), iters, scale, done)));
    for (Task<void>& t : all) co_await t;
  }
  r.wall_s = now_s() - t0;
  r.sim_s = static_cast<double>(loop.time_ns() - start_ns) / 1e9;
  r.check = done;
  co_return r;
}

// ---------------------------------------------------------------- memory
Coro<void> sleep_once(long& woke) {
  co_await twinloop::sleep(absl::Milliseconds(1));
  ++woke;
}

Coro<SleepersResult> sleepers_main(long n) {
  SleepersResult r;
  r.tasks = n;
  long woke = 0;
  const double t0 = now_s();
  {
    std::vector<Task<void>> tasks;
    tasks.reserve(static_cast<size_t>(n));
    for (long i = 0; i < n; ++i) tasks.push_back(twinloop::create_task(sleep_once(woke)));
    for (Task<void>& t : tasks) co_await t;
  }
  r.wall_s = now_s() - t0;
  r.check = woke;
  co_return r;
}

// ---------------------------------------------------------------- wait_for
Coro<WaitForResult> wait_for_main(long n, bool bare) {
  WaitForResult r;
  const double t0 = now_s();
  for (long i = 0; i < n; ++i) {
    if (bare) {
      co_await twinloop::sleep(absl::ZeroDuration());
    } else {
      co_await twinloop::wait_for(twinloop::sleep(absl::ZeroDuration()), absl::Seconds(1));
    }
    ++r.check;
  }
  r.wall_s = now_s() - t0;
  co_return r;
}

}  // namespace

WaitForResult wait_for_yield(Loop loop, long n, bool bare) { return run_on(loop, wait_for_main(n, bare)); }

SleepersResult sleepers(Loop loop, long n) { return run_on(loop, sleepers_main(n)); }

std::string_view loop_name(Loop loop) { return loop == Loop::kReal ? "real" : "sim"; }
std::string_view join_name(Join join) { return join == Join::kEach ? "each" : "gather"; }

PingPongResult pingpong(Loop loop, long n) { return run_on(loop, pingpong_main(n)); }

long pingpong_check(long n) {
  const long rounds = n / 2;
  return rounds * (rounds + 1) / 2;  // A receives 1, 2, ..., rounds
}

SpawnResult spawn(Loop loop, long n, Join join) { return run_on(loop, spawn_main(n, join)); }

VsleepResult vsleep(Loop loop, long tasks, long iters, long scale) {
  if (scale < 1) throw std::invalid_argument("vsleep: scale must be >= 1");
  VsleepResult r = run_on(loop, vsleep_main(tasks, iters, scale));
  // On the real loop the clock measured wall time; report the span the
  // unscaled workload covers (as the anchors' [scaled] rows do).
  if (loop == Loop::kReal) r.sim_s = static_cast<double>(vsleep_span_ns(tasks, iters)) / 1e9;
  return r;
}

int64_t vsleep_span_ns(long tasks, long iters) {
  int64_t longest = 0;
  for (long t = 0; t < tasks; ++t) {
    uint64_t seed = static_cast<uint64_t>(t + 1);
    int64_t total = 0;
    for (long i = 0; i < iters; ++i) total += static_cast<int64_t>(1 + splitmix(seed) % 1000) * 1'000'000;
    longest = std::max(longest, total);
  }
  return longest;
}

}  // namespace twinloop_bench
