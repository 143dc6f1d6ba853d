// twinloop/api/task_group.h: TaskGroup (asyncio.TaskGroup, CPython 3.14
// Lib/asyncio/taskgroups.py).
//
// asyncio's `async with TaskGroup() as tg:` becomes
//
//   co_await twinloop::TaskGroup().run([&](twinloop::TaskGroup& tg) -> twinloop::Coro<void> {
//     tg.create_task(fetch(1));
//     tg.create_task(fetch(2));
//     co_return;
//   });   // returns when every child has finished
//
// Semantics, all asyncio's:
//  - The first child that fails (with anything but CancelledError) aborts the
//    group: every other child is cancelled, and so is the body's task, once.
//  - Leaving the block waits for every child, even under repeated cancels of
//    the parent task. Children may still be added while the block waits.
//  - Errors (children's, and the body's own unless it is a cancellation) are
//    raised together as ExceptionGroup("unhandled errors in a TaskGroup").
//  - If the group itself cancelled the parent and no other cancel request is
//    pending (uncancel() reaches 0), that CancelledError is swallowed. An
//    external cancel with no errors propagates CancelledError; with errors
//    the ExceptionGroup wins, and the parent's cancel count stays the same.
//  - create_task raises std::runtime_error (closing the coroutine unrun,
//    without a "never awaited" report, as asyncio 3.14's coro.close())
//    before the group is entered, after it finished, or while it aborts.
// Children are cancelled in creation order (asyncio iterates a set).
#ifndef TWINLOOP_API_TASK_GROUP_H_
#define TWINLOOP_API_TASK_GROUP_H_

#include <exception>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "twinloop/api/awaitable.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/future.h"
#include "twinloop/api/task.h"

namespace twinloop {

namespace internal {

class TaskGroupState final : public RefCounted {
 public:
  void enter();
  // Runs asyncio's __aexit__ logic; throws what leaving the block raises.
  Coro<void> exit(std::exception_ptr error);
  // Checks create_task is allowed now.
  void check_can_create() const;
  void adopt(FutureBase& task);

 private:
  void abort();
  void on_task_done(FutureBase& task);

  bool entered_ = false;
  bool exiting_ = false;
  bool aborting_ = false;
  bool parent_cancel_requested_ = false;
  TaskBase* parent_ = nullptr;
  std::vector<Ref<FutureBase>> tasks_;
  std::vector<std::exception_ptr> errors_;
  std::optional<Future<void>> on_completed_;
};

}  // namespace internal

// A handle (like Future): copies share one group.
class TaskGroup {
 public:
  TaskGroup() : state_(internal::make_ref<internal::TaskGroupState>()) {}

  // Starts `coro` as a child task of the group. (Two overloads, no
  // defaulted TaskOptions: see twinloop::create_task.)
  template <class T>
  Task<T> create_task(Coro<T> coro) {
    check_can_create(coro);
    Task<T> t = twinloop::create_task(std::move(coro));
    state_->adopt(*t.state());
    return t;
  }
  template <class T>
  Task<T> create_task(Coro<T> coro, TaskOptions options) {
    check_can_create(coro);
    Task<T> t = twinloop::create_task(std::move(coro), std::move(options));
    state_->adopt(*t.state());
    return t;
  }

  template <CoroConvertible A>
  auto create_task(A a) {
    return create_task(std::move(a).as_coro());
  }
  template <CoroConvertible A>
  auto create_task(A a, TaskOptions options) {
    return create_task(std::move(a).as_coro(), std::move(options));
  }

  // Runs `body(tg)` (returning Coro<R>) as the block of `async with`, where
  // `tg` is a TaskGroup handle sharing this group's state. The returned Coro
  // owns its own reference to the group, so the TaskGroup may be gone before
  // it is awaited (`auto c = TaskGroup().run(body); co_await c;`).
  template <class Body>
  auto run(Body body) -> Coro<awaitable_value_t<std::invoke_result_t<Body&, TaskGroup&>>> {
    return run_block(*this, std::move(body));
  }

 private:
  // asyncio 3.14 closes a coroutine it refuses (TaskGroup.create_task:
  // coro.close()), so it is not reported as never awaited.
  template <class T>
  void check_can_create(Coro<T>& coro) {
    try {
      state_->check_can_create();
    } catch (...) {
      coro.close();
      throw;
    }
  }

  // Static, taking the group by value: a member coroutine would hold only
  // `this`, which may dangle by the time the coroutine starts.
  template <class Body>
  static auto run_block(TaskGroup self, Body body)
      -> Coro<awaitable_value_t<std::invoke_result_t<Body&, TaskGroup&>>> {
    using R = awaitable_value_t<std::invoke_result_t<Body&, TaskGroup&>>;
    self.state_->enter();
    std::exception_ptr error;
    std::optional<internal::Stored<R>> value;
    try {
      if constexpr (std::is_void_v<R>) {
        co_await body(self);
        value.emplace();
      } else {
        value.emplace(co_await body(self));
      }
    } catch (...) {
      error = std::current_exception();
    }
    co_await self.state_->exit(error);
    if (error) std::rethrow_exception(error);
    if constexpr (!std::is_void_v<R>) co_return std::move(*value);
  }

  internal::Ref<internal::TaskGroupState> state_;
};

// Shorthand: co_await task_group([&](TaskGroup& tg) -> Coro<void> { ... });
// The group lives in this coroutine's frame.
template <class Body>
auto task_group(Body body) -> Coro<awaitable_value_t<std::invoke_result_t<Body&, TaskGroup&>>> {
  TaskGroup tg;
  co_return co_await tg.run(std::move(body));
}

}  // namespace twinloop

#endif  // TWINLOOP_API_TASK_GROUP_H_
