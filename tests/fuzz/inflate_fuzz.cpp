// Fuzzes permessage-deflate's inflater (what a peer sends is untrusted): the input's first two
// bytes are max_size (little-endian), the rest one compressed message. Checks: the per-core
// Codec and a context-takeover InflateStream (fresh, so the same history) agree on the result
// and the bytes; a kOk message is at most max_size; recompressed by Codec::compress (the
// libdeflate path and the zlib path of a 1 KiB window) it inflates back to the same bytes;
// every pooled buffer and every counted zlib byte is given back.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>

#include "engine/deflate/codec.hpp"
#include "fuzz_check.hpp"

using namespace wsedge::deflate;
using wsedge::fuzz::check;
using wsedge::memory::Buffer;
using wsedge::memory::BufferPool;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint64_t max_size = data[0] | data[1] << 8;
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 2), size - 2);
  static Codec codec(6);
  BufferPool pool;
  MemoryBudget budget{1 << 30};
  {
    InflateStream stream(15, budget);
    Buffer* a = nullptr;
    Buffer* b = nullptr;
    InflateResult ra = codec.inflate(in, max_size, pool, a);
    InflateResult rb = stream.inflate(in, max_size, pool, b);
    check(ra == rb);
    check((ra == InflateResult::kOk) == (a != nullptr) &&
          (rb == InflateResult::kOk) == (b != nullptr));
    if (ra == InflateResult::kOk) {
      check(a->len <= max_size && a->len == b->len &&
            std::memcmp(a->data(), b->data(), a->len) == 0);
      std::span<const std::byte> plain(a->data(), a->len);
      for (int bits : {15, 10}) {
        auto c = codec.compress(plain, bits);
        if (c.empty()) continue;
        check(c.size() < plain.size());
        Buffer* again = nullptr;
        check(codec.inflate(c, plain.size(), pool, again) == InflateResult::kOk);
        check(again->len == plain.size() &&
              std::memcmp(again->data(), plain.data(), plain.size()) == 0);
        pool.release(again);
      }
      pool.release(a);
      pool.release(b);
    }
    check(pool.in_use() == 0);
  }
  check(budget.used == 0);
  return 0;
}
