#pragma once
// A provided-buffer ring: the kernel picks a buffer for each multishot recv completion, we
// hand it back as soon as its bytes are consumed or copied. Returns are staged and published
// once per batch of completions.
//
// Incremental consumption (IOU_PBUF_RING_INC, Linux 6.12), used where the kernel has it: a
// recv takes only the bytes it fills from the buffer at the ring's head and leaves the rest
// there for the next recv, of any connection. Small reads (handshakes, pings, chat messages)
// then share buffers instead of each taking one whole, so the ring can be a fraction of the
// size and the pages 10,000 handshakes touch are their bytes, not 10,000 buffers' first pages.
// The kernel marks a completion that left part of its buffer behind (IORING_CQE_F_BUF_MORE);
// the next completion naming that buffer continues where the last one ended, so we keep one
// offset per buffer, and recycle a buffer only after a completion without the mark.
#include <liburing.h>

#include <cstddef>
#include <cstdint>
#include <vector>

namespace wsedge::io {

// Not in liburing 2.3's headers (Debian 12): the values are the kernel's ABI.
inline constexpr std::uint16_t kPbufRingIncremental = 2;  // IOU_PBUF_RING_INC
inline constexpr unsigned kCqeBufMore = 1U << 4;          // IORING_CQE_F_BUF_MORE

class BufferRing {
 public:
  // The default count (count 0). Consumed incrementally, a buffer serves many reads: 128 × 16 KiB
  // = 2 MiB bounds what the ring can ever make resident, so a core that has seen traffic and
  // 10,000 idle connections stays under 16 MiB. A turn that receives more than 2 MiB runs the
  // ring dry (recv_no_buffers_total) and re-arms those recvs after it: measured at 64 KiB echo
  // (100 connections), 1.5 re-arms per message cost no CPU per message against 512 buffers or
  // the whole-buffer ring. Without incremental consumption each read takes a whole buffer, and
  // a few thousand connections reading in one turn need as many.
  static constexpr unsigned kIncrementalCount = 128;
  static constexpr unsigned kWholeCount = 4096;

  // `count` must be a power of two (the kernel's requirement), at most 32768; 0 takes the
  // default for the mode. `incremental`: use incremental consumption if the kernel has it.
  BufferRing(io_uring* ring, unsigned count, unsigned size, unsigned short group,
             bool incremental = true);
  ~BufferRing();
  BufferRing(const BufferRing&) = delete;
  BufferRing& operator=(const BufferRing&) = delete;

  // Registers a one-entry ring with IOU_PBUF_RING_INC on `group` and unregisters it: EINVAL
  // from a kernel before 6.12, which rejects flags it does not know.
  static bool kernel_has_incremental(io_uring* ring, unsigned short group);

  // Where a recv completion's bytes are, and whether its buffer is finished with.
  struct Slice {
    std::byte* data;
    bool last;  // the kernel is done with the buffer: recycle() it once the bytes are used
  };
  // Call for each completion that carried IORING_CQE_F_BUFFER, in completion order. `len`: its
  // res when positive, else 0.
  Slice consume(unsigned bid, unsigned len, unsigned cqe_flags);
  void recycle(unsigned bid);
  // Makes recycled buffers visible to the kernel.
  void commit();

  std::byte* data(unsigned bid) { return base_ + std::size_t{bid} * size_; }
  bool incremental() const { return incremental_; }
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
  // Incremental only: how far into each buffer the kernel has filled (count × 4 bytes per
  // core, a fixed cost).
  std::vector<std::uint32_t> offsets_;
  unsigned count_;
  unsigned size_;
  unsigned available_ = 0;
  unsigned staged_ = 0;
  unsigned short group_;
  bool incremental_;
};

}  // namespace wsedge::io
