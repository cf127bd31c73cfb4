#include "buffer_pool.hpp"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstring>
#include <new>
#include <stdexcept>

namespace wsedge::memory {
namespace {

int class_for(std::size_t capacity) {
  if (capacity <= BufferPool::kMinClassBytes) return 0;
  return std::bit_width((capacity - 1) / BufferPool::kMinClassBytes);
}

}  // namespace

BufferPool::~BufferPool() {
  for (auto*& head : free_) {
    while (head) {
      Buffer* n = head->next;
      ::operator delete(head);
      head = n;
    }
  }
}

Buffer* BufferPool::acquire(std::size_t min_capacity) {
  if (min_capacity > kMaxCapacity)
    throw std::length_error("buffer larger than the pool's largest class");
  int c = class_for(min_capacity);
  Buffer* b = free_[c];
  if (b) {
    free_[c] = b->next;
    --free_count_[c];
    cached_bytes_ -= class_capacity(c);
  } else {
    b = static_cast<Buffer*>(::operator new(sizeof(Buffer) + class_capacity(c)));
    ++allocations_;
    b->size_class = static_cast<std::uint8_t>(c);
  }
  b->next = nullptr;
  b->len = 0;
  b->off = 0;
  b->kind = Buffer::kOwned;
  b->refs = 1;
  ++in_use_;
  return b;
}

Buffer* BufferPool::view(Buffer* target) {
  if (target->kind == Buffer::kView) target = target->target();  // no chains of views
  Buffer* v = acquire(sizeof(Buffer*));
  std::memcpy(v->data(), &target, sizeof target);
  v->kind = Buffer::kView;
  v->len = target->len;
  v->off = target->off;
  share(target);
  return v;
}

void BufferPool::release(Buffer* b) {
  if (--b->refs > 0) return;
  if (b->kind == Buffer::kView) {
    Buffer* t = b->target();
    b->kind = Buffer::kOwned;
    give_back(b);
    release(t);
    return;
  }
  give_back(b);
}

void BufferPool::give_back(Buffer* b) {
  --in_use_;
  int c = b->size_class;
  std::size_t cap = class_capacity(c);
  if (cached_bytes_ + cap > cache_cap_ ||
      (free_count_[c] >= 2 && (free_count_[c] + 1) * cap > kCacheBytesPerClass)) {
    ::operator delete(b);
    return;
  }
  b->next = free_[c];
  free_[c] = b;
  ++free_count_[c];
  cached_bytes_ += cap;
}

Buffer* BufferPool::reserve(Buffer* b, std::size_t extra) {
  if (!b) return acquire(extra);
  assert(b->kind == Buffer::kOwned);  // a view's data() holds a pointer, not its bytes
  if (b->room() >= extra) return b;
  std::size_t want = std::size_t{b->len} + extra;
  // Grow geometrically so a message assembled from many frames is copied O(log n) times.
  Buffer* nb = acquire(std::max(want, std::min(b->capacity() * 2, kMaxCapacity)));
  std::memcpy(nb->data(), b->data(), b->len);
  nb->len = b->len;
  release(b);
  return nb;
}

Buffer* BufferPool::append(Buffer* b, const std::byte* data, std::size_t len) {
  b = reserve(b, len);
  std::memcpy(b->data() + b->len, data, len);
  b->len += static_cast<std::uint32_t>(len);
  return b;
}

}  // namespace wsedge::memory
