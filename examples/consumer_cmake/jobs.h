// A tiny job pipeline written against twinloop's API: it runs unchanged on the
// real loop (app.cc) and under simulation (jobs_test.cc).
#ifndef CONSUMER_JOBS_H_
#define CONSUMER_JOBS_H_

#include <vector>

#include "twinloop/api/twinloop.h"

namespace consumer {

// Runs one job per entry of `durations_ms` at once, job i sleeping
// durations_ms[i] ms and then returning i * i; gives up on any job still
// running after `deadline_ms` (wait_for cancels it) and leaves -1 in its place.
twinloop::Coro<std::vector<int>> run_jobs(std::vector<int> durations_ms, int deadline_ms);

}  // namespace consumer

#endif  // CONSUMER_JOBS_H_
