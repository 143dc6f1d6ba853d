// A task is one allocation and a sleep allocates nothing (issue 13), on both
// loops. Counted with the pool's misses (api/internal/pool.h pool_misses) on
// a fresh thread: its lists start empty, so every block the tasks hold is a
// miss (a block freed earlier on the thread could serve one, which only
// lowers the count; under AddressSanitizer the pool is bypassed and every
// allocation is counted).
#include <cstdint>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "twinloop/api/internal/pool.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/real/run.h"
#include "twinloop/sim/simulation.h"

namespace twinloop {
namespace {

constexpr long kTasks = 1000;

struct Counts {
  uint64_t create = 0;       // pool blocks taken by kTasks create_task calls
  uint64_t first_steps = 0;  // by their first steps, each ending in a sleep
  long woke_early = 0;       // tasks past their sleep when counted (must be 0)
  long woke = 0;             // tasks past their sleep at the end
};

Coro<void> sleep_once(long& woke) {
  co_await sleep(absl::Milliseconds(1));
  ++woke;
}

Coro<Counts> count_allocations() {
  Counts c;
  long woke = 0;
  std::vector<Task<void>> tasks;
  tasks.reserve(kTasks);
  const uint64_t before = internal::pool_misses();
  for (long i = 0; i < kTasks; ++i) tasks.push_back(create_task(sleep_once(woke)));
  const uint64_t created = internal::pool_misses();
  // One iteration: every task (scheduled before this yield) runs its first
  // step, which ends in its sleep.
  co_await sleep(absl::ZeroDuration());
  const uint64_t stepped = internal::pool_misses();
  c.woke_early = woke;
  for (Task<void>& t : tasks) co_await t;
  c.create = created - before;
  c.first_steps = stepped - created;
  c.woke = woke;
  co_return c;
}

template <class Run>
Counts on_fresh_thread(Run run) {
  Counts c;
  std::thread([&] { c = run(); }).join();
  return c;
}

void expect_one_block_per_task(const Counts& c) {
  EXPECT_EQ(c.woke_early, 0);
  EXPECT_EQ(c.woke, kTasks);
  // One block per task (the task state in front of its coroutine frame):
  // two per task (a separate task state) would be 2 * kTasks.
  EXPECT_LE(c.create, static_cast<uint64_t>(kTasks));
  EXPECT_GT(c.create, static_cast<uint64_t>(kTasks / 2)) << "the count does not see the tasks' blocks";
  // A sleep waits on the task's own timer: no allocation.
  EXPECT_EQ(c.first_steps, 0u);
}

TEST(TaskAllocations, SimLoopOneBlockPerTaskAndNoneForASleep) {
  expect_one_block_per_task(
      on_fresh_thread([] { return sim::run(count_allocations(), sim::Options{.seed = 1}); }));
}

TEST(TaskAllocations, RealLoopOneBlockPerTaskAndNoneForASleep) {
  expect_one_block_per_task(on_fresh_thread([] { return real::run(count_allocations()); }));
}

}  // namespace
}  // namespace twinloop
