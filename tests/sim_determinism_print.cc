// Prints the event hash of the determinism workload for a few seeds, one
// `HASH seed=<n> <hex>` line each. `./twinloop test` builds this with g++
// and clang++ at -O0 and -O2 and requires identical output.
#include <cinttypes>
#include <cstdio>

#include "twinloop/tests/determinism_workload.h"

int main() {
  for (uint64_t seed : {1, 2, 3, 42, 1000}) {
    twinloop::sim::RunStats stats;
    const uint64_t folded =
        twinloop::sim::run(twinloop::testing::determinism_main(), twinloop::testing::determinism_options(seed), &stats);
    std::printf("HASH seed=%" PRIu64 " %016" PRIx64 " events=%" PRIu64 " choices=%" PRIu64 " result=%016" PRIx64 "\n",
                seed, stats.event_hash, stats.events, stats.choices, folded);
  }
  return 0;
}
