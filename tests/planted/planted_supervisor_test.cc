// A planted process-supervision bug (tests/simproc/supervisor.h), found only
// when process faults (sim/faults.h, sim/process.h) crash two workers within
// one of the supervisor's restart back-offs: the planted supervisor takes the
// second crash as covered by the back-off in progress and never restarts
// that worker, so after the faults stop the supervisor does not converge
// back to every worker running. It FAILS on purpose: tagged "manual" and run
// by planted_supervisor_driver_test, which expects the default sweep to find
// it, shrinking to leave fewer faults and decisions, and the minimal replay
// to reproduce it. Its fixed twin passes every seed of the same sweep.
#include "twinloop/sim/harness/testing.h"
#include "twinloop/tests/simproc/supervisor.h"

namespace twinloop::planted {
namespace {

using simproc::BackoffPolicy;

TWINLOOP_SIM_TEST(PlantedProcesses, SupervisorDropsACrashDuringItsBackoff) {
  co_await simproc::supervise(BackoffPolicy::kDropDuringBackoff);
}

TWINLOOP_SIM_TEST(PlantedProcesses, SupervisorSerializesItsBackoff) {
  co_await simproc::supervise(BackoffPolicy::kSerializedBackoff);
}

}  // namespace
}  // namespace twinloop::planted
