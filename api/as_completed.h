// twinloop/api/as_completed.h: as_completed (asyncio.as_completed, CPython
// 3.14 Lib/asyncio/tasks.py).
//
//   for (twinloop::Coro<int> next : twinloop::as_completed(std::move(tasks))) {
//     int v = co_await next;       // the earliest completion not yet taken
//   }
//   // A few awaitables of one result type, without a vector:
//   for (twinloop::Coro<int> next : twinloop::as_completed(fetch(1), fetch(2))) ...
//   // asyncio 3.13's `async for` form, yielding the original tasks:
//   auto it = twinloop::as_completed(tasks, absl::Seconds(1));
//   while (!it.empty()) { Future<int> f = co_await it.next_future(); ... }
//
// Inputs (Coro<T>, Task<T> or Future<T>; coroutines become tasks at once) are
// de-duplicated. Each iteration takes the next completion in completion
// order, whichever iteration is awaited first. After the timeout, every
// remaining iteration raises TimeoutError; nothing is cancelled. Iterating
// past the end raises std::out_of_range (Python's StopIteration).
// Each Coro handed out (next(), next_future(), *it) owns a reference to the
// iteration's state, so it may be awaited after the AsCompleted is gone, as
// in Python's `futs = list(as_completed(fs))`.
#ifndef TWINLOOP_API_AS_COMPLETED_H_
#define TWINLOOP_API_AS_COMPLETED_H_

#include <deque>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/time/time.h"
#include "twinloop/api/awaitable.h"
#include "twinloop/api/coro.h"
#include "twinloop/api/future.h"

namespace twinloop {

namespace internal {

template <class T>
class AsCompletedState final : public RefCounted {
 public:
  void start(std::vector<Future<T>> fs, absl::Duration timeout) {
    absl::flat_hash_set<const void*> seen;  // membership only: order is input order
    for (auto& f : fs) {
      if (seen.insert(f.state()).second) slots_.push_back(Slot{f, 0, true});
    }
    left_ = pending_ = slots_.size();
    // Callbacks and the timer hold this state weakly (it lives while the
    // AsCompleted or an iteration in progress holds it), so a future that
    // never finishes cannot keep it alive through a cycle.
    for (size_t i = 0; i < slots_.size(); ++i) {
      slots_[i].token = slots_[i].future.state()->add_done_callback([weak = weak_, i](FutureBase&) {
        if (AsCompletedState* self = weak->ptr) self->on_completion(i);
      });
    }
    if (pending_ > 0 && timeout != absl::InfiniteDuration()) {
      timer_ = get_running_loop().call_later(timeout, [weak = weak_] {
        if (AsCompletedState* self = weak->ptr) self->on_timeout();
      });
    }
  }

  ~AsCompletedState() override {
    weak_->ptr = nullptr;
    timer_.cancel();
  }

  size_t left() const { return left_; }

  // The next completed future, or a null one after the timeout. The
  // coroutine holds its own reference to this state from its creation, so it
  // stays valid after the AsCompleted that made it is gone (Python's
  // `futs = list(as_completed(fs))`, then awaiting each).
  Coro<Future<T>> take() {
    if (left_ == 0) throw std::out_of_range("as_completed: no more futures");
    --left_;
    return wait_one(Ref<AsCompletedState>(this));
  }

 private:
  // Static, taking the state by value: a member coroutine would hold only
  // `this` until its first step.
  static Coro<Future<T>> wait_one(Ref<AsCompletedState> self) {
    while (self->done_.empty()) {
      Future<void> w = create_future<void>();
      self->getters_.push_back(w);
      try {
        co_await w;
      } catch (...) {
        // A woken getter that is cancelled passes the wake-up on.
        if (w.done() && !w.cancelled()) self->wake_one();
        throw;
      }
    }
    Future<T> f = self->done_.front();
    self->done_.pop_front();
    if (!f) throw TimeoutError();  // sentinel from on_timeout
    co_return f;
  }

  void wake_one() {
    while (!getters_.empty()) {
      Future<void> g = getters_.front();
      getters_.pop_front();
      if (!g.done()) {
        g.set_result();
        return;
      }
    }
  }

  void on_completion(size_t i) {
    if (!slots_[i].pending) return;  // the timeout came first
    slots_[i].pending = false;
    --pending_;
    done_.push_back(slots_[i].future);
    wake_one();
    if (pending_ == 0) timer_.cancel();
  }

  void on_timeout() {
    timer_ = TimerHandle();  // fired: drop it, or it would keep us alive
    for (Slot& s : slots_) {
      if (!s.pending) continue;
      s.pending = false;
      s.future.state()->remove_done_callback(s.token);
      done_.push_back(Future<T>());  // sentinel: "timed out"
      wake_one();
    }
    pending_ = 0;
  }

  struct Slot {
    Future<T> future;
    uint64_t token;
    bool pending;
  };
  std::vector<Slot> slots_;
  Ref<WeakBox<AsCompletedState>> weak_ = make_ref<WeakBox<AsCompletedState>>(this);
  size_t pending_ = 0;
  std::deque<Future<T>> done_;
  std::deque<Future<void>> getters_;
  TimerHandle timer_;
  size_t left_ = 0;
};

}  // namespace internal

template <class T>
class AsCompleted {
 public:
  AsCompleted(std::vector<Future<T>> fs, absl::Duration timeout)
      : state_(internal::make_ref<internal::AsCompletedState<T>>()) {
    state_->start(std::move(fs), timeout);
  }

  // Iterations left.
  size_t size() const { return state_->left(); }
  bool empty() const { return size() == 0; }

  // The plain-iterator form: the result of the next completion.
  Coro<T> next() { return resolve(state_->take()); }
  // The async-iterator form: the next completed future itself.
  Coro<Future<T>> next_future() { return state_->take(); }

  class iterator {
   public:
    explicit iterator(AsCompleted* owner) : owner_(owner) {}
    Coro<T> operator*() { return owner_->next(); }
    iterator& operator++() { return *this; }
    bool operator!=(const iterator&) const { return owner_ && !owner_->empty(); }

   private:
    AsCompleted* owner_;
  };
  iterator begin() { return iterator(this); }
  iterator end() { return iterator(nullptr); }

 private:
  static Coro<T> resolve(Coro<Future<T>> next) {
    Future<T> f = co_await std::move(next);
    if constexpr (std::is_void_v<T>) {
      f.result();
    } else {
      co_return f.result();
    }
  }
  internal::Ref<internal::AsCompletedState<T>> state_;
};

namespace internal {
template <class A>
concept AsCompletedInput = requires { typename awaitable_value_t<A>; };
}  // namespace internal

// as_completed(a, b, ...): the same over a few awaitables (Coro<T>, Task<T>,
// Future<T>, or what converts to a Coro<T>), which must all have the same
// result type T; coroutines become tasks in argument order. No timeout:
// pass a std::vector for one.
template <internal::AsCompletedInput A, internal::AsCompletedInput... Rest>
AsCompleted<awaitable_value_t<A>> as_completed(A first, Rest... rest) {
  using T = awaitable_value_t<A>;
  static_assert((std::is_same_v<awaitable_value_t<Rest>, T> && ...),
                "as_completed(a, b, ...): every awaitable must have the same result type; "
                "for mixed types use gather, or make them agree (e.g. a Coro<std::variant<...>> each)");
  std::vector<Future<T>> fs;
  fs.reserve(1 + sizeof...(Rest));
  fs.push_back(ensure_future(std::move(first)));
  (fs.push_back(ensure_future(std::move(rest))), ...);
  return AsCompleted<T>(std::move(fs), absl::InfiniteDuration());
}

template <class A>
AsCompleted<awaitable_value_t<A>> as_completed(std::vector<A> aws,
                                               absl::Duration timeout = absl::InfiniteDuration()) {
  using T = awaitable_value_t<A>;
  std::vector<Future<T>> fs;
  fs.reserve(aws.size());
  for (auto& a : aws) fs.push_back(ensure_future(std::move(a)));
  return AsCompleted<T>(std::move(fs), timeout);
}

}  // namespace twinloop

#endif  // TWINLOOP_API_AS_COMPLETED_H_
