#include "engine/protocol/proxy_header.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

#include "test_bytes.hpp"

namespace wsedge::protocol {
namespace {

using test::Bytes;
using test::bytes;

const Bytes kSig = bytes({0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A});

ProxyResult parse(const Bytes& b) {
  return parse_proxy_header(b);
}
ProxyResult parse(std::string_view s) {
  return parse(bytes(s));
}

std::array<std::uint8_t, 16> v4(int a, int b, int c, int d) {
  return {0,
          0,
          0,
          0,
          0,
          0,
          0,
          0,
          0,
          0,
          0xFF,
          0xFF,
          static_cast<std::uint8_t>(a),
          static_cast<std::uint8_t>(b),
          static_cast<std::uint8_t>(c),
          static_cast<std::uint8_t>(d)};
}

// A v2 header: ver/cmd, family/transport, then `body` (addresses and TLVs) with its length.
Bytes v2(int ver_cmd, int fam, const Bytes& body) {
  Bytes b = kSig;
  for (int x :
       {ver_cmd, fam, static_cast<int>(body.size() >> 8), static_cast<int>(body.size() & 0xFF)})
    b.push_back(static_cast<std::byte>(x));
  b.insert(b.end(), body.begin(), body.end());
  return b;
}

Bytes concat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

// 203.0.113.7:5555 -> 192.0.2.1:443
const Bytes kInet = bytes({203, 0, 113, 7, 192, 0, 2, 1, 0x15, 0xB3, 0x01, 0xBB});
// 2001:db8::7 port 1234 -> 2001:db8::1 port 443
const Bytes kInet6 =
    bytes({0x20, 0x01, 0x0D, 0xB8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,    7,    0x20, 0x01,
           0x0D, 0xB8, 0,    0,    0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x04, 0xD2, 0x01, 0xBB});

// Every prefix of a header is kIncomplete, the whole header kDone with its length, whatever
// follows it (the relayed stream) untouched: what a receiver sees over any split of reads.
void expect_at_every_split(const Bytes& header, const ProxyResult& want) {
  const Bytes stream = concat(header, bytes("\x16\x03\x01GET / HTTP/1.1\r\n"));
  for (std::size_t cut = 0; cut < header.size(); ++cut) {
    ProxyResult r = parse_proxy_header(std::span(stream.data(), cut));
    EXPECT_EQ(r.kind, ProxyParse::kIncomplete) << "prefix of " << cut << " bytes";
    EXPECT_EQ(r.consumed, 0u);
  }
  for (std::size_t end = header.size(); end <= stream.size(); ++end) {
    ProxyResult r = parse_proxy_header(std::span(stream.data(), end));
    ASSERT_EQ(r.kind, ProxyParse::kDone) << "with " << end - header.size() << " bytes after it";
    EXPECT_EQ(r.consumed, header.size());
    EXPECT_EQ(r.version, want.version);
    EXPECT_EQ(r.local, want.local);
    if (!want.local) {
      EXPECT_EQ(r.ip, want.ip);
      EXPECT_EQ(r.port, want.port);
    }
  }
}

ProxyResult done(std::uint8_t version, std::array<std::uint8_t, 16> ip, std::uint16_t port) {
  return {ProxyParse::kDone, version, false, port, 0, nullptr, ip};
}
ProxyResult local(std::uint8_t version) {
  return {ProxyParse::kDone, version, true, 0, 0, nullptr, {}};
}

// A malformed header fails as soon as its first wrong byte is there, and with every byte
// after it: `bad_at` is the length of the shortest prefix that fails.
void expect_error(const Bytes& in, std::size_t bad_at, std::string_view why) {
  for (std::size_t cut = 0; cut < bad_at; ++cut)
    EXPECT_EQ(parse_proxy_header(std::span(in.data(), cut)).kind, ProxyParse::kIncomplete)
        << "prefix of " << cut << " bytes";
  for (std::size_t end = bad_at; end <= in.size(); ++end) {
    ProxyResult r = parse_proxy_header(std::span(in.data(), end));
    ASSERT_EQ(r.kind, ProxyParse::kError) << "prefix of " << end << " bytes";
    EXPECT_EQ(std::string_view(r.error), why);
    EXPECT_EQ(r.consumed, 0u);
  }
}

TEST(ProxyHeader, V1Tcp4AtEverySplit) {
  expect_at_every_split(bytes("PROXY TCP4 203.0.113.7 192.0.2.1 5555 443\r\n"),
                        done(1, v4(203, 0, 113, 7), 5555));
}

TEST(ProxyHeader, V1Tcp6AtEverySplit) {
  std::array<std::uint8_t, 16> ip{0x20, 0x01, 0x0D, 0xB8};
  ip[15] = 7;
  expect_at_every_split(bytes("PROXY TCP6 2001:db8::7 2001:db8::1 1234 443\r\n"),
                        done(1, ip, 1234));
}

TEST(ProxyHeader, V1UnknownKeepsTheConnectionsAddress) {
  expect_at_every_split(bytes("PROXY UNKNOWN\r\n"), local(1));
  // The receiver ignores what follows UNKNOWN, addresses or not.
  expect_at_every_split(bytes("PROXY UNKNOWN ffff:f...f:ffff 1 2 anything\r\n"), local(1));
}

TEST(ProxyHeader, V1AtTheLongestLengthIsAccepted) {
  std::string full =
      "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  ASSERT_EQ(full.size(), 104u);  // the longest TCP line
  std::array<std::uint8_t, 16> ip;
  ip.fill(0xFF);
  expect_at_every_split(bytes(full), done(1, ip, 65535));
  // One byte more is refused, whatever it would have been: CR at the 107th byte is too late.
  std::string longer =
      std::string("PROXY UNKNOWN ").append(kMaxProxyV1 - 16 + 1, 'x').append("\r\n");
  ASSERT_EQ(longer.size(), kMaxProxyV1 + 1);
  expect_error(bytes(longer), kMaxProxyV1 - 1, "v1: header longer than 107 bytes");
  std::string exact = std::string("PROXY UNKNOWN ").append(kMaxProxyV1 - 16, 'x').append("\r\n");
  ASSERT_EQ(exact.size(), kMaxProxyV1);
  expect_at_every_split(bytes(exact), local(1));
  // The specification's own longest line: UNKNOWN with two full IPv6 addresses.
  std::string unknown =
      "PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
      "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
  ASSERT_EQ(unknown.size(), kMaxProxyV1);
  expect_at_every_split(bytes(unknown), local(1));
}

TEST(ProxyHeader, V1PortsAndAddressesAreValidated) {
  struct Case {
    const char* line;
    const char* why;
  } cases[] = {
      {"PROXY TCP4 203.0.113.7 192.0.2.1 65536 443\r\n", "v1: bad port"},
      {"PROXY TCP4 203.0.113.7 192.0.2.1 5555 0443\r\n", "v1: bad port"},
      {"PROXY TCP4 203.0.113.7 192.0.2.1 -1 443\r\n", "v1: bad port"},
      {"PROXY TCP4 203.0.113.7 192.0.2.1 +1 443\r\n", "v1: bad port"},
      {"PROXY TCP4 203.0.113.7 192.0.2.1 123456 443\r\n", "v1: bad port"},
      {"PROXY TCP4 203.0.113.7 192.0.2.1 5555 443 junk\r\n", "v1: bad port"},
      {"PROXY TCP4 203.0.113.7 192.0.2.1 5555 \r\n", "v1: bad port"},
      {"PROXY TCP4 256.0.113.7 192.0.2.1 5555 443\r\n", "v1: bad address"},
      {"PROXY TCP4 203.0.113 192.0.2.1 5555 443\r\n", "v1: bad address"},
      {"PROXY TCP4 203.0.113.07 192.0.2.1 5555 443\r\n", "v1: bad address"},
      {"PROXY TCP4 2001:db8::7 192.0.2.1 5555 443\r\n", "v1: bad address"},
      {"PROXY TCP6 203.0.113.7 2001:db8::1 5555 443\r\n", "v1: bad address"},
      {"PROXY TCP4 203.0.113.7 192.0.2.x 5555 443\r\n", "v1: bad address"},
      {"PROXY TCP4  203.0.113.7 192.0.2.1 5555 443\r\n", "v1: bad address"},
      {"PROXY TCP4 203.0.113.7 192.0.2.1 5555\r\n", "v1: fields missing"},
      {"PROXY TCP4\r\n", "v1: protocol is not TCP4, TCP6 or UNKNOWN"},
      {"PROXY UDP4 203.0.113.7 192.0.2.1 5555 443\r\n",
       "v1: protocol is not TCP4, TCP6 or UNKNOWN"},
      {"PROXY tcp4 203.0.113.7 192.0.2.1 5555 443\r\n",
       "v1: protocol is not TCP4, TCP6 or UNKNOWN"},
      {"PROXY UNKNOWNX\r\n", "v1: protocol is not TCP4, TCP6 or UNKNOWN"},
  };
  for (const Case& c : cases) {
    Bytes in = bytes(c.line);
    // These are whole lines: each is incomplete until its LF, then refused.
    expect_error(in, in.size(), c.why);
  }
}

TEST(ProxyHeader, V1RefusesBadBytesAtOnce) {
  // A bare LF, a CR without LF, a NUL: refused at that byte, not after 107.
  expect_error(bytes("PROXY TCP4 1.2.3.4\n 5.6.7.8 1 2\r\n"), 19, "v1: invalid character");
  expect_error(bytes("PROXY TCP4 1.2.3.4\rX"), 20, "v1: CR without LF");
  expect_error(bytes(std::string("PROXY \0TCP4", 11)), 7, "v1: invalid character");
  expect_error(bytes("PROXY TCP4 1.2.3.4 \xC3\xA9"), 20, "v1: invalid character");
}

TEST(ProxyHeader, NoHeaderIsRefusedAtTheFirstWrongByte) {
  // What arrives first when the proxy is bypassed or misconfigured.
  expect_error(bytes("GET / HTTP/1.1\r\nHost: a\r\n\r\n"), 1, "no PROXY protocol header");
  expect_error(bytes({0x16, 0x03, 0x01, 0x02, 0x00, 0x01}), 1, "no PROXY protocol header");
  expect_error(bytes("POST / HTTP/1.1\r\n"), 2, "no PROXY protocol header");
  expect_error(bytes("PROXY\r\n"), 6, "no PROXY protocol header");
  expect_error(bytes("\r\n\r\nGET"), 5, "no PROXY protocol header");
  // The v2 signature with its last byte wrong.
  Bytes sig = kSig;
  sig[11] = std::byte{0x0B};
  expect_error(concat(sig, bytes({0x21, 0x11, 0, 12})), 12, "no PROXY protocol header");
}

TEST(ProxyHeader, V2InetAtEverySplit) {
  expect_at_every_split(v2(0x21, 0x11, kInet), done(2, v4(203, 0, 113, 7), 5555));
}

TEST(ProxyHeader, V2Inet6AtEverySplit) {
  std::array<std::uint8_t, 16> ip{0x20, 0x01, 0x0D, 0xB8};
  ip[15] = 7;
  expect_at_every_split(v2(0x21, 0x21, kInet6), done(2, ip, 1234));
}

TEST(ProxyHeader, V2TlvsAreSkipped) {
  // ALPN "h2", authority "example.com", a NOOP with no value: HAProxy's send-proxy-v2 options.
  Bytes tlvs = bytes({0x01, 0, 2, 'h', '2', 0x02, 0, 11});
  tlvs = concat(tlvs, bytes("example.com"));
  tlvs = concat(tlvs, bytes({0x04, 0, 0}));
  expect_at_every_split(v2(0x21, 0x11, concat(kInet, tlvs)), done(2, v4(203, 0, 113, 7), 5555));
}

TEST(ProxyHeader, V2LocalAndUnspecKeepTheConnectionsAddress) {
  // LOCAL: a health check from the proxy itself; its address block, whatever it says, is
  // ignored.
  expect_at_every_split(v2(0x20, 0x00, {}), local(2));
  expect_at_every_split(v2(0x20, 0x11, kInet), local(2));
  expect_at_every_split(v2(0x20, 0x77, bytes({1, 2, 3})), local(2));
  // PROXY for an unspecified family, or a UNIX socket: no address we could use.
  expect_at_every_split(v2(0x21, 0x00, {}), local(2));
  expect_at_every_split(v2(0x21, 0x31, Bytes(216)), local(2));
  expect_at_every_split(v2(0x21, 0x32, Bytes(216)), local(2));
}

TEST(ProxyHeader, V2AtTheLongestLengthIsAccepted) {
  // One TLV filling the header to the cap.
  std::size_t value = kMaxProxyV2 - 16 - kInet.size() - 3;
  Bytes tlv = bytes({0xE0, static_cast<int>(value >> 8), static_cast<int>(value & 0xFF)});
  tlv.resize(tlv.size() + value);
  Bytes header = v2(0x21, 0x11, concat(kInet, tlv));
  ASSERT_EQ(header.size(), kMaxProxyV2);
  expect_at_every_split(header, done(2, v4(203, 0, 113, 7), 5555));
  // A byte more is refused once the length field says so, before the body arrives.
  tlv = bytes({0xE0, static_cast<int>((value + 1) >> 8), static_cast<int>((value + 1) & 0xFF)});
  tlv.resize(tlv.size() + value + 1);
  expect_error(v2(0x21, 0x11, concat(kInet, tlv)), 16, "v2: header longer than 4096 bytes");
  // Whatever the command: LOCAL is bounded too.
  expect_error(v2(0x20, 0x00, Bytes(kMaxProxyV2)), 16, "v2: header longer than 4096 bytes");
}

TEST(ProxyHeader, V2MalformedHeadersAreRefused) {
  expect_error(v2(0x11, 0x11, kInet), 13, "v2: version is not 2");
  expect_error(v2(0x31, 0x11, kInet), 13, "v2: version is not 2");
  expect_error(v2(0x22, 0x11, kInet), 13, "v2: command is neither LOCAL nor PROXY");
  expect_error(v2(0x2F, 0x11, kInet), 13, "v2: command is neither LOCAL nor PROXY");
  // UDP, reserved families and transports.
  for (int fam : {0x12, 0x22, 0x01, 0x10, 0x13, 0x41, 0x33, 0xFF})
    expect_error(v2(0x21, fam, Bytes(216)), 14, "v2: unsupported address family or transport");
  // A length too short for the family's addresses.
  expect_error(v2(0x21, 0x11, Bytes(kInet.begin(), kInet.end() - 1)), 16,
               "v2: length shorter than the addresses");
  expect_error(v2(0x21, 0x21, kInet), 16, "v2: length shorter than the addresses");
  expect_error(v2(0x21, 0x31, Bytes(215)), 16, "v2: length shorter than the addresses");
  // TLVs that do not tile the rest: a cut header, a value past the end.
  Bytes in = v2(0x21, 0x11, concat(kInet, bytes({0x01, 0})));
  expect_error(in, in.size(), "v2: TLV overruns the header");
  in = v2(0x21, 0x11, concat(kInet, bytes({0x01, 0, 3, 'h', '2'})));
  expect_error(in, in.size(), "v2: TLV overruns the header");
  in = v2(0x21, 0x11, concat(kInet, bytes({0x04, 0, 0, 0x01})));
  expect_error(in, in.size(), "v2: TLV overruns the header");
}

TEST(ProxyHeader, TheVersionIsReportedOnceKnown) {
  EXPECT_EQ(parse("PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n").version, 1);
  EXPECT_EQ(parse(v2(0x31, 0x11, kInet)).version, 2);
  EXPECT_EQ(parse("GET").version, 0);
  EXPECT_EQ(parse("PROXY TC").version, 0);  // incomplete
}

}  // namespace
}  // namespace wsedge::protocol
