// twinloop/api/twinloop.h: the whole public API in one include.
//
// twinloop brings Python asyncio's programming model to C++20. The same
// coroutine code runs on the real epoll loop (twinloop::real::run, in
// real/run.h) and under the deterministic simulated loop
// (twinloop::sim::run, in sim/simulation.h); user code includes only this
// header and picks a loop in main() or in its tests.
//
//   #include "twinloop/api/twinloop.h"
//
//   twinloop::Coro<int> work(int x) {
//     co_await twinloop::sleep(absl::Milliseconds(10));
//     co_return 2 * x;
//   }
//   twinloop::Coro<int> main_coro() {
//     auto [a, b] = co_await twinloop::gather(work(1), work(2));
//     co_return a + b;
//   }
//
// See docs/asyncio_mapping.md for every asyncio name and its twinloop form.
#ifndef TWINLOOP_API_TWINLOOP_H_
#define TWINLOOP_API_TWINLOOP_H_

#include "twinloop/api/as_completed.h"
#include "twinloop/api/awaitable.h"
#include "twinloop/api/buggify.h"
#include "twinloop/api/contextvars.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/errors.h"
#include "twinloop/api/event_loop.h"
#include "twinloop/api/executor.h"
#include "twinloop/api/future.h"
#include "twinloop/api/gather.h"
#include "twinloop/api/graph.h"
#include "twinloop/api/locks.h"
#include "twinloop/api/probes.h"
#include "twinloop/api/queues.h"
#include "twinloop/api/runner.h"
#include "twinloop/api/shield.h"
#include "twinloop/api/streams.h"
#include "twinloop/api/subprocess.h"
#include "twinloop/api/task.h"
#include "twinloop/api/task_group.h"
#include "twinloop/api/timeouts.h"
#include "twinloop/api/transports.h"
#include "twinloop/api/wait.h"

#endif  // TWINLOOP_API_TWINLOOP_H_
