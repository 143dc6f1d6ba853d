// The README's example, verbatim, so that it cannot rot (//examples:readme_example_test).
#include "twinloop/api/twinloop.h"
#include "twinloop/real/run.h"
#include "twinloop/sim/simulation.h"

twinloop::Coro<int> fetch(int id) {
  co_await twinloop::sleep(absl::Milliseconds(10 * id));
  co_return id * id;
}

twinloop::Coro<int> main_coro() {
  auto [a, b] = co_await twinloop::gather(fetch(1), fetch(2));
  try {
    co_await twinloop::wait_for(fetch(100), absl::Milliseconds(50));
  } catch (const twinloop::TimeoutError&) {
    // fetch(100) was cancelled and awaited, as in asyncio
  }
  co_return a + b;
}

int main() {
  int on_real = twinloop::real::run(main_coro());                 // ~50 ms of wall time
  int on_sim = twinloop::sim::run(main_coro(), {.seed = 42});     // microseconds; virtual time
  return on_real == on_sim ? 0 : 1;
}
