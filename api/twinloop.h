// twinloop/api/twinloop.h: the whole public API in one include.
//
// twinloop brings Python asyncio's programming model to C++20. The same
// coroutine code runs on the real epoll loop (twinloop::real::run, in
// real/run.h) and under the deterministic simulated loop
// (twinloop::sim::run, in sim/simulation.h); user code includes only this
// header and picks a loop in main() or in its tests.
//
//   #include "api/twinloop.h"
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

#include "api/as_completed.h"
#include "api/awaitable.h"
#include "api/buggify.h"
#include "api/coro.h"
#include "api/errors.h"
#include "api/event_loop.h"
#include "api/executor.h"
#include "api/future.h"
#include "api/gather.h"
#include "api/graph.h"
#include "api/locks.h"
#include "api/queues.h"
#include "api/shield.h"
#include "api/task.h"
#include "api/task_group.h"
#include "api/timeouts.h"
#include "api/wait.h"

#endif  // TWINLOOP_API_TWINLOOP_H_
