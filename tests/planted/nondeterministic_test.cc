// A deliberately nondeterministic simulated test: the wall clock decides how
// long it sleeps, so two runs of one seed differ. It passes on its own; the
// determinism self-check (--twinloop_check_determinism=1) must flag it.
// Tagged "manual"; run by planted_driver_test.
#include <chrono>

#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/harness/testing.h"

namespace twinloop::planted {
namespace {

TWINLOOP_SIM_TEST(Nondeterministic, WallClockDecidesASleep) {
  // Deterministic events first (a drawn executor latency, a timer), so that
  // the determinism report has recent events and draws to show.
  co_await to_thread([] {});
  co_await sleep(absl::Milliseconds(1));
  const auto now = std::chrono::steady_clock::now().time_since_epoch();
  const int64_t us = std::chrono::duration_cast<std::chrono::nanoseconds>(now).count() % 1000;
  co_await sleep(absl::Microseconds(1 + us));
  co_await sleep(absl::Milliseconds(1));
}

}  // namespace
}  // namespace twinloop::planted
