// twinloop/api/shield.h: shield (asyncio.shield, CPython 3.14).
//
//   Task<int> work = create_task(commit());
//   int v = co_await twinloop::shield(work);   // cancelling us leaves `work` running
//
// If the inner awaitable is already done, shield returns it as is. Otherwise
// it returns a new outer future that follows the inner one:
//  - cancelling the outer (e.g. cancelling the awaiting task) does not touch
//    the inner, which keeps running; the awaiter gets CancelledError;
//  - cancelling the inner cancels the outer;
//  - if the outer was cancelled and the inner later fails, the inner's
//    exception is reported once to the exception handler ("exception in
//    shielded future"); an inner result is dropped silently.
#ifndef TWINLOOP_API_SHIELD_H_
#define TWINLOOP_API_SHIELD_H_

#include <utility>

#include "api/awaitable.h"
#include "api/future.h"
#include "api/task.h"

namespace twinloop {

template <class A>
Future<awaitable_value_t<A>> shield(A&& aw) {
  using T = awaitable_value_t<A>;
  Future<T> inner = ensure_future(std::forward<A>(aw));
  if (inner.done()) return inner;
  Future<T> outer = create_future<T>(inner.get_loop());
  // Call graph: the inner is awaited by the task that shields it.
  internal::TaskBase* caller = inner.get_loop().current_task();
  const uint64_t caller_id = caller ? caller->id() : 0;
  if (caller_id) inner.state()->add_awaited_by(caller_id);
  uint64_t token = inner.state()->add_done_callback([outer, caller_id](internal::FutureBase& f) mutable {
    auto& in = static_cast<internal::ValueHolder<T>&>(f);
    if (caller_id) in.discard_awaited_by(caller_id);
    if (outer.cancelled()) {
      if (!in.cancelled()) {
        if (std::exception_ptr e = in.exception()) {
          ExceptionContext c = ExceptionContext::of("exception in shielded future", e);
          c.future = in.describe();
          in.loop().call_exception_handler(c);
        }
      }
      return;
    }
    if (in.cancelled()) {
      outer.cancel();
    } else if (std::exception_ptr e = in.exception()) {
      outer.set_exception(e);
    } else if constexpr (std::is_void_v<T>) {
      outer.set_result();
    } else {
      outer.set_result(in.value());
    }
  });
  (void)token;
  return outer;
}

}  // namespace twinloop

#endif  // TWINLOOP_API_SHIELD_H_
