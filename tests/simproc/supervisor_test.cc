// The correct supervisor (supervisor.h) across the default seed sweep with
// process faults on (crashes, failed spawns, hangs, slow output): every slot
// has a worker running again once the faults stop, and none was given up.
#include "twinloop/sim/harness/testing.h"
#include "twinloop/tests/simproc/supervisor.h"

namespace twinloop::simproc {
namespace {

TWINLOOP_SIM_TEST(SupervisorScenario, RestartsEveryCrashedWorker) {
  co_await supervise(BackoffPolicy::kSerializedBackoff);
}

}  // namespace
}  // namespace twinloop::simproc
