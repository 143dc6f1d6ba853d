// A task's own timer serves its sleeps and its wait_for deadlines, and is
// armed again at once when it was cancelled in the timer heap (issue 13;
// api/event_loop.h EventLoop::rearm_timer, api/task.h TaskSleepTimer). The
// cancelled entry stays in the heap, stale, until it comes up or a purge
// drops it. These cases stress that on the simulated loop, where virtual
// time makes every wake-up exact: many tasks, each ending wait_fors early
// and sleeping right after, with enough timers for the heap's purge of
// cancelled entries to run while stale entries are in it.
#include <cstdint>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/simulation.h"

namespace twinloop {
namespace {

constexpr int kTasks = 300;
constexpr int kRounds = 6;

struct Tally {
  int early_wakes = 0;      // a sleep that ended before its time
  int late_wakes = 0;       // or after it
  int spurious_cancels = 0;  // a CancelledError nobody asked for
  int timeouts = 0;          // wait_fors that expired (each task's last round)
  int rounds = 0;            // rounds completed
};

// Round r: wait_for(`ready`, 10 s + r ms) that `ready` ends early (set by
// the driver after a few ms), then sleep (r + i % 7 + 1) ms, which must wake
// at exactly that time. Then a 15 s sleep, across the rounds' cancelled
// deadlines. Last, a wait_for on a future nobody sets, for 3 ms:
// TimeoutError at exactly 3 ms.
Coro<void> worker(int i, std::vector<Future<void>> ready, Tally& t) {
  EventLoop& loop = get_running_loop();
  for (int r = 0; r < kRounds; ++r) {
    try {
      co_await wait_for(ready[r], absl::Seconds(10) + absl::Milliseconds(r));
    } catch (const CancelledError&) {
      ++t.spurious_cancels;
      co_return;
    }
    const absl::Duration d = absl::Milliseconds(r + i % 7 + 1);
    const absl::Time before = loop.time();
    co_await sleep(d);
    const absl::Duration slept = loop.time() - before;
    if (slept < d) ++t.early_wakes;
    if (slept > d) ++t.late_wakes;
    ++t.rounds;
  }
  // A long sleep across the old 10 s deadlines: their stale entries come up
  // while this sleep's live one waits, and must wake nothing.
  {
    const absl::Time before = loop.time();
    co_await sleep(absl::Seconds(15));
    const absl::Duration slept = loop.time() - before;
    if (slept < absl::Seconds(15)) ++t.early_wakes;
    if (slept > absl::Seconds(15)) ++t.late_wakes;
  }
  Future<void> never = create_future<void>();
  const absl::Time before = loop.time();
  try {
    co_await wait_for(never, absl::Milliseconds(3));
  } catch (const TimeoutError&) {
    if (loop.time() - before == absl::Milliseconds(3)) ++t.timeouts;
  }
}

Coro<Tally> run_workers() {
  Tally t;
  std::vector<std::vector<Future<void>>> ready(kTasks);
  std::vector<Task<void>> tasks;
  for (int i = 0; i < kTasks; ++i) {
    for (int r = 0; r < kRounds; ++r) ready[i].push_back(create_future<void>());
    tasks.push_back(create_task(worker(i, ready[i], t)));
  }
  // Each round's futures are set a few ms apart, in an order that mixes
  // the tasks, while their 10 s deadlines (and the other tasks' sleeps)
  // sit in the heap.
  for (int r = 0; r < kRounds; ++r) {
    co_await sleep(absl::Milliseconds(20));
    for (int i = 0; i < kTasks; ++i) ready[(i * 7 + r) % kTasks][r].set_result();
  }
  for (Task<void>& task : tasks) co_await task;
  co_return t;
}

TEST(TimerRearm, EarlyWaitForsAndSleepsWakeExactlyOnTimeAcrossSeeds) {
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    const Tally t = sim::run(run_workers(), sim::Options{.seed = seed});
    EXPECT_EQ(t.rounds, kTasks * kRounds) << "seed " << seed;
    EXPECT_EQ(t.early_wakes, 0) << "seed " << seed;
    EXPECT_EQ(t.late_wakes, 0) << "seed " << seed;
    EXPECT_EQ(t.spurious_cancels, 0) << "seed " << seed;
    EXPECT_EQ(t.timeouts, kTasks) << "seed " << seed;
  }
}

// The same run twice gives the same events: stale entries and purges
// change no decision.
TEST(TimerRearm, TheRunIsDeterministic) {
  sim::RunStats a;
  sim::RunStats b;
  sim::run(run_workers(), sim::Options{.seed = 7}, &a);
  sim::run(run_workers(), sim::Options{.seed = 7}, &b);
  EXPECT_EQ(a.event_hash, b.event_hash);
  EXPECT_EQ(a.events, b.events);
}

}  // namespace
}  // namespace twinloop
