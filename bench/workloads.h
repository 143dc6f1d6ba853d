// twinloop/bench/workloads.h: the benchmark workloads of
// ../shared/bench/README.md (the performance anchors), written against the
// public twinloop API and runnable on either loop.
//
//   twinloop_bench::PingPongResult r = twinloop_bench::pingpong(Loop::kReal, 1'000'000);
//   // r.wall_s: the workload only (timed inside the main coroutine, so loop
//   // creation and shutdown are not included); r.check == pingpong_check(n).
//
// Each function runs one full workload in a fresh loop (twinloop::real::run
// or twinloop::sim::run with seed 1) and returns the in-process steady-clock
// time of the workload plus a checksum. Used by loop_bench.cc (Google
// Benchmark), twinloop_anchors.cc (the anchors' command-line interface) and
// bench_smoke_test.cc.
#ifndef TWINLOOP_BENCH_WORKLOADS_H_
#define TWINLOOP_BENCH_WORKLOADS_H_

#include <cstdint>
#include <string_view>

#include "twinloop/bench/bench_util.h"

namespace twinloop_bench {

std::string_view loop_name(Loop loop);

// 1. ping-pong: two tasks hand an integer back and forth through futures
// (one Future<long> per hand-off), n hand-offs in total (n/2 each way).
struct PingPongResult {
  long handoffs = 0;
  double wall_s = 0;
  long check = 0;  // sum of what task A received: pingpong_check(n)
};
PingPongResult pingpong(Loop loop, long n);
long pingpong_check(long n);

// 2. spawn many: create n trivial tasks (all before any runs), then join
// them, then destroy them (all inside the timed region).
enum class Join {
  kEach,    // `for (auto& t : tasks) co_await t;`
  kGather,  // `co_await gather(std::move(tasks));`
};
std::string_view join_name(Join join);
struct SpawnResult {
  long tasks = 0;
  double wall_s = 0;
  long check = 0;  // tasks that ran: n
};
SpawnResult spawn(Loop loop, long n, Join join);

// 3. virtual sleep: `tasks` tasks each sleep `iters` times for 1..1000 ms
// (splitmix64 stream per task, seeded with index + 1, as raw_sched.cpp).
// Meant for the simulated loop (scale 1). On the real loop every sleep is
// divided by `scale` (the anchors' "[scaled]" rows: 1000 turns 1..1000 ms
// into 1..1000 us) and sim_s is the span of the unscaled workload.
struct VsleepResult {
  long sleeps = 0;
  double wall_s = 0;
  double sim_s = 0;  // virtual time elapsed: vsleep_span_ns(...) / 1e9
  long check = 0;    // sleeps completed
};
VsleepResult vsleep(Loop loop, long tasks, long iters, long scale = 1);
// The longest task's total sleep: the virtual time the run must end at.
int64_t vsleep_span_ns(long tasks, long iters);

// Memory (issue 13): n tasks, all created before any runs (handles kept in
// a reserved vector, as spawn), each sleeping once for 1 ms, then awaited
// one by one: all n are alive and sleeping at once. The peak resident set
// (getrusage's ru_maxrss) is read by the caller after the loop closed.
struct SleepersResult {
  long tasks = 0;
  double wall_s = 0;
  long check = 0;  // tasks that woke: n
};
SleepersResult sleepers(Loop loop, long n);

// wait_for's own cost (issue 13): one task, n x `co_await wait_for(sleep(0),
// 1 s)`: a deadline armed and cancelled around one yield (one loop
// iteration). `bare`: the sleep(0)s alone, without wait_for.
struct WaitForResult {
  double wall_s = 0;
  long check = 0;  // wait_fors that returned: n
};
WaitForResult wait_for_yield(Loop loop, long n, bool bare = false);

}  // namespace twinloop_bench

#endif  // TWINLOOP_BENCH_WORKLOADS_H_
