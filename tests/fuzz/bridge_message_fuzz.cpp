// Fuzzes the bridge codec as an edge reads a backend's message (backends are a trust boundary):
// the input is frame 0 and frame 1 of a multipart message, cut at an input-chosen point. Checks:
// a header that decodes re-encodes to the same 24 bytes; a meta frame is valid exactly when
// iterating it succeeds, every entry lies inside it, and a valid one rebuilt through MetaWriter
// is byte for byte the same (so no two encodings of one meta exist); integer reads accept
// exactly their width.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

#include "bridge/protocol.hpp"
#include "fuzz_check.hpp"

using namespace wsedge::bridge;
using wsedge::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::size_t cut = std::min<std::size_t>(data[0], size - 1);
  std::span<const std::byte> in(reinterpret_cast<const std::byte*>(data + 1), size - 1);
  std::span<const std::byte> frame0 = in.first(cut), meta = in.subspan(cut);

  Header h;
  HeaderError e = decode_header(frame0, h);
  if (e == HeaderError::kOk) {
    auto again = encode_header(h);
    check(std::memcmp(again.data(), frame0.data(), kHeaderSize) == 0);
    check(known_type(static_cast<std::uint8_t>(h.type)) && h.version == kVersion);
  } else {
    check(!error_code(e).empty());
  }

  bool valid = valid_meta(meta);
  std::vector<std::byte> rebuilt(meta.size() + 1);
  MetaWriter w(rebuilt.data(), rebuilt.size());
  std::size_t entries = 0;
  bool iterated = for_each_meta(meta, [&](const MetaEntry& m) {
    ++entries;
    check(m.key.data() >= reinterpret_cast<const char*>(meta.data()) &&
          m.key.data() + m.key.size() <= reinterpret_cast<const char*>(meta.data() + meta.size()));
    check(m.value.data() >= meta.data() &&
          m.value.data() + m.value.size() <= meta.data() + meta.size());
    w.add(m.key, m.value);
    bool found = false;
    std::span<const std::byte> v = find_meta(meta, m.key, found);
    check(found && v.data() == m.value.data() && v.size() == m.value.size());
    std::uint16_t u16;
    std::uint32_t u32;
    std::uint64_t u64;
    check(read_u16(m.value, u16) == (m.value.size() == 2));
    check(read_u32(m.value, u32) == (m.value.size() == 4));
    check(read_u64(m.value, u64) == (m.value.size() == 8));
  });
  check(iterated == valid);
  if (valid) {
    check(w.ok() && w.bytes().size() == meta.size());
    check(meta.empty() || std::memcmp(w.bytes().data(), meta.data(), meta.size()) == 0);
  } else {
    check(entries == 0);
  }
  return 0;
}
