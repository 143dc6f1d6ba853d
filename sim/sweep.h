// TEMPORARY stand-in (jobs = 1 only) until the sweep engine lands.
#ifndef TWINLOOP_SIM_SWEEP_H_
#define TWINLOOP_SIM_SWEEP_H_
#include <cstdint>
#include <functional>
#include <string>
#include <vector>
namespace twinloop::sim {
struct Shard { int index = 0; int count = 1; };
Shard shard_from_env();
std::vector<uint64_t> seeds_for_shard(uint64_t first, uint64_t count, Shard shard);
void acknowledge_sharding();
struct SweepOptions {
  uint64_t first_seed = 0;
  uint64_t seeds = 100;
  int jobs = 1;
  int max_failures = 1;
  bool progress = false;
  Shard shard;
};
struct SweepResult {
  std::vector<uint64_t> failed_seeds;
  uint64_t seeds_run = 0;
  double seconds = 0;
  bool stopped_early = false;
};
SweepResult run_sweep(const SweepOptions& options, const std::function<bool(uint64_t seed)>& run_seed);
std::string format_rate(const SweepResult& r);
}  // namespace twinloop::sim
#endif
