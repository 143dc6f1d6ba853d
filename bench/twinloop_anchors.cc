// twinloop/bench/twinloop_anchors.cc: twinloop's rows for the performance
// anchors (../shared/bench), with the anchors' command-line interface and
// output, so that bench/compare.py can run them in the same rounds.
//
//   twinloop_anchors pingpong-real N         N hand-offs, one Future per hand-off
//   twinloop_anchors pingpong-sim N
//   twinloop_anchors spawn-real N [each|gather]   N trivial tasks, then join
//   twinloop_anchors spawn-sim N [each|gather]    (default: each)
//   twinloop_anchors vsleep-sim T I          T tasks x I sleeps of 1..1000 ms, virtual time
//   twinloop_anchors vsleep-real T I SCALE   the same on the real clock, sleeps / SCALE
//   twinloop_anchors sleepers-sim N          N tasks alive at once, each sleeping 1 ms once
//   twinloop_anchors sleepers-real N         (issue 13's memory row): peak_rss_mib is the
//                                            process's peak RSS (getrusage), in MiB
//   twinloop_anchors waitfor-sim N [bare]    N x wait_for(sleep(0), 1 s) in one task
//   twinloop_anchors waitfor-real N [bare]   (issue 13: wait_for's cost); bare: the
//                                            sleep(0)s alone
// Issue 3 (bench/sync_workloads.h), each also -sim:
//   twinloop_anchors queue-pingpong-real N [unbounded|bounded|MAXSIZE]
//                                            N hand-offs through two Queue<long>
//                                            (unbounded = maxsize 0, the default;
//                                            bounded = maxsize 1)
//   twinloop_anchors queue-throughput-real N MAXSIZE
//                                            one producer puts N items, one consumer
//                                            gets them; MAXSIZE 0 = unbounded
//   twinloop_anchors lock-real TASKS ROUNDS [acquire|scoped] [yield|noyield]
//                                            TASKS tasks x ROUNDS acquire/release pairs,
//                                            sleep(0) inside the critical section with
//                                            `yield` (the default); ns_per_op = per pair
//
// Workload 5 (bench/subprocess_workload.h):
//   twinloop_anchors subproc-real K          K x (spawn /bin/true, wait), in a row
//
// Prints one line, in raw_sched.cpp's format: RESULT <key>=<value> ...
// Only the workload is timed (steady clock, inside the main coroutine), not
// loop creation or shutdown. Exits 1 if the workload's checksum is wrong.
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "twinloop/bench/subprocess_workload.h"
#include "twinloop/bench/sync_workloads.h"
#include "twinloop/bench/workloads.h"

namespace {

using twinloop_bench::Join;
using twinloop_bench::LockStyle;
using twinloop_bench::Loop;

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s pingpong-real N | pingpong-sim N | spawn-real N [each|gather] |\n"
               "       spawn-sim N [each|gather] | vsleep-sim T I | vsleep-real T I SCALE |\n"
               "       sleepers-{real,sim} N | waitfor-{real,sim} N [bare] |\n"
               "       queue-pingpong-{real,sim} N [unbounded|bounded|MAXSIZE] |\n"
               "       queue-throughput-{real,sim} N MAXSIZE |\n"
               "       lock-{real,sim} TASKS ROUNDS [acquire|scoped] [yield|noyield] |\n"
               "       subproc-real K\n",
               argv0);
  return 2;
}

bool parse_long(const char* s, long& out) {
  char* end = nullptr;
  out = std::strtol(s, &end, 10);
  return end != s && *end == '\0';
}

int fail(const char* what, long got, long want) {
  std::fprintf(stderr, "%s: checksum %ld, expected %ld\n", what, got, want);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return usage(argv[0]);
  const std::string mode = argv[1];
  const long n = std::atol(argv[2]);
  if (n <= 0) return usage(argv[0]);
  const auto dash = mode.rfind('-');
  if (dash == std::string::npos) return usage(argv[0]);
  const std::string workload = mode.substr(0, dash), loop_arg = mode.substr(dash + 1);
  if (loop_arg != "real" && loop_arg != "sim") return usage(argv[0]);
  const Loop loop = loop_arg == "real" ? Loop::kReal : Loop::kSim;

  if (workload == "pingpong") {
    twinloop_bench::PingPongResult r = twinloop_bench::pingpong(loop, n);
    std::printf("RESULT handoffs=%ld wall_s=%.6f ns_per_op=%.2f check=%ld\n", n, r.wall_s,
                r.wall_s * 1e9 / n, r.check);
    if (r.check != twinloop_bench::pingpong_check(n))
      return fail("pingpong", r.check, twinloop_bench::pingpong_check(n));
  } else if (workload == "spawn") {
    Join join = Join::kEach;
    if (argc >= 4) {
      if (!std::strcmp(argv[3], "gather")) {
        join = Join::kGather;
      } else if (std::strcmp(argv[3], "each") != 0) {
        return usage(argv[0]);
      }
    }
    twinloop_bench::SpawnResult r = twinloop_bench::spawn(loop, n, join);
    std::printf("RESULT tasks=%ld wall_s=%.6f ns_per_op=%.2f check=%ld\n", n, r.wall_s,
                r.wall_s * 1e9 / n, r.check);
    if (r.check != n) return fail("spawn", r.check, n);
  } else if (workload == "sleepers") {
    twinloop_bench::SleepersResult r = twinloop_bench::sleepers(loop, n);
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const double peak_mib = static_cast<double>(usage.ru_maxrss) / 1024.0;  // ru_maxrss: KiB
    std::printf("RESULT tasks=%ld wall_s=%.6f ns_per_op=%.2f peak_rss_mib=%.1f bytes_per_task=%.0f check=%ld\n", n,
                r.wall_s, r.wall_s * 1e9 / n, peak_mib, peak_mib * 1048576.0 / static_cast<double>(n), r.check);
    if (r.check != n) return fail("sleepers", r.check, n);
  } else if (workload == "waitfor") {
    bool bare = false;
    if (argc >= 4) {
      if (std::strcmp(argv[3], "bare") != 0) return usage(argv[0]);
      bare = true;
    }
    twinloop_bench::WaitForResult r = twinloop_bench::wait_for_yield(loop, n, bare);
    std::printf("RESULT wait_fors=%ld wall_s=%.6f ns_per_op=%.2f check=%ld\n", n, r.wall_s, r.wall_s * 1e9 / n,
                r.check);
    if (r.check != n) return fail("waitfor", r.check, n);
  } else if (workload == "vsleep" && argc >= 4) {
    const long iters = std::atol(argv[3]);
    long scale = 1;
    if (loop == Loop::kReal) {
      if (argc < 5) return usage(argv[0]);
      scale = std::atol(argv[4]);
      if (scale < 1) return usage(argv[0]);
    }
    twinloop_bench::VsleepResult r = twinloop_bench::vsleep(loop, n, iters, scale);
    if (loop == Loop::kReal) {
      std::printf("RESULT sleeps=%ld wall_s=%.6f sim_s=%.3f sim_per_wall=%.1f real_scale=%ld "
                  "ns_per_op=%.2f\n",
                  r.sleeps, r.wall_s, r.sim_s, r.sim_s / r.wall_s, scale, r.wall_s * 1e9 / r.sleeps);
    } else {
      std::printf("RESULT sleeps=%ld wall_s=%.6f sim_s=%.3f sim_per_wall=%.1f ns_per_op=%.2f\n",
                  r.sleeps, r.wall_s, r.sim_s, r.sim_s / r.wall_s, r.wall_s * 1e9 / r.sleeps);
      const long want_ms = static_cast<long>(twinloop_bench::vsleep_span_ns(n, iters) / 1'000'000);
      const long got_ms = static_cast<long>(r.sim_s * 1e3 + 0.5);
      if (got_ms != want_ms) return fail("vsleep virtual span (ms)", got_ms, want_ms);
    }
    if (r.check != r.sleeps) return fail("vsleep sleeps", r.check, r.sleeps);
  } else if (workload == "queue-pingpong") {
    long maxsize = 0;
    if (argc >= 4) {
      if (!std::strcmp(argv[3], "bounded")) {
        maxsize = 1;
      } else if (std::strcmp(argv[3], "unbounded") != 0) {
        if (!parse_long(argv[3], maxsize) || maxsize < 0) return usage(argv[0]);
      }
    }
    twinloop_bench::PingPongResult r = twinloop_bench::queue_pingpong(loop, n, maxsize);
    std::printf("RESULT handoffs=%ld maxsize=%ld wall_s=%.6f ns_per_op=%.2f check=%ld\n", n, maxsize,
                r.wall_s, r.wall_s * 1e9 / n, r.check);
    if (r.check != twinloop_bench::pingpong_check(n))
      return fail("queue-pingpong", r.check, twinloop_bench::pingpong_check(n));
  } else if (workload == "queue-throughput" && argc >= 4) {
    long maxsize = 0;
    if (!parse_long(argv[3], maxsize) || maxsize < 0) return usage(argv[0]);
    twinloop_bench::QueueThroughputResult r = twinloop_bench::queue_throughput(loop, n, maxsize);
    std::printf("RESULT items=%ld maxsize=%ld wall_s=%.6f ns_per_op=%.2f check=%ld out_of_order=%ld\n", n,
                maxsize, r.wall_s, r.wall_s * 1e9 / n, r.check, r.out_of_order);
    if (r.out_of_order != 0) return fail("queue-throughput out of order", r.out_of_order, 0);
    if (r.check != twinloop_bench::queue_throughput_check(n))
      return fail("queue-throughput", r.check, twinloop_bench::queue_throughput_check(n));
  } else if (workload == "lock" && argc >= 4) {
    long rounds = 0;
    if (!parse_long(argv[3], rounds) || rounds <= 0) return usage(argv[0]);
    LockStyle style = LockStyle::kAcquire;
    bool yield_inside = true;
    for (int i = 4; i < argc; ++i) {
      if (!std::strcmp(argv[i], "acquire")) {
        style = LockStyle::kAcquire;
      } else if (!std::strcmp(argv[i], "scoped")) {
        style = LockStyle::kScoped;
      } else if (!std::strcmp(argv[i], "yield")) {
        yield_inside = true;
      } else if (!std::strcmp(argv[i], "noyield")) {
        yield_inside = false;
      } else {
        return usage(argv[0]);
      }
    }
    twinloop_bench::LockResult r = twinloop_bench::lock_rounds(loop, n, rounds, style, yield_inside);
    std::printf("RESULT pairs=%ld tasks=%ld rounds=%ld style=%s yield=%d wall_s=%.6f ns_per_op=%.2f "
                "handovers=%ld overlaps=%ld check=%ld\n",
                r.pairs, r.tasks, r.rounds, std::string(twinloop_bench::lock_style_name(style)).c_str(),
                yield_inside ? 1 : 0, r.wall_s, r.wall_s * 1e9 / static_cast<double>(r.pairs), r.handovers,
                r.overlaps, r.check);
    if (r.overlaps != 0) return fail("lock: tasks inside the critical section together", r.overlaps, 0);
    if (r.check != r.pairs) return fail("lock critical sections", r.check, r.pairs);
  } else if (workload == "subproc" && loop == Loop::kReal) {
    const twinloop_bench::SubprocResult r = twinloop_bench::subprocess_spawns(n);
    std::printf("RESULT spawns=%ld wall_s=%.6f per_s=%.1f failures=%ld\n", r.spawns, r.wall_s,
                static_cast<double>(r.spawns) / r.wall_s, r.failures);
    if (r.failures != 0) return fail("subproc: children that did not exit 0", r.failures, 0);
  } else {
    return usage(argv[0]);
  }
  return 0;
}
