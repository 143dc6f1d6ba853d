// twinloop/bench/probes_bench.cc: what probes (api/probes.h) cost a sweep
// when nothing new is hit.
//
//   bazel run --config=opt //bench:probes_bench
//
// One iteration = one seed = one sim::run of a small workload: three tasks,
// each doing 20 steps of to_thread (a drawn executor latency) and a sleep.
//   BM_SeedWithoutUserProbes   the workload (the simulator's built-in probes,
//                              one per draw, are in both)
//   BM_SeedWithUserProbes      the same with 3 probes per step (a sometimes,
//                              an always, a reachable) and a new probe run
//                              per seed, as the harness starts one
//   BM_ProbeSeen               one TWINLOOP_SOMETIMES already seen in the run
//   BM_ProbeFirstHit           a new run and a first hit (the slow path)
// docs/exploration.md, "Probes", records the figures.
#include <benchmark/benchmark.h>

#include <cstdint>

#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/simulation.h"

namespace {

using twinloop::Coro;

template <bool kProbes>
Coro<int> worker(int id) {
  int sum = 0;
  for (int i = 0; i < 20; ++i) {
    co_await twinloop::to_thread([] {});
    co_await twinloop::sleep(absl::Microseconds(100 + id));
    sum += i;
    if constexpr (kProbes) {
      TWINLOOP_SOMETIMES(sum > 100, "bench: sum passes 100");
      TWINLOOP_ALWAYS(sum >= 0, "bench: sum is not negative");
      TWINLOOP_REACHABLE("bench: a step");
    }
  }
  co_return sum;
}

template <bool kProbes>
Coro<int> workload() {
  auto r = co_await twinloop::gather(worker<kProbes>(1), worker<kProbes>(2), worker<kProbes>(3));
  co_return std::get<0>(r) + std::get<1>(r) + std::get<2>(r);
}

template <bool kProbes>
void BM_Seed(benchmark::State& state) {
  uint64_t seed = 0;
  for (auto _ : state) {
    if (kProbes) twinloop::internal::begin_probe_run();
    benchmark::DoNotOptimize(twinloop::sim::run(workload<kProbes>(), twinloop::sim::Options{.seed = seed++}));
  }
  state.SetItemsProcessed(state.iterations());
}
void BM_SeedWithoutUserProbes(benchmark::State& state) { BM_Seed<false>(state); }
void BM_SeedWithUserProbes(benchmark::State& state) { BM_Seed<true>(state); }
BENCHMARK(BM_SeedWithoutUserProbes);
BENCHMARK(BM_SeedWithUserProbes);

void BM_ProbeSeen(benchmark::State& state) {
  int i = 0;
  for (auto _ : state) {
    TWINLOOP_SOMETIMES(i >= 0, "bench: seen");
    benchmark::DoNotOptimize(++i);
  }
}
BENCHMARK(BM_ProbeSeen);

void BM_ProbeFirstHit(benchmark::State& state) {
  for (auto _ : state) {
    twinloop::internal::begin_probe_run();
    TWINLOOP_SOMETIMES(true, "bench: first hit");
  }
}
BENCHMARK(BM_ProbeFirstHit);

}  // namespace

BENCHMARK_MAIN();
