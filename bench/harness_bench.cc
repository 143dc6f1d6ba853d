// twinloop/bench/harness_bench.cc: how many seeds per second the simulated
// test harness can run, per core, for a trivial simulated test.
//
//   bazel run --config=opt //bench:harness_bench
//
// The trivial test: three tasks, each sleeping a few times, gathered by the
// main coroutine. One iteration = one seed = one sim::run (a fresh loop and
// backend, the run, the shutdown); items_per_second is seeds/s on one core.
//   BM_TrivialSeed            sim::run(test, {.seed = i})
//   BM_TrivialSeedRecorded    the same with Options::record (decisions and events kept)
//   BM_SweepInProcess         run_sweep over 10,000 seeds, jobs = 1 (engine overhead)
//   BM_SweepForked/<jobs>     run_sweep over 50,000 seeds in <jobs> worker processes
#include <benchmark/benchmark.h>
#include <sys/resource.h>

#include <cstdint>
#include <tuple>

#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/simulation.h"
#include "twinloop/sim/harness/sweep.h"

namespace {

using twinloop::Coro;

Coro<int> sleeper(int id, int naps) {
  int sum = 0;
  for (int i = 0; i < naps; ++i) {
    co_await twinloop::sleep(absl::Milliseconds(1 + (id + i) % 3));
    sum += id;
  }
  co_return sum;
}

Coro<int> trivial_test() {
  auto r = co_await twinloop::gather(sleeper(1, 3), sleeper(2, 3), sleeper(3, 3));
  co_return std::get<0>(r) + std::get<1>(r) + std::get<2>(r);
}

constexpr int kExpected = 18;

bool run_seed(uint64_t seed) {
  return twinloop::sim::run(trivial_test(), twinloop::sim::Options{.seed = seed}) != kExpected;
}

void BM_TrivialSeed(benchmark::State& state) {
  uint64_t seed = 0;
  for (auto _ : state) {
    const int v = twinloop::sim::run(trivial_test(), twinloop::sim::Options{.seed = seed++});
    if (v != kExpected) {
      state.SkipWithError("wrong result");
      return;
    }
    benchmark::DoNotOptimize(v);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TrivialSeed);

void BM_TrivialSeedRecorded(benchmark::State& state) {
  uint64_t seed = 0;
  uint64_t events = 0;
  for (auto _ : state) {
    twinloop::sim::Simulation sim(twinloop::sim::Options{.seed = seed++, .record = true});
    const int v = sim.run(trivial_test());
    if (v != kExpected) {
      state.SkipWithError("wrong result");
      return;
    }
    events += sim.backend().events().size();
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["events_per_seed"] = static_cast<double>(events) / static_cast<double>(state.iterations());
}
BENCHMARK(BM_TrivialSeedRecorded);

double cpu_seconds(int who) {
  rusage u;
  getrusage(who, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) * 1e-6;
}

void sweep_bench(benchmark::State& state, int jobs, uint64_t seeds) {
  uint64_t first = 0;
  uint64_t total = 0;
  const double self0 = cpu_seconds(RUSAGE_SELF), children0 = cpu_seconds(RUSAGE_CHILDREN);
  for (auto _ : state) {
    twinloop::sim::SweepOptions o{.first_seed = first, .seeds = seeds, .jobs = jobs, .max_failures = 0};
    const twinloop::sim::SweepResult r = twinloop::sim::run_sweep(o, run_seed);
    if (!r.failed_seeds.empty() || r.seeds_run != seeds) {
      state.SkipWithError("sweep failed");
      return;
    }
    first += seeds;
    total += r.seeds_run;
  }
  state.SetItemsProcessed(static_cast<int64_t>(total));
  // CPU time per seed, workers included (reaped children's CPU time).
  const double cpu = cpu_seconds(RUSAGE_SELF) - self0 + cpu_seconds(RUSAGE_CHILDREN) - children0;
  state.counters["cpu_us_per_seed"] = cpu * 1e6 / static_cast<double>(total);
}

void BM_SweepInProcess(benchmark::State& state) { sweep_bench(state, 1, 10'000); }
BENCHMARK(BM_SweepInProcess)->Unit(benchmark::kMillisecond);

// Forked sweeps: wall time matters (the workers' CPU is not this thread's).
void BM_SweepForked(benchmark::State& state) { sweep_bench(state, static_cast<int>(state.range(0)), 50'000); }
BENCHMARK(BM_SweepForked)->Arg(2)->Arg(4)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
