// twinloop/bench/subprocess_workload.h: the anchors' workload 5 (subprocess
// spawn): start /bin/true and wait for it, K times in a row, through
// create_subprocess_exec on the real loop (../shared/bench/cpp/raw_subproc.cpp
// is the limit reference: posix_spawn + pidfd + epoll + waitpid).
#ifndef TWINLOOP_BENCH_SUBPROCESS_WORKLOAD_H_
#define TWINLOOP_BENCH_SUBPROCESS_WORKLOAD_H_

namespace twinloop_bench {

struct SubprocResult {
  long spawns = 0;
  double wall_s = 0;
  long failures = 0;  // children that did not exit 0
};

// Times only the K spawn + wait rounds (not loop creation).
SubprocResult subprocess_spawns(long k);

}  // namespace twinloop_bench

#endif  // TWINLOOP_BENCH_SUBPROCESS_WORKLOAD_H_
