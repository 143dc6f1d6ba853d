// twinloop/bench/sync_workloads.h: benchmark workloads for the
// synchronization primitives (issue 3): Queue<long> hand-offs and
// throughput, and Lock acquire/release, contended and not. Written against
// the public API (api/queues.h, api/locks.h), runnable on either loop.
//
//   twinloop_bench::PingPongResult r =
//       twinloop_bench::queue_pingpong(Loop::kReal, 1'000'000, /*maxsize=*/0);
//   // r.check == pingpong_check(n): the anchors' workload 1 with Queue<long>
//
// As in workloads.h, each function runs one workload in a fresh loop
// (twinloop::real::run, or twinloop::sim::run with seed 1) and returns the
// in-process steady-clock time of the workload only (task creation included,
// loop creation and shutdown not) plus checksums. Used by sync_bench.cc
// (Google Benchmark), twinloop_anchors.cc (the anchors' command-line
// interface, for bench/compare.py) and bench_smoke_test.cc.
#ifndef TWINLOOP_BENCH_SYNC_WORKLOADS_H_
#define TWINLOOP_BENCH_SYNC_WORKLOADS_H_

#include <cstdint>
#include <string_view>

#include "twinloop/bench/workloads.h"

namespace twinloop_bench {

// 1. Queue ping-pong: the anchors' workload 1 literally, with two
// twinloop::Queue<long>(maxsize) (0: unbounded, as asyncio's Queue() in the
// anchor; 1: bounded). A: `co_await q1.put(i); sum += co_await q2.get();`
// B: `long v = co_await q1.get(); co_await q2.put(v + 1);`. n hand-offs in
// total (n/2 round trips); r.check == pingpong_check(n), which is
// raw_sched.cpp's `check`.
PingPongResult queue_pingpong(Loop loop, long n, int64_t maxsize);

// 2. Queue throughput: one producer task puts 0..n-1, one consumer task gets
// them (both created before either runs, producer first). maxsize 0 =
// unbounded: the producer never waits, so the queue fills to n first.
struct QueueThroughputResult {
  long items = 0;
  int64_t maxsize = 0;
  double wall_s = 0;
  long check = 0;         // sum of the items received: queue_throughput_check(n)
  long out_of_order = 0;  // items that did not arrive in put order: 0
};
QueueThroughputResult queue_throughput(Loop loop, long n, int64_t maxsize);
long queue_throughput_check(long n);

// 3. Lock: `tasks` tasks each do `rounds` times
//   co_await lock.acquire(); [co_await sleep(0);] lock.release();   (kAcquire)
//   { auto g = co_await lock.scoped(); [co_await sleep(0);] }       (kScoped)
// With yield (sleep(0) inside the critical section, one loop iteration) and
// tasks >= 2 the lock is contended: the holder yields, the others queue
// behind it, and every release hands the lock to the next waiter (FIFO).
// tasks = 1 without yield is the uncontended fast path; tasks = 1 with yield
// measures what the sleep(0) alone costs.
enum class LockStyle { kAcquire, kScoped };
std::string_view lock_style_name(LockStyle style);
struct LockResult {
  long tasks = 0;
  long rounds = 0;
  long pairs = 0;  // acquire/release pairs: tasks * rounds
  double wall_s = 0;
  long check = 0;      // critical sections entered: pairs
  long overlaps = 0;   // entries that found another task inside: 0
  long handovers = 0;  // entries by a task other than the previous holder
};
LockResult lock_rounds(Loop loop, long tasks, long rounds, LockStyle style, bool yield_inside);

}  // namespace twinloop_bench

#endif  // TWINLOOP_BENCH_SYNC_WORKLOADS_H_
