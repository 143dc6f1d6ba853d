#include "api/internal/pool.h"

#include <cstdint>
#include <new>

namespace twinloop::internal {
namespace {

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kPoolEnabled = false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kPoolEnabled = false;
#else
constexpr bool kPoolEnabled = true;
#endif
#else
constexpr bool kPoolEnabled = true;
#endif

constexpr size_t kGranule = 16;
constexpr size_t kClasses = kMaxPooledBytes / kGranule;

struct FreeBlock {
  FreeBlock* next;
};

struct FreeList {
  FreeBlock* head = nullptr;
  uint32_t count = 0;
};

// The lists are plain (constant-initialised, trivially destructible)
// thread_locals, so reaching them costs no initialisation guard; a separate
// Reaper, touched only when a list gets its first block, frees them when the
// thread exits.
thread_local FreeList tls_lists[kClasses];

struct Reaper {
  ~Reaper() {
    for (FreeList& l : tls_lists) {
      while (l.head) {
        FreeBlock* b = l.head;
        l.head = b->next;
        ::operator delete(b);
      }
      // Frees that come later (other thread_locals' destructors) go
      // straight to ::operator delete.
      l.count = kMaxPooledBlocks;
    }
  }
};
thread_local Reaper tls_reaper;

[[gnu::noinline]] void arm_reaper() {
  static_cast<void>(&tls_reaper);  // odr-use: registers its destructor
}
thread_local bool tls_reaper_armed = false;

// Class c holds blocks of (c + 1) * kGranule bytes.
inline size_t class_of(size_t bytes) { return (bytes + kGranule - 1) / kGranule - 1; }

}  // namespace

void* pool_allocate(size_t bytes) {
  if (!kPoolEnabled || bytes == 0 || bytes > kMaxPooledBytes) return ::operator new(bytes);
  const size_t c = class_of(bytes);
  FreeList& l = tls_lists[c];
  if (FreeBlock* b = l.head) {
    l.head = b->next;
    --l.count;
    return b;
  }
  return ::operator new((c + 1) * kGranule);
}

void pool_deallocate(void* p, size_t bytes) noexcept {
  if (!p) return;
  if (!kPoolEnabled || bytes == 0 || bytes > kMaxPooledBytes) {
    ::operator delete(p);
    return;
  }
  FreeList& l = tls_lists[class_of(bytes)];
  if (l.count >= kMaxPooledBlocks) {
    ::operator delete(p);
    return;
  }
  if (!tls_reaper_armed) [[unlikely]] {
    tls_reaper_armed = true;
    arm_reaper();
  }
  FreeBlock* b = static_cast<FreeBlock*>(p);
  b->next = l.head;
  l.head = b;
  ++l.count;
}

}  // namespace twinloop::internal
