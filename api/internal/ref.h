// Intrusive, single-threaded reference counting for loop-owned objects.
//
// Every object here belongs to one event loop and is touched only on that
// loop's thread, so the count is a plain integer (no atomics on the hot path).
// Objects that cross threads (executor work) are moved, never copied, so that
// their count is only ever changed on the loop thread.
#ifndef TWINLOOP_API_INTERNAL_REF_H_
#define TWINLOOP_API_INTERNAL_REF_H_

#include <cstddef>
#include <cstdint>
#include <utility>

#include "twinloop/api/internal/check.h"
#include "twinloop/api/internal/pool.h"

namespace twinloop::internal {

class RefCounted {
 public:
  RefCounted(const RefCounted&) = delete;
  RefCounted& operator=(const RefCounted&) = delete;

  void add_ref() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ <= 0) last_release();
  }
  uint32_t ref_count() const noexcept { return static_cast<uint32_t>(refs_); }

  // Loop objects come from the per-thread pool (api/internal/pool.h). The
  // destructor is virtual, so sized delete receives the dynamic type's size.
  static void* operator new(size_t bytes) { return pool_allocate(bytes); }
  static void operator delete(void* p, size_t bytes) noexcept { pool_deallocate(p, bytes); }

 protected:
  RefCounted() = default;
  virtual ~RefCounted() = default;

 private:
  // The count reached 0 (the last reference went) or went below it: a
  // release too many (or one after the object was deleted), after which
  // the object would leak or be deleted again. Out of line, so that
  // release() stays a decrement, a compare and a branch.
  [[gnu::noinline]] void last_release() noexcept {
    TWINLOOP_CHECK(refs_ == 0, "an object is released at most as often as it was referenced");
    delete this;
  }

  // Signed, so that a release too many shows as a negative count.
  int32_t refs_ = 0;
};

// A strong reference to a RefCounted object.
template <class T>
class Ref {
 public:
  Ref() = default;
  Ref(std::nullptr_t) {}
  explicit Ref(T* p) : p_(p) {
    if (p_) p_->add_ref();
  }
  Ref(const Ref& o) : Ref(o.p_) {}
  Ref(Ref&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
  template <class U>
  Ref(const Ref<U>& o) : Ref(static_cast<T*>(o.get())) {}
  template <class U>
  Ref(Ref<U>&& o) noexcept : p_(static_cast<T*>(o.detach())) {}
  ~Ref() {
    if (p_) p_->release();
  }
  Ref& operator=(Ref o) noexcept {
    std::swap(p_, o.p_);
    return *this;
  }

  // Takes over a reference that was counted already.
  static Ref adopt(T* p) {
    Ref r;
    r.p_ = p;
    return r;
  }
  // Gives up the reference without releasing it.
  T* detach() noexcept { return std::exchange(p_, nullptr); }
  void reset() { Ref().swap(*this); }
  void swap(Ref& o) noexcept { std::swap(p_, o.p_); }

  T* get() const { return p_; }
  T* operator->() const { return p_; }
  T& operator*() const { return *p_; }
  explicit operator bool() const { return p_ != nullptr; }
  friend bool operator==(const Ref& a, const Ref& b) { return a.p_ == b.p_; }

 private:
  T* p_ = nullptr;
};

// A weak reference for callbacks: the owner clears `ptr` when it dies, so a
// callback registered on a future does not keep its owner alive (which would
// make a cycle when the owner also holds the future).
template <class T>
class WeakBox final : public RefCounted {
 public:
  explicit WeakBox(T* p) : ptr(p) {}
  T* ptr;
};

template <class T, class... Args>
Ref<T> make_ref(Args&&... args) {
  return Ref<T>(new T(std::forward<Args>(args)...));
}

}  // namespace twinloop::internal

#endif  // TWINLOOP_API_INTERNAL_REF_H_
