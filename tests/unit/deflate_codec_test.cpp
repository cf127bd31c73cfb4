// The permessage-deflate codec against zlib as the independent implementation: what we
// compress zlib inflates (with exactly the peer's window), what browsers and zlib send we
// inflate, limits and corruption end a message the way §4 of docs/DEFLATE.md says, and the
// memory it holds is what it counts.
#include "engine/deflate/codec.hpp"

#include <gtest/gtest.h>
#include <zlib.h>

#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "counting_new.hpp"
#include "json_like.hpp"
#include "test_bytes.hpp"

namespace wsedge::deflate {
namespace {

using memory::Buffer;
using memory::BufferPool;
using test::Bytes;

const Bytes kTail = test::bytes({0x00, 0x00, 0xff, 0xff});

Bytes random_bytes(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  Bytes b(n);
  for (auto& c : b) c = static_cast<std::byte>(rng());
  return b;
}

Bytes cat(std::span<const std::byte> a, std::span<const std::byte> b) {
  Bytes r(a.begin(), a.end());
  r.insert(r.end(), b.begin(), b.end());
  return r;
}

// zlib's raw inflater with a window of exactly 2^bits, kept across messages. With `strict`, it
// writes one byte per call: zlib then checks every distance against its window (into one large
// output buffer it accepts any distance within what that call wrote, whatever the window).
struct ZInflater {
  z_stream z{};
  explicit ZInflater(int bits) { EXPECT_EQ(inflateInit2(&z, -bits), Z_OK); }
  ~ZInflater() { inflateEnd(&z); }
  // The message's bytes, or nullopt on a data error.
  std::optional<std::string> run(std::span<const std::byte> in, bool strict = false) {
    std::string out;
    z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    char buf[16384];
    for (;;) {
      const uInt room = strict ? 1 : sizeof buf;
      z.next_out = reinterpret_cast<Bytef*>(buf);
      z.avail_out = room;
      int rc = ::inflate(&z, Z_SYNC_FLUSH);
      out.insert(out.end(), buf, buf + (room - z.avail_out));
      if (rc == Z_STREAM_END) return out;
      if (rc != Z_OK && rc != Z_BUF_ERROR) return std::nullopt;
      if (z.avail_in == 0 && z.avail_out > 0) return out;
    }
  }
};

// zlib's raw deflater, as browsers and Python use it: sync flush with the tail removed, or
// (final) a stream finished with a final block, per message.
struct ZDeflater {
  z_stream z{};
  explicit ZDeflater(int level = 6, int bits = 15) {
    EXPECT_EQ(deflateInit2(&z, level, Z_DEFLATED, -bits, 8, Z_DEFAULT_STRATEGY), Z_OK);
  }
  ~ZDeflater() { deflateEnd(&z); }
  Bytes run(std::span<const std::byte> in, bool final = false) {
    Bytes out(deflateBound(&z, in.size()) + 64);
    z.next_in = reinterpret_cast<Bytef*>(const_cast<std::byte*>(in.data()));
    z.avail_in = static_cast<uInt>(in.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    int rc = ::deflate(&z, final ? Z_FINISH : Z_SYNC_FLUSH);
    EXPECT_EQ(rc, final ? Z_STREAM_END : Z_OK);
    out.resize(out.size() - z.avail_out);
    if (final) {
      deflateReset(&z);
    } else {
      EXPECT_EQ(Bytes(out.end() - 4, out.end()), kTail);
      out.resize(out.size() - 4);
    }
    return out;
  }
};

struct Inflated {
  InflateResult result;
  std::string text;
};

template <class Inflater>
Inflated inflate_with(Inflater& inf, std::span<const std::byte> in, std::uint64_t max_size,
                      BufferPool& pool) {
  Buffer* out = reinterpret_cast<Buffer*>(1);
  InflateResult r = inf.inflate(in, max_size, pool, out);
  if (r != InflateResult::kOk) {
    EXPECT_EQ(out, nullptr);
    return {r, {}};
  }
  std::string s(reinterpret_cast<const char*>(out->data()), out->len);
  pool.release(out);
  return {r, s};
}

std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

const std::size_t kSizes[] = {0, 1, 63, 64, 255, 256, 257, 1 << 10, 16 << 10, 64 << 10, 1 << 20};

TEST(DeflateCodec, CompressRoundTripsThroughZlibWithThePeersWindow) {
  Codec codec(6);
  for (int bits = 8; bits <= 15; ++bits) {
    for (std::size_t size : kSizes) {
      const std::string json = test::json_like(size, static_cast<std::uint32_t>(size));
      const Bytes random = random_bytes(size, static_cast<std::uint32_t>(bits));
      for (bool text : {true, false}) {
        SCOPED_TRACE(std::string("bits ")
                         .append(std::to_string(bits))
                         .append(" size ")
                         .append(std::to_string(size))
                         .append(text ? " json" : " random"));
        std::span<const std::byte> in = text ? as_bytes(json) : std::span<const std::byte>(random);
        Bytes c;
        {
          auto r = codec.compress(in, bits);
          c.assign(r.begin(), r.end());
        }
        // Empty: sent uncompressed. Expected for incompressible data, for what deflate's own
        // framing outweighs, and for the 256-byte window beyond 256 bytes; JSON otherwise shrinks.
        // Below 64 bytes (--deflate-min-size) either way is right.
        if (!text || (bits == 8 && size > 256)) {
          EXPECT_TRUE(c.empty());
        } else if (size >= 64) {
          EXPECT_FALSE(c.empty());
        }
        if (c.empty()) continue;
        EXPECT_LT(c.size(), in.size());
        // 1 MiB one byte per call is slow: the strict window check runs to 64 KiB.
        ZInflater z(bits);
        auto got = z.run(cat(c, kTail), size <= (64u << 10));
        ASSERT_TRUE(got.has_value());
        EXPECT_TRUE(*got == std::string(reinterpret_cast<const char*>(in.data()), in.size()));
      }
    }
  }
}

TEST(DeflateCodec, TheStrictInflaterCatchesDistancesPastItsWindow) {
  // The check above is worth something only if a too-far distance fails: libdeflate's own
  // output for 16 KiB (32 KiB window) refers further back than 512 bytes somewhere.
  Codec codec(6);
  const std::string json = test::json_like(16 << 10);
  auto c = codec.compress(as_bytes(json), 15);
  ASSERT_FALSE(c.empty());
  ZInflater narrow(9);
  EXPECT_FALSE(narrow.run(cat(c, kTail), true).has_value());
  ZInflater wide(15);
  EXPECT_EQ(wide.run(cat(c, kTail), true), json);
}

TEST(DeflateCodec, InflatesWhatZlibSends) {
  Codec codec(6);
  BufferPool pool;
  for (std::size_t size : kSizes) {
    const std::string json = test::json_like(size, 7);
    for (bool final : {false, true}) {
      SCOPED_TRACE(std::to_string(size).append(final ? " final block" : " sync flush"));
      ZDeflater z;
      Bytes c = z.run(as_bytes(json), final);
      auto r = inflate_with(codec, c, 1 << 20, pool);
      EXPECT_EQ(r.result, InflateResult::kOk);
      EXPECT_TRUE(r.text == json);
    }
  }
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(DeflateCodec, InflateStreamKeepsTheWindowAcrossMessages) {
  MemoryBudget budget{1 << 30};
  InflateStream stream(15, budget);
  BufferPool pool;
  ZDeflater z;
  std::size_t first_size = 0;
  for (int i = 0; i < 5; ++i) {
    std::string msg = test::json_like(2000, 3);  // the same message: later ones refer back
    msg.append(std::to_string(i));
    Bytes c = z.run(as_bytes(msg));
    if (i == 0) first_size = c.size();
    if (i > 0) {
      EXPECT_LT(c.size() * 10, first_size);  // the history is really used
    }
    auto r = inflate_with(stream, c, 1 << 20, pool);
    EXPECT_EQ(r.result, InflateResult::kOk);
    EXPECT_EQ(r.text, msg);
  }
}

TEST(DeflateCodec, InflateStreamReadsAFinalBlockThenReferencesBeforeIt) {
  // RFC 7692 §7.2.3.4: a peer may end each message with a final block and still refer back
  // into the previous message. zlib does that with a new stream primed with the history.
  MemoryBudget budget{1 << 30};
  InflateStream stream(15, budget);
  BufferPool pool;
  const std::string msg = test::json_like(3000, 9);
  ZDeflater z;
  Bytes first = z.run(as_bytes(msg), true);
  ASSERT_EQ(deflateSetDictionary(&z.z, reinterpret_cast<const Bytef*>(msg.data()),
                                 static_cast<uInt>(msg.size())),
            Z_OK);
  Bytes second = z.run(as_bytes(msg), true);
  EXPECT_LT(second.size() * 10, first.size());
  for (const Bytes& c : {first, second}) {
    auto r = inflate_with(stream, c, 1 << 20, pool);
    EXPECT_EQ(r.result, InflateResult::kOk);
    EXPECT_EQ(r.text, msg);
  }
}

TEST(DeflateCodec, DeflateStreamMessagesInflateWithOneZlibStream) {
  Codec codec(6);
  for (int bits = 9; bits <= 15; ++bits) {
    SCOPED_TRACE(bits);
    MemoryBudget budget{1 << 30};
    DeflateStream stream(6, bits, budget);
    ZInflater z(bits);
    std::size_t first_size = 0;
    for (int i = 0; i < 6; ++i) {
      std::string msg = test::json_like(i == 5 ? 0 : 1500, 5);
      msg.append(std::to_string(i));
      auto c = stream.compress(as_bytes(msg), codec);
      ASSERT_FALSE(c.empty());
      if (i == 0) first_size = c.size();
      if (bits >= 11 && (i == 1 || i == 2)) {  // a window that holds the message before
        EXPECT_LT(c.size() * 5, first_size);
      }
      Bytes sent = cat(c, kTail);
      EXPECT_EQ(z.run(sent, true), msg);
    }
  }
}

TEST(DeflateCodec, MaxSizeIsTheInflatedSize) {
  Codec codec(6);
  BufferPool pool;
  for (std::size_t size : {std::size_t{1000}, std::size_t{4096}, std::size_t{100000}}) {
    const std::string json = test::json_like(size);
    Bytes c;
    {
      auto r = codec.compress(as_bytes(json), 15);
      c.assign(r.begin(), r.end());
    }
    EXPECT_EQ(inflate_with(codec, c, size, pool).result, InflateResult::kOk);
    EXPECT_EQ(inflate_with(codec, c, size - 1, pool).result, InflateResult::kTooBig);
    MemoryBudget budget{1 << 30};
    InflateStream stream(15, budget);
    EXPECT_EQ(inflate_with(stream, c, size - 1, pool).result, InflateResult::kTooBig);
  }
  EXPECT_EQ(inflate_with(codec, test::bytes({0x00}), 0, pool).result, InflateResult::kOk);
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(DeflateCodec, ABombStopsAtTheLimit) {
  // 100 MiB of zeros, about 100 KB compressed: inflating stops at 1 MiB, holding one buffer of
  // the limit's size class at most (every buffer acquired is cached after release).
  Bytes zeros(std::size_t{100} << 20);
  ZDeflater z(9);
  Bytes bomb = z.run(zeros);
  zeros = Bytes();
  EXPECT_LT(bomb.size(), 200u << 10);
  Codec codec(6);
  BufferPool pool;
  EXPECT_EQ(inflate_with(codec, bomb, 1 << 20, pool).result, InflateResult::kTooBig);
  EXPECT_EQ(pool.in_use(), 0u);
  EXPECT_LE(pool.cached_bytes(), std::size_t{2} << 20);
  BufferPool pool2;
  MemoryBudget budget{1 << 30};
  InflateStream stream(15, budget);
  EXPECT_EQ(inflate_with(stream, bomb, 1 << 20, pool2).result, InflateResult::kTooBig);
  EXPECT_LE(pool2.cached_bytes(), std::size_t{2} << 20);
}

TEST(DeflateCodec, CorruptDataIsRefused) {
  Codec codec(6);
  BufferPool pool;
  const std::string json = test::json_like(5000);
  Bytes good;  // our own compress: ends in a sync flush
  {
    auto r = codec.compress(as_bytes(json), 15);
    good.assign(r.begin(), r.end());
  }
  auto corrupt = [&](std::span<const std::byte> c) {
    EXPECT_EQ(inflate_with(codec, c, 1 << 20, pool).result, InflateResult::kCorrupt);
    // The next message inflates as if nothing happened: a refused one left its unread input in
    // the stream, which the next message then read first.
    auto next = inflate_with(codec, good, 1 << 20, pool);
    EXPECT_EQ(next.result, InflateResult::kOk);
    EXPECT_TRUE(next.text == json);
    MemoryBudget budget{1 << 30};
    InflateStream stream(15, budget);
    EXPECT_EQ(inflate_with(stream, c, 1 << 20, pool).result, InflateResult::kCorrupt);
  };
  corrupt(random_bytes(1000, 42));
  // After a final block: the tail alone, or one 0x00 that makes the tail an empty stored
  // block (a sender's courtesy to Chromium's inflater); nothing else.
  Bytes final_block = ZDeflater().run(as_bytes(json), true);
  EXPECT_EQ(inflate_with(codec, final_block, 1 << 20, pool).text, json);
  EXPECT_EQ(inflate_with(codec, cat(final_block, test::bytes({0x00})), 1 << 20, pool).text, json);
  corrupt(cat(final_block, test::bytes("x")));
  corrupt(cat(final_block, test::bytes({0x00, 0x00})));
  corrupt(cat(final_block, test::bytes({0x01})));
  corrupt(cat(final_block, final_block));
  // BTYPE 11, final and not.
  corrupt(test::bytes({0x07, 0x00}));
  corrupt(test::bytes({0x06, 0x00}));
  // A distance before the message's start: deflated against a dictionary we do not have.
  ZDeflater z;
  ASSERT_EQ(deflateSetDictionary(&z.z, reinterpret_cast<const Bytef*>(json.data()),
                                 static_cast<uInt>(json.size())),
            Z_OK);
  corrupt(z.run(as_bytes(json)));
  // Cut mid-block (sync flush or final block): zlib alone would deliver a silent prefix.
  ZDeflater z2;
  Bytes whole = z2.run(as_bytes(json));
  corrupt(Bytes(whole.begin(), whole.end() - 10));
  corrupt(Bytes(good.begin(), good.end() - 10));
  // Not even a block header's worth: compliant senders send at least one byte (RFC 7692 §7.2.1).
  corrupt(Bytes{});
  EXPECT_EQ(pool.in_use(), 0u);
}

TEST(DeflateCodec, StreamsCountTheirMemoryExactly) {
  MemoryBudget budget{1 << 30, 1000};
  Codec codec(6);
  BufferPool pool;
  const std::string json = test::json_like(64 << 10);
  for (int bits = 9; bits <= 15; ++bits) {
    SCOPED_TRACE(bits);
    {
      DeflateStream d(6, bits, budget);
      EXPECT_GT(budget.used, 1000u + (1u << (bits + 2)));
      d.compress(as_bytes(json), codec);
      std::uint64_t held = budget.used - 1000;
      EXPECT_LE(held, DeflateStream::footprint(6, bits));
      EXPECT_GE(held * 10, DeflateStream::footprint(6, bits) * 9);
    }
    EXPECT_EQ(budget.used, 1000u);
  }
  for (int bits = 8; bits <= 15; ++bits) {
    SCOPED_TRACE(bits);
    {
      InflateStream in(bits, budget);
      EXPECT_GT(budget.used, 1000u);
      ZDeflater z(6, bits == 8 ? 9 : bits);  // zlib has no raw 256-byte deflater
      Bytes c = z.run(as_bytes(json));
      EXPECT_EQ(inflate_with(in, c, 1 << 20, pool).result, InflateResult::kOk);
      std::uint64_t held = budget.used - 1000;
      EXPECT_LE(held, InflateStream::footprint(bits));
      EXPECT_GE(held * 10, InflateStream::footprint(bits) * 9);
    }
    EXPECT_EQ(budget.used, 1000u);
  }
}

TEST(DeflateCodec, TheSteadyStateAllocatesNothing) {
  // Proves: no operator new (the scratch, our containers), no pool allocation (inflated
  // buffers) and no zalloc in the context-takeover streams per message once warm. The core's
  // own zlib streams (Codec's inflater and window deflaters) allocate with malloc, uncounted
  // here; zlib allocates only in *Init2 and the inflate window at first use, both in warm-up.
  Codec codec(6);
  BufferPool pool;
  MemoryBudget budget{1 << 30};
  DeflateStream ds(6, 15, budget);
  InflateStream is(15, budget);
  const std::string small = test::json_like(1 << 10), large = test::json_like(16 << 10);
  auto round = [&] {
    for (const std::string* msg : {&small, &large}) {
      for (int bits : {15, 10}) {
        auto c = codec.compress(as_bytes(*msg), bits);
        Buffer* out = nullptr;
        ASSERT_EQ(codec.inflate(c, 1 << 20, pool, out), InflateResult::kOk);
        ASSERT_EQ(out->len, msg->size());
        pool.release(out);
      }
      auto c = ds.compress(as_bytes(*msg), codec);
      Buffer* out = nullptr;
      ASSERT_EQ(is.inflate(c, 1 << 20, pool, out), InflateResult::kOk);
      ASSERT_EQ(out->len, msg->size());
      pool.release(out);
    }
  };
  for (int i = 0; i < 10; ++i) round();
  const auto news = test::allocations(), pooled = pool.allocations();
  const auto zallocs = budget.allocations, used = budget.used;
  for (int i = 0; i < 1000; ++i) round();
  EXPECT_EQ(test::allocations(), news);
  EXPECT_EQ(pool.allocations(), pooled);
  EXPECT_EQ(budget.allocations, zallocs);
  EXPECT_EQ(budget.used, used);
}

TEST(DeflateCodec, ALargeScratchIsLetGoByTheNextSmallMessage) {
  Codec codec(6);
  const std::string big = test::json_like(1 << 20), small = test::json_like(1 << 10);
  EXPECT_FALSE(codec.compress(as_bytes(big), 15).empty());
  // The next small message's result must come from a scratch of at most kKeepScratch; the
  // view's pointer moving is the observable sign that the 1 MiB one was let go.
  const std::byte* big_at = codec.compress(as_bytes(big), 15).data();
  const std::byte* small_at = codec.compress(as_bytes(small), 15).data();
  EXPECT_NE(big_at, small_at);
  const auto news = test::allocations();
  for (int i = 0; i < 10; ++i) EXPECT_EQ(codec.compress(as_bytes(small), 15).data(), small_at);
  EXPECT_EQ(test::allocations(), news);
}

}  // namespace
}  // namespace wsedge::deflate
