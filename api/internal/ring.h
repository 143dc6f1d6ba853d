// A growable FIFO ring buffer: the loop's ready queue.
#ifndef TWINLOOP_API_INTERNAL_RING_H_
#define TWINLOOP_API_INTERNAL_RING_H_

#include <cstddef>
#include <vector>

#include "twinloop/api/internal/check.h"

namespace twinloop::internal {

template <class T>
class Ring {
 public:
  Ring() : slots_(64), mask_(63) {}

  bool empty() const { return head_ == tail_; }
  size_t size() const { return tail_ - head_; }

  void push(T v) {
    if (tail_ - head_ == slots_.size()) grow();
    slots_[tail_++ & mask_] = v;
  }
  // Calls f(item) for every queued item, oldest first.
  template <class F>
  void for_each(F&& f) const {
    for (size_t i = head_; i != tail_; ++i) f(slots_[i & mask_]);
  }
  T pop() {
    // Empty, it would hand out a stale slot (a callback run twice) and
    // leave size() wrapped.
    TWINLOOP_CHECK(!empty(), "the ready queue is popped only when it is not empty");
    return slots_[head_++ & mask_];
  }

 private:
  void grow() {
    std::vector<T> bigger(slots_.size() * 2);
    const size_t n = size();
    for (size_t i = 0; i < n; ++i) bigger[i] = slots_[(head_ + i) & mask_];
    slots_.swap(bigger);
    mask_ = slots_.size() - 1;
    head_ = 0;
    tail_ = n;
  }

  std::vector<T> slots_;
  size_t mask_;
  size_t head_ = 0;
  size_t tail_ = 0;
};

}  // namespace twinloop::internal

#endif  // TWINLOOP_API_INTERNAL_RING_H_
