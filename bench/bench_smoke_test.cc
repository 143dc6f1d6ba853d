// Runs every benchmark workload with tiny counts on both loops and checks
// its checksum, so that the benchmark code builds and stays correct.
#include <gtest/gtest.h>

#include "bench/workloads.h"

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
