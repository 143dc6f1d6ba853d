// The per-thread block pool behind loop objects and coroutine frames
// (api/internal/pool.h).
#include <cstddef>
#include <cstdint>
#include <set>
#include <thread>
#include <vector>

#include "twinloop/api/internal/pool.h"
#include "gtest/gtest.h"

namespace twinloop::internal {
namespace {

constexpr bool kPooled = kPoolEnabled;

TEST(Pool, FreedBlockIsReusedBySameSizeClass) {
  if (!kPooled) GTEST_SKIP() << "the pool is bypassed under AddressSanitizer";
  // 5 * granule + 1 .. 6 * granule bytes share a class (41..48 bytes).
  void* a = pool_allocate(5 * kPoolGranule + 1);
  pool_deallocate(a, 5 * kPoolGranule + 1);
  void* b = pool_allocate(6 * kPoolGranule);
  EXPECT_EQ(a, b);
  // One byte more is the next class: its block is not reused for it.
  void* c = pool_allocate(6 * kPoolGranule + 1);
  EXPECT_NE(c, b);
  pool_deallocate(c, 6 * kPoolGranule + 1);
  pool_deallocate(b, 6 * kPoolGranule);
}

// The granule is 8 bytes, so that a block wastes at most 7 (a task's block
// of 344 bytes is malloc's 352-byte chunk, not 368: docs/PERFORMANCE.md),
// and blocks stay 16-byte aligned, as malloc gives them out.
TEST(Pool, BlocksAreAlignedForAnyObject) {
  static_assert(kPoolGranule == 8);
  for (size_t bytes = 1; bytes <= 200; ++bytes) {
    void* p = pool_allocate(bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(p) % alignof(std::max_align_t), 0u) << bytes;
    pool_deallocate(p, bytes);
  }
}

TEST(Pool, LastFreedIsFirstReused) {
  if (!kPooled) GTEST_SKIP() << "the pool is bypassed under AddressSanitizer";
  void* a = pool_allocate(40);
  void* b = pool_allocate(40);
  pool_deallocate(a, 40);
  pool_deallocate(b, 40);
  EXPECT_EQ(pool_allocate(40), b);
  EXPECT_EQ(pool_allocate(40), a);
  pool_deallocate(a, 40);
  pool_deallocate(b, 40);
}

TEST(Pool, OtherSizeClassesAndLargeBlocksDoNotShare) {
  void* small = pool_allocate(32);
  pool_deallocate(small, 32);
  void* other = pool_allocate(64);
  EXPECT_NE(small, other);
  void* large = pool_allocate(kMaxPooledBytes + 1);
  EXPECT_NE(small, large);
  pool_deallocate(large, kMaxPooledBytes + 1);
  pool_deallocate(other, 64);
}

TEST(Pool, KeepsAtMostTheCapPerClass) {
  if (!kPooled) GTEST_SKIP() << "the pool is bypassed under AddressSanitizer";
  const size_t n = kMaxPooledBlocks + 100;
  std::vector<void*> blocks;
  for (size_t i = 0; i < n; ++i) blocks.push_back(pool_allocate(200));
  for (void* p : blocks) pool_deallocate(p, 200);
  // Only the first kMaxPooledBlocks frees were kept; they come back (in
  // reverse order) before anything new is allocated.
  std::set<void*> kept(blocks.begin(), blocks.begin() + kMaxPooledBlocks);
  std::vector<void*> again;
  for (size_t i = 0; i < kMaxPooledBlocks; ++i) again.push_back(pool_allocate(200));
  for (void* p : again) EXPECT_TRUE(kept.count(p));
  for (void* p : again) pool_deallocate(p, 200);
}

TEST(Pool, BlocksFreedOnAnotherThreadAreValid) {
  std::vector<void*> blocks;
  for (int i = 0; i < 100; ++i) {
    auto* p = static_cast<unsigned char*>(pool_allocate(48));
    for (int j = 0; j < 48; ++j) p[j] = static_cast<unsigned char>(i);
    blocks.push_back(p);
  }
  std::thread t([&] {
    for (void* p : blocks) pool_deallocate(p, 48);
    // Reused on this thread, then the thread exits and frees its lists.
    for (int i = 0; i < 100; ++i) pool_deallocate(pool_allocate(48), 48);
  });
  t.join();
  void* p = pool_allocate(48);
  pool_deallocate(p, 48);
  SUCCEED();
}

}  // namespace
}  // namespace twinloop::internal
