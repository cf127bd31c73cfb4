// The bridge codec against the golden vectors (tests/bridge/vectors, written by an encoder
// independent of this one), and its answers to malformed input.
#include "bridge/protocol.hpp"

#include <gtest/gtest.h>

#include <fstream>
#include <initializer_list>
#include <string>
#include <string_view>
#include <vector>

#include "test_bytes.hpp"

#ifndef WSEDGE_BRIDGE_VECTORS
#error "WSEDGE_BRIDGE_VECTORS must name tests/bridge/vectors"
#endif

namespace wsedge::bridge {
namespace {

using test::Bytes;

const ConnId kId{0x1A2B3C4D, 0x6560F1A0, 3, 0x1F, 7};
const ConnId kId2{0x1A2B3C4D, 0x6560F1A0, 1, 0x200, 0xFFFFFFFF};

// The frames of one vector file ("-" is an empty frame).
std::vector<Bytes> vector_frames(const std::string& name) {
  std::ifstream in(std::string(WSEDGE_BRIDGE_VECTORS) + "/" + name + ".hex");
  EXPECT_TRUE(in) << name;
  std::vector<Bytes> frames;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    Bytes b;
    for (std::size_t i = 0; line != "-" && i + 1 < line.size(); i += 2)
      b.push_back(static_cast<std::byte>(std::stoi(line.substr(i, 2), nullptr, 16)));
    frames.push_back(b);
  }
  return frames;
}

Bytes bytes_of(std::span<const std::byte> s) {
  return {s.begin(), s.end()};
}

Bytes header_bytes(Type t, std::uint16_t flags, ConnId id) {
  auto h = encode_header({kVersion, t, flags, id});
  return {h.begin(), h.end()};
}

// A name list value (roles, resources, ...: §4) built with the codec's append_name.
Bytes names(std::initializer_list<std::string_view> list) {
  Bytes out;
  for (std::string_view n : list) append_name(out, n);
  return out;
}

// Builds a meta frame with fn(writer); fails the test if it did not fit.
template <class Fn>
Bytes meta(Fn&& fn) {
  std::byte buf[1024];
  MetaWriter w(buf, sizeof buf);
  fn(w);
  EXPECT_TRUE(w.ok());
  return bytes_of(w.bytes());
}

TEST(BridgeProtocol, EncodesEveryGoldenVector) {
  ConnId core3{kId.node, kId.epoch, 3, 0, 0};
  EXPECT_EQ(vector_frames("hello"),
            (std::vector<Bytes>{
                header_bytes(Type::kHello, 0, core3), meta([](MetaWriter& w) {
                  std::byte v1{1};
                  w.add("versions", std::span(&v1, 1)).add("node", "edge-a").add_u16("cores", 2);
                })}));
  EXPECT_EQ(vector_frames("open"),
            (std::vector<Bytes>{header_bytes(Type::kOpen, 0, kId), meta([](MetaWriter& w) {
                                  w.add("path", "/chat?room=1")
                                      .add("peer", "127.0.0.1:5555")
                                      .add("protocol", "chat")
                                      .add("h:origin", "https://example.com");
                                })}));
  EXPECT_EQ(vector_frames("message_binary"),
            (std::vector<Bytes>{header_bytes(Type::kMessage, flag::kBinary, kId), Bytes{},
                                test::bytes({0x00, 0xFF, 0x10})}));
  EXPECT_EQ(vector_frames("close"),
            (std::vector<Bytes>{header_bytes(Type::kClose, 0, kId), meta([](MetaWriter& w) {
                                  w.add_u16("code", 1001).add("reason", "bye").add("by", "client");
                                })}));
  std::byte ids[2 * kConnIdSize];
  write_conn_id(ids, kId);
  write_conn_id(ids + kConnIdSize, kId2);
  EXPECT_EQ(vector_frames("send_many_ack"),
            (std::vector<Bytes>{header_bytes(Type::kSend, flag::kAck, {}), meta([&](MetaWriter& w) {
                                  w.add("ids", std::span<const std::byte>(ids)).add_u32("seq", 7);
                                }),
                                test::bytes("hello")}));
  EXPECT_EQ(vector_frames("error_gone"),
            (std::vector<Bytes>{header_bytes(Type::kError, 0, kId2), meta([](MetaWriter& w) {
                                  w.add_u32("seq", 7).add("code", "gone");
                                })}));
  EXPECT_EQ(vector_frames("welcome"),
            (std::vector<Bytes>{header_bytes(Type::kWelcome, 0, {}), meta([](MetaWriter& w) {
                                  std::byte v1{1};
                                  w.add("version", std::span(&v1, 1))
                                      .add("backend", "chat")
                                      .add_u64("instance", 0x0102030405060708);
                                })}));
  EXPECT_EQ(vector_frames("received"),
            (std::vector<Bytes>{header_bytes(Type::kReceived, 0, {}),
                                meta([](MetaWriter& w) { w.add_u64("count", 64); })}));
  EXPECT_EQ(vector_frames("publish"),
            (std::vector<Bytes>{header_bytes(Type::kPublish, 0, {}), meta([](MetaWriter& w) {
                                  w.add("channel", "room1").add_u64("seq", 42);
                                }),
                                test::bytes("{\"t\":1}")}));
  EXPECT_EQ(vector_frames("client_publish"),
            (std::vector<Bytes>{header_bytes(Type::kClientPublish, 0, kId),
                                meta([](MetaWriter& w) { w.add("channel", "chat:lobby"); }),
                                test::bytes("hi all")}));
  EXPECT_EQ(vector_frames("acl"),
            (std::vector<Bytes>{header_bytes(Type::kAcl, flag::kAck, {}), meta([](MetaWriter& w) {
                                  w.add("op", "allow")
                                      .add("roles", names({"member"}))
                                      .add("resources", names({"chat:*", "/chat"}))
                                      .add("permissions", names({"subscribe", "publish"}))
                                      .add_u32("seq", 9);
                                })}));
  EXPECT_EQ(vector_frames("expires"),
            (std::vector<Bytes>{header_bytes(Type::kExpires, 0, kId),
                                meta([](MetaWriter& w) { w.add_u64("exp", 1767225600); })}));
}

// The ACL vector read back as the edge reads a command: each list name by name, and the
// expiry as a u64; a list cut short is refused after the names before the cut.
TEST(BridgeProtocol, DecodesTheAuthVectors) {
  std::vector<Bytes> acl = vector_frames("acl");
  ASSERT_EQ(acl.size(), 2u);
  Header h;
  ASSERT_EQ(decode_header(acl[0], h), HeaderError::kOk);
  EXPECT_EQ(h.type, Type::kAcl);
  EXPECT_TRUE(h.flags & flag::kAck);
  ASSERT_TRUE(valid_meta(acl[1]));
  bool found = false;
  EXPECT_EQ(as_text(find_meta(acl[1], "op", found)), "allow");
  auto list = [&](std::string_view key) {
    std::vector<std::string> out;
    EXPECT_TRUE(for_each_name(find_meta(acl[1], key, found), [&](std::string_view n) {
      out.emplace_back(n);
    })) << key;
    return out;
  };
  EXPECT_EQ(list("roles"), (std::vector<std::string>{"member"}));
  EXPECT_EQ(list("resources"), (std::vector<std::string>{"chat:*", "/chat"}));
  EXPECT_EQ(list("permissions"), (std::vector<std::string>{"subscribe", "publish"}));
  Bytes cut = names({"chat:*", "/chat"});
  cut.pop_back();
  std::vector<std::string> before_cut;
  EXPECT_FALSE(for_each_name(cut, [&](std::string_view n) { before_cut.emplace_back(n); }));
  EXPECT_EQ(before_cut, (std::vector<std::string>{"chat:*"}));

  std::vector<Bytes> expires = vector_frames("expires");
  ASSERT_EQ(decode_header(expires[0], h), HeaderError::kOk);
  EXPECT_EQ(h.type, Type::kExpires);
  EXPECT_EQ(h.id, kId);
  std::uint64_t exp = 0;
  EXPECT_TRUE(read_u64(find_meta(expires[1], "exp", found), exp));
  EXPECT_EQ(exp, 1767225600u);

  std::vector<Bytes> pub = vector_frames("client_publish");
  ASSERT_EQ(pub.size(), 3u);  // a client's publish carries its payload
  ASSERT_EQ(decode_header(pub[0], h), HeaderError::kOk);
  EXPECT_EQ(h.type, Type::kClientPublish);
  EXPECT_FALSE(h.flags & flag::kBinary);
  EXPECT_EQ(as_text(find_meta(pub[1], "channel", found)), "chat:lobby");
}

TEST(BridgeProtocol, DecodesTheVectors) {
  std::vector<Bytes> open = vector_frames("open");
  Header h;
  ASSERT_EQ(decode_header(open[0], h), HeaderError::kOk);
  EXPECT_EQ(h.type, Type::kOpen);
  EXPECT_EQ(h.id, kId);
  EXPECT_EQ(h.id.to_string(), "1a2b3c4d.6560f1a0.3.1f.7");
  std::vector<std::string> keys;
  EXPECT_TRUE(for_each_meta(open[1], [&](const MetaEntry& e) { keys.emplace_back(e.key); }));
  EXPECT_EQ(keys, (std::vector<std::string>{"path", "peer", "protocol", "h:origin"}));
  bool found = false;
  std::span<const std::byte> path = find_meta(open[1], "path", found);
  EXPECT_TRUE(found);
  EXPECT_EQ(test::str(path), "/chat?room=1");
  find_meta(open[1], "nope", found);
  EXPECT_FALSE(found);

  std::vector<Bytes> send = vector_frames("send_many_ack");
  ASSERT_EQ(decode_header(send[0], h), HeaderError::kOk);
  EXPECT_TRUE(h.flags & flag::kAck);
  std::span<const std::byte> ids = find_meta(send[1], "ids", found);
  ASSERT_EQ(ids.size(), 2 * kConnIdSize);
  EXPECT_EQ(read_conn_id(ids.data()), kId);
  EXPECT_EQ(read_conn_id(ids.data() + kConnIdSize), kId2);
  std::uint32_t seq = 0;
  EXPECT_TRUE(read_u32(find_meta(send[1], "seq", found), seq));
  EXPECT_EQ(seq, 7u);
  std::uint16_t wrong_width = 0;
  EXPECT_FALSE(read_u16(find_meta(send[1], "seq", found), wrong_width));
}

TEST(BridgeProtocol, BadHeadersGetTheirErrorCode) {
  Bytes good = header_bytes(Type::kSend, 0, kId);
  Header h;
  auto with = [&](std::size_t at, int v) {
    Bytes b = good;
    b[at] = static_cast<std::byte>(v);
    return b;
  };
  EXPECT_EQ(decode_header(Bytes(good.begin(), good.end() - 1), h), HeaderError::kShort);
  Bytes longer = good;
  longer.push_back(std::byte{0});
  EXPECT_EQ(decode_header(longer, h), HeaderError::kShort);
  EXPECT_EQ(decode_header(with(0, 'X'), h), HeaderError::kMagic);
  EXPECT_EQ(decode_header(with(2, 2), h), HeaderError::kVersion);
  EXPECT_EQ(decode_header(with(3, 0x7F), h), HeaderError::kUnknownType);
  EXPECT_EQ(error_code(HeaderError::kMagic), "bad-frame");
  EXPECT_EQ(error_code(HeaderError::kVersion), "bad-version");
  EXPECT_EQ(error_code(HeaderError::kUnknownType), "unknown-type");
  for (int t = 0; t < 256; ++t) {
    bool known = known_type(static_cast<std::uint8_t>(t));
    EXPECT_EQ(decode_header(with(3, t), h) == HeaderError::kOk, known) << t;
  }
}

TEST(BridgeProtocol, MalformedMetaIsRefusedWholeAndUnknownKeysAreSkipped) {
  Bytes good = meta([](MetaWriter& w) { w.add("a", "1").add("future-key", "x").add("b", "22"); });
  EXPECT_TRUE(valid_meta(good));
  // Every truncation of a valid frame is malformed (or empty, which is valid).
  for (std::size_t n = 1; n < good.size(); ++n) {
    // An entry is 1 + key + 2 + value bytes: after "a" and after "future-key" it is whole.
    const std::size_t after_a = 1 + 1 + 2 + 1, after_future = after_a + 1 + 10 + 2 + 1;
    bool ends_at_entry = n == after_a || n == after_future;
    EXPECT_EQ(valid_meta(std::span(good).first(n)), ends_at_entry) << n;
  }
  EXPECT_TRUE(valid_meta({}));
  EXPECT_FALSE(valid_meta(test::bytes({0, 0, 0})));  // an empty key
  Bytes twice = meta([](MetaWriter& w) { w.add("a", "1").add("b", "2").add("a", "3"); });
  int calls = 0;
  EXPECT_FALSE(for_each_meta(twice, [&](const MetaEntry&) { ++calls; }));
  EXPECT_EQ(calls, 0);
  // A reader that knows only "b" finds it past a key it does not know.
  bool found = false;
  EXPECT_EQ(test::str(find_meta(good, "b", found)), "22");
}

// A hostile peer's meta of many tiny keys must not make the duplicate check quadratic: more
// than 64 entries is invalid outright (100 KB of 2-byte keys took 1.7 s to check before).
TEST(BridgeProtocol, MoreThanSixtyFourMetaEntriesAreRefused) {
  std::vector<std::byte> buf(4096);
  auto meta_of = [&](std::size_t n) {
    MetaWriter w(buf.data(), buf.size());
    for (std::size_t i = 0; i < n; ++i) {
      std::string key = std::to_string(i);  // "k" + ... trips GCC 12's -Wrestrict
      key.insert(key.begin(), 'k');
      w.add(key, "");
    }
    EXPECT_TRUE(w.ok());
    return w.bytes();
  };
  EXPECT_TRUE(valid_meta(meta_of(kMaxMetaEntries)));
  EXPECT_FALSE(valid_meta(meta_of(kMaxMetaEntries + 1)));
}

TEST(BridgeProtocol, TheMetaWriterNeverOverflows) {
  std::byte buf[16];
  MetaWriter w(buf, sizeof buf);
  w.add("k", "0123456789");  // 1 + 1 + 2 + 10 = 14 bytes
  EXPECT_TRUE(w.ok());
  w.add("k2", "");  // 5 more: does not fit
  EXPECT_FALSE(w.ok());
  EXPECT_TRUE(w.bytes().empty());
  std::byte big[300];
  MetaWriter k(big, sizeof big);
  k.add(std::string(256, 'k'), "v");  // keys are at most 255 bytes
  EXPECT_FALSE(k.ok());
}

}  // namespace
}  // namespace wsedge::bridge
