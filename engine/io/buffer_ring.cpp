#include "buffer_ring.hpp"

#include <sys/mman.h>

#include <cstring>
#include <stdexcept>
#include <string>

namespace wsedge::io {

BufferRing::BufferRing(io_uring* ring, unsigned count, unsigned size, unsigned short group)
    : ring_(ring), count_(count), size_(size), group_(group) {
  if (count == 0 || (count & (count - 1)) != 0 || count > 32768)
    throw std::invalid_argument("buffer count must be a power of two, 1..32768");
  if (size < 256) throw std::invalid_argument("buffer size must be at least 256 bytes");
  ring_bytes_ = sizeof(io_uring_buf) * count;
  data_bytes_ = std::size_t{count} * size;
  void* r = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  // The data area is reserved, not touched: pages become resident only as buffers are used.
  void* d = mmap(nullptr, data_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (r == MAP_FAILED || d == MAP_FAILED) throw std::runtime_error("mmap of buffer ring failed");
  br_ = static_cast<io_uring_buf_ring*>(r);
  base_ = static_cast<std::byte*>(d);
  io_uring_buf_ring_init(br_);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(br_);
  reg.ring_entries = count;
  reg.bgid = group;
  int rc = io_uring_register_buf_ring(ring_, &reg, 0);
  if (rc < 0) throw std::runtime_error(std::string("register buffer ring: ") + std::strerror(-rc));
  int mask = io_uring_buf_ring_mask(count);
  for (unsigned i = 0; i < count; ++i)
    io_uring_buf_ring_add(br_, data(i), size, static_cast<unsigned short>(i), mask,
                          static_cast<int>(i));
  io_uring_buf_ring_advance(br_, static_cast<int>(count));
  available_ = count;
}

BufferRing::~BufferRing() {
  io_uring_unregister_buf_ring(ring_, group_);
  munmap(br_, ring_bytes_);
  munmap(base_, data_bytes_);
}

void BufferRing::recycle(unsigned bid) {
  io_uring_buf_ring_add(br_, data(bid), size_, static_cast<unsigned short>(bid),
                        io_uring_buf_ring_mask(count_), static_cast<int>(staged_));
  ++staged_;
}

void BufferRing::commit() {
  if (staged_ == 0) return;
  io_uring_buf_ring_advance(br_, static_cast<int>(staged_));
  available_ += staged_;
  staged_ = 0;
}

}  // namespace wsedge::io
