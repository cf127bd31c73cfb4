#pragma once
// Per-core pool of byte buffers in power-of-two size classes. Freed buffers go back to a
// per-class free list, so a connection that assembles messages or queues output reuses memory
// instead of calling the allocator per message. Single-threaded by design: one pool per core.
#include <cstddef>
#include <cstdint>
#include <cstring>

namespace wsedge::memory {

struct Buffer {
  Buffer* next;       // free-list or queue link, owned by whoever holds the buffer
  std::uint32_t len;  // bytes written
  std::uint32_t off;  // bytes already consumed (e.g. sent) from the front
  std::uint8_t size_class;
  // kView: this buffer holds no bytes of its own but a reference to another's (BufferPool::view),
  // so one buffer can sit in many output queues, each with its own link and progress.
  enum Kind : std::uint8_t { kOwned, kView };
  Kind kind;
  // Holders; the last release() gives it back. 32 bits: one published message is held by
  // every subscriber's output queue at once (10,000+), which wrapped a uint8_t at 256 and
  // returned a buffer still queued to the pool.
  std::uint32_t refs;

  std::byte* data() { return reinterpret_cast<std::byte*>(this + 1); }
  // Where len and off count from: data(), or a view's target's data().
  std::byte* bytes() { return kind == kView ? target()->data() : data(); }
  // A view's buffer (stored in its data()).
  Buffer* target() {
    Buffer* t;
    std::memcpy(&t, data(), sizeof t);
    return t;
  }
  std::size_t capacity() const;
  // Nothing is ever appended to a view: its bytes are someone else's (and its len may exceed
  // its own capacity).
  std::size_t room() const { return kind == kView ? 0 : capacity() - len; }
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
  // A view of `target`'s bytes [off, len) as they are now, for an output queue: its own `next`
  // and `off`, one more reference on `target` (given back with the view's last release).
  // Appending the target itself to several queues would chain them through its one `next`
  // and let one socket's partial send advance the others' `off`.
  Buffer* view(Buffer* target);
  // Ensures `b` (which may be null, never a view) can hold `extra` more bytes, moving its contents
  // if needed.
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
  // The last reference is gone: back to the free list, or to the allocator above the cache.
  void give_back(Buffer* b);

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
