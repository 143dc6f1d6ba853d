// TEMPORARY stand-in (jobs = 1 only) until the sweep engine lands.
#include "sim/sweep.h"
#include <cstdlib>
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
namespace twinloop::sim {
Shard shard_from_env() {
  Shard s;
  const char* i = std::getenv("GTEST_SHARD_INDEX");
  const char* n = std::getenv("GTEST_TOTAL_SHARDS");
  if (i && n) {
    absl::SimpleAtoi(i, &s.index);
    absl::SimpleAtoi(n, &s.count);
  }
  return s;
}
std::vector<uint64_t> seeds_for_shard(uint64_t first, uint64_t count, Shard shard) {
  std::vector<uint64_t> out;
  for (uint64_t s = first; s < first + count; ++s)
    if ((s - first) % static_cast<uint64_t>(shard.count) == static_cast<uint64_t>(shard.index)) out.push_back(s);
  return out;
}
void acknowledge_sharding() {}
SweepResult run_sweep(const SweepOptions& o, const std::function<bool(uint64_t seed)>& run_seed) {
  SweepResult r;
  for (uint64_t s : seeds_for_shard(o.first_seed, o.seeds, o.shard)) {
    ++r.seeds_run;
    if (run_seed(s)) {
      r.failed_seeds.push_back(s);
      if (o.max_failures > 0 && r.failed_seeds.size() >= static_cast<size_t>(o.max_failures)) {
        r.stopped_early = true;
        break;
      }
    }
  }
  return r;
}
std::string format_rate(const SweepResult& r) { return absl::StrCat(r.seeds_run, " seeds"); }
}  // namespace twinloop::sim
