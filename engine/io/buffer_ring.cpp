#include "buffer_ring.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace wsedge::io {
namespace {

// liburing 2.3 calls the registration's flags field `pad`; 6.12's headers call it `flags`.
template <class Reg>
void set_flags(Reg& reg, std::uint16_t flags) {
  if constexpr (requires { reg.flags; })
    reg.flags = flags;
  else
    reg.pad = flags;
}

int register_ring(io_uring* ring, io_uring_buf_ring* br, unsigned entries, unsigned short group,
                  std::uint16_t flags) {
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(br);
  reg.ring_entries = entries;
  reg.bgid = group;
  set_flags(reg, flags);
  return io_uring_register_buf_ring(ring, &reg, 0);
}

}  // namespace

bool BufferRing::kernel_has_incremental(io_uring* ring, unsigned short group) {
  // The ring must be page aligned: a page of its own, for one entry.
  auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  void* r = mmap(nullptr, page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (r == MAP_FAILED) throw std::runtime_error("mmap of buffer ring failed");
  int rc = register_ring(ring, static_cast<io_uring_buf_ring*>(r), 1, group, kPbufRingIncremental);
  if (rc == 0) io_uring_unregister_buf_ring(ring, group);
  munmap(r, page);
  if (rc < 0 && rc != -EINVAL)
    throw std::runtime_error(std::string("register buffer ring: ").append(std::strerror(-rc)));
  return rc == 0;
}

BufferRing::BufferRing(io_uring* ring, unsigned count, unsigned size, unsigned short group,
                       bool incremental, unsigned initial)
    : ring_(ring), size_(size), group_(group) {
  if ((count & (count - 1)) != 0 || count > 32768)
    throw std::invalid_argument("buffer count must be a power of two, 1..32768");
  if (size < 256) throw std::invalid_argument("buffer size must be at least 256 bytes");
  if (initial == 0) throw std::invalid_argument("initial buffer count must be at least 1");
  incremental_ = incremental && kernel_has_incremental(ring, group);
  if (count == 0) count = incremental_ ? kIncrementalMaxCount : kWholeCount;
  count_ = count;
  ring_bytes_ = sizeof(io_uring_buf) * count;
  data_bytes_ = std::size_t{count} * size;
  void* r = mmap(nullptr, ring_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  // The data area is reserved, not touched: pages become resident only as buffers are used, and
  // buffers not provided yet are never used.
  void* d = mmap(nullptr, data_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (r == MAP_FAILED || d == MAP_FAILED) throw std::runtime_error("mmap of buffer ring failed");
  br_ = static_cast<io_uring_buf_ring*>(r);
  base_ = static_cast<std::byte*>(d);
  if (incremental_) offsets_.assign(count, 0);
  io_uring_buf_ring_init(br_);
  int rc = register_ring(ring_, br_, count, group, incremental_ ? kPbufRingIncremental : 0);
  if (rc < 0)
    throw std::runtime_error(std::string("register buffer ring: ").append(std::strerror(-rc)));
  provide(incremental_ ? std::min(initial, count) : count);
  commit();
}

BufferRing::~BufferRing() {
  io_uring_unregister_buf_ring(ring_, group_);
  munmap(br_, ring_bytes_);
  munmap(base_, data_bytes_);
}

BufferRing::Slice BufferRing::consume(unsigned bid, unsigned len, unsigned cqe_flags) {
  if (!incremental_) {
    --available_;
    return {data(bid), true};
  }
  std::uint32_t& off = offsets_[bid];
  Slice s{data(bid) + off, false};
  // An empty completion (EOF) consumed nothing, so the buffer is still the ring's head. Kernels
  // before the fix of liburing issue 1553 leave F_BUF_MORE off then: recycling on that would
  // put the buffer into the ring twice, and two recvs would fill it at once.
  if ((cqe_flags & kCqeBufMore) || len == 0) {
    off += len;
    return s;
  }
  off = 0;
  --available_;
  s.last = true;
  return s;
}

void BufferRing::recycle(unsigned bid) {
  io_uring_buf_ring_add(br_, data(bid), size_, static_cast<unsigned short>(bid),
                        io_uring_buf_ring_mask(count_), static_cast<int>(staged_));
  ++staged_;
}

void BufferRing::provide(unsigned n) {
  while (provided_ < n) recycle(provided_++);
}

bool BufferRing::grow() {
  if (provided_ == count_) return false;
  // Doubling: a load that needs N buffers gets them after log2(N / initial) dry turns, and at
  // most twice what it needed becomes resident.
  provide(std::min(provided_ * 2, count_));
  return true;
}

void BufferRing::commit() {
  if (staged_ == 0) return;
  io_uring_buf_ring_advance(br_, static_cast<int>(staged_));
  available_ += staged_;
  staged_ = 0;
}

}  // namespace wsedge::io
