// TEMPORARY stand-in until the shrinker lands.
#ifndef TWINLOOP_SIM_SHRINK_H_
#define TWINLOOP_SIM_SHRINK_H_
#include <functional>
#include <optional>
#include <string>
#include "absl/time/time.h"
#include "sim/replay.h"
namespace twinloop::sim {
struct ShrinkOptions {
  absl::Duration time_budget = absl::Seconds(20);
  int max_runs = 5000;
};
struct RunSize {
  size_t non_default = 0;
  uint64_t value_sum = 0;
  size_t events = 0;
  int64_t virtual_time_ns = 0;
};
RunSize run_size(const Recording& r);
bool smaller(const RunSize& a, const RunSize& b);
std::string describe(const RunSize& s);
struct ShrinkResult {
  Recording minimal;
  RunSize before, after;
  int runs = 0;
  bool budget_exhausted = false;
};
ShrinkResult shrink(const Recording& failing,
                    const std::function<std::optional<Recording>(const Recording& candidate)>& fails,
                    const ShrinkOptions& options = {});
}  // namespace twinloop::sim
#endif
