// A tiny job pipeline written against twinloop's API: it runs unchanged on the
// real loop (app.cc) and under simulation (jobs_test.cc).
#ifndef CONSUMER_JOBS_H_
#define CONSUMER_JOBS_H_

#include <vector>

#include "twinloop/api/twinloop.h"

namespace consumer {

// Runs `jobs` workers at once, each sleeping `job_ms` * (its index + 1) ms and
// then returning its index squared; gives up on any job still running after
// `deadline_ms` (wait_for cancels it) and leaves -1 in its place.
twinloop::Coro<std::vector<int>> run_jobs(int jobs, int job_ms, int deadline_ms);

}  // namespace consumer

#endif  // CONSUMER_JOBS_H_
