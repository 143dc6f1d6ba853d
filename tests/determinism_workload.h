// A workload that exercises every decision the simulated loop makes
// (equal-deadline timer order, executor latency, step jitter), used to check
// that a seed gives the same event hash on every compiler and optimisation
// level. Shared by sim_determinism_test and the sim_determinism_print tool
// that the test script runs under g++/clang++ x -O0/-O2.
#ifndef TWINLOOP_TESTS_DETERMINISM_WORKLOAD_H_
#define TWINLOOP_TESTS_DETERMINISM_WORKLOAD_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "twinloop/api/twinloop.h"
#include "twinloop/sim/simulation.h"

namespace twinloop::testing {

inline Coro<uint64_t> determinism_worker(int id, int rounds) {
  uint64_t acc = static_cast<uint64_t>(id);
  for (int i = 0; i < rounds; ++i) {
    // Equal deadlines across workers: their order is a seeded choice.
    co_await sleep(absl::Milliseconds(1 + (i % 3)));
    acc = acc * 31 + co_await to_thread([id, i] { return static_cast<uint64_t>(id * 1000 + i); });
  }
  co_return acc;
}

// Six callbacks due at one deadline: their order is a drawn permutation
// (the workers' sleeps rarely tie under step jitter). Returns the order.
inline Coro<uint64_t> determinism_ties() {
  auto order = std::make_shared<std::vector<int>>();
  EventLoop& loop = get_running_loop();
  const absl::Time when = loop.time() + absl::Milliseconds(3);
  for (int i = 0; i < 6; ++i) loop.call_at(when, [order, i] { order->push_back(i); });
  co_await sleep(absl::Milliseconds(4));
  uint64_t folded = 0;
  for (int i : *order) folded = folded * 10 + static_cast<uint64_t>(i);
  co_return folded;
}

// Runs the workload and folds the results into one value.
inline Coro<uint64_t> determinism_main() {
  const uint64_t ties = co_await determinism_ties();
  std::vector<Task<uint64_t>> tasks;
  for (int id = 0; id < 8; ++id) tasks.push_back(create_task(determinism_worker(id, 20)));
  std::vector<uint64_t> results = co_await gather(std::move(tasks));
  uint64_t folded = ties;
  for (uint64_t r : results) folded = folded * 1099511628211ull + r;
  co_return folded;
}

inline sim::Options determinism_options(uint64_t seed) {
  sim::Options o;
  o.seed = seed;
  o.step_jitter_max = absl::Microseconds(50);
  return o;
}

}  // namespace twinloop::testing

#endif  // TWINLOOP_TESTS_DETERMINISM_WORKLOAD_H_
