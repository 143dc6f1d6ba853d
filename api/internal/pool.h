// Per-thread free lists of small blocks for the objects the loop allocates
// and frees at a high rate: futures, tasks, sleeps, handles (RefCounted) and
// coroutine frames (Promise). A block freed goes on its size class's list
// and the next allocation of that class takes it back, so a hand-off or a
// sleep costs no malloc/free pair once the loop is warm.
//
//  - Size classes of 8 bytes up to kMaxPooledBytes; larger blocks go to
//    ::operator new directly.
//  - Each list keeps at most kMaxPooledBlocks blocks; beyond that, blocks go
//    back to ::operator delete, so a spike (a million tasks) does not pin its
//    memory. A thread's lists are released when the thread exits.
//  - Blocks never move between threads' lists except by being freed on
//    another thread, which is harmless (they are plain ::operator new
//    blocks).
//  - Under AddressSanitizer the pool is bypassed, so that use-after-free and
//    leaks are still found.
#ifndef TWINLOOP_API_INTERNAL_POOL_H_
#define TWINLOOP_API_INTERNAL_POOL_H_

#include <cstddef>
#include <cstdint>

namespace twinloop::internal {

constexpr size_t kMaxPooledBytes = 1024;
constexpr size_t kMaxPooledBlocks = 4096;
constexpr size_t kPoolGranule = 8;
constexpr size_t kPoolClasses = kMaxPooledBytes / kPoolGranule;

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

struct PoolBlock {
  PoolBlock* next;
};
struct PoolList {
  PoolBlock* head;
  uint32_t count;
};
// Class c holds blocks of (c + 1) * kPoolGranule bytes. Constant-initialised
// and trivially destructible, so reaching it costs no initialisation guard.
inline constinit thread_local PoolList tls_pool_lists[kPoolClasses] = {};
// Whether this thread's lists will be freed when it exits (set by the first
// block kept, in pool.cc).
inline constinit thread_local bool tls_pool_armed = false;

// The paths the inline functions below leave to pool.cc: misses, large
// blocks, a list's first block (which arms the thread-exit cleanup), full
// lists.
void* pool_allocate_slow(size_t bytes);
// How many blocks this thread's pool_allocate took from ::operator new (its
// misses; every call when the pool is bypassed). For tests that count a
// task's allocations: on a fresh thread, whose lists start empty, every
// block allocated and not yet freed is a miss. Counted on the slow path
// only, so the pooled path costs nothing.
uint64_t pool_misses() noexcept;
void pool_deallocate_slow(void* p, size_t bytes) noexcept;

inline void* pool_allocate(size_t bytes) {
  if (kPoolEnabled && bytes - 1 < kMaxPooledBytes) {
    PoolList& l = tls_pool_lists[(bytes - 1) / kPoolGranule];
    if (PoolBlock* b = l.head) {
      l.head = b->next;
      --l.count;
      return b;
    }
  }
  return pool_allocate_slow(bytes);
}

inline void pool_deallocate(void* p, size_t bytes) noexcept {
  if (kPoolEnabled && p && bytes - 1 < kMaxPooledBytes) {
    PoolList& l = tls_pool_lists[(bytes - 1) / kPoolGranule];
    if (l.count < kMaxPooledBlocks && tls_pool_armed) {
      PoolBlock* b = static_cast<PoolBlock*>(p);
      b->next = l.head;
      l.head = b;
      ++l.count;
      return;
    }
  }
  pool_deallocate_slow(p, bytes);
}

}  // namespace twinloop::internal

#endif  // TWINLOOP_API_INTERNAL_POOL_H_
