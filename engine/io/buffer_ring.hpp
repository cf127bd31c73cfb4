#pragma once
// A provided-buffer ring: the kernel picks a buffer for each multishot recv completion, we
// hand it back as soon as its bytes are consumed or copied. Returns are staged and published
// once per batch of completions.
#include <liburing.h>

#include <cstddef>
#include <cstdint>

namespace wsedge::io {

class BufferRing {
 public:
  // `count` must be a power of two (the kernel's requirement), at most 32768.
  BufferRing(io_uring* ring, unsigned count, unsigned size, unsigned short group);
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  std::byte* data(unsigned bid) { return base_ + std::size_t{bid} * size_; }
  // Call for each completion that carried IORING_CQE_F_BUFFER.
  void taken() { --available_; }
  void recycle(unsigned bid);
  // Makes recycled buffers visible to the kernel.
  void commit();

  unsigned available() const { return available_; }  // buffers the kernel may pick
  unsigned staged() const { return staged_; }
  unsigned count() const { return count_; }
  unsigned size() const { return size_; }
  unsigned short group() const { return group_; }

 private:
  io_uring* ring_;
  io_uring_buf_ring* br_ = nullptr;
  std::byte* base_ = nullptr;
  std::size_t ring_bytes_ = 0;
  std::size_t data_bytes_ = 0;
  unsigned count_;
  unsigned size_;
  unsigned available_ = 0;
  unsigned staged_ = 0;
  unsigned short group_;
};

}  // namespace wsedge::io
