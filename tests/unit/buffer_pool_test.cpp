#include "engine/memory/buffer_pool.hpp"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace wsedge::memory {
namespace {

TEST(BufferPool, ReusesReleasedBuffers) {
  BufferPool pool;
  Buffer* a = pool.acquire(1000);
  EXPECT_GE(a->capacity(), 1000u);
  pool.release(a);
  Buffer* b = pool.acquire(900);
  EXPECT_EQ(a, b);
  EXPECT_EQ(pool.allocations(), 1u);
  pool.release(b);
}

TEST(BufferPool, AppendGrowsAndKeepsContents) {
  BufferPool pool;
  Buffer* b = nullptr;
  std::string expect;
  for (int i = 0; i < 1000; ++i) {
    std::string piece = "piece " + std::to_string(i) + ";";
    b = pool.append(b, reinterpret_cast<const std::byte*>(piece.data()), piece.size());
    expect += piece;
  }
  ASSERT_EQ(b->len, expect.size());
  EXPECT_EQ(std::memcmp(b->data(), expect.data(), expect.size()), 0);
  pool.release(b);
}

TEST(BufferPool, CacheIsBounded) {
  BufferPool pool;
  std::vector<Buffer*> big;
  for (int i = 0; i < 8; ++i) big.push_back(pool.acquire(16 << 20));
  for (Buffer* b : big) pool.release(b);
  EXPECT_LE(pool.cached_bytes(), BufferPool::kCacheBytesPerClass);
}

TEST(BufferPool, ABurstOfLargeBuffersGoesBackAboveTheWatermark) {
  // 20 buffers of 16 MiB and 20 of 1 MiB released at once: before the total watermark, two of
  // every class stayed cached whatever their size.
  BufferPool pool(std::size_t{40} << 20);
  std::vector<Buffer*> held;
  for (int i = 0; i < 20; ++i) {
    held.push_back(pool.acquire(std::size_t{16} << 20));
    held.push_back(pool.acquire(std::size_t{1} << 20));
  }
  EXPECT_EQ(pool.in_use(), 40u);
  for (Buffer* b : held) pool.release(b);
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_LE(pool.cached_bytes(), std::size_t{40} << 20);
  EXPECT_GT(pool.cached_bytes(), 0u);  // still a cache: steady state must not allocate
}

TEST(BufferPool, ASharedBufferReturnsWithItsLastHolder) {
  BufferPool pool;
  Buffer* b = pool.acquire(1000);
  EXPECT_EQ(BufferPool::share(b), b);
  pool.release(b);
  EXPECT_EQ(pool.cached_bytes(), 0u);  // still held once
  pool.release(b);
  EXPECT_GT(pool.cached_bytes(), 0u);
  Buffer* again = pool.acquire(1000);
  EXPECT_EQ(again, b);
  EXPECT_EQ(again->refs, 1u);
  pool.release(again);
}

TEST(BufferPool, TenThousandHoldersOfOneBuffer) {
  // One published frame queued to every subscriber: with 8-bit counts the 256th share wrapped
  // to 0, and the next release handed a buffer still queued 9,000 times back to the pool.
  BufferPool pool;
  Buffer* b = pool.acquire(100);
  for (int i = 1; i < 10000; ++i) BufferPool::share(b);
  EXPECT_EQ(b->refs, 10000u);
  for (int i = 1; i < 10000; ++i) pool.release(b);
  EXPECT_EQ(pool.in_use(), 1u);
  EXPECT_EQ(pool.cached_bytes(), 0u);
  pool.release(b);
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(BufferPool, ViewsShareTheBytesButNotTheLinkOrProgress) {
  BufferPool pool;
  Buffer* b = pool.acquire(4000);
  std::memset(b->data(), 'x', 3000);
  b->len = 3000;
  Buffer* v1 = pool.view(b);
  Buffer* v2 = pool.view(v1);  // a view of a view is a view of the buffer
  EXPECT_EQ(b->refs, 3u);
  EXPECT_EQ(v1->kind, Buffer::kView);
  EXPECT_EQ(v2->target(), b);
  EXPECT_EQ(v1->bytes(), b->data());
  EXPECT_EQ(v1->len, 3000u);
  EXPECT_EQ(v1->room(), 0u);  // nothing may be appended behind a frame others hold
  v1->off = 1000;             // one socket's partial send
  EXPECT_EQ(v2->off, 0u);
  EXPECT_EQ(b->off, 0u);
  std::uint64_t allocated = pool.allocations();
  pool.release(b);  // the publisher lets go; the queues still hold it
  pool.release(v1);
  EXPECT_EQ(pool.in_use(), 2u);  // v2 and b
  pool.release(v2);
  EXPECT_EQ(pool.in_use(), 0u);
  Buffer* again = pool.acquire(10);  // a former view comes back as a plain buffer
  EXPECT_EQ(again->kind, Buffer::kOwned);
  EXPECT_EQ(pool.allocations(), allocated);
  pool.release(again);
}

TEST(BufferPool, RefusesMoreThanTheLargestClass) {
  BufferPool pool;
  EXPECT_THROW(pool.acquire(BufferPool::kMaxCapacity + 1), std::length_error);
}

}  // namespace
}  // namespace wsedge::memory
