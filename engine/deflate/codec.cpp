#include "codec.hpp"

#include <zlib.h>

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <stdexcept>

namespace wsedge::deflate {

using memory::Buffer;
using memory::BufferPool;

namespace {

// What a sync flush ends with (an empty stored block's LEN and NLEN): removed by the sender,
// appended by the receiver (RFC 7692 §7.2.1, §7.2.2).
constexpr std::byte kTail[4] = {std::byte{0x00}, std::byte{0x00}, std::byte{0xff}, std::byte{0xff}};
// zlib's default memLevel: 128 KiB of hash chains and pending output per deflater (§5).
constexpr int kMemLevel = 8;
// In front of every counted allocation: its size, for zfree. 16 bytes keep malloc's alignment.
constexpr std::size_t kHeader = 16;

// zalloc/zfree of context-takeover streams: every byte, the header included, in the budget, so
// the gauge and --deflate-context-memory see what the connection really holds.
voidpf counted_alloc(voidpf opaque, uInt items, uInt size) {
  auto* budget = static_cast<MemoryBudget*>(opaque);
  std::size_t n = kHeader + std::size_t{items} * size;
  auto* p = static_cast<unsigned char*>(std::malloc(n));
  if (!p) return Z_NULL;
  std::memcpy(p, &n, sizeof n);
  budget->used += n;
  ++budget->allocations;
  return p + kHeader;
}

void counted_free(voidpf opaque, voidpf address) {
  auto* p = static_cast<unsigned char*>(address) - kHeader;
  std::size_t n;
  std::memcpy(&n, p, sizeof n);
  static_cast<MemoryBudget*>(opaque)->used -= n;
  std::free(p);
}

// The z_stream itself comes from the counted allocator too, so a stream's whole cost is in used.
z_stream* new_counted_stream(MemoryBudget& budget) {
  auto* z = static_cast<z_stream*>(counted_alloc(&budget, 1, sizeof(z_stream)));
  if (!z) throw std::bad_alloc();
  *z = z_stream{};
  z->zalloc = counted_alloc;
  z->zfree = counted_free;
  z->opaque = &budget;
  return z;
}

// After a failed deflateInit2/inflateInit2 zlib has freed what it took; only the z_stream is left.
[[noreturn]] void init_failed(z_stream* z, MemoryBudget& budget, int rc) {
  counted_free(&budget, z);
  if (rc == Z_MEM_ERROR) throw std::bad_alloc();
  throw std::invalid_argument("zlib refused the stream's parameters");
}

// zlib counts in uInt: a larger input is fed in pieces of at most this much.
constexpr std::size_t kMaxPiece = std::numeric_limits<uInt>::max();

// Hands zlib the next piece of `in` (from `fed` on) once it has used up the last one.
void feed(z_stream* z, std::span<const std::byte> in, std::size_t& fed) {
  if (z->avail_in != 0 || fed == in.size()) return;
  std::size_t n = std::min(in.size() - fed, kMaxPiece);
  z->next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data() + fed));
  z->avail_in = static_cast<uInt>(n);
  fed += n;
}

// One message through `z` (positioned where the message starts) into a pooled buffer.
//
// The buffer grows by doubling but holds at most `limit` bytes of output; when it is full and
// zlib still has output, one more byte into `probe` tells kTooBig from a message of exactly the
// limit. So a bomb stops with the limit's size class held, never more.
//
// Truncation: after the appended tail a message that does not end in a final block must leave
// the inflater between blocks. Every compliant sender's message ends in an empty stored block
// (sync flush, RFC 7692 §7.2.1) whose last 4 bytes are the tail, which brings zlib back to the
// start of a block (data_type bit 128). A message cut mid-block instead leaves zlib waiting for
// more and would otherwise be delivered as a silent prefix, so it is kCorrupt. (A cut that
// happens to end where the tail decodes to a block's end is not detectable and is delivered.)
//
// `finished` is set when the message ended in a final block (the stream is then done).
InflateResult inflate_message(z_stream* z, std::span<const std::byte> in, std::uint64_t max_size,
                              BufferPool& pool, Buffer*& out, bool& finished) {
  out = nullptr;
  finished = false;
  z->avail_in = 0;  // a message refused part-way left its input behind
  const std::size_t limit =
      static_cast<std::size_t>(std::min<std::uint64_t>(max_size, BufferPool::kMaxCapacity));
  // A first guess that fits typical text (3-8x) without a copy, within the limit.
  Buffer* b = pool.acquire(std::min(limit, in.size() * 4 + 1024));
  std::byte probe;
  auto fail = [&](InflateResult r) {
    pool.release(b);
    return r;
  };
  const std::span<const std::byte> parts[2] = {in, std::span<const std::byte>(kTail)};
  for (const auto& part : parts) {
    std::size_t fed = 0;
    for (;;) {
      feed(z, part, fed);
      bool probing = b->len == limit;
      if (probing) {
        z->next_out = reinterpret_cast<Bytef*>(&probe);
        z->avail_out = 1;
      } else {
        if (b->room() == 0) b = pool.reserve(b, std::min(b->capacity(), limit - b->len));
        std::size_t room = std::min({b->room(), limit - b->len, kMaxPiece});
        z->next_out = reinterpret_cast<Bytef*>(b->data() + b->len);
        z->avail_out = static_cast<uInt>(room);
      }
      uInt avail_out = z->avail_out;
      int rc = ::inflate(z, Z_SYNC_FLUSH);
      uInt produced = avail_out - z->avail_out;
      if (probing && produced > 0) return fail(InflateResult::kTooBig);
      if (!probing) b->len += produced;
      if (rc == Z_STREAM_END) {
        // Bytes after the final block other than the tail, or a 0x00 that makes the tail an
        // empty stored block (what Codec::compress sends): not one message (RFC 7692 §7.2.2 has
        // no room for them).
        std::size_t left = z->avail_in + (part.size() - fed);
        if (&part == &parts[0] && left > 0 && !(left == 1 && part.back() == std::byte{0}))
          return fail(InflateResult::kCorrupt);
        z->avail_in = 0;
        finished = true;
        out = b;
        return InflateResult::kOk;
      }
      if (rc == Z_MEM_ERROR) {
        pool.release(b);
        throw std::bad_alloc();  // the window, allocated at first use
      }
      if (rc != Z_OK && rc != Z_BUF_ERROR) return fail(InflateResult::kCorrupt);
      // Room left over means zlib stopped for want of input: this part is all inflated.
      if (z->avail_in == 0 && fed == part.size() && z->avail_out > 0) break;
    }
  }
  if (!(z->data_type & 128)) return fail(InflateResult::kCorrupt);
  out = b;
  return InflateResult::kOk;
}

}  // namespace

Codec::Codec(int level) : level_(level) {
  inflater_ = new z_stream{};
  if (inflateInit2(inflater_, -15) != Z_OK) {
    delete inflater_;
    throw std::bad_alloc();
  }
}

Codec::~Codec() {
  inflateEnd(inflater_);
  delete inflater_;
  for (z_stream* z : window_deflaters_) {
    if (!z) continue;
    deflateEnd(z);
    delete z;
  }
}

std::vector<std::byte>& Codec::scratch(std::size_t need) {
  // A scratch grown for one large message is not kept for the small ones after it.
  if (scratch_.capacity() > kKeepScratch && need <= kKeepScratch)
    std::vector<std::byte>().swap(scratch_);
  if (scratch_.size() < need) {
    scratch_.reserve(need);  // exactly: doubling would put a 200 KiB message over kKeepScratch
    scratch_.resize(need);
  }
  return scratch_;
}

std::span<const std::byte> Codec::compress(std::span<const std::byte> in, int window_bits) {
  assert(window_bits >= 8 && window_bits <= 15);
  // zlib has no raw 256-byte window; a message no longer than 256 bytes refers back less than
  // that whatever the stream's window, so a 9-bit stream serves it.
  if (window_bits == 8) {
    if (in.size() > 256) return {};
    window_bits = 9;
  }
  z_stream*& z = window_deflaters_[window_bits];
  if (!z) {
    z = new z_stream{};
    if (deflateInit2(z, level_, Z_DEFLATED, -window_bits, kMemLevel, Z_DEFAULT_STRATEGY) != Z_OK) {
      delete z;
      z = nullptr;
      throw std::bad_alloc();
    }
  } else {
    deflateReset(z);
  }
  std::span<const std::byte> out = sync_flush(z, in);
  return out.size() < in.size() ? out : std::span<const std::byte>{};
}

// Messages end in a sync flush, never in a final block (which libdeflate, a whole-buffer
// compressor, always writes): Beast 1.74 and websocketpp 0.8.2 fail the connection on a
// message that ends in one, and Chromium reads the receiver's tail after one as the start of a
// stored block and fails on the next message. docs/DEFLATE.md §3 has the measurements.
std::span<const std::byte> Codec::sync_flush(z_stream_s* z, std::span<const std::byte> in) {
  // deflateBound is for Z_FINISH; a sync flush adds its empty stored block (5 bytes) and the
  // bits of the block before it. Should that still not fit, the loop grows the scratch.
  auto* s = &scratch(deflateBound(z, static_cast<uLong>(std::min(in.size(), kMaxPiece))) + 16);
  std::size_t fed = 0, n = 0;
  for (;;) {
    feed(z, in, fed);
    if (n == s->size()) s->resize(s->size() * 2);
    z->next_out = reinterpret_cast<Bytef*>(s->data() + n);
    z->avail_out = static_cast<uInt>(std::min(s->size() - n, kMaxPiece));
    uInt avail_out = z->avail_out;
    // Only the end of the message flushes (pieces exist only past 4 GiB).
    int rc = ::deflate(z, fed == in.size() ? Z_SYNC_FLUSH : Z_NO_FLUSH);
    assert(rc == Z_OK || rc == Z_BUF_ERROR);
    (void)rc;
    n += avail_out - z->avail_out;
    // Done when all input went in and the flush fitted (zlib asks to be called again while
    // avail_out is 0).
    if (fed == in.size() && z->avail_in == 0 && z->avail_out > 0) break;
  }
  // The sync flush's empty stored block: its LEN/NLEN are the tail the receiver appends back.
  assert(n >= 4 && std::memcmp(s->data() + n - 4, kTail, 4) == 0);
  return {s->data(), n - 4};
}

InflateResult Codec::inflate(std::span<const std::byte> in, std::uint64_t max_size,
                             BufferPool& pool, Buffer*& out) {
  inflateReset(inflater_);
  bool finished;
  return inflate_message(inflater_, in, max_size, pool, out, finished);
}

std::size_t DeflateStream::footprint(int /*level*/, int window_bits) {
  // zlib.h: (1 << (windowBits+2)) + (1 << (memLevel+9)), plus its deflate_state (~5.8 KiB on
  // 64-bit), the z_stream and our headers; the unit test holds it within 10 % of the measure.
  return (std::size_t{1} << (window_bits + 2)) + (std::size_t{1} << (kMemLevel + 9)) +
         (std::size_t{6} << 10) + 512;
}

DeflateStream::DeflateStream(int level, int window_bits, MemoryBudget& budget)
    : z_(new_counted_stream(budget)), budget_(&budget) {
  int rc = deflateInit2(z_, level, Z_DEFLATED, -window_bits, kMemLevel, Z_DEFAULT_STRATEGY);
  if (rc != Z_OK) init_failed(z_, budget, rc);
}

DeflateStream::~DeflateStream() {
  deflateEnd(z_);
  counted_free(budget_, z_);
}

std::span<const std::byte> DeflateStream::compress(std::span<const std::byte> in, Codec& codec) {
  return codec.sync_flush(z_, in);
}

std::size_t InflateStream::footprint(int window_bits) {
  // zlib.h: 1 << windowBits (the window, allocated at first use), plus its inflate_state
  // (~7 KiB on 64-bit), the z_stream and our headers.
  return (std::size_t{1} << window_bits) + (std::size_t{7} << 10) + 512;
}

InflateStream::InflateStream(int window_bits, MemoryBudget& budget)
    : z_(new_counted_stream(budget)), budget_(&budget) {
  int rc = inflateInit2(z_, -window_bits);
  if (rc != Z_OK) init_failed(z_, budget, rc);
}

InflateStream::~InflateStream() {
  inflateEnd(z_);
  counted_free(budget_, z_);
}

InflateResult InflateStream::inflate(std::span<const std::byte> in, std::uint64_t max_size,
                                     BufferPool& pool, Buffer*& out) {
  bool finished;
  InflateResult r = inflate_message(z_, in, max_size, pool, out, finished);
  if (r == InflateResult::kOk && finished) {
    // A peer may end a message with a final block (RFC 7692 §7.2.3.4) and still refer back to
    // it in the next: a new deflate stream over the same window. inflateReset alone would
    // forget the window, so it is carried over as a dictionary.
    Bytef window[1 << 15];
    uInt have = 0;
    inflateGetDictionary(z_, window, &have);
    inflateReset(z_);
    inflateSetDictionary(z_, window, have);
  }
  return r;
}

}  // namespace wsedge::deflate
