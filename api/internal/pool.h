// Per-thread free lists of small blocks for the objects the loop allocates
// and frees at a high rate: futures, tasks, sleeps, handles (RefCounted) and
// coroutine frames (Promise). A block freed goes on its size class's list
// and the next allocation of that class takes it back, so a hand-off or a
// sleep costs no malloc/free pair once the loop is warm.
//
//  - Size classes of 16 bytes up to kMaxPooledBytes; larger blocks go to
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

namespace twinloop::internal {

constexpr size_t kMaxPooledBytes = 512;
constexpr size_t kMaxPooledBlocks = 4096;

void* pool_allocate(size_t bytes);
void pool_deallocate(void* p, size_t bytes) noexcept;

}  // namespace twinloop::internal

#endif  // TWINLOOP_API_INTERNAL_POOL_H_
