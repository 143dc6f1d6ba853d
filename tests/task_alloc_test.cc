// A task is one allocation, and a sleep, a wait_for and a gather child
// allocate nothing (issue 13), on both loops. Counted with the pool's misses (api/internal/pool.h pool_misses) on
// a fresh thread: its lists start empty, so every block the tasks hold is a
// miss (a block freed earlier on the thread could serve one, which only
// lowers the count; under AddressSanitizer the pool is bypassed and every
// allocation is counted).
#include <cstdint>
#include <cstdlib>
#include <new>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "twinloop/api/internal/pool.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/real/run.h"
#include "twinloop/sim/simulation.h"

// ThreadSanitizer's runtime defines the global operator new and delete
// itself, and a second definition does not link: under it the operator new
// counts are not taken, and the cases that read them say so and check only
// the pool's counts.
#if defined(__SANITIZE_THREAD__)
#define TWINLOOP_COUNTS_NEW 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TWINLOOP_COUNTS_NEW 0
#endif
#endif
#ifndef TWINLOOP_COUNTS_NEW
#define TWINLOOP_COUNTS_NEW 1
#endif

namespace {

// Every allocation through the global operator new on this thread (the
// pool's misses go through it too): what the pool's count does not see
// (a std::vector, a std::function, an object that is not pooled).
constinit thread_local uint64_t t_news = 0;

#if TWINLOOP_COUNTS_NEW
void* counted_new(size_t bytes) {
  ++t_news;
  if (void* p = std::malloc(bytes == 0 ? 1 : bytes)) return p;
  throw std::bad_alloc();
}
#endif

}  // namespace

#if TWINLOOP_COUNTS_NEW
void* operator new(size_t bytes) { return counted_new(bytes); }
void* operator new[](size_t bytes) { return counted_new(bytes); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
#endif

namespace twinloop {
namespace {

constexpr long kTasks = 1000;
// What the loop's own containers may allocate while kTasks tasks do
// something once: the ready queue and the timer heap grow by doubling
// (about log2(kTasks) = 10 times each), and a purge of cancelled timers
// rebuilds the heap. Far below one allocation per task.
constexpr uint64_t kContainerGrowth = 40;

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

// wait_for (issue 13: "a sleep, a wait_for and a gather child need no
// allocation beyond what the task already has"). Every worker, in turn:
//  A. waits for its future `opens` under a 10 s wait_for, which ends early
//     (the future is set): its deadline is cancelled in the timer heap;
//  B. sleeps 1 ms: the own timer is armed again at once, though its
//     cancelled 10 s entry is still in the heap;
//  C. waits for its own future under a 1 ms wait_for, which expires:
//     TimeoutError.
struct WaitForCounts {
  uint64_t enter = 0;    // pool blocks taken by the workers' first steps (A)
  uint64_t rearm = 0;    // by A's early end and the sleeps of B
  uint64_t enter_news = 0;  // operator new calls in A (the pool's misses included)
  uint64_t rearm_news = 0;  // and in A's end and B
  uint64_t expire = 0;   // by C, from entering to TimeoutError
  long timeouts = 0;     // TimeoutErrors raised by C
  long woke_late = 0;    // B's sleeps that ended after 10 s (must be 0)
};

Coro<void> worker(Future<void> opens, Future<void> go, Future<void> never, long& passed_a, long& passed_b,
                  WaitForCounts& c) {
  co_await wait_for(opens, absl::Seconds(10));
  ++passed_a;
  const absl::Time before_b = get_running_loop().time();
  co_await sleep(absl::Milliseconds(1));
  if (get_running_loop().time() - before_b >= absl::Seconds(10)) ++c.woke_late;
  ++passed_b;
  co_await go;
  try {
    co_await wait_for(never, absl::Milliseconds(1));
  } catch (const TimeoutError&) {
    ++c.timeouts;
  }
}

Coro<WaitForCounts> count_wait_for_allocations() {
  WaitForCounts c;
  long passed_a = 0;
  long passed_b = 0;
  std::vector<Future<void>> opens;
  std::vector<Future<void>> go;
  std::vector<Future<void>> never;
  std::vector<Task<void>> tasks;
  opens.reserve(kTasks);
  go.reserve(kTasks);
  never.reserve(kTasks);
  tasks.reserve(kTasks);
  for (long i = 0; i < kTasks; ++i) {
    opens.push_back(create_future<void>());
    go.push_back(create_future<void>());
    never.push_back(create_future<void>());
  }
  for (long i = 0; i < kTasks; ++i) tasks.push_back(create_task(worker(opens[i], go[i], never[i], passed_a, passed_b, c)));
  uint64_t mark = internal::pool_misses();
  uint64_t news = t_news;
  co_await sleep(absl::ZeroDuration());  // every worker enters A and waits
  c.enter = internal::pool_misses() - mark;
  c.enter_news = t_news - news;
  EXPECT_EQ(passed_a, 0);
  co_await sleep(absl::Milliseconds(1));
  EXPECT_EQ(passed_a, 0);
  mark = internal::pool_misses();
  news = t_news;
  for (Future<void>& f : opens) f.set_result();
  // A ends, B sleeps and wakes (virtual time advances only while no task
  // is ready, so this waits with a sleep of its own, not a yield).
  while (passed_b < kTasks) co_await sleep(absl::Milliseconds(1));
  c.rearm = internal::pool_misses() - mark;
  c.rearm_news = t_news - news;
  mark = internal::pool_misses();
  for (Future<void>& f : go) f.set_result();
  for (Task<void>& t : tasks) co_await t;
  c.expire = internal::pool_misses() - mark;
  co_return c;
}

void expect_no_wait_for_allocations(const WaitForCounts& c) {
  EXPECT_EQ(c.enter, 0u) << "entering wait_for allocated";
  EXPECT_EQ(c.rearm, 0u) << "leaving wait_for early, or sleeping after it, allocated";
  if (TWINLOOP_COUNTS_NEW) {
    EXPECT_LE(c.enter_news, kContainerGrowth) << "entering wait_for allocated (not from the pool)";
    EXPECT_LE(c.rearm_news, kContainerGrowth)
        << "leaving wait_for early, or sleeping after it, allocated (not from the pool)";
  }
  EXPECT_EQ(c.expire, 0u) << "a wait_for that expires allocated";
  EXPECT_EQ(c.timeouts, kTasks);
  EXPECT_EQ(c.woke_late, 0);
}

TEST(TaskAllocations, SimLoopWaitForAllocatesNothing) {
  WaitForCounts c;
  std::thread([&] { c = sim::run(count_wait_for_allocations(), sim::Options{.seed = 1}); }).join();
  expect_no_wait_for_allocations(c);
}

TEST(TaskAllocations, RealLoopWaitForAllocatesNothing) {
  WaitForCounts c;
  std::thread([&] { c = real::run(count_wait_for_allocations()); }).join();
  expect_no_wait_for_allocations(c);
}

// gather: "a gather child needs no allocation beyond what the task already
// has". A gather of n coroutines allocates each child's task (one block,
// with its coroutine, before the count) and a few things per gather (its
// state, the children's vector and links, the results); the loop's
// containers grow by doubling. So twice the children cost at most a few
// more allocations (one more doubling of each container), not n more.
struct GatherCounts {
  uint64_t news = 0;  // operator new calls from the gather call to its result
  size_t results = 0;
};

Coro<long> child(long i) {
  co_await sleep(absl::Milliseconds(1));
  co_return i;
}

Coro<GatherCounts> count_gather_allocations(long n) {
  GatherCounts c;
  std::vector<Coro<long>> children;
  children.reserve(n);
  for (long i = 0; i < n; ++i) children.push_back(child(i));
  const uint64_t news = t_news;
  std::vector<long> results = co_await gather(std::move(children));
  c.news = t_news - news;
  c.results = results.size();
  co_return c;
}

template <class Run>
void expect_gather_children_allocate_nothing(Run run) {
  if (!TWINLOOP_COUNTS_NEW) GTEST_SKIP() << "operator new is not counted under ThreadSanitizer";
  GatherCounts one;
  GatherCounts two;
  std::thread([&] { one = run(kTasks); }).join();
  std::thread([&] { two = run(2 * kTasks); }).join();
  EXPECT_EQ(one.results, static_cast<size_t>(kTasks));
  EXPECT_EQ(two.results, static_cast<size_t>(2 * kTasks));
  EXPECT_LE(one.news, static_cast<uint64_t>(kTasks / 10)) << "gather allocated per child";
  EXPECT_LE(two.news, one.news + 8) << "twice the children, " << two.news << " allocations against " << one.news;
}

TEST(TaskAllocations, SimLoopGatherChildrenAllocateNothing) {
  expect_gather_children_allocate_nothing(
      [](long n) { return sim::run(count_gather_allocations(n), sim::Options{.seed = 1}); });
}

TEST(TaskAllocations, RealLoopGatherChildrenAllocateNothing) {
  expect_gather_children_allocate_nothing([](long n) { return real::run(count_gather_allocations(n)); });
}

}  // namespace
}  // namespace twinloop
