// sweep_shard_probe FIRST COUNT: prints, one per line, the seeds of
// FIRST .. FIRST+COUNT-1 that this process's shard (shard_from_env: the
// GTEST_* / TEST_* sharding variables) would run. Exit status 2 (message on
// stderr) for invalid sharding variables or arguments. Used by
// sweep_test.cc to check shard coverage across processes.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "twinloop/sim/harness/sweep.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s FIRST COUNT\n", argv[0]);
    return 2;
  }
  try {
    const uint64_t first = std::stoull(argv[1]);
    const uint64_t count = std::stoull(argv[2]);
    const twinloop::sim::Shard shard = twinloop::sim::shard_from_env();
    for (uint64_t seed : twinloop::sim::seeds_for_shard(first, count, shard)) {
      std::printf("%llu\n", static_cast<unsigned long long>(seed));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sweep_shard_probe: %s\n", e.what());
    return 2;
  }
  return 0;
}
