// The project's simulated test: the same pipeline under twinloop's simulated
// loop, over the harness's default seed sweep (virtual time: no waiting).
#include <vector>

#include "gtest/gtest.h"
#include "jobs.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/harness/testing.h"

TWINLOOP_SIM_TEST(Jobs, SlowJobsTimeOutTheOthersFinish) {
  std::vector<int> results = co_await consumer::run_jobs(4, 5, 17);
  EXPECT_EQ(results, (std::vector<int>{0, 1, 4, -1}));
}
