// Simulated tests for the strategies (sim/strategy.h, --twinloop_strategy),
// driven by strategy_driver_test (tagged "manual": one fails on purpose).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/sim/choice.h"
#include "twinloop/sim/harness/testing.h"

namespace twinloop::strategy_subject {
namespace {

// A worker making executor calls (each an executor.latency_us draw), folding
// the virtual time after each into *hash.
Coro<void> worker(int calls, uint64_t* hash) {
  for (int i = 0; i < calls; ++i) {
    co_await to_thread([] {});
    *hash = sim::mix64(*hash ^ static_cast<uint64_t>(absl::ToInt64Nanoseconds(get_running_loop().time() - absl::UnixEpoch())));
  }
}

// Three workers of 1, 3 and 5 calls; appends the run's time hash to
// $STRATEGY_LOG (one line per run: the pilot run's first, then the seed's).
TWINLOOP_SIM_TEST(Strategies, LogsItsSchedule) {
  uint64_t hash = 0;
  co_await gather(create_task(worker(1, &hash)), create_task(worker(3, &hash)), create_task(worker(5, &hash)));
  if (const char* path = std::getenv("STRATEGY_LOG")) {
    if (FILE* f = std::fopen(path, "a")) {
      std::fprintf(f, "%016llx\n", static_cast<unsigned long long>(hash));
      std::fclose(f);
    }
  }
}

// Fails when the one-call worker finishes last: its call must outlast both
// others' whole sequences (a short task delayed behind long ones, URW's case).
TWINLOOP_SIM_TEST(Strategies, ShortWorkerLast) {
  int done = 0;
  int short_rank = -1;
  auto run = [&](int calls, bool is_short) -> Coro<void> {
    for (int i = 0; i < calls; ++i) co_await to_thread([] {});
    if (is_short) short_rank = done;
    ++done;
  };
  co_await gather(create_task(run(1, true)), create_task(run(3, false)), create_task(run(3, false)));
  EXPECT_NE(short_rank, 2) << "planted: the short worker finished last";
}

}  // namespace
}  // namespace twinloop::strategy_subject
