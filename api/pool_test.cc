// The per-thread block pool behind loop objects and coroutine frames
// (api/internal/pool.h).
#include <cstddef>
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
  void* a = pool_allocate(88);
  pool_deallocate(a, 88);
  // 81..96 bytes share a class.
  void* b = pool_allocate(96);
  EXPECT_EQ(a, b);
  pool_deallocate(b, 96);
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
