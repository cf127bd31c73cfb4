// tls::record: the RFC 8448 vectors, refusals, the splitter, KeyUpdate, and a differential test
// against a live OpenSSL TLS 1.3 connection in memory: an OpenSSL client and an OpenSSL server
// shake hands, the server's traffic secrets come out of the keylog callback, and our layer takes
// the server's place (docs/TLS-RECORD.md §3, §7).
#include "tls/record.hpp"

#include <gtest/gtest.h>

#include <openssl/ssl.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "temp_cert.hpp"
#include "tls/context.hpp"
#include "tls/memory_session.hpp"

namespace wsedge::tls::record {
namespace {

using Bytes = std::vector<std::uint8_t>;

Bytes hex(std::string_view s) {
  Bytes out;
  int hi = -1;
  for (char c : s) {
    int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (v < 0) continue;  // spaces and newlines, as the RFC prints them
    if (hi < 0) {
      hi = v;
    } else {
      out.push_back(static_cast<std::uint8_t>(hi << 4 | v));
      hi = -1;
    }
  }
  return out;
}

Bytes pattern(std::size_t n, std::uint8_t salt = 0) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 7 + salt);
  return b;
}

std::string str(std::span<const std::uint8_t> b) {
  return {b.begin(), b.end()};
}

// MemorySession's ciphertext (std::byte) as the record layer's bytes.
Bytes u8(const std::vector<std::byte>& b) {
  // Sized, then copied: GCC 12 took the iterator-pair constructor inlined here for a free of a
  // non-heap pointer (-Wfree-nonheap-object, a false positive).
  Bytes out(b.size());
  if (!b.empty()) std::memcpy(out.data(), b.data(), b.size());
  return out;
}

DirectionState state(Suite s, const Bytes& secret, std::uint64_t seq = 0) {
  DirectionState st;
  EXPECT_TRUE(init(st, s, secret, seq));
  return st;
}

Bytes seal(RecordCrypto& c, DirectionState& st, std::span<const std::uint8_t> plain,
           ContentType type = ContentType::kApplicationData) {
  Bytes out(sealed_size(plain.size()));
  EXPECT_EQ(c.seal(st, type, plain, out), out.size());
  return out;
}

// RFC 8448 §3 (Simple 1-RTT Handshake): the application traffic secrets, the keys and IVs
// derived from them, and the application data records both sides send (the 50 bytes 00..31):
// the client's at sequence 0, the server's at 1 (its NewSessionTicket went first).
const Bytes kClientSecret =
    hex("9e 40 64 6c e7 9a 7f 9d c0 5a f8 88 9b ce 65 52 87 5a fa 0b 06 df 00 87 f7 92 eb b7 c1 75 "
        "04 a5");
const Bytes kServerSecret =
    hex("a1 1a f9 f0 55 31 f8 56 ad 47 11 6b 45 a9 50 32 82 04 b4 f4 4b fb 6b 3a 4b 4f 1f 3f cb 63 "
        "16 43");
const Bytes kClientRecord = hex(
    "17 03 03 00 43 a2 3f 70 54 b6 2c 94 d0 af fa fe 82 28 ba 55 cb ef ac ea 42 f9 14 aa 66 bc ab "
    "3f 2b 98 19 a8 a5 b4 6b 39 5b d5 4a 9a 20 44 1e 2b 62 97 4e 1f 5a 62 92 a2 97 70 14 bd 1e 3d "
    "ea e6 3a ee bb 21 69 49 15 e4");
const Bytes kServerRecord = hex(
    "17 03 03 00 43 2e 93 7e 11 ef 4a c7 40 e5 38 ad 36 00 5f c4 a4 69 32 fc 32 25 d0 5f 82 aa 1b "
    "36 e3 0e fa f9 7d 90 e6 df fc 60 2d cb 50 1a 59 a8 fc c4 9c 4b f2 e5 f0 a2 1c 00 47 c2 ab f3 "
    "32 54 0d d0 32 e1 67 c2 95 5d");

Bytes rfc8448_payload() {
  Bytes b(50);
  for (std::size_t i = 0; i < b.size(); ++i) b[i] = static_cast<std::uint8_t>(i);
  return b;
}

TEST(TlsRecord, Rfc8448KeysAndIvs) {
  TrafficKeys k;
  ASSERT_TRUE(derive(Suite::kAes128GcmSha256, kServerSecret, k));
  EXPECT_EQ(Bytes(k.key.begin(), k.key.begin() + 16),
            hex("9f 02 28 3b 6c 9c 07 ef c2 6b b9 f2 ac 92 e3 56"));
  EXPECT_EQ(Bytes(k.iv.begin(), k.iv.end()), hex("cf 78 2b 88 dd 83 54 9a ad f1 e9 84"));
  ASSERT_TRUE(derive(Suite::kAes128GcmSha256, kClientSecret, k));
  EXPECT_EQ(Bytes(k.key.begin(), k.key.begin() + 16),
            hex("17 42 2d da 59 6e d5 d9 ac d8 90 e3 c6 3f 50 51"));
  EXPECT_EQ(Bytes(k.iv.begin(), k.iv.end()), hex("5b 78 92 3d ee 08 57 90 33 e5 23 d9"));
  // A secret of the wrong length for the suite's hash is refused, not expanded.
  EXPECT_FALSE(derive(Suite::kAes256GcmSha384, kServerSecret, k));
}

TEST(TlsRecord, Rfc8448RecordsSealAndOpen) {
  RecordCrypto c;
  const Bytes payload = rfc8448_payload();
  for (auto [secret, record, seq] : {std::tuple{&kClientSecret, &kClientRecord, 0},
                                     std::tuple{&kServerSecret, &kServerRecord, 1}}) {
    DirectionState w = state(Suite::kAes128GcmSha256, *secret, seq);
    EXPECT_EQ(seal(c, w, payload), *record);
    EXPECT_EQ(w.seq, std::uint64_t(seq) + 1);
    DirectionState r = state(Suite::kAes128GcmSha256, *secret, seq);
    Bytes rec = *record;
    Opened o = c.open(r, rec);
    ASSERT_EQ(o.status, OpenStatus::kOk);
    EXPECT_EQ(o.type, ContentType::kApplicationData);
    EXPECT_EQ(Bytes(o.plaintext.begin(), o.plaintext.end()), payload);
    EXPECT_EQ(o.plaintext.data(), rec.data() + kHeaderLen) << "decrypted in place";
    EXPECT_EQ(r.seq, std::uint64_t(seq) + 1);
    // The nonce depends on the sequence number: at any other it does not open.
    for (std::uint64_t wrong : {std::uint64_t(seq) + 1, std::uint64_t{256}, ~std::uint64_t{1}}) {
      DirectionState x = state(Suite::kAes128GcmSha256, *secret, wrong);
      rec = *record;
      EXPECT_EQ(c.open(x, rec).status, OpenStatus::kBadRecordMac);
      EXPECT_EQ(x.seq, wrong) << "no advance on a refusal";
    }
  }
}

TEST(TlsRecord, TrafficUpdateMatchesOpenSsl) {
  // An AES-256-GCM-SHA384 application secret and the next one OpenSSL derived from it on a
  // KeyUpdate (the vector of s2n-tls's s2n_tls13_keys_test.c).
  Bytes secret =
      hex("4bc28934ddd802b00f479e14a72d7725dab45d32b3b145f29e4c5b56677560eb5236b168c71c5c75aa52f3e2"
          "0ee89bfb");
  const Bytes next =
      hex("ee85dd54781bd4d8a100589a9fe6ac9a3797b811e977f549cd531be2441d7c63e2b9729d145c11d84af35957"
          "727565a4");
  Bytes out(48);
  ASSERT_TRUE(next_secret(Suite::kAes256GcmSha384, secret, out));
  EXPECT_EQ(out, next);
  DirectionState st = state(Suite::kAes256GcmSha384, secret, 1234);
  ASSERT_TRUE(update(st));
  EXPECT_EQ(Bytes(st.secret.begin(), st.secret.end()), next);
  EXPECT_EQ(st.seq, 0u);
  TrafficKeys k;
  ASSERT_TRUE(derive(Suite::kAes256GcmSha384, next, k));
  EXPECT_EQ(st.key, k.key);
  EXPECT_EQ(st.iv, k.iv);
}

TEST(TlsRecord, SealRefusals) {
  RecordCrypto c;
  DirectionState st = state(Suite::kChacha20Poly1305Sha256, kServerSecret);
  Bytes big(kMaxPlaintext + 1), out(kMaxSealed + 64);
  EXPECT_EQ(c.seal(st, ContentType::kApplicationData, big, out), 0u) << "over 2^14";
  EXPECT_EQ(c.seal(st, ContentType::kApplicationData, std::span(big).first(kMaxPlaintext), out),
            kMaxSealed);
  Bytes small(sealed_size(10) - 1);
  EXPECT_EQ(c.seal(st, ContentType::kApplicationData, std::span(big).first(10), small), 0u);
  st.seq = ~std::uint64_t{0};  // the next nonce would repeat the first
  EXPECT_EQ(c.seal(st, ContentType::kApplicationData, std::span(big).first(10), out), 0u);
  EXPECT_EQ(st.seq, ~std::uint64_t{0});
  EXPECT_FALSE(supported(0x1304));  // TLS_AES_128_CCM_SHA256: OpenSSL keeps the connection
  EXPECT_FALSE(init(st, static_cast<Suite>(0x1304), kServerSecret, 0));
}

TEST(TlsRecord, SealInPlace) {
  RecordCrypto c;
  DirectionState a = state(Suite::kAes256GcmSha384, Bytes(48, 5)), b = a;
  const Bytes plain = pattern(1000);
  Bytes buf(sealed_size(plain.size()));
  std::copy(plain.begin(), plain.end(), buf.begin() + kHeaderLen);
  ASSERT_EQ(c.seal(a, ContentType::kApplicationData, std::span(buf).subspan(kHeaderLen, 1000), buf),
            buf.size());
  EXPECT_EQ(buf, seal(c, b, plain));
}

TEST(TlsRecord, OpenRefusals) {
  RecordCrypto c;
  const Suite s = Suite::kAes128GcmSha256;
  DirectionState w = state(s, kClientSecret);
  const Bytes good = seal(c, w, pattern(100));
  auto open_at0 = [&](Bytes rec) {
    DirectionState r = state(s, kClientSecret);
    OpenStatus st = c.open(r, rec).status;
    EXPECT_EQ(r.seq, st == OpenStatus::kOk ? 1u : 0u);
    return st;
  };
  EXPECT_EQ(open_at0(good), OpenStatus::kOk);
  // Any byte flipped after the header's length: the tag or the additional data no longer match.
  for (std::size_t i = 0; i < good.size(); ++i) {
    if (i == 3 || i == 4) continue;  // the length: below
    Bytes bad = good;
    bad[i] ^= 0x01;
    EXPECT_EQ(open_at0(bad), i == 0 ? OpenStatus::kUnexpectedMessage : OpenStatus::kBadRecordMac)
        << "byte " << i;
  }
  Bytes longer = good;
  longer[4] ^= 1;
  EXPECT_EQ(open_at0(longer), OpenStatus::kDecodeError) << "span is not one record";
  EXPECT_EQ(open_at0(Bytes(good.begin(), good.end() - 1)), OpenStatus::kDecodeError);
  EXPECT_EQ(open_at0(Bytes{23, 3, 3}), OpenStatus::kDecodeError);
  // Too short for a tag and a type.
  EXPECT_EQ(open_at0(Bytes{23, 3, 3, 0, 16, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
            OpenStatus::kBadRecordMac);
  // Over 2^14 + 256, and over 2^14 + 1 + tag (the inner plaintext's limit with our AEADs).
  for (std::size_t len : {kMaxCiphertext + 1, kMaxPlaintext + 1 + kTagLen + 1}) {
    Bytes huge(kHeaderLen + len);
    huge[0] = 23, huge[1] = 3, huge[2] = 3;
    huge[3] = static_cast<std::uint8_t>(len >> 8), huge[4] = static_cast<std::uint8_t>(len);
    EXPECT_EQ(open_at0(huge), OpenStatus::kRecordOverflow) << len;
  }
  // Inner plaintext of zeros only (a "type 0" record of nothing), and a type TLS 1.3 never
  // protects (20, ChangeCipherSpec): unexpected_message.
  for (std::uint8_t type : {0, 20, 24}) {
    DirectionState ww = state(s, kClientSecret);
    EXPECT_EQ(open_at0(seal(c, ww, {}, static_cast<ContentType>(type))),
              OpenStatus::kUnexpectedMessage)
        << int(type);
  }
  // Padding is accepted: "hi", type 22, three zeros, sealed as if type 0 were the last byte.
  DirectionState ww = state(s, kClientSecret);
  Bytes padded = seal(c, ww, Bytes{'h', 'i', 22, 0, 0}, static_cast<ContentType>(0));
  DirectionState r = state(s, kClientSecret);
  Opened o = c.open(r, padded);
  ASSERT_EQ(o.status, OpenStatus::kOk);
  EXPECT_EQ(o.type, ContentType::kHandshake);
  EXPECT_EQ(str(o.plaintext), "hi");
  EXPECT_EQ(alert_for(OpenStatus::kBadRecordMac), Alert::kBadRecordMac);
  EXPECT_EQ(alert_for(OpenStatus::kRecordOverflow), Alert::kRecordOverflow);
  EXPECT_EQ(alert_message(Alert::kCloseNotify), (std::array<std::uint8_t, 2>{1, 0}));
  EXPECT_EQ(alert_message(Alert::kBadRecordMac), (std::array<std::uint8_t, 2>{2, 20}));
}

TEST(TlsRecord, SplitterNeedsMoreAtEverySplit) {
  RecordCrypto c;
  DirectionState w = state(Suite::kAes128GcmSha256, kClientSecret);
  Bytes stream = seal(c, w, pattern(300));
  const std::size_t first = stream.size();
  Bytes second = seal(c, w, pattern(7));
  stream.insert(stream.end(), second.begin(), second.end());
  for (std::size_t k = 0; k < first; ++k) {
    NextRecord n = next_record(std::span(stream).first(k));
    EXPECT_EQ(n.status, NextRecord::Status::kNeedMore) << k;
    EXPECT_EQ(n.size, k < kHeaderLen ? kHeaderLen : first) << k;
  }
  for (std::size_t k = first; k <= stream.size(); ++k) {
    NextRecord n = next_record(std::span(stream).first(k));
    EXPECT_EQ(n.status, NextRecord::Status::kReady);
    EXPECT_EQ(n.size, first);
  }
  // A length over 2^14 + 256 is refused from the header alone.
  const Bytes over{23, 3, 3, (kMaxCiphertext + 1) >> 8, (kMaxCiphertext + 1) & 0xff};
  EXPECT_EQ(next_record(over).status, NextRecord::Status::kOverflow);
  const Bytes max{23, 3, 3, kMaxCiphertext >> 8, kMaxCiphertext & 0xff};
  EXPECT_EQ(next_record(max).status, NextRecord::Status::kNeedMore);
}

TEST(TlsRecord, CounterCountsWholeRecordsAtEverySplit) {
  // Records with bodies of 300, 0 and 1 bytes (the empty body is a record of its header alone).
  Bytes stream;
  std::vector<std::size_t> ends;  // where each record ends in the stream
  for (std::size_t body : {300, 0, 1}) {
    stream.insert(stream.end(), {23, 3, 3, static_cast<std::uint8_t>(body >> 8),
                                 static_cast<std::uint8_t>(body)});
    stream.insert(stream.end(), body, 0xab);
    ends.push_back(stream.size());
  }
  auto whole_before = [&](std::size_t at) {
    return static_cast<std::uint64_t>(
        std::count_if(ends.begin(), ends.end(), [&](std::size_t e) { return e <= at; }));
  };
  auto boundary = [&](std::size_t at) {
    return at == 0 || std::find(ends.begin(), ends.end(), at) != ends.end();
  };
  for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
    RecordCounter c;
    c.feed(std::span(stream).first(cut));
    EXPECT_EQ(c.records, whole_before(cut)) << cut;
    EXPECT_EQ(c.at_boundary(), boundary(cut)) << cut;
    c.feed(std::span(stream).subspan(cut));
    EXPECT_EQ(c.records, 3u) << cut;
    EXPECT_TRUE(c.at_boundary()) << cut;
  }
  RecordCounter bytewise;
  for (std::size_t i = 0; i < stream.size(); ++i) {
    bytewise.feed(std::span(stream).subspan(i, 1));
    EXPECT_EQ(bytewise.records, whole_before(i + 1)) << i;
  }
}

TEST(TlsRecord, KeyUpdateMessages) {
  EXPECT_EQ(key_update_message(false), (std::array<std::uint8_t, 5>{24, 0, 0, 1, 0}));
  EXPECT_EQ(key_update_message(true), (std::array<std::uint8_t, 5>{24, 0, 0, 1, 1}));
  using P = PostHandshake;
  EXPECT_EQ(parse_post_handshake(key_update_message(false)), P::kKeyUpdate);
  EXPECT_EQ(parse_post_handshake(key_update_message(true)), P::kKeyUpdateRequested);
  EXPECT_EQ(parse_post_handshake(Bytes{24, 0, 0, 1, 2}), P::kIllegalParameter);
  EXPECT_EQ(parse_post_handshake(Bytes{24, 0, 0, 2, 0, 0}), P::kDecodeError);
  EXPECT_EQ(parse_post_handshake(Bytes{24, 0, 0, 1}), P::kDecodeError);
  EXPECT_EQ(parse_post_handshake(Bytes{24, 0}), P::kDecodeError);
  EXPECT_EQ(parse_post_handshake(Bytes{24, 0, 0, 1, 0, 24, 0, 0, 1, 0}), P::kUnexpected);
  EXPECT_EQ(parse_post_handshake(Bytes{4, 0, 0, 1, 0}), P::kUnexpected);  // NewSessionTicket
  EXPECT_EQ(parse_post_handshake(Bytes{}), P::kUnexpected);

  // Ours both ways: the KeyUpdate goes under the old key, what follows under the new one.
  RecordCrypto c;
  DirectionState w = state(Suite::kAes128GcmSha256, kServerSecret, 5), r = w;
  Bytes out(kMaxSealed);
  std::size_t n = send_key_update(c, w, true, out);
  ASSERT_EQ(n, sealed_size(kKeyUpdateLen));
  EXPECT_EQ(w.seq, 0u);
  Opened o = c.open(r, std::span(out).first(n));
  ASSERT_EQ(o.status, OpenStatus::kOk);
  EXPECT_EQ(o.type, ContentType::kHandshake);
  EXPECT_EQ(parse_post_handshake(o.plaintext), P::kKeyUpdateRequested);
  ASSERT_TRUE(update(r));
  Bytes after = seal(c, w, pattern(10));
  EXPECT_EQ(c.open(r, after).status, OpenStatus::kOk);
}

// Two of these per idle connection: docs/TLS-RECORD.md §5 counts on ~200 bytes.
static_assert(sizeof(DirectionState) == 104);

TEST(TlsRecord, WipeClearsKeysAndSecrets) {
  DirectionState st = state(Suite::kAes256GcmSha384, Bytes(48, 0xab));
  wipe(st);
  auto zero = [](auto& a) {
    return std::all_of(a.begin(), a.end(), [](auto b) { return b == 0; });
  };
  EXPECT_TRUE(zero(st.secret));
  EXPECT_TRUE(zero(st.key));
  EXPECT_TRUE(zero(st.iv));
}

// ---- Differential tests against a live OpenSSL connection ----------------------------------

std::string* g_keylog = nullptr;  // the running test's keylog, one line per secret

void keylog_cb(const SSL*, const char* line) {
  if (g_keylog) g_keylog->append(line).push_back('\n');
}

struct Link {
  test::TempCert cert;
  std::shared_ptr<Context> server_ctx = Context::load({{{cert.cert, cert.key}}});
  CtxPtr client_ctx{SSL_CTX_new(TLS_client_method()), SSL_CTX_free};
  std::unique_ptr<MemorySession> server, client;
  std::string keylog;
  Bytes server_wire;  // everything the server's OpenSSL sent, for counting its records

  Link(const char* suite, int tickets) {
    g_keylog = &keylog;
    SSL_CTX_set_keylog_callback(server_ctx->default_ctx(), keylog_cb);
    SSL_CTX_set_num_tickets(server_ctx->default_ctx(), static_cast<std::size_t>(tickets));
    SSL_CTX_set_min_proto_version(client_ctx.get(), TLS1_3_VERSION);
    EXPECT_EQ(SSL_CTX_set_ciphersuites(client_ctx.get(), suite), 1);
    server = std::make_unique<MemorySession>(server_ctx->default_ctx(), true);
    client = std::make_unique<MemorySession>(client_ctx.get(), false);
  }
  ~Link() { g_keylog = nullptr; }

  // What the client's OpenSSL makes of `wire`: its plaintext, or "ERROR".
  std::string client_reads(std::span<const std::uint8_t> wire) {
    std::string got;
    std::byte plain[1 << 15];
    (*client)->feed(reinterpret_cast<const std::byte*>(wire.data()), wire.size());
    for (;;) {
      std::size_t n = 0;
      if ((*client)->read(plain, sizeof plain, n) != Session::Result::kOk) return "ERROR";
      if (n == 0) return got;
      got.append(reinterpret_cast<const char*>(plain), n);
    }
  }
  Bytes client_writes(std::span<const std::uint8_t> plain) {
    EXPECT_EQ((*client)->write(reinterpret_cast<const std::byte*>(plain.data()), plain.size()),
              Session::Result::kOk);
    return u8(client->take());
  }

  // Moves the handshake both ways until neither side sends anything.
  void handshake() {
    std::byte plain[1 << 15];
    for (int round = 0; round < 20; ++round) {
      std::size_t n = 0;
      ASSERT_EQ((*client)->read(plain, sizeof plain, n), Session::Result::kOk);
      auto c = client->take();
      if (!c.empty()) {
        (*server)->feed(c.data(), c.size());
        do {
          ASSERT_EQ((*server)->read(plain, sizeof plain, n), Session::Result::kOk);
        } while (n > 0);
      }
      const Bytes s = u8(server->take());
      server_wire.insert(server_wire.end(), s.begin(), s.end());
      if (!s.empty()) {
        ASSERT_EQ(client_reads(s), "");
      }
      if (c.empty() && s.empty()) break;
    }
    ASSERT_TRUE((*server)->handshake_done());
    ASSERT_TRUE((*client)->handshake_done());
  }

  Bytes secret(std::string_view label) const {
    std::size_t at = keylog.find(std::string(label).append(" "));
    EXPECT_NE(at, std::string::npos) << label;
    if (at == std::string::npos) return {};
    std::size_t sp = keylog.find(' ', at + label.size() + 1);  // after the client random
    return hex(keylog.substr(sp + 1, keylog.find('\n', sp) - sp - 1));
  }
  Suite suite() const {
    return static_cast<Suite>(SSL_CIPHER_get_protocol_id(SSL_get_current_cipher((*server)->ssl())));
  }
};

// The records of `wire` protected under `secret` (application_traffic_secret_0): those after
// the ones under handshake keys (which do not open under it), opened in turn from sequence 0.
// Returns their inner content types.
std::vector<ContentType> app_records(Suite suite, const Bytes& secret,
                                     std::span<const std::uint8_t> wire) {
  DirectionState st = state(suite, secret);
  RecordCrypto c;
  std::vector<ContentType> types;
  while (!wire.empty()) {
    NextRecord n = next_record(wire);
    EXPECT_EQ(n.status, NextRecord::Status::kReady);
    if (n.status != NextRecord::Status::kReady) break;
    Bytes rec(wire.begin(), wire.begin() + static_cast<std::ptrdiff_t>(n.size));
    wire = wire.subspan(n.size);
    Opened o = c.open(st, rec);
    if (o.status == OpenStatus::kOk) {
      // A handshake message in it is a NewSessionTicket (type 4), whole in its record.
      if (o.type == ContentType::kHandshake) {
        EXPECT_EQ(o.plaintext[0], 4);
      }
      types.push_back(o.type);
    } else {
      EXPECT_TRUE(types.empty()) << "a record under the handshake key after application ones";
    }
  }
  return types;
}

// Our layer in the server's place, from the keylog's secrets and the counted sequence numbers.
struct Ours {
  RecordCrypto crypto;
  DirectionState read, write;

  // `read_seq`: the client's records under its application key that the server's OpenSSL read.
  explicit Ours(Link& l, std::uint64_t read_seq = 0) {
    const Bytes secret = l.secret("SERVER_TRAFFIC_SECRET_0");
    const std::size_t sent = app_records(l.suite(), secret, l.server_wire).size();
    EXPECT_TRUE(init(read, l.suite(), l.secret("CLIENT_TRAFFIC_SECRET_0"), read_seq));
    EXPECT_TRUE(init(write, l.suite(), secret, sent));
  }
  Bytes seal(std::span<const std::uint8_t> plain, ContentType t = ContentType::kApplicationData) {
    return record::seal(crypto, write, plain, t);
  }
  // Opens every record in `wire`; application data is appended to the result, a KeyUpdate is
  // applied (answered if requested, the answer appended to `answers`).
  std::string open_all(Bytes wire, Bytes* answers = nullptr) {
    std::string got;
    std::span<std::uint8_t> rest = wire;
    while (!rest.empty()) {
      NextRecord n = next_record(rest);
      if (n.status != NextRecord::Status::kReady) return "SPLIT";
      Opened o = crypto.open(read, rest.first(n.size));
      rest = rest.subspan(n.size);
      if (o.status != OpenStatus::kOk) return "REFUSED";
      if (o.type == ContentType::kApplicationData) {
        got.append(o.plaintext.begin(), o.plaintext.end());
        continue;
      }
      if (o.type != ContentType::kHandshake) return "ALERT";
      PostHandshake p = parse_post_handshake(o.plaintext);
      if (p != PostHandshake::kKeyUpdate && p != PostHandshake::kKeyUpdateRequested)
        return "BAD HANDSHAKE";
      if (!update(read)) return "UPDATE FAILED";
      if (p == PostHandshake::kKeyUpdateRequested) {
        Bytes out(kMaxSealed);
        std::size_t k = send_key_update(crypto, write, false, out);
        if (k == 0 || !answers) return "NO ANSWER";
        answers->insert(answers->end(), out.begin(), out.begin() + static_cast<std::ptrdiff_t>(k));
      }
    }
    return got;
  }
};

struct SuiteCase {
  const char* name;
  Suite suite;
};
const SuiteCase kSuites[] = {{"TLS_AES_128_GCM_SHA256", Suite::kAes128GcmSha256},
                             {"TLS_AES_256_GCM_SHA384", Suite::kAes256GcmSha384},
                             {"TLS_CHACHA20_POLY1305_SHA256", Suite::kChacha20Poly1305Sha256}};

// FINDING (docs/TLS-RECORD.md §3): when the handshake is over on both sides, the server's
// OpenSSL has sent exactly one record per NewSessionTicket under its application key (each
// ticket its own record), and nothing else; the client has sent nothing under its own.
TEST(TlsRecordDifferential, ServerSendsOneRecordPerTicketBeforeTheHandover) {
  for (int tickets : {0, 1, 2, 3}) {
    Link l("TLS_AES_128_GCM_SHA256", tickets);
    l.handshake();
    auto types = app_records(l.suite(), l.secret("SERVER_TRAFFIC_SECRET_0"), l.server_wire);
    EXPECT_EQ(types, std::vector(static_cast<std::size_t>(tickets), ContentType::kHandshake))
        << tickets << " tickets: one NewSessionTicket record each";
  }
}

// FINDING: a client sends its first data right behind its Finished (a wss client its HTTP
// upgrade). The server's OpenSSL writes its tickets inside the SSL_do_handshake call that reads
// the client's Finished, before it returns 1, and reads the data only in the SSL_read after:
// the handover's read sequence number is the number of records SSL_read took after the
// handshake, here 1.
TEST(TlsRecordDifferential, ClientDataInItsFinishedFlight) {
  for (const SuiteCase& sc : kSuites) {
    SCOPED_TRACE(sc.name);
    Link l(sc.name, 1);
    std::byte plain[1 << 15];
    std::size_t n = 0;
    ASSERT_EQ((*l.client)->read(plain, sizeof plain, n), Session::Result::kOk);  // ClientHello
    auto hello = l.client->take();
    (*l.server)->feed(hello.data(), hello.size());
    ASSERT_EQ((*l.server)->read(plain, sizeof plain, n), Session::Result::kOk);
    l.server_wire = u8(l.server->take());
    ASSERT_EQ(l.client_reads(l.server_wire), "");
    ASSERT_TRUE((*l.client)->handshake_done());
    const Bytes upgrade = pattern(300);
    const Bytes finished_and_data = l.client_writes(upgrade);  // Finished, then the data

    SSL* ssl = (*l.server)->ssl();
    (*l.server)->feed(reinterpret_cast<const std::byte*>(finished_and_data.data()),
                      finished_and_data.size());
    ASSERT_EQ(SSL_do_handshake(ssl), 1);
    const Bytes tickets = u8(l.server->take());
    EXPECT_EQ(app_records(l.suite(), l.secret("SERVER_TRAFFIC_SECRET_0"), tickets),
              std::vector{ContentType::kHandshake})
        << "the ticket is out when SSL_do_handshake returns";
    l.server_wire.insert(l.server_wire.end(), tickets.begin(), tickets.end());
    EXPECT_EQ(SSL_pending(ssl), 0) << "the data record is not read yet";
    ASSERT_EQ((*l.server)->read(plain, sizeof plain, n), Session::Result::kOk);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(plain), n), str(upgrade));
    ASSERT_EQ((*l.server)->read(plain, sizeof plain, n), Session::Result::kOk);
    EXPECT_EQ(n, 0u);
    EXPECT_TRUE(l.server->take().empty()) << "nothing more from the server's OpenSSL";
    auto client_app =
        app_records(l.suite(), l.secret("CLIENT_TRAFFIC_SECRET_0"), finished_and_data);
    EXPECT_EQ(client_app, std::vector{ContentType::kApplicationData});
    ASSERT_EQ(l.client_reads(tickets), "");

    Ours ours(l, client_app.size());
    EXPECT_EQ(ours.write.seq, 1u);
    EXPECT_EQ(ours.open_all(l.client_writes(pattern(10))), str(pattern(10)));
    EXPECT_EQ(l.client_reads(ours.seal(pattern(11))), str(pattern(11)));
  }
}

TEST(TlsRecordDifferential, EverySuiteBothWays) {
  for (const SuiteCase& sc : kSuites) {
    SCOPED_TRACE(sc.name);
    Link l(sc.name, 1);
    l.handshake();
    ASSERT_EQ(l.suite(), sc.suite);
    ASSERT_EQ(l.secret("SERVER_TRAFFIC_SECRET_0").size(), secret_len(sc.suite));
    Ours ours(l);
    EXPECT_EQ(ours.write.seq, 1u) << "after the one NewSessionTicket";
    for (std::size_t size : {0u, 1u, 255u, 256u, 16383u, 16384u}) {
      SCOPED_TRACE(size);
      Bytes plain = pattern(size, static_cast<std::uint8_t>(size));
      EXPECT_EQ(l.client_reads(ours.seal(plain)), str(plain)) << "ours to OpenSSL";
      if (size == 0) continue;  // SSL_write sends no empty records
      Bytes wire = l.client_writes(plain);
      EXPECT_EQ(wire.size(), sealed_size(size)) << "one record, no padding";
      EXPECT_EQ(ours.open_all(wire), str(plain)) << "OpenSSL to ours";
    }
    // Larger writes come as 2^14-byte records, each opened in turn.
    Bytes big = pattern(100000, 3);
    EXPECT_EQ(ours.open_all(l.client_writes(big)), str(big));
  }
}

TEST(TlsRecordDifferential, EveryRecordSizeEverySuite) {
  for (const SuiteCase& sc : kSuites) {
    SCOPED_TRACE(sc.name);
    Link l(sc.name, 1);
    l.handshake();
    Ours ours(l);
    for (std::size_t size = 0; size <= kMaxPlaintext; ++size) {
      Bytes plain = pattern(size, static_cast<std::uint8_t>(size >> 3));
      ASSERT_EQ(l.client_reads(ours.seal(plain)), str(plain)) << size;
      if (size > 0) {
        ASSERT_EQ(ours.open_all(l.client_writes(plain)), str(plain)) << size;
      }
    }
  }
}

TEST(TlsRecordDifferential, OpenSslRecordsTamperedReorderedReplayedAreRefused) {
  for (const SuiteCase& sc : kSuites) {
    SCOPED_TRACE(sc.name);
    Link l(sc.name, 1);
    l.handshake();
    Ours ours(l);
    const Bytes r0 = l.client_writes(pattern(40, 1)), r1 = l.client_writes(pattern(41, 2));
    auto open_copy = [&](const Bytes& r) {
      Bytes copy = r;
      return ours.crypto.open(ours.read, copy).status;
    };
    Bytes bad = r0;
    bad.back() ^= 0x80;  // the tag
    EXPECT_EQ(open_copy(bad), OpenStatus::kBadRecordMac);
    EXPECT_EQ(open_copy(r1), OpenStatus::kBadRecordMac) << "reordered";
    EXPECT_EQ(ours.read.seq, 0u);
    EXPECT_EQ(open_copy(r0), OpenStatus::kOk);
    EXPECT_EQ(open_copy(r0), OpenStatus::kBadRecordMac) << "replayed";
    EXPECT_EQ(open_copy(r1), OpenStatus::kOk);
    EXPECT_EQ(ours.read.seq, 2u);
    // Truncated at every byte: the splitter waits, and open() refuses a part of a record.
    for (std::size_t k = 0; k < r0.size(); ++k) {
      Bytes part(r0.begin(), r0.begin() + static_cast<std::ptrdiff_t>(k));
      ASSERT_EQ(next_record(part).status, NextRecord::Status::kNeedMore) << k;
      ASSERT_EQ(ours.crypto.open(ours.read, part).status, OpenStatus::kDecodeError) << k;
    }
    EXPECT_EQ(ours.read.seq, 2u);
  }
}

TEST(TlsRecordDifferential, OurRecordsTamperedReorderedReplayedAreRefusedByOpenSsl) {
  for (const SuiteCase& sc : kSuites) {
    SCOPED_TRACE(sc.name);
    for (int how = 0; how < 3; ++how) {
      Link l(sc.name, 1);
      l.handshake();
      Ours ours(l);
      Bytes r0 = ours.seal(pattern(30)), r1 = ours.seal(pattern(31));
      if (how == 0) {
        r0[r0.size() - 3] ^= 1;
        EXPECT_EQ(l.client_reads(r0), "ERROR") << "tampered tag";
      } else if (how == 1) {
        EXPECT_EQ(l.client_reads(r1), "ERROR") << "reordered";
      } else {
        EXPECT_EQ(l.client_reads(r0), str(pattern(30)));
        EXPECT_EQ(l.client_reads(r0), "ERROR") << "replayed";
      }
    }
    // And split at every byte, OpenSSL assembles our record.
    Link l(sc.name, 1);
    l.handshake();
    Ours ours(l);
    const Bytes r = ours.seal(pattern(50));
    std::string got;
    for (std::uint8_t b : r) got += l.client_reads(Bytes{b});
    EXPECT_EQ(got, str(pattern(50)));
  }
}

TEST(TlsRecordDifferential, KeyUpdateBothWays) {
  for (const SuiteCase& sc : kSuites) {
    SCOPED_TRACE(sc.name);
    Link l(sc.name, 1);
    l.handshake();
    Ours ours(l);
    SSL* peer = (*l.client)->ssl();
    // OpenSSL asks: its KeyUpdate goes out ahead of its next record; we update our read key and
    // answer with our own KeyUpdate, which OpenSSL accepts before our next record.
    ASSERT_EQ(SSL_key_update(peer, SSL_KEY_UPDATE_REQUESTED), 1);
    Bytes answers;
    EXPECT_EQ(ours.open_all(l.client_writes(pattern(20)), &answers), str(pattern(20)));
    ASSERT_EQ(answers.size(), sealed_size(kKeyUpdateLen));
    EXPECT_EQ(ours.read.seq, 1u);
    EXPECT_EQ(ours.write.seq, 0u);
    EXPECT_EQ(l.client_reads(answers), "");
    EXPECT_EQ(l.client_reads(ours.seal(pattern(21))), str(pattern(21)));
    // OpenSSL updates without asking.
    ASSERT_EQ(SSL_key_update(peer, SSL_KEY_UPDATE_NOT_REQUESTED), 1);
    EXPECT_EQ(ours.open_all(l.client_writes(pattern(22))), str(pattern(22)));
    EXPECT_EQ(l.client_reads(ours.seal(pattern(23))), str(pattern(23)));
    // We ask: OpenSSL updates its read key, and its answer precedes its next record.
    Bytes out(kMaxSealed);
    std::size_t n = send_key_update(ours.crypto, ours.write, true, out);
    ASSERT_GT(n, 0u);
    EXPECT_EQ(l.client_reads(std::span(out).first(n)), "");
    EXPECT_EQ(l.client_reads(ours.seal(pattern(24))), str(pattern(24)));
    const std::uint64_t read_before = ours.read.seq;
    Bytes wire = l.client_writes(pattern(25));
    EXPECT_EQ(wire.size(), sealed_size(kKeyUpdateLen) + sealed_size(25)) << "KeyUpdate, data";
    EXPECT_EQ(ours.open_all(wire), str(pattern(25)));
    EXPECT_EQ(ours.read.seq, 1u) << "reset by the KeyUpdate, was " << read_before;
    // We update without asking: OpenSSL follows, and sends under its old key.
    n = send_key_update(ours.crypto, ours.write, false, out);
    EXPECT_EQ(l.client_reads(std::span(out).first(n)), "");
    EXPECT_EQ(l.client_reads(ours.seal(pattern(26))), str(pattern(26)));
    EXPECT_EQ(ours.open_all(l.client_writes(pattern(27))), str(pattern(27)));
  }
}

// close_notify sealed by us reaches OpenSSL as a graceful close; OpenSSL's reaches us as an
// alert record of level 1, description 0.
TEST(TlsRecordDifferential, CloseNotifyBothWays) {
  Link l("TLS_AES_256_GCM_SHA384", 1);
  l.handshake();
  Ours ours(l);
  (*l.client)->shutdown();
  Bytes wire = u8(l.client->take());
  Opened o = ours.crypto.open(ours.read, wire);
  ASSERT_EQ(o.status, OpenStatus::kOk);
  EXPECT_EQ(o.type, ContentType::kAlert);
  EXPECT_EQ(Bytes(o.plaintext.begin(), o.plaintext.end()), (Bytes{1, 0}));
  const auto alert = alert_message(Alert::kCloseNotify);
  Bytes rec = ours.seal(alert, ContentType::kAlert);
  std::byte plain[64];
  std::size_t n = 0;
  (*l.client)->feed(reinterpret_cast<const std::byte*>(rec.data()), rec.size());
  EXPECT_EQ((*l.client)->read(plain, sizeof plain, n), Session::Result::kClosed);
}

}  // namespace
}  // namespace wsedge::tls::record
