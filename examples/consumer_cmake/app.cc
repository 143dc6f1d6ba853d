// The project's program: the job pipeline on twinloop's real epoll loop.
#include <cstdio>
#include <vector>

#include "jobs.h"
#include "twinloop/real/run.h"

int main() {
  std::vector<int> results = twinloop::real::run(consumer::run_jobs(4, 5, 17));
  for (int r : results) std::printf("%d ", r);
  std::printf("\n");
  // Jobs 0-2 finish within 17 ms (5, 10, 15 ms), job 3 (20 ms) times out.
  return results == std::vector<int>{0, 1, 4, -1} ? 0 : 1;
}
