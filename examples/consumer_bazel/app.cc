// The project's program: the job pipeline on twinloop's real epoll loop.
#include <cstdio>
#include <vector>

#include "jobs.h"
#include "twinloop/real/run.h"

int main() {
  // Three quick jobs finish well within the 200 ms deadline (even on a loaded
  // machine); the 10 s one is cancelled at the deadline.
  std::vector<int> results = twinloop::real::run(consumer::run_jobs({1, 2, 3, 10'000}, 200));
  for (int r : results) std::printf("%d ", r);
  std::printf("\n");
  return results == std::vector<int>{0, 1, 4, -1} ? 0 : 1;
}
