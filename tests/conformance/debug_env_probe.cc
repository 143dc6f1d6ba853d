// A probe for debug_test's TWINLOOP_DEBUG cases, run as a subprocess with the
// variable set or not (the variable is read once per process).
//
// Prints one line per loop: "real=<0|1> sim=<0|1> real_off=<0|1>
// sim_off=<0|1>": the debug mode of a new real and a new simulated loop, and
// of each when run()'s options turn debug mode off. Then, outside any loop,
// drops a coroutine it never awaited (reported on standard error in debug
// mode only). A bad value makes loop construction throw: the probe prints
// "error: <what>" and exits 2.
#include <cstdio>
#include <exception>

#include "twinloop/api/coro.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/real/run.h"
#include "twinloop/sim/simulation.h"

namespace {

twinloop::Coro<bool> debug_now() { co_return twinloop::get_running_loop().get_debug(); }

twinloop::Coro<void> dropped_outside_any_loop() { co_return; }

}  // namespace

int main() {
  try {
    const bool real_default = twinloop::real::new_event_loop()->get_debug();
    const bool sim_default = twinloop::sim::new_event_loop()->get_debug();
    const bool real_off = twinloop::real::run(debug_now(), {.debug = false});
    const bool sim_off = twinloop::sim::run(debug_now(), {.debug = false});
    std::printf("real=%d sim=%d real_off=%d sim_off=%d\n", real_default, sim_default, real_off, sim_off);
    std::fflush(stdout);
  } catch (const std::exception& e) {
    std::printf("error: %s\n", e.what());
    return 2;
  }
  {
    twinloop::Coro<void> c = dropped_outside_any_loop();
  }
  return 0;
}
