#include <new>

#include "twinloop/api/internal/pool.h"

namespace twinloop::internal {
namespace {

// Frees this thread's lists when the thread exits; touched (and so
// registered) only when a list gets its first block.
struct Reaper {
  ~Reaper() {
    for (PoolList& l : tls_pool_lists) {
      while (l.head) {
        PoolBlock* b = l.head;
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
constinit thread_local uint64_t tls_misses = 0;

[[gnu::noinline]] void arm_reaper() {
  tls_pool_armed = true;
  static_cast<void>(&tls_reaper);  // odr-use: registers its destructor
}

}  // namespace

uint64_t pool_misses() noexcept { return tls_misses; }

void* pool_allocate_slow(size_t bytes) {
  ++tls_misses;
  if (!kPoolEnabled || bytes == 0 || bytes > kMaxPooledBytes) return ::operator new(bytes);
  // A miss: allocate the class's full size, so the block can serve any
  // request of its class later.
  return ::operator new(((bytes - 1) / kPoolGranule + 1) * kPoolGranule);
}

void pool_deallocate_slow(void* p, size_t bytes) noexcept {
  if (!p) return;
  if (!kPoolEnabled || bytes == 0 || bytes > kMaxPooledBytes) {
    ::operator delete(p);
    return;
  }
  PoolList& l = tls_pool_lists[(bytes - 1) / kPoolGranule];
  if (l.count >= kMaxPooledBlocks) {
    ::operator delete(p);
    return;
  }
  if (!tls_pool_armed) arm_reaper();
  PoolBlock* b = static_cast<PoolBlock*>(p);
  b->next = l.head;
  l.head = b;
  ++l.count;
}

}  // namespace twinloop::internal
