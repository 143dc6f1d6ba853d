// Runs every benchmark workload with tiny counts on both loops and checks
// its checksum, so that the benchmark code builds and stays correct.
#include <gtest/gtest.h>

#include "twinloop/bench/sync_workloads.h"
#include "twinloop/bench/workloads.h"

namespace twinloop_bench {
namespace {

class OnBothLoops : public ::testing::TestWithParam<Loop> {};

TEST_P(OnBothLoops, PingPongHandsEveryValueOver) {
  PingPongResult r = pingpong(GetParam(), 1000);
  EXPECT_EQ(r.handoffs, 1000);
  EXPECT_EQ(r.check, pingpong_check(1000));
  EXPECT_EQ(r.check, 500L * 501 / 2);
  EXPECT_GE(r.wall_s, 0);
}

TEST_P(OnBothLoops, SpawnRunsEveryTaskAwaitingEach) {
  SpawnResult r = spawn(GetParam(), 1000, Join::kEach);
  EXPECT_EQ(r.check, 1000);
}

TEST_P(OnBothLoops, SpawnRunsEveryTaskWithGather) {
  SpawnResult r = spawn(GetParam(), 1000, Join::kGather);
  EXPECT_EQ(r.check, 1000);
}

// ---- issue 3: Queue and Lock (bench/sync_workloads.h)

TEST_P(OnBothLoops, QueuePingPongUnboundedMatchesTheRawReferencesCheck) {
  PingPongResult r = queue_pingpong(GetParam(), 1000, 0);
  EXPECT_EQ(r.handoffs, 1000);
  EXPECT_EQ(r.check, pingpong_check(1000));
  EXPECT_GE(r.wall_s, 0);
}

TEST_P(OnBothLoops, QueuePingPongBoundedMatchesTheRawReferencesCheck) {
  PingPongResult r = queue_pingpong(GetParam(), 1000, 1);
  EXPECT_EQ(r.check, pingpong_check(1000));
}

TEST_P(OnBothLoops, QueueThroughputDeliversEveryItemInOrder) {
  for (int64_t maxsize : {0, 1, 64}) {
    QueueThroughputResult r = queue_throughput(GetParam(), 1000, maxsize);
    EXPECT_EQ(r.items, 1000) << "maxsize " << maxsize;
    EXPECT_EQ(r.check, queue_throughput_check(1000)) << "maxsize " << maxsize;
    EXPECT_EQ(r.check, 999L * 1000 / 2) << "maxsize " << maxsize;
    EXPECT_EQ(r.out_of_order, 0) << "maxsize " << maxsize;
  }
}

TEST_P(OnBothLoops, ContendedLockHandsOverOnEveryRelease) {
  for (LockStyle style : {LockStyle::kAcquire, LockStyle::kScoped}) {
    for (long tasks : {2L, 8L}) {
      LockResult r = lock_rounds(GetParam(), tasks, 50, style, /*yield_inside=*/true);
      EXPECT_EQ(r.pairs, tasks * 50);
      EXPECT_EQ(r.check, r.pairs) << lock_style_name(style) << " " << tasks;
      EXPECT_EQ(r.overlaps, 0) << lock_style_name(style) << " " << tasks;
      // FIFO hand-over with a yield inside: the holder never re-enters
      // while others queue, so every entry is by another task.
      EXPECT_EQ(r.handovers, r.pairs) << lock_style_name(style) << " " << tasks;
    }
  }
}

TEST_P(OnBothLoops, UncontendedLockNeverHandsOver) {
  for (LockStyle style : {LockStyle::kAcquire, LockStyle::kScoped}) {
    for (bool yield_inside : {false, true}) {
      LockResult r = lock_rounds(GetParam(), 1, 100, style, yield_inside);
      EXPECT_EQ(r.check, 100);
      EXPECT_EQ(r.overlaps, 0);
      EXPECT_EQ(r.handovers, 1);  // the first entry only
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Loops, OnBothLoops, ::testing::Values(Loop::kReal, Loop::kSim),
                         [](const ::testing::TestParamInfo<Loop>& info) {
                           return std::string(loop_name(info.param));
                         });

TEST(VirtualSleep, EndsAtTheLongestTasksTotalSleep) {
  VsleepResult r = vsleep(Loop::kSim, 100, 10);
  EXPECT_EQ(r.sleeps, 1000);
  EXPECT_EQ(r.check, 1000);
  EXPECT_EQ(r.sim_s * 1e9, static_cast<double>(vsleep_span_ns(100, 10)));
}

TEST(VirtualSleep, SpanMatchesRawSchedStreams) {
  // Task 1 (seed 1): first draw of splitmix64 seeded with 1, as raw_sched.cpp.
  EXPECT_EQ(vsleep_span_ns(1, 1), static_cast<int64_t>(1 + 0x910a2dec89025cc1ull % 1000) * 1'000'000);
}

TEST(VirtualSleep, ScaledOnTheRealLoop) {
  // 5 tasks x 3 sleeps of (1..1000 ms) / 10000: at most 0.3 ms of sleeping.
  VsleepResult r = vsleep(Loop::kReal, 5, 3, 10'000);
  EXPECT_EQ(r.check, 15);
  EXPECT_EQ(r.sim_s * 1e9, static_cast<double>(vsleep_span_ns(5, 3)));
}

}  // namespace
}  // namespace twinloop_bench
