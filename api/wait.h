// twinloop/api/wait.h: wait (asyncio.wait, CPython 3.14 Lib/asyncio/tasks.py).
//
//   auto [done, pending] = co_await twinloop::wait(tasks,
//       {.timeout = absl::Seconds(1), .return_when = twinloop::FIRST_COMPLETED});
//
// Waits for Tasks/Futures (a vector of Task<T> or Future<T>; a Coro is
// rejected at compile time, as asyncio raises TypeError) and returns which
// are done and which are pending, each in input order (asyncio returns sets;
// we keep a deterministic order). Duplicates are counted once. wait never
// raises TimeoutError and never cancels anything: on timeout, unfinished
// futures are in `pending`; cancelling the awaiting task leaves the children
// running. The sets are computed when the waiter resumes, so
// FIRST_COMPLETED may report several done futures. FIRST_EXCEPTION ignores
// cancelled futures. An empty input raises std::invalid_argument.
#ifndef TWINLOOP_API_WAIT_H_
#define TWINLOOP_API_WAIT_H_

#include <stdexcept>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/future.h"
#include "twinloop/api/task.h"

namespace twinloop {

enum class ReturnWhen { FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED };
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::FIRST_COMPLETED;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::FIRST_EXCEPTION;
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::ALL_COMPLETED;

struct WaitOptions {
  absl::Duration timeout = absl::InfiniteDuration();  // None
  ReturnWhen return_when = ALL_COMPLETED;
};

template <class F>
struct WaitResult {
  std::vector<F> done;
  std::vector<F> pending;
};

namespace internal {
// Waits until `fs` satisfy `return_when` or the timeout passes.
Coro<void> wait_until(std::vector<Ref<FutureBase>> fs, absl::Duration timeout, ReturnWhen return_when);
}  // namespace internal

template <class F>
Coro<WaitResult<F>> wait(std::vector<F> fs, WaitOptions options = {}) {
  std::vector<F> unique;  // input order; the set only answers membership
  absl::flat_hash_set<const void*> seen;
  for (F& f : fs) {
    if (seen.insert(f.state()).second) unique.push_back(f);
  }
  if (unique.empty()) throw std::invalid_argument("Set of Tasks/Futures is empty.");
  std::vector<internal::Ref<internal::FutureBase>> refs;
  for (F& f : unique) refs.emplace_back(f.state());
  co_await internal::wait_until(std::move(refs), options.timeout, options.return_when);
  WaitResult<F> r;
  for (F& f : unique) (f.done() ? r.done : r.pending).push_back(f);
  co_return r;
}

}  // namespace twinloop

#endif  // TWINLOOP_API_WAIT_H_
