#pragma once
// permessage-deflate's compression (RFC 7692 §7.2) over byte spans and pooled buffers: no
// sockets, no frames, no negotiation (engine/protocol/permessage_deflate.* negotiates; ws/
// decides what to compress). docs/DEFLATE.md §3–§5.
//
// Two kinds of state. A Codec per core serves every connection that negotiated no context
// takeover: each message is compressed on its own by a zlib stream of the core's (one per peer
// window, reset per message, ending in a sync flush) and inflated by another, so such a
// connection holds no compression state at all between messages. (libdeflate compresses whole
// buffers 1.6x faster at 16 KiB, as fast at 1 KiB, but can only end a message in a final
// block, which Beast, websocketpp and Chromium fail on: codec.cpp, Codec::sync_flush.) A connection
// with context takeover (opt-in) owns a DeflateStream and/or an InflateStream: zlib streams whose
// window carries from one message to the next, their memory counted exactly (zalloc/zfree) in the
// core's MemoryBudget.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "engine/memory/buffer_pool.hpp"

struct z_stream_s;

namespace wsedge::deflate {

// Bytes of zlib state held by one core's context-takeover streams, against the limit
// (--deflate-context-memory) that decides whether a new connection gets context takeover.
struct MemoryBudget {
  std::uint64_t limit = 0;
  std::uint64_t used = 0;
  // zalloc calls so far: with `used` unchanged it shows a stream allocates nothing per message.
  std::uint64_t allocations = 0;
  bool fits(std::size_t bytes) const { return used + bytes <= limit; }
};

enum class InflateResult : std::uint8_t {
  kOk,
  kTooBig,   // the inflated message would pass max_size (close 1009)
  kCorrupt,  // not valid deflate data, bytes after a final block, or cut mid-block (close 1002)
};

class Codec {
 public:
  explicit Codec(int level);  // 1..9, zlib's
  ~Codec();
  Codec(const Codec&) = delete;
  Codec& operator=(const Codec&) = delete;

  // One whole message compressed on its own for a peer whose LZ77 window is 2^window_bits
  // (8..15) bytes: the payload permessage-deflate sends with RSV1 (deflate data ending in a
  // sync flush, its 00 00 ff ff tail removed). A view of the codec's scratch, valid until its
  // next compress or DeflateStream::compress. Empty when the message is better sent
  // uncompressed: the result would not be smaller than `in`, or no compressor here keeps to
  // the window at this size (window_bits 8 and more than 256 bytes: zlib's smallest raw
  // window is 512 bytes). The scratch keeps its capacity up to kKeepScratch so the
  // steady state allocates nothing; a larger one is let go by the next message that fits in
  // kKeepScratch (a run of large messages reuses it).
  std::span<const std::byte> compress(std::span<const std::byte> in, int window_bits);

  // Inflates one message's payload (without the 00 00 ff ff tail: it is appended here) into a
  // buffer acquired from `pool`, returned in `out` (null unless kOk; the caller releases it).
  // At most max_size bytes: past that kTooBig, having held about max_size at most, so a
  // decompression bomb costs no more than an honest message of the limit.
  InflateResult inflate(std::span<const std::byte> in, std::uint64_t max_size,
                        memory::BufferPool& pool, memory::Buffer*& out);

  static constexpr std::size_t kKeepScratch = std::size_t{256} << 10;

 private:
  friend class DeflateStream;
  // The scratch for a new message of at most `need` output bytes (contents not kept).
  std::vector<std::byte>& scratch(std::size_t need);
  // `in` through `z` (a raw deflater where the message starts) into the scratch, ending in a
  // sync flush whose tail is removed.
  std::span<const std::byte> sync_flush(z_stream_s* z, std::span<const std::byte> in);

  int level_;
  z_stream_s* window_deflaters_[16] = {};  // by window bits 9..15, created on first use
  z_stream_s* inflater_ = nullptr;         // raw inflate, 32 KiB window, reset per message
  std::vector<std::byte> scratch_;
};

// One connection's compressor with context takeover: its window carries between messages.
class DeflateStream {
 public:
  // Bytes a stream with these parameters allocates (zlib's documented formula plus its
  // state), to check a budget before creating one.
  static std::size_t footprint(int level, int window_bits);
  // Throws std::bad_alloc when zlib cannot allocate. window_bits 9..15 (std::invalid_argument
  // otherwise): zlib has no raw 256-byte window, so a peer that asks for 8 gets no server
  // context takeover (negotiation).
  DeflateStream(int level, int window_bits, MemoryBudget& budget);
  ~DeflateStream();
  DeflateStream(const DeflateStream&) = delete;
  DeflateStream& operator=(const DeflateStream&) = delete;

  // The next message, compressed with the history of the previous ones (sync flush, tail
  // removed), into `codec`'s scratch (valid until its next use). Never empty: once a message
  // went into the stream, the peer's window must see it too.
  std::span<const std::byte> compress(std::span<const std::byte> in, Codec& codec);

 private:
  z_stream_s* z_ = nullptr;
  MemoryBudget* budget_;
};

// One connection's decompressor with context takeover.
class InflateStream {
 public:
  static std::size_t footprint(int window_bits);
  InflateStream(int window_bits, MemoryBudget& budget);  // throws std::bad_alloc
  ~InflateStream();
  InflateStream(const InflateStream&) = delete;
  InflateStream& operator=(const InflateStream&) = delete;

  // As Codec::inflate, keeping the window for the next message.
  InflateResult inflate(std::span<const std::byte> in, std::uint64_t max_size,
                        memory::BufferPool& pool, memory::Buffer*& out);

 private:
  z_stream_s* z_ = nullptr;
  MemoryBudget* budget_;
};

}  // namespace wsedge::deflate
