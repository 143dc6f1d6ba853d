// twinloop/sim/harness/sweep.h: run one simulated test over a range of seeds, in
// this process or in forked worker processes, and split the range between
// Bazel / GoogleTest shards.
//
//   twinloop::sim::SweepOptions o{.first_seed = 0, .seeds = 10'000, .jobs = 0};
//   o.shard = twinloop::sim::shard_from_env();
//   twinloop::sim::acknowledge_sharding();
//   twinloop::sim::SweepResult r = twinloop::sim::run_sweep(o, [](uint64_t seed) {
//     return !my_property_holds(seed);     // true: the seed FAILED
//   });
//   std::fprintf(stderr, "%s\n", twinloop::sim::format_rate(r).c_str());
//
// Seeds and shards. A sweep covers the seeds first .. first+count-1; seed s
// belongs to shard (s - first) % shard.count. The shards of one range are
// disjoint and together cover it, so `bazel test --test_sharding_strategy=...`
// with shard_count = K runs every seed exactly once across the K processes.
//
// Jobs. jobs == 1 runs every seed in this process, in ascending order.
// jobs > 1 forks worker processes; the parent hands them seeds from a queue
// (lowest seed first, a few at a time over a socket per worker), collects one
// result per seed, prints progress and stops them. A worker that dies
// (signal, or exit) while running a seed makes that seed a failure (also
// listed in SweepResult::crashed_seeds); the worker is replaced and the seeds
// it had queued are run by others. With jobs == 1 nothing isolates the sweep
// from a crash: it takes the process down. With jobs > 1 run_seed runs in
// the children, so what it does to memory (counters, vectors it appends to)
// never reaches the parent: its return value is all the parent learns.
// Workers report passes in small batches (at most ~1 ms plus one seed late)
// and failures at once.
//
// Which failures are reported. Let m = max_failures.
//  - m == 0: every seed of the range and shard is run; failed_seeds is
//    exactly the set of failing seeds, whatever `jobs` is.
//  - m > 0: failed_seeds is the m lowest failing seeds of the range and
//    shard (fewer if there are fewer), whatever `jobs` is. With jobs == 1
//    that is simply "stop at the m-th failure". With jobs > 1 the parent,
//    once it has seen m failures, stops handing out seeds above the m-th
//    lowest failure F seen so far, kills (SIGKILL) the workers that only
//    hold seeds above F, lets the others finish their seeds below F (a
//    failure among them lowers F), and drops failures above the final F. So
//    the reported set does not depend on timing, as long as run_seed is a
//    pure function of the seed (which is what a simulated test is).
//    seeds_run, on the other hand, does depend on timing with jobs > 1: it
//    counts every seed whose result arrived, including seeds above F.
//
// Fork safety. The sweep forks the calling process; only the calling thread
// exists in a child. Children must run simulated code only (the simulated
// loop uses no threads, no locks held across the fork and no OS resources).
// Do not run real-loop code in run_seed: if a real-loop test ran earlier in
// the same binary its thread pool may hold locks, and a child that touched
// them could deadlock. The sweep flushes stdout/stderr (stdio and iostreams)
// before forking, and children leave with _exit(), so they never run atexit
// handlers (GoogleTest's included) and never flush the parent's buffers a
// second time.
//
// Output of children. By default a child's stdout and stderr go to
// /dev/null: GoogleTest EXPECT failures that run_seed triggers in a child
// are neither printed nor recorded in the parent (a child's gtest state dies
// with it), so run_seed itself must return the verdict. Re-run the failing
// seeds in the parent (jobs == 1) to get their reports; do not re-run a seed
// in crashed_seeds in-process, it will crash the process.
// SweepOptions::worker_output keeps the children's output instead.
//
// Exceptions. An exception escaping run_seed makes the seed a failure (in
// both modes); its what() is printed to stderr (by the parent with jobs == 1,
// by the child, so normally silenced, with jobs > 1).
//
// Wall clock. The sweep engine reads std::chrono::steady_clock for
// SweepResult::seconds and the progress line; simulated runs never read it.
#ifndef TWINLOOP_SIM_SWEEP_H_
#define TWINLOOP_SIM_SWEEP_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace twinloop::sim {

// Which part of a seed range this process runs (Bazel/GoogleTest sharding).
struct Shard {
  int index = 0;
  int count = 1;
};

// The shard of this process: GTEST_SHARD_INDEX / GTEST_TOTAL_SHARDS (Bazel's
// test runner exports these from TEST_SHARD_INDEX / TEST_TOTAL_SHARDS),
// each falling back to its TEST_* variable when unset or empty. Neither set:
// {0, 1}. Throws std::invalid_argument naming the variables and values if a
// value is not a decimal integer, is negative, the count is 0, the index is
// not below the count, or only one of index and count is given.
Shard shard_from_env();

// Seeds first .. first+count-1 that belong to `shard`, ascending: seed s
// belongs to shard (s - first) % shard.count. Disjoint across shards, union
// = the whole range. Throws std::invalid_argument for an invalid shard or a
// range that passes UINT64_MAX.
std::vector<uint64_t> seeds_for_shard(uint64_t first, uint64_t count, Shard shard);
// How many of `count` seeds belong to `shard` (seeds_for_shard(...).size(),
// without building the list). Throws std::invalid_argument for an invalid
// shard.
uint64_t shard_seed_count(uint64_t count, Shard shard);

// Bazel asks a sharded test to create (touch) TEST_SHARD_STATUS_FILE to say
// it understands sharding; this does it if the variable is set (and is a
// no-op otherwise). Throws std::system_error if the file cannot be created.
void acknowledge_sharding();

struct SweepOptions {
  uint64_t first_seed = 0;
  uint64_t seeds = 100;
  // Worker processes; 1 = in this process; 0 = one per core
  // (std::thread::hardware_concurrency, at least 1).
  int jobs = 1;
  // Stop after this many failures (0 = collect all). See "Which failures are
  // reported" above.
  int max_failures = 1;
  // A live progress line on stderr, updated in place (\r) a few times a
  // second and ended with a newline:
  //   "seeds 1234/10000  5678 seeds/s  failures 1"
  bool progress = false;
  // Only the seeds of this shard.
  Shard shard{};  // ({}: no -Wmissing-field-initializers with designated initializers)
  // jobs > 1: keep the workers' stdout/stderr (default: /dev/null).
  bool worker_output = false;
  // jobs > 1: what a worker learnt that the parent should know besides the
  // verdicts (the harness: probes first hit). After each seed a worker calls
  // worker_news(); a non-empty answer is sent to the parent, which hands it
  // to absorb_news() before that seed's verdict is counted. What a worker
  // learnt in a seed it crashed in (or after the parent killed it, when it
  // stops early) is lost. Unused with jobs == 1 (one process: nothing to tell).
  std::function<std::string()> worker_news = nullptr;
  std::function<void(const std::string&)> absorb_news = nullptr;
};

struct SweepResult {
  std::vector<uint64_t> failed_seeds;  // ascending
  // The failed seeds whose worker process died while running them
  // (ascending; a subset of failed_seeds; always empty with jobs == 1).
  std::vector<uint64_t> crashed_seeds;
  // Seeds whose run completed (passed or failed, crashes included).
  uint64_t seeds_run = 0;
  double seconds = 0;  // wall time of the sweep
  // max_failures was reached at a failure that is not the last seed of the
  // range and shard, so the sweep did not (necessarily) run the seeds after it.
  bool stopped_early = false;
};

// Runs `run_seed(seed)` (returns true if the seed FAILED) for every seed of
// the range and shard, as described at the top of this file. Throws
// std::invalid_argument for an invalid shard, range, jobs < 0 or
// max_failures < 0, and std::system_error if the worker processes cannot be
// started.
SweepResult run_sweep(const SweepOptions& options, const std::function<bool(uint64_t seed)>& run_seed);

// "10000 seeds in 0.42 s (23809 seeds/s), 1 failure"
std::string format_rate(const SweepResult& r);

}  // namespace twinloop::sim

#endif  // TWINLOOP_SIM_SWEEP_H_
