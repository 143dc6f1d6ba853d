// The project's simulated test: the same pipeline under twinloop's simulated
// loop, over the harness's default seed sweep (virtual time: the 10 s job
// takes no real time).
#include <vector>

#include "gtest/gtest.h"
#include "jobs.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/harness/testing.h"

TWINLOOP_SIM_TEST(Jobs, SlowJobsTimeOutTheOthersFinish) {
  const absl::Time start = twinloop::get_running_loop().time();
  std::vector<int> results = co_await consumer::run_jobs({1, 2, 3, 10'000}, 200);
  EXPECT_EQ(results, (std::vector<int>{0, 1, 4, -1}));
  // The slow job was cancelled at its deadline, not awaited to its end.
  EXPECT_EQ(twinloop::get_running_loop().time() - start, absl::Milliseconds(200));
}
