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
//
// Prints one line, in raw_sched.cpp's format: RESULT <key>=<value> ...
// Only the workload is timed (steady clock, inside the main coroutine), not
// loop creation or shutdown. Exits 1 if the workload's checksum is wrong.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench/workloads.h"

namespace {

using twinloop_bench::Join;
using twinloop_bench::Loop;

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s pingpong-real N | pingpong-sim N | spawn-real N [each|gather] |\n"
               "       spawn-sim N [each|gather] | vsleep-sim T I | vsleep-real T I SCALE\n",
               argv0);
  return 2;
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
  } else {
    return usage(argv[0]);
  }
  return 0;
}
