// twinloop/bench/subprocess_workload.cc: see subprocess_workload.h.
#include "twinloop/bench/subprocess_workload.h"

#include <chrono>

#include "twinloop/api/twinloop.h"
#include "twinloop/real/run.h"

namespace twinloop_bench {
namespace {

twinloop::Coro<SubprocResult> spawn_rounds(long k) {
  SubprocResult r;
  const auto t0 = std::chrono::steady_clock::now();
  for (long i = 0; i < k; ++i) {
    twinloop::Process p = co_await twinloop::create_subprocess_exec("/bin/true");
    const int rc = co_await p.wait();
    r.failures += rc != 0;
  }
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.spawns = k;
  co_return r;
}

}  // namespace

SubprocResult subprocess_spawns(long k) { return twinloop::real::run(spawn_rounds(k)); }

}  // namespace twinloop_bench
