#include "protocol.hpp"

#include <cstdio>
#include <cstring>

namespace wsedge::bridge {
namespace {

constexpr std::byte kMagic0{0x57};  // 'W'
constexpr std::byte kMagic1{0x45};  // 'E'

template <class T>
void put(std::byte* out, T v) {
  for (std::size_t i = 0; i < sizeof(T); ++i)
    out[i] = static_cast<std::byte>(v >> (8 * (sizeof(T) - 1 - i)));
}

template <class T>
T get(const std::byte* in) {
  T v = 0;
  for (std::size_t i = 0; i < sizeof(T); ++i)
    v = static_cast<T>((v << 8) | static_cast<std::uint8_t>(in[i]));
  return v;
}

template <class T>
bool read_be(std::span<const std::byte> v, T& out) {
  if (v.size() != sizeof(T)) return false;
  out = get<T>(v.data());
  return true;
}

}  // namespace

bool known_type(std::uint8_t t) {
  switch (static_cast<Type>(t)) {
    case Type::kHello:
    case Type::kBeat:
    case Type::kOpen:
    case Type::kMessage:
    case Type::kClose:
    case Type::kSnapshot:
    case Type::kClientPublish:
    case Type::kAck:
    case Type::kError:
    case Type::kWelcome:
    case Type::kSend:
    case Type::kCloseCommand:
    case Type::kSubscribe:
    case Type::kUnsubscribe:
    case Type::kPublish:
    case Type::kSnapshotRequest:
    case Type::kReceived:
    case Type::kAcl:
    case Type::kExpires:
      return true;
  }
  return false;
}

std::string_view ConnId::format(char (&buf)[kMaxText]) const {
  int n = std::snprintf(buf, sizeof buf, "%x.%x.%x.%x.%x", node, epoch, core, slot, gen);
  return {buf, static_cast<std::size_t>(n)};
}

std::string ConnId::to_string() const {
  char buf[kMaxText];
  return std::string(format(buf));
}

void write_conn_id(std::byte* out, const ConnId& id) {
  put(out, id.node);
  put(out + 4, id.epoch);
  put(out + 8, id.core);
  put(out + 10, id.slot);
  put(out + 14, id.gen);
}

ConnId read_conn_id(const std::byte* in) {
  return {get<std::uint32_t>(in), get<std::uint32_t>(in + 4), get<std::uint16_t>(in + 8),
          get<std::uint32_t>(in + 10), get<std::uint32_t>(in + 14)};
}

std::array<std::byte, kHeaderSize> encode_header(const Header& h) {
  std::array<std::byte, kHeaderSize> out{};
  out[0] = kMagic0;
  out[1] = kMagic1;
  out[2] = static_cast<std::byte>(h.version);
  out[3] = static_cast<std::byte>(h.type);
  put(out.data() + 4, h.flags);
  write_conn_id(out.data() + 6, h.id);
  return out;
}

HeaderError decode_header(std::span<const std::byte> frame, Header& out) {
  // Exactly 24 bytes: a longer frame 0 is as malformed as a shorter one.
  if (frame.size() != kHeaderSize) return HeaderError::kShort;
  if (frame[0] != kMagic0 || frame[1] != kMagic1) return HeaderError::kMagic;
  out.version = static_cast<std::uint8_t>(frame[2]);
  if (out.version != kVersion) return HeaderError::kVersion;
  auto t = static_cast<std::uint8_t>(frame[3]);
  if (!known_type(t)) return HeaderError::kUnknownType;
  out.type = static_cast<Type>(t);
  out.flags = get<std::uint16_t>(frame.data() + 4);
  out.id = read_conn_id(frame.data() + 6);
  return HeaderError::kOk;
}

std::string_view error_code(HeaderError e) {
  switch (e) {
    case HeaderError::kOk:
      return {};
    case HeaderError::kShort:
    case HeaderError::kMagic:
      return "bad-frame";
    case HeaderError::kVersion:
      return "bad-version";
    case HeaderError::kUnknownType:
      return "unknown-type";
  }
  return "bad-frame";
}

MetaWriter& MetaWriter::add(std::string_view key, std::span<const std::byte> value) {
  std::size_t need = 1 + key.size() + 2 + value.size();
  if (!ok_ || key.empty() || key.size() > 0xFF || value.size() > 0xFFFF || cap_ - len_ < need) {
    ok_ = false;
    return *this;
  }
  std::byte* p = out_ + len_;
  p[0] = static_cast<std::byte>(key.size());
  std::memcpy(p + 1, key.data(), key.size());
  put(p + 1 + key.size(), static_cast<std::uint16_t>(value.size()));
  if (!value.empty()) std::memcpy(p + 3 + key.size(), value.data(), value.size());
  len_ += need;
  return *this;
}

MetaWriter& MetaWriter::add_u16(std::string_view key, std::uint16_t v) {
  std::byte b[2];
  put(b, v);
  return add(key, std::span<const std::byte>(b));
}

MetaWriter& MetaWriter::add_u32(std::string_view key, std::uint32_t v) {
  std::byte b[4];
  put(b, v);
  return add(key, std::span<const std::byte>(b));
}

MetaWriter& MetaWriter::add_u64(std::string_view key, std::uint64_t v) {
  std::byte b[8];
  put(b, v);
  return add(key, std::span<const std::byte>(b));
}

namespace detail {

MetaStep next_meta(std::span<const std::byte>& rest, MetaEntry& out) {
  if (rest.empty()) return MetaStep::kEnd;
  auto klen = static_cast<std::size_t>(rest[0]);
  if (klen == 0 || rest.size() < 1 + klen + 2) return MetaStep::kMalformed;
  std::size_t vlen = get<std::uint16_t>(rest.data() + 1 + klen);
  if (rest.size() < 3 + klen + vlen) return MetaStep::kMalformed;
  out.key = {reinterpret_cast<const char*>(rest.data() + 1), klen};
  out.value = rest.subspan(3 + klen, vlen);
  rest = rest.subspan(3 + klen + vlen);
  return MetaStep::kOk;
}

}  // namespace detail

bool valid_meta(std::span<const std::byte> meta) {
  using detail::MetaStep;
  // Meta frames hold a handful of keys: comparing each with those before it beats a set, and
  // the bound on entries keeps that from being quadratic in what a hostile peer sends (100 KB
  // of 2-byte keys took a core 1.7 s to check).
  std::span<const std::byte> rest = meta;
  MetaEntry e;
  MetaStep st;
  std::size_t entries = 0;
  while ((st = detail::next_meta(rest, e)) == MetaStep::kOk) {
    if (++entries > kMaxMetaEntries) return false;
    std::span<const std::byte> before = meta.first(static_cast<std::size_t>(
        reinterpret_cast<const std::byte*>(e.key.data()) - 1 - meta.data()));
    MetaEntry b;
    while (detail::next_meta(before, b) == MetaStep::kOk) {
      if (b.key == e.key) return false;
    }
  }
  return st == MetaStep::kEnd;
}

std::span<const std::byte> find_meta(std::span<const std::byte> meta, std::string_view key,
                                     bool& found) {
  // One pass, no validation: a message's meta is validated once, where it is received.
  found = false;
  MetaEntry e;
  while (detail::next_meta(meta, e) == detail::MetaStep::kOk) {
    if (e.key == key) {
      found = true;
      return e.value;
    }
  }
  return {};
}

bool read_u16(std::span<const std::byte> v, std::uint16_t& out) {
  return read_be(v, out);
}
bool read_u32(std::span<const std::byte> v, std::uint32_t& out) {
  return read_be(v, out);
}
bool read_u64(std::span<const std::byte> v, std::uint64_t& out) {
  return read_be(v, out);
}

}  // namespace wsedge::bridge
