// The twinloop demo: one piece of coroutine code, run on the real epoll loop
// and then under the simulated loop for a few seeds.
//
// The code is a small job pipeline written only against api/: it starts five
// jobs in a TaskGroup, each doing some blocking work in the executor
// (to_thread) and then "waiting on a peer" (sleep) under a per-job timeout.
// Job 4's peer is too slow, so that job times out.
//
// On the real loop the executor is a thread pool and time is wall time. Under
// the simulated loop, time is virtual (the run takes microseconds however
// long it sleeps) and the executor's completion latency is a seeded choice,
// so each seed finishes the jobs in its own order, and a seed replayed gives
// the very same run (same event hash).
//
//   bazel run //examples:demo          (or ./twinloop demo)
//
// It exits non-zero if a replayed seed does not reproduce its run, so it also
// runs as a test (//examples:demo_test).
#include <cinttypes>
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "twinloop/api/twinloop.h"
#include "twinloop/real/run.h"
#include "twinloop/sim/simulation.h"

namespace {

using twinloop::Coro;

// What the pipeline did, in order, with the loop time of each event.
struct Log {
  absl::Time start;
  std::vector<std::string> lines;
  void add(const std::string& what) {
    absl::Duration t = twinloop::get_running_loop().time() - start;
    lines.push_back(absl::StrFormat("%8.3f ms  %s", absl::ToDoubleMilliseconds(t), what));
  }
};

// Stand-in for blocking work (parsing, hashing, a synchronous library call).
uint64_t checksum(int job) {
  uint64_t h = 1469598103934665603ull;
  for (int i = 0; i < 10000 * (job + 1); ++i) h = (h ^ static_cast<uint64_t>(i)) * 1099511628211ull;
  return h;
}

Coro<std::string> run_job(int job, Log& log) {
  uint64_t sum = co_await twinloop::to_thread(checksum, job);
  log.add(absl::StrFormat("job %d: blocking work done (checksum %04x)", job, sum & 0xffff));
  const absl::Duration peer_latency = absl::Milliseconds(job == 4 ? 200 : 10 * (job + 1));
  try {
    co_await twinloop::wait_for(twinloop::sleep(peer_latency), absl::Milliseconds(100));
  } catch (const twinloop::TimeoutError&) {
    log.add(absl::StrFormat("job %d: peer timed out after 100 ms", job));
    co_return "timeout";
  }
  log.add(absl::StrFormat("job %d: peer answered", job));
  co_return "ok";
}

// The application: identical on both loops.
Coro<int> pipeline(Log& log) {
  log.start = twinloop::get_running_loop().time();
  std::vector<twinloop::Task<std::string>> jobs;
  co_await twinloop::task_group([&](twinloop::TaskGroup& tg) -> Coro<void> {
    for (int job = 0; job < 5; ++job) jobs.push_back(tg.create_task(run_job(job, log)));
    co_return;
  });
  int ok = 0;
  for (auto& j : jobs) ok += j.result() == "ok";
  log.add(absl::StrFormat("all jobs finished: %d ok, %d timed out", ok, 5 - ok));
  co_return ok;
}

void print(const Log& log) {
  for (const std::string& line : log.lines) std::printf("  %s\n", line.c_str());
}

}  // namespace

int main() {
  std::printf("== real loop (epoll, thread pool, wall-clock time) ==\n");
  Log real_log;
  const int real_ok = twinloop::real::run(pipeline(real_log));
  print(real_log);

  uint64_t first_hash = 0;
  for (uint64_t seed : {1, 2, 3}) {
    std::printf("\n== simulated loop, seed %" PRIu64 " (virtual time) ==\n", seed);
    Log log;
    twinloop::sim::RunStats stats;
    const int ok = twinloop::sim::run(pipeline(log), {.seed = seed}, &stats);
    print(log);
    std::printf("  -> %d ok, %" PRIu64 " events, %" PRIu64 " choices, event hash %016" PRIx64 "\n", ok,
                stats.events, stats.choices, stats.event_hash);
    if (seed == 1) first_hash = stats.event_hash;
    if (ok != real_ok) {
      std::printf("error: the simulated run disagrees with the real one on the outcome\n");
      return 1;
    }
  }

  Log replay_log;
  twinloop::sim::RunStats replay;
  twinloop::sim::run(pipeline(replay_log), {.seed = 1}, &replay);
  const bool same = replay.event_hash == first_hash;
  std::printf("\n== seed 1 again: event hash %016" PRIx64 " (%s) ==\n", replay.event_hash,
              same ? "identical: the same run, event for event" : "DIFFERENT: nondeterminism!");
  return same ? 0 : 1;
}
