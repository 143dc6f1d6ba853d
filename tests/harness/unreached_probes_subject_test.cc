// A binary with probes that no test reaches, for unreached_probes_driver_test
// (the end-of-binary probe report, docs/exploration.md). Tagged "manual":
// with --twinloop_require_probes it fails on purpose.
#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/harness/testing.h"

namespace twinloop::unreached_subject {
namespace {

// Never called: its probes are declared (registered when the program
// starts) but no run reaches them.
[[maybe_unused]] void never_called(bool x) {
  TWINLOOP_SOMETIMES(x, "unreached: a sometimes in dead code");
  TWINLOOP_REACHABLE("unreached: a reachable in dead code");
  TWINLOOP_ALWAYS(x, "unreached: an always in dead code");
  if (x) TWINLOOP_UNREACHABLE("unreached: an unreachable in dead code");
}

TWINLOOP_SIM_TEST(Unreached, ReachesSome) {
  co_await to_thread([] {});
  TWINLOOP_REACHABLE("reached: by ReachesSome");
  TWINLOOP_ALWAYS(true, "reached: an always");
}

// Reached only in the seeds where the executor takes more than 5 ms (not
// seed 0's), so with worker processes only a worker may reach it.
TWINLOOP_SIM_TEST(Unreached, ReachesOneInSomeSeeds) {
  EventLoop& loop = get_running_loop();
  const absl::Time t0 = loop.time();
  co_await to_thread([] {});
  if (loop.time() - t0 > absl::Milliseconds(5)) TWINLOOP_REACHABLE("reached: in slow seeds only");
}

}  // namespace
}  // namespace twinloop::unreached_subject
