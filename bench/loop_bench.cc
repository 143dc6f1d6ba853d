// twinloop/bench/loop_bench.cc: Google Benchmark for the three scheduler
// workloads of ../shared/bench/README.md, on the real and the simulated loop.
//
//   bazel run --config=opt //bench:loop_bench
//   bazel run --config=opt //bench:loop_bench -- --benchmark_filter=PingPong
//
// One full workload per iteration (1 iteration per repetition, 5 repetitions
// by default; medians are what to read). The time is measured inside the
// main coroutine (UseManualTime), so loop creation and shutdown are not
// included, as in the anchors. Counters:
//   BM_PingPong/<loop>         ns_per_handoff   (1,000,000 hand-offs)
//   BM_SpawnMany/<loop>        ns_per_task      (1,000,000 tasks, joined by awaiting each)
//   BM_SpawnManyGather/<loop>  ns_per_task      (the same, joined with gather(vector))
//   BM_VirtualSleep/sim        sim_s_per_wall_s, ns_per_sleep (10,000 tasks x 100 sleeps)
// For the same figures side by side with the anchors, use bench/compare.sh.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "twinloop/bench/bench_util.h"
#include "twinloop/bench/workloads.h"

namespace twinloop_bench {
namespace {

constexpr long kPingPongN = 1'000'000;
constexpr long kSpawnN = 1'000'000;
constexpr long kSleepTasks = 10'000;
constexpr long kSleepIters = 100;

void BM_PingPong(benchmark::State& state, Loop loop) {
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

void spawn_bench(benchmark::State& state, Loop loop, Join join, long n) {
  double total_s = 0;
  long ops = 0;
  for (auto _ : state) {
    SpawnResult r = spawn(loop, n, join);
    if (r.check != n) {
      state.SkipWithError("spawn checksum mismatch");
      return;
    }
    state.SetIterationTime(r.wall_s);
    total_s += r.wall_s;
    ops += r.tasks;
  }
  state.counters["ns_per_task"] = total_s * 1e9 / static_cast<double>(ops);
}
void BM_SpawnMany(benchmark::State& state, Loop loop) { spawn_bench(state, loop, Join::kEach, kSpawnN); }
void BM_SpawnManyGather(benchmark::State& state, Loop loop) {
  spawn_bench(state, loop, Join::kGather, kSpawnN);
}

void BM_VirtualSleep(benchmark::State& state, Loop loop) {
  const double span_s = static_cast<double>(vsleep_span_ns(kSleepTasks, kSleepIters)) / 1e9;
  double total_s = 0, total_sim = 0;
  long ops = 0;
  for (auto _ : state) {
    VsleepResult r = vsleep(loop, kSleepTasks, kSleepIters);
    if (r.check != r.sleeps || r.sim_s != span_s) {
      state.SkipWithError("virtual sleep check mismatch");
      return;
    }
    state.SetIterationTime(r.wall_s);
    total_s += r.wall_s;
    total_sim += r.sim_s;
    ops += r.sleeps;
  }
  state.counters["sim_s_per_wall_s"] = total_sim / total_s;
  state.counters["ns_per_sleep"] = total_s * 1e9 / static_cast<double>(ops);
  state.counters["sim_s"] = span_s;
}

TWINLOOP_BENCH(BM_PingPong, real, Loop::kReal);
TWINLOOP_BENCH(BM_PingPong, sim, Loop::kSim);
TWINLOOP_BENCH(BM_SpawnMany, real, Loop::kReal);
TWINLOOP_BENCH(BM_SpawnMany, sim, Loop::kSim);
TWINLOOP_BENCH(BM_SpawnManyGather, real, Loop::kReal);
TWINLOOP_BENCH(BM_SpawnManyGather, sim, Loop::kSim);
TWINLOOP_BENCH(BM_VirtualSleep, sim, Loop::kSim);

}  // namespace
}  // namespace twinloop_bench
