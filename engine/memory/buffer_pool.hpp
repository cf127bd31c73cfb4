#pragma once
// Per-core pool of byte buffers in power-of-two size classes. Freed buffers go back to a
// per-class free list, so a connection that assembles messages or queues output reuses memory
// instead of calling the allocator per message. Single-threaded by design: one pool per core.
#include <cstddef>
#include <cstdint>

namespace wsedge::memory {

struct Buffer {
  Buffer* next;       // free-list or queue link, owned by whoever holds the buffer
  std::uint32_t len;  // bytes written
  std::uint32_t off;  // bytes already consumed (e.g. sent) from the front
  std::uint8_t size_class;
  // Holders; the last release() gives it back. 32 bits: one published message is held by
  // every subscriber's output queue at once (10,000+), which wrapped a uint8_t at 256 and
  // returned a buffer still queued to the pool.
  std::uint32_t refs;

  std::byte* data() { return reinterpret_cast<std::byte*>(this + 1); }
  std::size_t capacity() const;
  std::size_t room() const { return capacity() - len; }
};

class BufferPool {
 public:
  static constexpr std::size_t kMinClassBytes = 128;  // smallest usable capacity
  static constexpr int kClassCount = 24;              // 128 B .. 1 GiB
  // Free buffers kept per class, in bytes: enough for steady state, bounded for idle cores.
  static constexpr std::size_t kCacheBytesPerClass = std::size_t{32} << 20;
  // Free buffers kept in all, by default: the watermark above which released buffers go back
  // to the allocator. Without it a burst of large messages (two cached per class, up to 1 GiB
  // each) stayed resident after every connection had closed.
  static constexpr std::size_t kDefaultCacheBytes = std::size_t{64} << 20;

  explicit BufferPool(std::size_t cache_bytes = kDefaultCacheBytes) : cache_cap_(cache_bytes) {}
  BufferPool(const BufferPool&) = delete;
  BufferPool& operator=(const BufferPool&) = delete;
  ~BufferPool();

  // A buffer with capacity() >= min_capacity, len and off zero.
  Buffer* acquire(std::size_t min_capacity);
  // Drops one reference; the buffer returns to the pool with the last.
  void release(Buffer* b);
  // One more holder for `b` (e.g. an output queue sending a message its reader still holds).
  static Buffer* share(Buffer* b) {
    ++b->refs;
    return b;
  }
  // Ensures `b` (which may be null) can hold `extra` more bytes, moving its contents if needed.
  Buffer* reserve(Buffer* b, std::size_t extra);
  // Appends bytes, growing as needed; returns the (possibly moved) buffer.
  Buffer* append(Buffer* b, const std::byte* data, std::size_t len);

  static std::size_t class_capacity(int size_class) { return kMinClassBytes << size_class; }
  static constexpr std::size_t kMaxCapacity = kMinClassBytes << (kClassCount - 1);

  std::size_t cached_bytes() const { return cached_bytes_; }
  std::uint64_t allocations() const { return allocations_; }
  // Buffers handed out and not yet given back: what connections hold right now.
  std::uint64_t in_use() const { return in_use_; }

 private:
  Buffer* free_[kClassCount] = {};
  std::uint32_t free_count_[kClassCount] = {};
  std::size_t cached_bytes_ = 0;
  std::size_t cache_cap_;
  std::uint64_t allocations_ = 0;
  std::uint64_t in_use_ = 0;
};

// The header sits in front of every pooled byte range (thousands per core): refs went to 32
// bits in the padding after size_class, and the header must stay 24 bytes.
static_assert(sizeof(Buffer) == 24);

inline std::size_t Buffer::capacity() const {
  return BufferPool::class_capacity(size_class);
}

}  // namespace wsedge::memory
