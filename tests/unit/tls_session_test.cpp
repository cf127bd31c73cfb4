// tls::Session over an in-memory transport: a client and a server session exchanging bytes
// through plain buffers, as the reactor exchanges them through sockets.
#include "tls/session.hpp"

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "temp_cert.hpp"
#include "tls/context.hpp"
#include "tls/memory_session.hpp"
#include "tls/self_signed.hpp"

namespace wsedge::tls {
namespace {

using test::TempCert;

using SessionPtr = std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)>;

// Which record layer the server ends up with after a TLS 1.3 handshake.
enum class Layer { kOpenSsl, kOwn };

struct Pair {
  std::shared_ptr<Context> server_ctx;
  CtxPtr client_ctx{SSL_CTX_new(TLS_client_method()), SSL_CTX_free};
  RecordShard shard;  // before the sessions, which give blocks back to it (records_per_key())
  std::unique_ptr<MemorySession> server, client;
  std::string server_got, client_got;

  explicit Pair(const TempCert& c, int client_max = TLS1_3_VERSION, Layer layer = Layer::kOpenSsl)
      : Pair(Context::load({{{c.cert, c.key}}}), client_max, layer) {}

  explicit Pair(std::shared_ptr<Context> ctx, int client_max = TLS1_3_VERSION,
                Layer layer = Layer::kOpenSsl,
                std::uint64_t records_per_key = record::kRecordsPerKey)
      : server_ctx(std::move(ctx)), shard(records_per_key) {
    SSL_CTX_set_max_proto_version(client_ctx.get(), client_max);
    SSL_CTX_set_min_proto_version(client_ctx.get(), 0);
    SSL_CTX_set_security_level(client_ctx.get(), 0);
    server = std::make_unique<MemorySession>(server_ctx->default_ctx(), true,
                                             layer == Layer::kOwn ? &shard : nullptr, server_ctx);
    client = std::make_unique<MemorySession>(client_ctx.get(), false);
  }

  void client_writes(std::string_view s) {
    ASSERT_EQ((*client)->write(reinterpret_cast<const std::byte*>(s.data()), s.size()),
              Session::Result::kOk);
  }
  void server_writes(std::string_view s) {
    ASSERT_EQ((*server)->write(reinterpret_cast<const std::byte*>(s.data()), s.size()),
              Session::Result::kOk);
  }

  // Moves ciphertext both ways, `chunk` bytes at a time, until neither side has more.
  Session::Result pump(std::size_t chunk = 1 << 20) {
    std::byte plain[1 << 15];
    for (int round = 0; round < 1000; ++round) {
      bool moved = false;
      for (auto [from, to, got] : {std::tuple{client.get(), server.get(), &server_got},
                                   std::tuple{server.get(), client.get(), &client_got}}) {
        // Kick the handshake along (a client's first read sends its ClientHello).
        std::size_t n = 0;
        Session::Result r = (*from)->read(plain, sizeof plain, n);
        if (r != Session::Result::kOk) return r;
        from == server.get() ? server_got.append(reinterpret_cast<char*>(plain), n)
                             : client_got.append(reinterpret_cast<char*>(plain), n);
        std::vector<std::byte> wire = from->take();
        for (std::size_t off = 0; off < wire.size(); off += chunk) {
          moved = true;
          (*to)->feed(wire.data() + off, std::min(chunk, wire.size() - off));
          for (;;) {
            r = (*to)->read(plain, sizeof plain, n);
            if (r != Session::Result::kOk) return r;
            if (n == 0) break;
            got->append(reinterpret_cast<char*>(plain), n);
          }
        }
      }
      if (!moved) return Session::Result::kOk;
    }
    return Session::Result::kOk;
  }
};

// One message each way through `p`, and both arrive whole.
void exchange(Pair& p, std::string_view from_client, std::string_view from_server) {
  p.server_got.clear();
  p.client_got.clear();
  p.client_writes(from_client);
  p.server_writes(from_server);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  EXPECT_EQ(p.server_got, from_client);
  EXPECT_EQ(p.client_got, from_server);
}

// The data path, over OpenSSL's record layer and over ours after the handover.
class TlsSessionLayers : public ::testing::TestWithParam<Layer> {};
INSTANTIATE_TEST_SUITE_P(Both, TlsSessionLayers, ::testing::Values(Layer::kOpenSsl, Layer::kOwn),
                         [](const auto& info) {
                           return std::string(info.param == Layer::kOwn ? "Own" : "OpenSsl");
                         });

TEST_P(TlsSessionLayers, HandshakeAndDataBothWays) {
  TempCert cert;
  Pair p(cert, TLS1_3_VERSION, GetParam());
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  EXPECT_TRUE((*p.server)->handshake_done());
  EXPECT_TRUE((*p.client)->handshake_done());
  EXPECT_EQ((*p.server)->own_records(), GetParam() == Layer::kOwn);
  EXPECT_STREQ(SSL_get_version((*p.client)->ssl()), "TLSv1.3");
  std::string big(100000, 'x');
  (*p.client)->write(reinterpret_cast<const std::byte*>(big.data()), big.size());
  (*p.server)->write(reinterpret_cast<const std::byte*>("hello"), 5);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  EXPECT_EQ(p.server_got, big);
  EXPECT_EQ(p.client_got, "hello");
}

TEST_P(TlsSessionLayers, RecordsSplitAtEveryBoundary) {
  TempCert cert;
  Pair p(cert, TLS1_3_VERSION, GetParam());
  ASSERT_EQ(p.pump(1), Session::Result::kOk);  // the whole handshake one byte at a time
  std::string msg = "split me anywhere, in the header or the body";
  for (std::size_t cut = 1; cut <= 40; ++cut) {  // every split inside the header, into the body
    Pair q(cert, TLS1_3_VERSION, GetParam());
    ASSERT_EQ(q.pump(), Session::Result::kOk);
    (*q.client)->write(reinterpret_cast<const std::byte*>(msg.data()), msg.size());
    std::vector<std::byte> rec = q.client->take();
    ASSERT_GT(rec.size(), cut);
    std::byte plain[Session::kReadCapacity];
    std::size_t n = 0;
    // Each piece lives in its own buffer that is gone before the next arrives, as a reactor's
    // receive buffers are recycled.
    {
      std::vector<std::byte> first(rec.begin(), rec.begin() + static_cast<std::ptrdiff_t>(cut));
      (*q.server)->feed(first.data(), first.size());
      ASSERT_EQ((*q.server)->read(plain, sizeof plain, n), Session::Result::kOk);
      ASSERT_EQ(n, 0u) << "no plaintext before the record is complete, cut " << cut;
      std::fill(first.begin(), first.end(), std::byte{0});
    }
    std::vector<std::byte> rest(rec.begin() + static_cast<std::ptrdiff_t>(cut), rec.end());
    (*q.server)->feed(rest.data(), rest.size());
    ASSERT_EQ((*q.server)->read(plain, sizeof plain, n), Session::Result::kOk);
    ASSERT_EQ(std::string(reinterpret_cast<char*>(plain), n), msg) << cut;
  }
}

TEST_P(TlsSessionLayers, RecordsFedTogetherComeOutOneAtATime) {
  TempCert cert;
  Pair p(cert, TLS1_3_VERSION, GetParam());
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  (*p.client)->write(reinterpret_cast<const std::byte*>("one"), 3);
  (*p.client)->write(reinterpret_cast<const std::byte*>("two"), 3);
  std::vector<std::byte> wire = p.client->take();
  (*p.server)->feed(wire.data(), wire.size());
  std::byte plain[Session::kReadCapacity];
  std::size_t n = 0;
  ASSERT_EQ((*p.server)->read(plain, sizeof plain, n), Session::Result::kOk);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(plain), n), "one");
  ASSERT_EQ((*p.server)->read(plain, sizeof plain, n), Session::Result::kOk);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(plain), n), "two");
  ASSERT_EQ((*p.server)->read(plain, sizeof plain, n), Session::Result::kOk);
  EXPECT_EQ(n, 0u);
}

TEST_P(TlsSessionLayers, CloseNotifyIsReported) {
  TempCert cert;
  Pair p(cert, TLS1_3_VERSION, GetParam());
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  (*p.client)->shutdown();
  EXPECT_EQ(p.pump(), Session::Result::kClosed);
}

// --- our record layer after the handover (docs/TLS-RECORD.md) ---

// Reads everything `to` has been sent by `from`'s session; kOk or why not.
Session::Result deliver(MemorySession& from, MemorySession& to, std::string& got) {
  std::vector<std::byte> wire = from.take();
  to->feed(wire.data(), wire.size());
  std::byte plain[Session::kReadCapacity];
  for (;;) {
    std::size_t n = 0;
    Session::Result r = to->read(plain, sizeof plain, n);
    if (r != Session::Result::kOk || n == 0) return r;
    got.append(reinterpret_cast<char*>(plain), n);
  }
}

TEST(TlsOwnRecords, HandoverFreesTheSslObjectAndTheTicketCountIsTheWriteSequence) {
  TempCert cert;
  Pair p(cert, TLS1_3_VERSION, Layer::kOwn);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  ASSERT_TRUE((*p.server)->own_records());
  EXPECT_EQ((*p.server)->ssl(), nullptr);
  EXPECT_TRUE((*p.server)->handshake_done());
  EXPECT_FALSE((*p.server)->resumed());
  // The client's OpenSSL opens our first record only at the sequence number after the ticket.
  p.server_writes("first");
  ASSERT_EQ(deliver(*p.server, *p.client, p.client_got), Session::Result::kOk);
  EXPECT_EQ(p.client_got, "first");
  // What stays per connection: no SSL, two directions of keys (the target is 2 KiB in
  // all per idle wss connection, the engine's own 168 B included).
  EXPECT_LE(sizeof(Session), 384u);
}

TEST(TlsOwnRecords, EveryRecordSizeBothWays) {
  TempCert cert;
  Pair p(cert, TLS1_3_VERSION, Layer::kOwn);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  ASSERT_TRUE((*p.server)->own_records());
  std::string expect_server, expect_client;
  for (std::size_t size : {1, 2, 100, 16383, 16384, 16385, 40000, 100000}) {
    std::string a(size, static_cast<char>('a' + size % 26)), b(size, 'z');
    p.client_writes(a);
    p.server_writes(b);
    expect_server += a;
    expect_client += b;
  }
  // Through the real receive pattern: pieces of many sizes, none aligned to records.
  ASSERT_EQ(p.pump(1000), Session::Result::kOk);
  EXPECT_EQ(p.server_got, expect_server);
  EXPECT_EQ(p.client_got, expect_client);
}

TEST(TlsOwnRecords, Tls12KeepsOpenSsl) {
  TempCert cert;
  Pair p(cert, TLS1_2_VERSION, Layer::kOwn);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  EXPECT_FALSE((*p.server)->own_records());
  EXPECT_STREQ(SSL_get_version((*p.server)->ssl()), "TLSv1.2");
  p.server_writes("still OpenSSL");
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  EXPECT_EQ(p.client_got, "still OpenSSL");
}

TEST(TlsOwnRecords, EverySuiteIsHandedOver) {
  TempCert cert;
  for (const char* suite :
       {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"}) {
    Pair p(cert, TLS1_3_VERSION, Layer::kOwn);
    ASSERT_EQ(SSL_set_ciphersuites((*p.client)->ssl(), suite), 1);
    ASSERT_EQ(p.pump(), Session::Result::kOk);
    ASSERT_TRUE((*p.server)->own_records()) << suite;
    EXPECT_STREQ(SSL_CIPHER_get_name(SSL_get_current_cipher((*p.client)->ssl())), suite);
    SCOPED_TRACE(suite);
    exchange(p, "ping", "pong");
  }
}

TEST(TlsOwnRecords, ResumedHandshakesAreHandedOverToo) {
  TempCert cert;
  auto ctx = Context::load({{{cert.cert, cert.key}}});
  Pair first(ctx, TLS1_3_VERSION, Layer::kOwn);
  ASSERT_EQ(first.pump(), Session::Result::kOk);
  SessionPtr ticket(SSL_get1_session((*first.client)->ssl()), SSL_SESSION_free);
  ASSERT_TRUE(ticket && SSL_SESSION_is_resumable(ticket.get()));
  Pair again(ctx, TLS1_3_VERSION, Layer::kOwn);
  SSL_set_session((*again.client)->ssl(), ticket.get());
  ASSERT_EQ(again.pump(), Session::Result::kOk);
  ASSERT_TRUE((*again.server)->own_records());
  EXPECT_TRUE((*again.server)->resumed());
  exchange(again, "resumed", "and answered");
}

// Long transfers that cross KeyUpdates both ways: the client updates its key and asks us to
// update ours, in the middle of a stream.
TEST(TlsOwnRecords, KeyUpdatesBothWaysMidStream) {
  TempCert cert;
  Pair p(cert, TLS1_3_VERSION, Layer::kOwn);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  ASSERT_TRUE((*p.server)->own_records());
  std::string expect_server, expect_client;
  for (int round = 0; round < 4; ++round) {
    std::string a(70000, static_cast<char>('a' + round)), b(50000, static_cast<char>('A' + round));
    p.client_writes(a);
    p.server_writes(b);
    expect_server += a;
    expect_client += b;
    ASSERT_EQ(SSL_key_update((*p.client)->ssl(),
                             round % 2 ? SSL_KEY_UPDATE_NOT_REQUESTED : SSL_KEY_UPDATE_REQUESTED),
              1);
    p.client_writes("after the update");  // sends the KeyUpdate first, under the old key
    expect_server += "after the update";
    ASSERT_EQ(p.pump(777), Session::Result::kOk) << round;
    // What we sent after answering goes under our new key, and the client opens it.
    p.server_writes("after ours");
    expect_client += "after ours";
    ASSERT_EQ(p.pump(), Session::Result::kOk) << round;
  }
  EXPECT_EQ(p.server_got, expect_server);
  EXPECT_EQ(p.client_got, expect_client);
}

// Before a write key reaches its usage limit (2^24 records, RFC 8446 §5.5; 3 here) a
// KeyUpdate replaces it, and the client's OpenSSL follows every change.
TEST(TlsOwnRecords, AKeyUpdateBeforeTheUsageLimit) {
  TempCert cert;
  Pair p(Context::load({{{cert.cert, cert.key}}}), TLS1_3_VERSION, Layer::kOwn, 3);
  int key_updates = 0;
  SSL_set_msg_callback((*p.client)->ssl(), [](int write_p, int, int type, const void* buf,
                                              std::size_t len, SSL*, void* arg) {
    if (!write_p && type == SSL3_RT_HANDSHAKE && len > 0 &&
        static_cast<const std::uint8_t*>(buf)[0] == SSL3_MT_KEY_UPDATE)
      ++*static_cast<int*>(arg);
  });
  SSL_set_msg_callback_arg((*p.client)->ssl(), &key_updates);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  ASSERT_TRUE((*p.server)->own_records());
  std::string expect;
  for (int i = 0; i < 10; ++i) {  // one record each; the ticket took sequence number 0
    std::string msg = "record " + std::to_string(i) + ";";
    p.server_writes(msg);
    expect += msg;
  }
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  EXPECT_EQ(p.client_got, expect);
  EXPECT_EQ(key_updates, 3);  // before records 2, 5 and 8 (sequence numbers 3, 3, 3)
}

TEST(TlsOwnRecords, ATamperedRecordIsRefusedWithAnAlert) {
  TempCert cert;
  Pair p(cert, TLS1_3_VERSION, Layer::kOwn);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  p.client_writes("tamper with me");
  std::vector<std::byte> wire = p.client->take();
  wire[wire.size() - 3] ^= std::byte{1};  // inside the tag
  (*p.server)->feed(wire.data(), wire.size());
  std::byte plain[Session::kReadCapacity];
  std::size_t n = 0;
  EXPECT_EQ((*p.server)->read(plain, sizeof plain, n), Session::Result::kError);
  EXPECT_STREQ((*p.server)->error(), "TLS record refused");
  // The client's OpenSSL reads our bad_record_mac alert and fails the connection.
  std::string got;
  EXPECT_EQ(deliver(*p.server, *p.client, got), Session::Result::kError);
  EXPECT_EQ(got, "");
}

TEST(TlsOwnRecords, ARecordOverTheLimitIsRefusedAtItsHeader) {
  TempCert cert;
  Pair p(cert, TLS1_3_VERSION, Layer::kOwn);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  // Only a header, claiming 2^14 + 257 bytes: refused without waiting for them.
  const std::uint8_t header[] = {23, 3, 3, 0x41, 0x01};
  (*p.server)->feed(reinterpret_cast<const std::byte*>(header), sizeof header);
  std::byte plain[Session::kReadCapacity];
  std::size_t n = 0;
  EXPECT_EQ((*p.server)->read(plain, sizeof plain, n), Session::Result::kError);
  EXPECT_STREQ((*p.server)->error(), "TLS record too long");
}

TEST(TlsOwnRecords, CloseNotifyBothWays) {
  TempCert cert;
  Pair p(cert, TLS1_3_VERSION, Layer::kOwn);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  // Ours: the client's OpenSSL reads it as the end (SSL_ERROR_ZERO_RETURN).
  p.server_writes("last words");
  (*p.server)->shutdown();
  (*p.server)->shutdown();  // once only
  EXPECT_EQ(deliver(*p.server, *p.client, p.client_got), Session::Result::kClosed);
  EXPECT_EQ(p.client_got, "last words");
  EXPECT_EQ((*p.server)->write(reinterpret_cast<const std::byte*>("x"), 1),
            Session::Result::kError);
  // Theirs: half-closed, data before it is delivered, bytes after it are not read.
  Pair q(cert, TLS1_3_VERSION, Layer::kOwn);
  ASSERT_EQ(q.pump(), Session::Result::kOk);
  q.client_writes("bye");
  (*q.client)->shutdown();
  EXPECT_EQ(deliver(*q.client, *q.server, q.server_got), Session::Result::kClosed);
  EXPECT_EQ(q.server_got, "bye");
  q.server_writes("answer after their close_notify");  // TLS 1.3 half-close: still allowed
  EXPECT_EQ(deliver(*q.server, *q.client, q.client_got), Session::Result::kOk);
  EXPECT_EQ(q.client_got, "answer after their close_notify");
}

// Bytes nobody sealed, behind a good record and cut at every point: the good record's
// plaintext comes out, then an error; never a crash, a hang or plaintext from the garbage.
TEST(TlsOwnRecords, GarbageAfterAGoodRecordIsAnErrorAtEverySplit) {
  TempCert cert;
  std::vector<std::byte> garbage(300);
  for (std::size_t i = 0; i < garbage.size(); ++i) garbage[i] = std::byte(i * 37 + 11);
  garbage[0] = std::byte{23};  // a plausible header: application data, TLS 1.2, 295 bytes
  garbage[1] = garbage[2] = std::byte{3};
  garbage[3] = std::byte{1};
  garbage[4] = std::byte{39};
  for (std::size_t cut = 0; cut <= 40; ++cut) {
    Pair p(cert, TLS1_3_VERSION, Layer::kOwn);
    ASSERT_EQ(p.pump(), Session::Result::kOk);
    p.client_writes("good");
    std::vector<std::byte> wire = p.client->take();
    wire.insert(wire.end(), garbage.begin(), garbage.end());
    std::string got;
    Session::Result last = Session::Result::kOk;
    for (std::size_t off = 0; off < wire.size() && last == Session::Result::kOk;) {
      std::size_t len = std::min(wire.size() - off, cut == 0 ? wire.size() : cut);
      std::vector<std::byte> piece(wire.begin() + static_cast<std::ptrdiff_t>(off),
                                   wire.begin() + static_cast<std::ptrdiff_t>(off + len));
      (*p.server)->feed(piece.data(), piece.size());
      std::byte plain[Session::kReadCapacity];
      for (std::size_t n = 1; n > 0 && last == Session::Result::kOk;) {
        last = (*p.server)->read(plain, sizeof plain, n);
        got.append(reinterpret_cast<char*>(plain), last == Session::Result::kOk ? n : 0);
      }
      off += len;
    }
    EXPECT_EQ(got, "good") << cut;
    EXPECT_EQ(last, Session::Result::kError) << cut;
  }
}

// A session that ends holding half a record gives the shard its block back (LeakSanitizer
// would name a block lost), and the shard can lend it again.
TEST(TlsOwnRecords, ASessionEndingMidRecordGivesItsBlockBack) {
  TempCert cert;
  for (std::size_t cut : {std::size_t{3}, std::size_t{5}, std::size_t{100}}) {
    Pair p(cert, TLS1_3_VERSION, Layer::kOwn);
    ASSERT_EQ(p.pump(), Session::Result::kOk);
    p.client_writes(std::string(1000, 'h'));
    std::vector<std::byte> wire = p.client->take();
    (*p.server)->feed(wire.data(), cut);
    std::byte plain[Session::kReadCapacity];
    std::size_t n = 1;
    ASSERT_EQ((*p.server)->read(plain, sizeof plain, n), Session::Result::kOk);
    ASSERT_EQ(n, 0u);
    p.server.reset();  // mid-record: its block goes back to the shard, which outlives it
    std::uint8_t* block = p.shard.acquire();
    ASSERT_NE(block, nullptr);
    p.shard.release(block);
  }
}

TEST(TlsOwnRecords, AReadBufferTooSmallForARecordIsRefused) {
  TempCert cert;
  Pair p(cert, TLS1_3_VERSION, Layer::kOwn);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  std::byte plain[64];
  std::size_t n = 0;
  EXPECT_EQ((*p.server)->read(plain, sizeof plain, n), Session::Result::kError);
}

// --- what OpenSSL's client never sends: records forged with the client's own keys ---

// The client context's keylog, kept in the std::string its app data points at.
void client_keylog(const SSL* ssl, const char* line) {
  auto* log = static_cast<std::string*>(SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)));
  log->append(line).push_back('\n');
}

// Seals records as the client would, under its application traffic key from sequence 0 (the
// client's OpenSSL must have sent nothing since its Finished): empty records, KeyUpdate
// storms, alerts of any kind.
struct Forger {
  record::RecordCrypto crypto;
  record::DirectionState write{};

  explicit Forger(Pair& p, const std::string& keylog) {
    constexpr std::string_view kLabel = "CLIENT_TRAFFIC_SECRET_0 ";
    std::size_t at = keylog.find(kLabel);
    std::size_t end = keylog.find('\n', at);
    std::size_t sp = keylog.rfind(' ', end);
    EXPECT_NE(at, std::string::npos);
    std::string hex = keylog.substr(sp + 1, end - sp - 1);
    long len = 0;
    unsigned char* secret = OPENSSL_hexstr2buf(hex.c_str(), &len);
    const auto suite = static_cast<record::Suite>(
        SSL_CIPHER_get_protocol_id(SSL_get_current_cipher((*p.client)->ssl())));
    EXPECT_TRUE(record::init(write, suite, {secret, static_cast<std::size_t>(len)}, 0));
    OPENSSL_clear_free(secret, static_cast<std::size_t>(len));
  }
  ~Forger() { record::wipe(write); }

  void seal(std::vector<std::byte>& wire, record::ContentType type,
            std::span<const std::uint8_t> plaintext) {
    std::vector<std::uint8_t> out(record::sealed_size(plaintext.size()));
    ASSERT_EQ(crypto.seal(write, type, plaintext, out), out.size());
    for (std::uint8_t b : out) wire.push_back(std::byte{b});
  }
  void data(std::vector<std::byte>& wire, std::string_view s) {
    seal(wire, record::ContentType::kApplicationData,
         {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()});
  }
  void key_update(std::vector<std::byte>& wire, bool request) {
    seal(wire, record::ContentType::kHandshake, record::key_update_message(request));
    ASSERT_TRUE(record::update(write));
  }
};

// A handed-over pair whose client's keys a Forger can take.
struct ForgedPair {
  std::string keylog;
  Pair p;
  std::unique_ptr<Forger> forger;

  explicit ForgedPair(const TempCert& cert) : p(cert, TLS1_3_VERSION, Layer::kOwn) {
    SSL_CTX_set_app_data(p.client_ctx.get(), &keylog);
    SSL_CTX_set_keylog_callback(p.client_ctx.get(), client_keylog);
    EXPECT_EQ(p.pump(), Session::Result::kOk);
    EXPECT_TRUE((*p.server)->own_records());
    forger = std::make_unique<Forger>(p, keylog);
  }
  // Feeds `wire` to the server in one piece and reads until it yields nothing or stops.
  Session::Result server_reads(const std::vector<std::byte>& wire, std::string& got) {
    (*p.server)->feed(wire.data(), wire.size());
    std::byte plain[Session::kReadCapacity];
    for (;;) {
      std::size_t n = 0;
      Session::Result r = (*p.server)->read(plain, sizeof plain, n);
      if (r != Session::Result::kOk || n == 0) return r;
      got.append(reinterpret_cast<char*>(plain), n);
    }
  }
};

// Empty application data records are legal, but each costs a decryption and brings nothing:
// as OpenSSL (MAX_EMPTY_RECORDS), 32 in a row pass, the 33rd is refused.
TEST(TlsOwnRecords, EmptyRecordsInARowAreBounded) {
  TempCert cert;
  ForgedPair f(cert);
  std::vector<std::byte> wire;
  for (int round = 0; round < 3; ++round) {
    for (unsigned i = 0; i < Session::kMaxQuietRecords; ++i) f.forger->data(wire, "");
    f.forger->data(wire, "data");  // starts the count again
  }
  std::string got;
  ASSERT_EQ(f.server_reads(wire, got), Session::Result::kOk);
  EXPECT_EQ(got, "datadatadata");
  wire.clear();
  for (unsigned i = 0; i <= Session::kMaxQuietRecords; ++i) f.forger->data(wire, "");
  f.forger->data(wire, "never read");
  got.clear();
  EXPECT_EQ(f.server_reads(wire, got), Session::Result::kError);
  EXPECT_STREQ((*f.p.server)->error(), "TLS too many records without data");
  EXPECT_EQ(got, "");
  // The client's OpenSSL reads our unexpected_message alert.
  std::string client_got;
  EXPECT_EQ(deliver(*f.p.server, *f.p.client, client_got), Session::Result::kError);
}

// A client asking for a KeyUpdate thousands of times would cost us six key derivations and a
// record sent per 27 bytes it sends: 32 in a row are answered, the 33rd is refused.
TEST(TlsOwnRecords, KeyUpdateRequestsInARowAreBounded) {
  TempCert cert;
  ForgedPair f(cert);
  std::vector<std::byte> wire;
  for (unsigned i = 0; i < Session::kMaxQuietRecords; ++i) f.forger->key_update(wire, true);
  f.forger->data(wire, "after 32");
  std::string got;
  ASSERT_EQ(f.server_reads(wire, got), Session::Result::kOk);
  EXPECT_EQ(got, "after 32");
  // Each answered, and the client's OpenSSL follows all of them.
  std::vector<std::byte> answers = f.p.server->take();
  EXPECT_EQ(answers.size(), Session::kMaxQuietRecords * record::sealed_size(5));
  (*f.p.client)->feed(answers.data(), answers.size());
  std::byte plain[Session::kReadCapacity];
  std::size_t n = 1;
  ASSERT_EQ((*f.p.client)->read(plain, sizeof plain, n), Session::Result::kOk);
  EXPECT_EQ(n, 0u);
  f.p.server_writes("still in step");
  std::string client_got;
  ASSERT_EQ(deliver(*f.p.server, *f.p.client, client_got), Session::Result::kOk);
  EXPECT_EQ(client_got, "still in step");

  wire.clear();
  for (int i = 0; i < 5000; ++i) f.forger->key_update(wire, true);
  got.clear();
  EXPECT_EQ(f.server_reads(wire, got), Session::Result::kError);
  EXPECT_STREQ((*f.p.server)->error(), "TLS too many records without data");
  // 32 answers and the alert, not 5000 answers.
  EXPECT_EQ(f.p.server->take().size(),
            Session::kMaxQuietRecords * record::sealed_size(5) + record::sealed_size(2));
}

// Our close_notify is our last record (RFC 8446 §6.1): a KeyUpdate request after it updates
// the read key but is not answered; the half-closed peer's data still comes through.
TEST(TlsOwnRecords, NoKeyUpdateAnswerAfterOurCloseNotify) {
  TempCert cert;
  ForgedPair f(cert);
  (*f.p.server)->shutdown();
  f.p.server->take();
  std::vector<std::byte> wire;
  f.forger->key_update(wire, true);
  f.forger->data(wire, "after the update");
  std::string got;
  ASSERT_EQ(f.server_reads(wire, got), Session::Result::kOk);
  EXPECT_EQ(got, "after the update");
  EXPECT_TRUE(f.p.server->take().empty());
}

// user_canceled is a closure alert (§6.1), usually a warning followed by close_notify: the
// connection ends as a close, not as a TLS error.
TEST(TlsOwnRecords, UserCanceledIsNotAnError) {
  TempCert cert;
  ForgedPair f(cert);
  std::vector<std::byte> wire;
  f.forger->data(wire, "before");
  f.forger->seal(wire, record::ContentType::kAlert, std::array<std::uint8_t, 2>{1, 90});
  f.forger->data(wire, "after");
  f.forger->seal(wire, record::ContentType::kAlert,
                 record::alert_message(record::Alert::kCloseNotify));
  std::string got;
  EXPECT_EQ(f.server_reads(wire, got), Session::Result::kClosed);
  EXPECT_EQ(got, "beforeafter");
  EXPECT_EQ((*f.p.server)->error(), nullptr);
}

// Any other alert ends the connection whatever its level (§6): a warning-level
// unexpected_message is an error, and nothing is sent after it.
TEST(TlsOwnRecords, OtherWarningAlertsAreErrors) {
  TempCert cert;
  ForgedPair f(cert);
  std::vector<std::byte> wire;
  f.forger->seal(wire, record::ContentType::kAlert, std::array<std::uint8_t, 2>{1, 10});
  f.forger->data(wire, "never read");
  std::string got;
  EXPECT_EQ(f.server_reads(wire, got), Session::Result::kError);
  EXPECT_STREQ((*f.p.server)->error(), "TLS alert received");
  EXPECT_EQ(got, "");
  (*f.p.server)->shutdown();
  EXPECT_TRUE(f.p.server->take().empty());
}

// Records the handshake allowed and the connection after it refuses with an alert: a plaintext
// ChangeCipherSpec (§5: only before the peer's Finished), a NewSessionTicket from a client, a
// KeyUpdate cut across two records, an empty handshake record.
TEST(TlsOwnRecords, PostHandshakeOddities) {
  TempCert cert;
  struct Case {
    const char* name;
    const char* error;
    std::function<void(Forger&, std::vector<std::byte>&)> make;
  };
  const Case cases[] = {
      {"ccs", "TLS record refused",
       [](Forger&, std::vector<std::byte>& w) {
         for (std::uint8_t b : {20, 3, 3, 0, 1, 1}) w.push_back(std::byte{b});
       }},
      {"ticket", "TLS unexpected handshake message",
       [](Forger& f, std::vector<std::byte>& w) {
         f.seal(w, record::ContentType::kHandshake,
                std::array<std::uint8_t, 13>{4, 0, 0, 9, 0, 0, 0, 1, 0, 0, 0, 0, 0});
       }},
      {"split key update", "TLS bad handshake message",
       [](Forger& f, std::vector<std::byte>& w) {
         f.seal(w, record::ContentType::kHandshake, std::array<std::uint8_t, 3>{24, 0, 0});
         f.seal(w, record::ContentType::kHandshake, std::array<std::uint8_t, 2>{1, 1});
       }},
      {"empty handshake", "TLS unexpected handshake message",
       [](Forger& f, std::vector<std::byte>& w) {
         f.seal(w, record::ContentType::kHandshake, {});
       }},
  };
  for (const Case& c : cases) {
    ForgedPair f(cert);
    std::vector<std::byte> wire;
    c.make(*f.forger, wire);
    f.forger->data(wire, "never read");
    std::string got;
    EXPECT_EQ(f.server_reads(wire, got), Session::Result::kError) << c.name;
    EXPECT_STREQ((*f.p.server)->error(), c.error) << c.name;
    EXPECT_EQ(got, "") << c.name;
    std::string client_got;
    EXPECT_EQ(deliver(*f.p.server, *f.p.client, client_got), Session::Result::kError) << c.name;
  }
}

// A client's first data right behind its Finished, in the same read: the handover happens
// between the two records, the data opens at read sequence 0, at every split of that flight.
TEST(TlsOwnRecords, ClientDataInItsFinishedFlightAtEverySplit) {
  TempCert cert;
  std::byte plain[Session::kReadCapacity];
  std::size_t n = 0;
  for (std::size_t cut = 0;; ++cut) {
    Pair p(cert, TLS1_3_VERSION, Layer::kOwn);
    ASSERT_EQ((*p.client)->read(plain, sizeof plain, n), Session::Result::kOk);  // ClientHello
    std::vector<std::byte> hello = p.client->take();
    (*p.server)->feed(hello.data(), hello.size());
    ASSERT_EQ((*p.server)->read(plain, sizeof plain, n), Session::Result::kOk);
    std::vector<std::byte> flight = p.server->take();
    (*p.client)->feed(flight.data(), flight.size());
    ASSERT_EQ((*p.client)->read(plain, sizeof plain, n), Session::Result::kOk);  // Finished
    ASSERT_TRUE((*p.client)->handshake_done());
    p.client_writes("GET / HTTP/1.1");
    std::vector<std::byte> finished = p.client->take();
    if (cut >= finished.size()) break;
    std::string got;
    for (auto [from, to] : {std::pair{std::size_t{0}, cut}, {cut, finished.size()}}) {
      std::vector<std::byte> piece(finished.begin() + static_cast<std::ptrdiff_t>(from),
                                   finished.begin() + static_cast<std::ptrdiff_t>(to));
      (*p.server)->feed(piece.data(), piece.size());
      for (n = 1; n > 0;) {
        ASSERT_EQ((*p.server)->read(plain, sizeof plain, n), Session::Result::kOk) << cut;
        got.append(reinterpret_cast<char*>(plain), n);
      }
    }
    ASSERT_TRUE((*p.server)->own_records()) << cut;
    EXPECT_EQ(got, "GET / HTTP/1.1") << cut;
    p.server_writes("HTTP/1.1 101");
    std::string client_got;
    ASSERT_EQ(deliver(*p.server, *p.client, client_got), Session::Result::kOk) << cut;
    EXPECT_EQ(client_got, "HTTP/1.1 101") << cut;
  }
}

// A HelloRetryRequest (the client's key share is for a group the server does not take) adds a
// round trip and, in compatibility mode, ChangeCipherSpec records: the sequence numbers at the
// handover must not move. Fresh, and resuming a ticket from an earlier handshake.
TEST(TlsOwnRecords, HelloRetryRequestIsHandedOver) {
  TempCert cert;
  auto ctx = Context::load({{{cert.cert, cert.key}}});
  Pair first(ctx, TLS1_3_VERSION, Layer::kOwn);
  ASSERT_EQ(first.pump(), Session::Result::kOk);
  SessionPtr ticket(SSL_get1_session((*first.client)->ssl()), SSL_SESSION_free);
  for (bool resume : {false, true}) {
    Pair p(ctx, TLS1_3_VERSION, Layer::kOwn);
    ASSERT_EQ(SSL_set1_groups_list((*p.server)->ssl(), "X25519"), 1);
    // OpenSSL's client sends a key share for its first group only.
    ASSERT_EQ(SSL_set1_groups_list((*p.client)->ssl(), "P-256:X25519"), 1);
    int hrr = 0;
    SSL_set_msg_callback_arg((*p.client)->ssl(), &hrr);
    SSL_set_msg_callback((*p.client)->ssl(), [](int write, int, int type, const void* buf,
                                                std::size_t len, SSL*, void* arg) {
      // A ServerHello whose random is the HelloRetryRequest constant (§4.1.3) starts CF 21 AD.
      const auto* b = static_cast<const std::uint8_t*>(buf);
      if (!write && type == SSL3_RT_HANDSHAKE && len > 9 && b[0] == 2 && b[6] == 0xCF &&
          b[7] == 0x21 && b[8] == 0xAD)
        ++*static_cast<int*>(arg);
    });
    if (resume) SSL_set_session((*p.client)->ssl(), ticket.get());
    ASSERT_EQ(p.pump(), Session::Result::kOk);
    EXPECT_EQ(hrr, 1) << resume;
    ASSERT_TRUE((*p.server)->own_records()) << resume;
    EXPECT_EQ((*p.server)->resumed(), resume);
    SCOPED_TRACE(resume);
    exchange(p, "after a retry", "answered");
  }
}

// A TLS 1.3 suite our layer does not do (CCM): OpenSSL keeps the connection to its end.
TEST(TlsOwnRecords, CcmSuiteKeepsOpenSsl) {
  TempCert cert;
  Pair p(cert, TLS1_3_VERSION, Layer::kOwn);
  ASSERT_EQ(SSL_set_ciphersuites((*p.server)->ssl(), "TLS_AES_128_CCM_SHA256"), 1);
  ASSERT_EQ(SSL_set_ciphersuites((*p.client)->ssl(), "TLS_AES_128_CCM_SHA256"), 1);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  EXPECT_FALSE((*p.server)->own_records());
  EXPECT_STREQ(SSL_CIPHER_get_name(SSL_get_current_cipher((*p.server)->ssl())),
               "TLS_AES_128_CCM_SHA256");
  exchange(p, "ccm", "still OpenSSL");
}

TEST(TlsSession, OldProtocolVersionsAreRefused) {
  TempCert cert;
  Pair p(cert, TLS1_1_VERSION);
  EXPECT_EQ(p.pump(), Session::Result::kError);
  EXPECT_FALSE((*p.server)->handshake_done());
}

TEST(TlsSession, Tls12WorksAndRenegotiationIsRefused) {
  TempCert cert;
  Pair p(cert, TLS1_2_VERSION);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  EXPECT_STREQ(SSL_get_version((*p.server)->ssl()), "TLSv1.2");
  ASSERT_EQ(SSL_renegotiate((*p.client)->ssl()), 1);
  std::size_t n = 0;
  std::byte plain[64];
  (*p.client)->read(plain, sizeof plain, n);  // sends the renegotiation ClientHello
  Session::Result r = p.pump();
  EXPECT_NE(r, Session::Result::kOk) << "the renegotiation must fail";
}

TEST(TlsSession, GarbageIsAnError) {
  TempCert cert;
  auto ctx = Context::load({{{cert.cert, cert.key}}});
  MemorySession s(ctx->default_ctx(), true);
  std::string http = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  s->feed(reinterpret_cast<const std::byte*>(http.data()), http.size());
  std::byte plain[64];
  std::size_t n = 0;
  EXPECT_EQ(s->read(plain, sizeof plain, n), Session::Result::kError);
}

// The session a client of `ctx` keeps for resumption (TLS 1.3 sends it after the handshake).
SessionPtr ticket_from(std::shared_ptr<Context> ctx) {
  Pair p(std::move(ctx));
  EXPECT_EQ(p.pump(), Session::Result::kOk);
  SessionPtr s(SSL_get1_session((*p.client)->ssl()), SSL_SESSION_free);
  (*p.client)->shutdown();  // OpenSSL marks the session of a connection freed without one unusable
  EXPECT_TRUE(s && SSL_SESSION_is_resumable(s.get()));
  return s;
}

// Whether the server resumes `s` instead of doing a full handshake.
bool resumes(std::shared_ptr<Context> ctx, SSL_SESSION* s) {
  Pair p(std::move(ctx));
  SSL_set_session((*p.client)->ssl(), s);
  EXPECT_EQ(p.pump(), Session::Result::kOk);
  EXPECT_TRUE((*p.server)->handshake_done());
  (*p.client)->shutdown();
  return SSL_session_reused((*p.server)->ssl()) == 1;
}

// Issues tickets as a server would whose ticket keys were never set: name, AES and HMAC keys all
// zero bytes. Anyone can make such a ticket, with any session (and identity) inside.
int zero_key_ticket(SSL*, unsigned char name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
                    EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc) {
  static unsigned char zero[32] = {};
  if (!enc) return 0;
  std::memset(name, 0, 16);
  std::memset(iv, 0, 16);
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string("key", zero, sizeof zero),
                         OSSL_PARAM_construct_utf8_string("digest", const_cast<char*>("sha256"), 0),
                         OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  return EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, zero, iv) == 1 ? 1 : -1;
}

// Runs before any test rotates the process's ticket keys: the hole was open until the first
// rotation.
TEST(TlsTicketKeys, TicketUnderZeroKeysIsRefused) {
  TempCert cert;
  auto forger = Context::load({{{cert.cert, cert.key}}});
  SSL_CTX_set_tlsext_ticket_key_evp_cb(forger->default_ctx(), zero_key_ticket);
  SessionPtr forged = ticket_from(forger);
  ASSERT_TRUE(forged);
  auto server = Context::load({{{cert.cert, cert.key}}});
  EXPECT_FALSE(resumes(server, forged.get())) << "a ticket under all-zero keys was accepted";
  // The same path resumes a genuine ticket, so the refusal above is the key check's doing.
  SessionPtr genuine = ticket_from(server);
  ASSERT_TRUE(genuine);
  EXPECT_TRUE(resumes(server, genuine.get()));
}

TEST(TlsTicketKeys, NoKeyNameMatchesAnUnusedSlot) {
  TicketKeys keys;
  const unsigned char zero[16] = {};
  TicketKeys::Key found;
  bool current = true;
  EXPECT_FALSE(keys.find(zero, found, current));
  keys.rotate();
  EXPECT_FALSE(keys.find(zero, found, current));
}

TEST(TlsTicketKeys, PreviousKeyResumesAfterOneRotationNotTwo) {
  TempCert cert;
  auto server = Context::load({{{cert.cert, cert.key}}});
  SessionPtr s = ticket_from(server);
  ASSERT_TRUE(s);
  ticket_keys().rotate();
  EXPECT_TRUE(resumes(server, s.get()));
  ticket_keys().rotate();
  EXPECT_FALSE(resumes(server, s.get()));
}

TEST(TlsTicketKeys, RotationKeepsThePreviousKeyOnly) {
  TicketKeys keys;
  TicketKeys::Key first = keys.current();
  keys.rotate();
  TicketKeys::Key second = keys.current();
  TicketKeys::Key found;
  bool current = true;
  ASSERT_TRUE(keys.find(first.name.data(), found, current));
  EXPECT_FALSE(current);  // still accepted, but the client gets a ticket under the new key
  EXPECT_EQ(found.aes, first.aes);
  ASSERT_TRUE(keys.find(second.name.data(), found, current));
  EXPECT_TRUE(current);
  keys.rotate();
  EXPECT_FALSE(keys.find(first.name.data(), found, current));  // two rotations old: expired
  EXPECT_TRUE(keys.find(second.name.data(), found, current));
}

// A reload (SIGHUP) replaces the endpoint's Context while a connection it accepted has not sent
// its ClientHello yet: the servername callback its SSL_CTX calls then points into the old
// Context, which the session keeps alive until its handshake is done.
TEST(TlsContext, AHandshakeOutlivesAReloadedContext) {
  TempCert local, other;
  write_self_signed(other.cert, other.key, "other.example", 3600);
  auto ctx = Context::load({{{local.cert, local.key}, {other.cert, other.key}}});
  Pair p(ctx);
  ctx.reset();
  p.server_ctx.reset();  // the reload: nothing but the session holds the old Context now
  ASSERT_EQ(SSL_set_tlsext_host_name((*p.client)->ssl(), "other.example"), 1);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  X509* cert = SSL_get0_peer_certificate((*p.client)->ssl());
  ASSERT_NE(cert, nullptr);
  EXPECT_EQ(X509_check_host(cert, "other.example", 0, 0, nullptr), 1);
}

TEST(TlsContext, BadFilesAreNamedInTheError) {
  TempCert cert;
  try {
    Context::load({{{"/nonexistent/cert.pem", cert.key}}});
    FAIL() << "loaded a missing certificate";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/cert.pem"), std::string::npos);
  }
  TempCert other;
  EXPECT_THROW(Context::load({{{cert.cert, other.key}}}), std::runtime_error);  // mismatched key
}

}  // namespace
}  // namespace wsedge::tls
