// twinloop/api/as_completed.h: as_completed (asyncio.as_completed, CPython
// 3.14 Lib/asyncio/tasks.py).
//
//   for (twinloop::Coro<int> next : twinloop::as_completed(std::move(tasks))) {
//     int v = co_await next;       // the earliest completion not yet taken
//   }
//   // asyncio 3.13's `async for` form, yielding the original tasks:
//   auto it = twinloop::as_completed(tasks, absl::Seconds(1));
//   while (!it.empty()) { Future<int> f = co_await it.next_future(); ... }
//
// Inputs (Coro<T>, Task<T> or Future<T>; coroutines become tasks at once) are
// de-duplicated. Each iteration takes the next completion in completion
// order, whichever iteration is awaited first. After the timeout, every
// remaining iteration raises TimeoutError; nothing is cancelled. Iterating
// past the end raises std::out_of_range (Python's StopIteration).
#ifndef TWINLOOP_API_AS_COMPLETED_H_
#define TWINLOOP_API_AS_COMPLETED_H_

#include <deque>
#include <stdexcept>
#include <utility>
#include <vector>

#include "absl/time/time.h"
#include "api/awaitable.h"
#include "api/coro.h"
#include "api/future.h"

namespace twinloop {

namespace internal {

template <class T>
class AsCompletedState final : public RefCounted {
 public:
  void start(std::vector<Future<T>> fs, absl::Duration timeout) {
    for (auto& f : fs) {
      bool seen = false;
      for (auto& t : todo_) seen = seen || t == f;
      if (!seen) todo_.push_back(f);
    }
    left_ = todo_.size();
    for (auto& f : todo_) {
      Ref<AsCompletedState> self(this);
      tokens_.push_back(f.state()->add_done_callback([self](FutureBase& done) {
        self->on_completion(static_cast<ValueHolder<T>*>(&done));
      }));
    }
    if (!todo_.empty() && timeout != absl::InfiniteDuration()) {
      Ref<AsCompletedState> self(this);
      timer_ = get_running_loop().call_later(timeout, [self] { self->on_timeout(); });
    }
  }

  size_t left() const { return left_; }

  // The next completed future, or a null one after the timeout.
  Coro<Future<T>> take() {
    if (left_ == 0) throw std::out_of_range("as_completed: no more futures");
    --left_;
    return wait_one();
  }

 private:
  Coro<Future<T>> wait_one() {
    Ref<AsCompletedState> keep(this);
    while (done_.empty()) {
      Future<void> w = create_future<void>();
      getters_.push_back(w);
      try {
        co_await w;
      } catch (...) {
        // A woken getter that is cancelled passes the wake-up on.
        if (w.done() && !w.cancelled()) wake_one();
        throw;
      }
    }
    Future<T> f = done_.front();
    done_.pop_front();
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

  void on_completion(ValueHolder<T>* f) {
    for (size_t i = 0; i < todo_.size(); ++i) {
      if (todo_[i].state() == f) {
        done_.push_back(todo_[i]);
        todo_.erase(todo_.begin() + i);
        tokens_.erase(tokens_.begin() + i);
        wake_one();
        if (todo_.empty()) timer_.cancel();
        return;
      }
    }
  }

  void on_timeout() {
    for (size_t i = 0; i < todo_.size(); ++i) {
      todo_[i].state()->remove_done_callback(tokens_[i]);
      done_.push_back(Future<T>());  // sentinel: "timed out"
      wake_one();
    }
    todo_.clear();
    tokens_.clear();
  }

  std::vector<Future<T>> todo_;
  std::vector<uint64_t> tokens_;
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
