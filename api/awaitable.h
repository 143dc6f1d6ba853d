// twinloop/api/awaitable.h: ensure_future, the common conversion used by
// gather, wait, wait_for, shield and as_completed.
//
// asyncio's ensure_future passes a Future (or Task) through and wraps a
// coroutine in a new task. Here: a Future<T> or Task<T> is passed through,
// a Coro<T> becomes create_task(coro). The result is always a Future<T>.
#ifndef TWINLOOP_API_AWAITABLE_H_
#define TWINLOOP_API_AWAITABLE_H_

#include <type_traits>
#include <utility>

#include "twinloop/api/coro.h"
#include "twinloop/api/future.h"
#include "twinloop/api/internal/loop_access.h"
#include "twinloop/api/task.h"

namespace twinloop {

namespace internal {
template <class A>
struct AwaitableTraits;
template <class T>
struct AwaitableTraits<Coro<T>> {
  using value_type = T;
};
template <class T>
struct AwaitableTraits<Future<T>> {
  using value_type = T;
};
template <class T>
struct AwaitableTraits<Task<T>> {
  using value_type = T;
};
template <class A>
  requires CoroConvertible<A>
struct AwaitableTraits<A> {
  using value_type = typename decltype(std::declval<A&&>().as_coro())::value_type;
};
}  // namespace internal

// The result type of awaiting an A (Coro<T>, Future<T> or Task<T>).
template <class A>
using awaitable_value_t = typename internal::AwaitableTraits<std::remove_cvref_t<A>>::value_type;

template <class T>
Future<T> ensure_future(Future<T> f) {
  return f;
}
template <class T>
Future<T> ensure_future(Task<T> t) {
  return t;
}
template <class T>
Future<T> ensure_future(Coro<T> c) {
  return create_task(std::move(c));
}
template <CoroConvertible A>
auto ensure_future(A a) {
  return ensure_future(std::move(a).as_coro());
}

template <class A>
auto EventLoop::run_until_complete(A aw) {
  using T = awaitable_value_t<A>;
  Future<T> f = [&]() -> Future<T> {
    if constexpr (CoroConvertible<A>) {
      return create_task(std::move(aw).as_coro());
    } else if constexpr (std::is_same_v<A, Coro<T>>) {
      return create_task(std::move(aw));
    } else {
      return aw;
    }
  }();
  internal::LoopAccess::run_until_done(*this, *f.state());
  f.state()->check_result();
  if constexpr (!std::is_void_v<T>) return T(std::move(f.state()->value()));
}

}  // namespace twinloop

#endif  // TWINLOOP_API_AWAITABLE_H_
