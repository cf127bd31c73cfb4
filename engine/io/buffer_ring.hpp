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
  // The ring is registered with room for `count` buffers (the maximum, --buf-count) and its data
  // area reserved as virtual memory, but with incremental consumption only kInitialCount are
  // provided at first. Consumed incrementally, a buffer serves many reads: 128 × 16 KiB = 2 MiB
  // bounds what the ring makes resident on a core that has seen only small reads, so 10,000
  // idle connections stay under 16 MiB. A turn that receives more runs the ring dry
  // (recv_no_buffers_total); grow() then doubles what is provided, up to `count`, before the
  // reactor re-arms those recvs. A bigger fixed ring would not do: the kernel takes buffers at
  // the head and recycled ones go back at the tail, so traffic cycles through every provided
  // buffer and all of them become resident; buffers never provided stay untouched pages.
  // Growth is one way until restart: a buffer in the kernel's ring cannot be taken back (only
  // unregistering the whole ring does that), and zeroing its pages (MADV_DONTNEED) could race a
  // kernel write whose completion has not been reaped yet, losing received bytes.
  //
  // Without incremental consumption each read takes a whole buffer, and a few thousand
  // connections reading in one turn need as many: all `count` are provided at start.
  //
  // The default maximum with incremental consumption is 512 (8 MiB): measured at 64 KiB echo
  // over 100 connections, 128 buffers ran dry 1.3-1.5 times per message, 512 0.01 times (peak
  // RSS 30.7 MiB), 4,096 (reached 2,048) 0.005 times for a 61 MiB peak and no CPU per message
  // gained over either. Without it every read takes a whole buffer: 4,096, all at start.
  static constexpr unsigned kIncrementalMaxCount = 512;
  static constexpr unsigned kWholeCount = 4096;
  static constexpr unsigned kInitialCount = 128;

  // `count` must be a power of two (the kernel's requirement), 1..32768, or 0 for the default
  // of the mode (above). `incremental`: use
  // incremental consumption if the kernel has it. `initial`: how many to provide at first when
  // consumed incrementally (at least 1, capped at `count`).
  BufferRing(io_uring* ring, unsigned count, unsigned size, unsigned short group,
             bool incremental = true, unsigned initial = kInitialCount);
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
  // Stages never-provided buffers, doubling the provided count up to count(); false when all
  // are provided already. Call when a turn ran the ring dry, before commit().
  bool grow();
  // Makes recycled (and grown) buffers visible to the kernel.
  void commit();

  std::byte* data(unsigned bid) { return base_ + std::size_t{bid} * size_; }
  bool incremental() const { return incremental_; }
  unsigned available() const { return available_; }  // buffers the kernel may pick
  unsigned staged() const { return staged_; }
  unsigned count() const { return count_; }        // the most that can ever be provided
  unsigned provided() const { return provided_; }  // buffers handed to the kernel so far
  unsigned size() const { return size_; }
  unsigned short group() const { return group_; }

 private:
  // Stages buffers provided_..n-1, never used before, for the next commit().
  void provide(unsigned n);

  io_uring* ring_;
  io_uring_buf_ring* br_ = nullptr;
  std::byte* base_ = nullptr;
  std::size_t ring_bytes_ = 0;
  std::size_t data_bytes_ = 0;
  // Incremental only: how far into each buffer the kernel has filled (count × 4 bytes per
  // core, a fixed cost).
  std::vector<std::uint32_t> offsets_;
  unsigned count_;
  unsigned provided_ = 0;  // buffers 0..provided_-1 are the kernel's or ours; the rest untouched
  unsigned size_;
  unsigned available_ = 0;
  unsigned staged_ = 0;
  unsigned short group_;
  bool incremental_;
};

}  // namespace wsedge::io
