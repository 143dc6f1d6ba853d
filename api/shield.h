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
//  - if the outer is cancelled while the inner is still pending, the inner
//    gets one exception logger (asyncio's module-level _log_on_exception,
//    one per inner however many shields cancel): if the inner later fails,
//    its exception is marked retrieved and reported once to the exception
//    handler ("<type> exception in shielded future", <type> the C++
//    exception's type name), not also as "never retrieved"; an inner result
//    or cancellation is dropped silently.
#ifndef TWINLOOP_API_SHIELD_H_
#define TWINLOOP_API_SHIELD_H_

#include <cstdint>
#include <exception>
#include <type_traits>
#include <utility>

#include "twinloop/api/awaitable.h"
#include "twinloop/api/future.h"
#include "twinloop/api/internal/ref.h"
#include "twinloop/api/task.h"
#include "twinloop/api/internal/loop_access.h"

namespace twinloop {

namespace internal {

// What a shield's outer callback knows of the inner: the inner while the
// shield's callback on it is registered, else null. Not a strong reference:
// the inner's callback holds the outer, so an outer holding the inner would
// make a cycle that keeps both (and the loop) alive when neither finishes.
struct ShieldLink final : RefCounted {
  FutureBase* inner = nullptr;

  // Lives in the inner's callback; clears `inner` when that callback goes
  // (it ran, or the inner was destroyed).
  class Guard {
   public:
    explicit Guard(Ref<ShieldLink> link) : link_(std::move(link)) {}
    Guard(Guard&&) noexcept = default;
    Guard& operator=(Guard&&) = delete;
    ~Guard() {
      if (link_) link_->inner = nullptr;
    }

   private:
    Ref<ShieldLink> link_;
  };
};

}  // namespace internal

// CPython 3.14 Lib/asyncio/tasks.py shield, _inner_done_callback,
// _outer_done_callback and _log_on_exception.
template <class A>
Future<awaitable_value_t<A>> shield(A&& aw) {
  using T = awaitable_value_t<A>;
  Future<T> inner = ensure_future(std::forward<A>(aw));
  if (inner.done()) return inner;
  Future<T> outer = create_future<T>(inner.get_loop());
  // Call graph: the inner is awaited by the task that shields it.
  internal::TaskBase* caller = internal::LoopAccess::current_task(inner.get_loop());
  const uint64_t caller_id = caller ? caller->id() : 0;
  if (caller_id) inner.state()->add_awaited_by(caller_id);
  auto link = internal::make_ref<internal::ShieldLink>();
  link->inner = inner.state();
  inner.state()->add_done_callback(
      [outer, caller_id, guard = internal::ShieldLink::Guard(link)](internal::FutureBase& f) mutable {
        auto& in = static_cast<internal::ValueHolder<T>&>(f);
        if (caller_id) in.discard_awaited_by(caller_id);  // asyncio's _clear_awaited_by_callback
        if (outer.cancelled()) return;  // the inner's logger, if any, reports
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
  // asyncio's _outer_done_callback: an outer done (cancelled) before the
  // inner leaves the inner's exception to the one shared logger. (The inner
  // callback above stays registered: once the outer is cancelled it only
  // clears the call-graph edge, as asyncio's separate callback does.)
  outer.state()->add_done_callback([link](internal::FutureBase&) {
    if (internal::FutureBase* in = link->inner; in && !in->done()) in->add_shield_logger();
  });
  return outer;
}

}  // namespace twinloop

#endif  // TWINLOOP_API_SHIELD_H_
