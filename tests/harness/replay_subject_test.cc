// Simulated tests for harness_driver_test to record, replay and shrink (one
// of them fails on purpose, so the target is tagged "manual").
//
// Subject.Leaks makes 8 draws; each non-default draw "leaks" a resource and
// sleeps (so the draws change the event stream too). It fails with
// "leaked N", N being the number of non-default draws: a failing seed
// usually leaks several, its shrunk run leaks exactly 1, and a replay file
// whose decisions are edited fails differently ("leaked 1") or passes.
// Subject.Passes and Subject.AlsoPasses pass: replaying a file recorded for
// Subject.Leaks must skip them.
#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/harness/testing.h"

namespace twinloop::harness {
namespace {

TWINLOOP_SIM_TEST(Subject, Leaks) {
  int leaked = 0;
  for (int i = 0; i < 8; ++i) {
    if (get_running_loop().backend().choose("test.leak", 2) != 0) {
      ++leaked;
      co_await sleep(absl::Milliseconds(1));
    }
  }
  co_await sleep(absl::Milliseconds(1));
  EXPECT_EQ(leaked, 0) << "leaked " << leaked;
}

TWINLOOP_SIM_TEST(Subject, Passes) { co_await sleep(absl::Milliseconds(1)); }

TWINLOOP_SIM_TEST(Subject, AlsoPasses) { co_await sleep(absl::Milliseconds(2)); }

}  // namespace
}  // namespace twinloop::harness
