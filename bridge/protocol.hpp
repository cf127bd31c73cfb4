#pragma once
// The bridge protocol's codec (docs/BRIDGE-PROTOCOL.md, version 1): the 24-byte header with
// its connection id, and the meta frame of key/value entries. Pure code over byte views, like
// engine/protocol: no sockets, no ZeroMQ, no allocation; the bridge and the tests drive it, and
// the golden vectors in tests/bridge/vectors pin its bytes for every other implementation.
#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace wsedge::bridge {

constexpr std::uint8_t kVersion = 1;
constexpr std::size_t kHeaderSize = 24;
constexpr std::size_t kConnIdSize = 18;
// Entries one meta frame may hold; more make it invalid (bad-meta).
constexpr std::size_t kMaxMetaEntries = 64;

enum class Type : std::uint8_t {
  // Up: edge to backend.
  kHello = 0x01,
  kBeat = 0x02,
  kOpen = 0x10,
  kMessage = 0x11,
  kClose = 0x12,
  kSnapshot = 0x13,
  kClientPublish = 0x14,  // a client's publish the ACL allowed (docs/AUTH.md §6)
  kAck = 0x20,
  kError = 0x21,
  // Down: backend to edge.
  kWelcome = 0x81,
  kSend = 0x82,
  kCloseCommand = 0x83,
  kSubscribe = 0x84,
  kUnsubscribe = 0x85,
  kPublish = 0x86,
  kSnapshotRequest = 0x87,
  kReceived = 0x88,
  kAcl = 0x89,      // a live ACL change (docs/AUTH.md §6)
  kExpires = 0x8A,  // a connection's new expiry (docs/AUTH.md §5)
};
bool known_type(std::uint8_t t);

namespace flag {
constexpr std::uint16_t kBinary = 1;    // MESSAGE, SEND: binary (else text)
constexpr std::uint16_t kAck = 0x8000;  // a command asking for ACK or ERROR
}  // namespace flag

// One WebSocket connection in the whole fleet, for ever (§2).
struct ConnId {
  std::uint32_t node = 0;
  std::uint32_t epoch = 0;
  std::uint16_t core = 0;
  std::uint32_t slot = 0;
  std::uint32_t gen = 0;
  bool operator==(const ConnId&) const = default;
  // "node.epoch.core.slot.gen" in lower-case hex, as logs and the Python library print it.
  std::string to_string() const;
  static constexpr std::size_t kMaxText = 48;
  std::string_view format(char (&buf)[kMaxText]) const;  // the same, without allocating
};
void write_conn_id(std::byte* out, const ConnId& id);
ConnId read_conn_id(const std::byte* in);

struct Header {
  std::uint8_t version = kVersion;
  Type type = Type::kHello;
  std::uint16_t flags = 0;
  ConnId id;
};
std::array<std::byte, kHeaderSize> encode_header(const Header& h);

enum class HeaderError : std::uint8_t { kOk, kShort, kMagic, kVersion, kUnknownType };
// Checks and decodes frame 0; anything but kOk is answered ERROR (bad-frame, bad-version,
// unknown-type) and counted, never fatal.
HeaderError decode_header(std::span<const std::byte> frame, Header& out);
// The ERROR code a receiver answers a bad header with.
std::string_view error_code(HeaderError e);

// Meta (frame 1): entries of u8 key length, key, u16 value length, value. Keys are unique.
struct MetaEntry {
  std::string_view key;
  std::span<const std::byte> value;
};

// Builds a meta frame in caller storage. Once an entry does not fit (or a key is longer than
// 255 bytes, or a value than 65,535) nothing more is written and ok() is false.
class MetaWriter {
 public:
  MetaWriter(std::byte* out, std::size_t cap) : out_(out), cap_(cap) {}
  MetaWriter& add(std::string_view key, std::span<const std::byte> value);
  MetaWriter& add(std::string_view key, std::string_view value) {
    return add(key, std::as_bytes(std::span(value.data(), value.size())));
  }
  MetaWriter& add_u16(std::string_view key, std::uint16_t v);
  MetaWriter& add_u32(std::string_view key, std::uint32_t v);
  MetaWriter& add_u64(std::string_view key, std::uint64_t v);
  bool ok() const { return ok_; }
  std::span<const std::byte> bytes() const { return {out_, ok_ ? len_ : 0}; }

 private:
  std::byte* out_;
  std::size_t cap_;
  std::size_t len_ = 0;
  bool ok_ = true;
};

// True when `meta` parses exactly and no key repeats; then fn(entry) is called for each entry
// in order. A malformed frame calls fn for nothing (answer ERROR bad-meta).
template <class Fn>
bool for_each_meta(std::span<const std::byte> meta, Fn&& fn);
bool valid_meta(std::span<const std::byte> meta);
// The value of `key` (the first, scanning no further than a malformed entry), or an empty span
// with `found` false. It does not validate: check the frame once with valid_meta.
std::span<const std::byte> find_meta(std::span<const std::byte> meta, std::string_view key,
                                     bool& found);

// Big-endian integers of meta values; false when the value is not exactly that wide.
bool read_u16(std::span<const std::byte> v, std::uint16_t& out);
bool read_u32(std::span<const std::byte> v, std::uint32_t& out);
bool read_u64(std::span<const std::byte> v, std::uint64_t& out);

inline std::string_view as_text(std::span<const std::byte> v) {
  return {reinterpret_cast<const char*>(v.data()), v.size()};
}

// Name lists in meta values (channels, roles, ACL resources: §4): repeated u8 length + name.
// Calls fn(name) for each; false, having called fn for the names before it, when the list is
// malformed (a zero length, or one past the end).
template <class Fn>
bool for_each_name(std::span<const std::byte> list, Fn&& fn) {
  while (!list.empty()) {
    std::size_t n = std::to_integer<std::size_t>(list[0]);
    if (n == 0 || 1 + n > list.size()) return false;
    fn(as_text(list.subspan(1, n)));
    list = list.subspan(1 + n);
  }
  return true;
}
// Appends one entry to such a list; `name` is 1-255 bytes (the caller's to check).
inline void append_name(std::vector<std::byte>& list, std::string_view name) {
  list.push_back(static_cast<std::byte>(name.size()));
  auto b = std::as_bytes(std::span(name.data(), name.size()));
  list.insert(list.end(), b.begin(), b.end());
}

namespace detail {
enum class MetaStep : std::uint8_t { kOk, kEnd, kMalformed };
MetaStep next_meta(std::span<const std::byte>& rest, MetaEntry& out);
}  // namespace detail

template <class Fn>
bool for_each_meta(std::span<const std::byte> meta, Fn&& fn) {
  if (!valid_meta(meta)) return false;
  MetaEntry e;
  while (detail::next_meta(meta, e) == detail::MetaStep::kOk) fn(e);
  return true;
}

}  // namespace wsedge::bridge
