// twinloop/bench/bench_util.h: what every benchmark here shares: the wall
// clock of a workload, running a workload's main coroutine on the chosen
// loop, and the Google Benchmark registration of one-shot workloads (their
// main is bench/benchmark_main.cc).
//
//   const double t0 = twinloop_bench::now_s();
//   long v = twinloop_bench::run_on(Loop::kSim, my_workload());
//   TWINLOOP_BENCH(BM_MyWorkload, sim, Loop::kSim);
#ifndef TWINLOOP_BENCH_BENCH_UTIL_H_
#define TWINLOOP_BENCH_BENCH_UTIL_H_

#include <chrono>
#include <utility>

#include "twinloop/api/coro.h"
#include "twinloop/real/run.h"
#include "twinloop/sim/simulation.h"

namespace twinloop_bench {

enum class Loop { kReal, kSim };

// Seconds on the steady clock (only differences mean anything).
inline double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// asyncio.run(main) on `loop`: the real loop, or the simulated loop with
// seed 1.
template <class T>
T run_on(Loop loop, twinloop::Coro<T> main) {
  if (loop == Loop::kReal) return twinloop::real::run(std::move(main));
  return twinloop::sim::run(std::move(main), twinloop::sim::Options{.seed = 1});
}

}  // namespace twinloop_bench

// A workload function `func(benchmark::State&, args...)` that times itself
// (SetIterationTime) and runs once per repetition.
#define TWINLOOP_BENCH(func, label, ...) \
  BENCHMARK_CAPTURE(func, label, __VA_ARGS__)->UseManualTime()->Iterations(1)->Unit(benchmark::kMillisecond)

#endif  // TWINLOOP_BENCH_BENCH_UTIL_H_
