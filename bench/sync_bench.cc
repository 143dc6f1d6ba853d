// twinloop/bench/sync_bench.cc: Google Benchmark for issue 3's workloads
// (bench/sync_workloads.h): Queue ping-pong and throughput, Lock
// acquire/release, on the real and the simulated loop.
//
//   bazel run --config=opt //bench:sync_bench
//   bazel run --config=opt //bench:sync_bench -- --benchmark_filter=QueuePingPong
//
// One full workload per iteration (1 iteration per repetition, 5 repetitions
// by default; read the medians), timed inside the main coroutine
// (UseManualTime), as loop_bench.cc. Counters:
//   BM_QueuePingPong/<loop>_<unbounded|bounded>   ns_per_handoff (1,000,000 hand-offs)
//   BM_FuturePingPong/<loop>                      ns_per_handoff (workloads.h's ping-pong,
//                                                 for the queue/future ratio in one process)
//   BM_QueueThroughput/<loop>_<maxsize>           ns_per_item    (1,000,000 items)
//   BM_Lock/<loop>_<tasks>x_<style>_<yield>       ns_per_pair    (1,000,000 acquire/release pairs)
// For ratios to the anchors (raw REF, asio channel, asyncio Queue) use
// bench/compare.sh.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "twinloop/bench/bench_util.h"
#include "twinloop/bench/sync_workloads.h"
#include "twinloop/bench/workloads.h"

namespace twinloop_bench {
namespace {

constexpr long kPingPongN = 1'000'000;
constexpr long kItems = 1'000'000;
constexpr long kPairs = 1'000'000;

void BM_QueuePingPong(benchmark::State& state, Loop loop, int64_t maxsize) {
  double total_s = 0;
  long ops = 0;
  for (auto _ : state) {
    PingPongResult r = queue_pingpong(loop, kPingPongN, maxsize);
    if (r.check != pingpong_check(kPingPongN)) {
      state.SkipWithError("queue ping-pong checksum mismatch");
      return;
    }
    state.SetIterationTime(r.wall_s);
    total_s += r.wall_s;
    ops += r.handoffs;
  }
  state.counters["ns_per_handoff"] = total_s * 1e9 / static_cast<double>(ops);
}

void BM_FuturePingPong(benchmark::State& state, Loop loop) {
  double total_s = 0;
  long ops = 0;
  for (auto _ : state) {
    PingPongResult r = pingpong(loop, kPingPongN);
    if (r.check != pingpong_check(kPingPongN)) {
      state.SkipWithError("ping-pong checksum mismatch");
      return;
    }
    state.SetIterationTime(r.wall_s);
    total_s += r.wall_s;
    ops += r.handoffs;
  }
  state.counters["ns_per_handoff"] = total_s * 1e9 / static_cast<double>(ops);
}

void BM_QueueThroughput(benchmark::State& state, Loop loop, int64_t maxsize) {
  double total_s = 0;
  long ops = 0;
  for (auto _ : state) {
    QueueThroughputResult r = queue_throughput(loop, kItems, maxsize);
    if (r.check != queue_throughput_check(kItems) || r.out_of_order != 0) {
      state.SkipWithError("queue throughput checksum mismatch");
      return;
    }
    state.SetIterationTime(r.wall_s);
    total_s += r.wall_s;
    ops += r.items;
  }
  state.counters["ns_per_item"] = total_s * 1e9 / static_cast<double>(ops);
}

void BM_Lock(benchmark::State& state, Loop loop, long tasks, LockStyle style, bool yield_inside) {
  double total_s = 0;
  long ops = 0, handovers = 0;
  for (auto _ : state) {
    LockResult r = lock_rounds(loop, tasks, kPairs / tasks, style, yield_inside);
    if (r.check != r.pairs || r.overlaps != 0) {
      state.SkipWithError("lock check mismatch");
      return;
    }
    state.SetIterationTime(r.wall_s);
    total_s += r.wall_s;
    ops += r.pairs;
    handovers += r.handovers;
  }
  state.counters["ns_per_pair"] = total_s * 1e9 / static_cast<double>(ops);
  state.counters["handovers_per_pair"] = static_cast<double>(handovers) / static_cast<double>(ops);
}

TWINLOOP_BENCH(BM_QueuePingPong, real_unbounded, Loop::kReal, 0);
TWINLOOP_BENCH(BM_QueuePingPong, real_bounded, Loop::kReal, 1);
TWINLOOP_BENCH(BM_QueuePingPong, sim_unbounded, Loop::kSim, 0);
TWINLOOP_BENCH(BM_QueuePingPong, sim_bounded, Loop::kSim, 1);
TWINLOOP_BENCH(BM_FuturePingPong, real, Loop::kReal);
TWINLOOP_BENCH(BM_FuturePingPong, sim, Loop::kSim);

TWINLOOP_BENCH(BM_QueueThroughput, real_unbounded, Loop::kReal, 0);
TWINLOOP_BENCH(BM_QueueThroughput, real_64, Loop::kReal, 64);
TWINLOOP_BENCH(BM_QueueThroughput, real_1, Loop::kReal, 1);
TWINLOOP_BENCH(BM_QueueThroughput, sim_unbounded, Loop::kSim, 0);
TWINLOOP_BENCH(BM_QueueThroughput, sim_64, Loop::kSim, 64);
TWINLOOP_BENCH(BM_QueueThroughput, sim_1, Loop::kSim, 1);

TWINLOOP_BENCH(BM_Lock, real_1x_acquire_noyield, Loop::kReal, 1, LockStyle::kAcquire, false);
TWINLOOP_BENCH(BM_Lock, real_1x_scoped_noyield, Loop::kReal, 1, LockStyle::kScoped, false);
TWINLOOP_BENCH(BM_Lock, real_1x_acquire_yield, Loop::kReal, 1, LockStyle::kAcquire, true);
TWINLOOP_BENCH(BM_Lock, real_2x_acquire_yield, Loop::kReal, 2, LockStyle::kAcquire, true);
TWINLOOP_BENCH(BM_Lock, real_2x_scoped_yield, Loop::kReal, 2, LockStyle::kScoped, true);
TWINLOOP_BENCH(BM_Lock, real_8x_acquire_yield, Loop::kReal, 8, LockStyle::kAcquire, true);
TWINLOOP_BENCH(BM_Lock, real_8x_scoped_yield, Loop::kReal, 8, LockStyle::kScoped, true);
TWINLOOP_BENCH(BM_Lock, sim_1x_acquire_noyield, Loop::kSim, 1, LockStyle::kAcquire, false);
TWINLOOP_BENCH(BM_Lock, sim_1x_scoped_noyield, Loop::kSim, 1, LockStyle::kScoped, false);
TWINLOOP_BENCH(BM_Lock, sim_1x_acquire_yield, Loop::kSim, 1, LockStyle::kAcquire, true);
TWINLOOP_BENCH(BM_Lock, sim_2x_acquire_yield, Loop::kSim, 2, LockStyle::kAcquire, true);
TWINLOOP_BENCH(BM_Lock, sim_2x_scoped_yield, Loop::kSim, 2, LockStyle::kScoped, true);
TWINLOOP_BENCH(BM_Lock, sim_8x_acquire_yield, Loop::kSim, 8, LockStyle::kAcquire, true);
TWINLOOP_BENCH(BM_Lock, sim_8x_scoped_yield, Loop::kSim, 8, LockStyle::kScoped, true);

}  // namespace
}  // namespace twinloop_bench
