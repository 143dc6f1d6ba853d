// twinloop/api/gather.h: gather (asyncio.gather, CPython 3.14
// Lib/asyncio/tasks.py).
//
//   auto [a, b] = co_await twinloop::gather(fetch(1), fetch(2));   // tuple
//   std::vector<int> all = co_await twinloop::gather(std::move(tasks));
//   auto outcomes = co_await twinloop::gather(twinloop::return_exceptions,
//                                             fetch(1), fetch(2));
//   if (std::get<0>(outcomes).ok()) ...
//
// Arguments are Coro<T> (wrapped in tasks at once), Task<T> or Future<T>.
// gather returns a Future right away; results come in argument order (a
// void child gives std::monostate). Semantics, all asyncio's:
//  - Without return_exceptions, the first child error (or cancellation, as
//    CancelledError) finishes the outer future with that error; the other
//    children keep running (they are not cancelled).
//  - With return_exceptions, errors and cancellations are results
//    (Outcome<T> holding the exception).
//  - Cancelling the outer future (for instance by cancelling the task that
//    awaits it) cancels every unfinished child; it returns true only if some
//    child's cancel did. The outer then ends with CancelledError even with
//    return_exceptions (bpo-32684). Once all children are done, cancel
//    returns false.
//  - The same future given twice is awaited once and its result repeated.
//  - gather() with no argument (or an empty vector) is already done.
#ifndef TWINLOOP_API_GATHER_H_
#define TWINLOOP_API_GATHER_H_

#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "twinloop/api/awaitable.h"
#include "twinloop/api/future.h"
#include "twinloop/api/internal/loop_access.h"

namespace twinloop {

// The tag that selects gather's return_exceptions=True form.
struct ReturnExceptions {};
inline constexpr ReturnExceptions return_exceptions{};

// A child's result in the return_exceptions form: a value or an exception
// (CancelledError for a cancelled child).
template <class T>
class Outcome {
 public:
  Outcome() = default;
  static Outcome value_of(internal::Stored<T> v) {
    Outcome o;
    o.value_.emplace(std::move(v));
    return o;
  }
  static Outcome error_of(std::exception_ptr e) {
    Outcome o;
    o.error_ = std::move(e);
    return o;
  }
  bool ok() const { return !error_; }
  // The value; rethrows the exception if there is one.
  const internal::Stored<T>& value() const {
    if (error_) std::rethrow_exception(error_);
    return *value_;
  }
  const std::exception_ptr& exception() const { return error_; }

 private:
  std::optional<internal::Stored<T>> value_;
  std::exception_ptr error_;
};

namespace internal {

// The outer future of a gather, holding the children.
template <class R>
class GatherState final : public ValueHolder<R> {
 public:
  GatherState(EventLoop& loop, std::vector<Ref<FutureBase>> children, bool return_exceptions,
              std::function<R(const std::vector<Ref<FutureBase>>&)> collect)
      : ValueHolder<R>(loop),
        children_(std::move(children)),
        return_exceptions_(return_exceptions),
        collect_(std::move(collect)) {}

  // Registers the done callbacks; called once the state is owned by a Ref.
  // `distinct`: the caller knows the children are distinct (each a task
  // made from a coroutine just now), so the duplicate check is skipped.
  void start(bool distinct) {
    // Duplicates are awaited once (asyncio maps each future once). The set
    // is only asked for membership, never iterated: the order stays the
    // input order.
    std::vector<FutureBase*> unique;
    unique.reserve(children_.size());
    if (distinct) {
      for (auto& c : children_) unique.push_back(c.get());
    } else {
      absl::flat_hash_set<const FutureBase*> seen;
      for (auto& c : children_) {
        if (seen.insert(c.get()).second) unique.push_back(c.get());
      }
    }
    total_ = unique.size();
    // Call graph: the children are awaited by the task that called gather
    // (each link reports caller_id_ as its awaiting task).
    if (TaskBase* caller = LoopAccess::current_task(this->loop())) caller_id_ = caller->id();
    if (total_ == 0) {
      this->set_value(collect_(children_));
      return;
    }
    // One link per child, in one array: a child's completion runs
    // child_done one iteration later, as asyncio's done callbacks. The links
    // do not keep the gather alive while they wait: it lives as long as
    // somebody holds (or awaits) its outer future, and a child that never
    // finishes does not keep it, and so itself, alive.
    links_ = std::vector<ChildLink>(total_);
    for (size_t i = 0; i < total_; ++i) {
      links_[i].gather = this;
      links_[i].child = unique[i];
      unique[i]->add_link(&links_[i]);
    }
  }

  ~GatherState() override {
    // Unfinished children forget this gather; an exception they raise later
    // counts as retrieved, as asyncio's gather callback marks it.
    for (ChildLink& l : links_) {
      if (!l.child->done()) {
        l.child->remove_link(&l);
        l.child->mark_retrieved();
      }
    }
  }

  bool cancel(std::string msg) override {
    if (this->done()) return false;
    bool any = false;
    for (auto& c : children_) {
      if (c->cancel(msg)) any = true;
    }
    if (any) cancel_requested_ = true;
    return any;
  }

 private:
  struct ChildLink final : FutureLink {
    GatherState* gather = nullptr;
    FutureBase* child = nullptr;
    void on_done(FutureBase& f) override { gather->child_done(f); }
    void hold() override { gather->add_ref(); }
    void unhold() override { gather->release(); }
    uint64_t awaiting_task_id() const override { return gather->caller_id_; }
  };

  void child_done(FutureBase& f) {
    ++finished_;
    if (this->done()) {
      if (!f.cancelled()) f.exception();  // mark it retrieved
      return;
    }
    if (!return_exceptions_) {
      if (f.cancelled()) {
        this->set_exception(f.make_cancelled_error());
        return;
      }
      if (std::exception_ptr e = f.exception()) {
        this->set_exception(e);
        return;
      }
    }
    if (finished_ == total_) {
      if (cancel_requested_) {
        // Propagate the cancellation whatever return_exceptions says.
        this->set_exception(f.make_cancelled_error());
        return;
      }
      this->set_value(collect_(children_));
    }
  }

  std::vector<Ref<FutureBase>> children_;
  std::vector<ChildLink> links_;  // never resized after start(): links stay put
  bool return_exceptions_;
  std::function<R(const std::vector<Ref<FutureBase>>&)> collect_;
  size_t total_ = 0;
  size_t finished_ = 0;
  uint64_t caller_id_ = 0;
  bool cancel_requested_ = false;
};

template <class T>
Stored<T> value_of(FutureBase& f) {
  return static_cast<ValueHolder<T>&>(f).value();
}

template <class T>
Outcome<T> outcome_of(FutureBase& f) {
  if (f.cancelled()) return Outcome<T>::error_of(f.make_cancelled_error());
  if (std::exception_ptr e = f.exception()) return Outcome<T>::error_of(e);
  return Outcome<T>::value_of(value_of<T>(f));
}

// ensure_future(A) makes a new task (so a vector of them has no duplicates).
template <class A>
inline constexpr bool makes_new_task = std::is_same_v<std::remove_cvref_t<A>, Coro<awaitable_value_t<A>>> ||
                                       CoroConvertible<std::remove_cvref_t<A>>;

template <class R>
Future<R> start_gather(std::vector<Ref<FutureBase>> children, bool return_exceptions,
                       std::function<R(const std::vector<Ref<FutureBase>>&)> collect, bool distinct = false) {
  auto state = make_ref<GatherState<R>>(get_running_loop(), std::move(children), return_exceptions,
                                        std::move(collect));
  state->start(distinct);
  return Future<R>(Ref<ValueHolder<R>>(state));
}

}  // namespace internal

// gather(a, b, ...) -> Future<std::tuple<T_a, T_b, ...>>
template <class... A>
Future<std::tuple<internal::Stored<awaitable_value_t<A>>...>> gather(A&&... aws) {
  using R = std::tuple<internal::Stored<awaitable_value_t<A>>...>;
  std::vector<internal::Ref<internal::FutureBase>> children{
      internal::Ref<internal::FutureBase>(ensure_future(std::forward<A>(aws)).state())...};
  return internal::start_gather<R>(std::move(children), false,
                                   [](const std::vector<internal::Ref<internal::FutureBase>>& c) {
                                     return [&]<size_t... I>(std::index_sequence<I...>) {
                                       return R{internal::value_of<awaitable_value_t<A>>(*c[I])...};
                                     }(std::index_sequence_for<A...>{});
                                   });
}

// gather(return_exceptions, a, b, ...) -> Future<std::tuple<Outcome<T_a>, ...>>
template <class... A>
Future<std::tuple<Outcome<awaitable_value_t<A>>...>> gather(ReturnExceptions, A&&... aws) {
  using R = std::tuple<Outcome<awaitable_value_t<A>>...>;
  std::vector<internal::Ref<internal::FutureBase>> children{
      internal::Ref<internal::FutureBase>(ensure_future(std::forward<A>(aws)).state())...};
  return internal::start_gather<R>(std::move(children), true,
                                   [](const std::vector<internal::Ref<internal::FutureBase>>& c) {
                                     return [&]<size_t... I>(std::index_sequence<I...>) {
                                       return R{internal::outcome_of<awaitable_value_t<A>>(*c[I])...};
                                     }(std::index_sequence_for<A...>{});
                                   });
}

// gather(vector of Coro<T> / Task<T> / Future<T>) -> Future<std::vector<T>>
template <class A>
Future<std::vector<internal::Stored<awaitable_value_t<A>>>> gather(std::vector<A> aws) {
  using T = awaitable_value_t<A>;
  using R = std::vector<internal::Stored<T>>;
  std::vector<internal::Ref<internal::FutureBase>> children;
  children.reserve(aws.size());
  for (auto& a : aws) children.emplace_back(ensure_future(std::move(a)).state());
  return internal::start_gather<R>(std::move(children), false,
                                   [](const std::vector<internal::Ref<internal::FutureBase>>& c) {
                                     R out;
                                     out.reserve(c.size());
                                     for (auto& f : c) out.push_back(internal::value_of<T>(*f));
                                     return out;
                                   },
                                   internal::makes_new_task<A>);
}

// gather(return_exceptions, vector) -> Future<std::vector<Outcome<T>>>
template <class A>
Future<std::vector<Outcome<awaitable_value_t<A>>>> gather(ReturnExceptions, std::vector<A> aws) {
  using T = awaitable_value_t<A>;
  using R = std::vector<Outcome<T>>;
  std::vector<internal::Ref<internal::FutureBase>> children;
  children.reserve(aws.size());
  for (auto& a : aws) children.emplace_back(ensure_future(std::move(a)).state());
  return internal::start_gather<R>(std::move(children), true,
                                   [](const std::vector<internal::Ref<internal::FutureBase>>& c) {
                                     R out;
                                     out.reserve(c.size());
                                     for (auto& f : c) out.push_back(internal::outcome_of<T>(*f));
                                     return out;
                                   },
                                   internal::makes_new_task<A>);
}

}  // namespace twinloop

#endif  // TWINLOOP_API_GATHER_H_
