#include "jobs.h"

#include <vector>

#include "absl/time/time.h"
#include "api/errors.h"  // the project's own (api/errors.h), not twinloop's
#include "twinloop/api/twinloop.h"

namespace consumer {
namespace {

twinloop::Coro<int> job(int index, int duration_ms) {
  if (duration_ms < 0) throw JobError("negative job time");
  co_await twinloop::sleep(absl::Milliseconds(duration_ms));
  co_return index * index;
}

twinloop::Coro<int> job_with_deadline(int index, int duration_ms, int deadline_ms) {
  try {
    co_return co_await twinloop::wait_for(job(index, duration_ms), absl::Milliseconds(deadline_ms));
  } catch (const twinloop::TimeoutError&) {
    co_return -1;
  }
}

}  // namespace

twinloop::Coro<std::vector<int>> run_jobs(std::vector<int> durations_ms, int deadline_ms) {
  std::vector<twinloop::Task<int>> tasks;
  for (int i = 0; i < static_cast<int>(durations_ms.size()); ++i) {
    tasks.push_back(twinloop::create_task(job_with_deadline(i, durations_ms[i], deadline_ms)));
  }
  std::vector<int> results;
  for (twinloop::Task<int>& t : tasks) results.push_back(co_await t);
  co_return results;
}

}  // namespace consumer
