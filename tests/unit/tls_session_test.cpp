// tls::Session over an in-memory transport: a client and a server session exchanging bytes
// through plain buffers, as the reactor exchanges them through sockets.
#include "tls/session.hpp"

#include <gtest/gtest.h>

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "temp_cert.hpp"
#include "tls/context.hpp"
#include "tls/memory_session.hpp"

namespace wsedge::tls {
namespace {

using test::TempCert;

struct Pair {
  std::shared_ptr<Context> server_ctx;
  CtxPtr client_ctx{SSL_CTX_new(TLS_client_method()), SSL_CTX_free};
  std::unique_ptr<MemorySession> server, client;
  std::string server_got, client_got;

  explicit Pair(const TempCert& c, int client_max = TLS1_3_VERSION)
      : Pair(Context::load({{{c.cert, c.key}}}), client_max) {}

  explicit Pair(std::shared_ptr<Context> ctx, int client_max = TLS1_3_VERSION)
      : server_ctx(std::move(ctx)) {
    SSL_CTX_set_max_proto_version(client_ctx.get(), client_max);
    SSL_CTX_set_min_proto_version(client_ctx.get(), 0);
    SSL_CTX_set_security_level(client_ctx.get(), 0);
    server = std::make_unique<MemorySession>(server_ctx->default_ctx(), true);
    client = std::make_unique<MemorySession>(client_ctx.get(), false);
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

TEST(TlsSession, HandshakeAndDataBothWays) {
  TempCert cert;
  Pair p(cert);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  EXPECT_TRUE((*p.server)->handshake_done());
  EXPECT_TRUE((*p.client)->handshake_done());
  EXPECT_STREQ(SSL_get_version((*p.server)->ssl()), "TLSv1.3");
  std::string big(100000, 'x');
  (*p.client)->write(reinterpret_cast<const std::byte*>(big.data()), big.size());
  (*p.server)->write(reinterpret_cast<const std::byte*>("hello"), 5);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  EXPECT_EQ(p.server_got, big);
  EXPECT_EQ(p.client_got, "hello");
}

TEST(TlsSession, RecordsSplitAtEveryBoundary) {
  TempCert cert;
  Pair p(cert);
  ASSERT_EQ(p.pump(1), Session::Result::kOk);  // the whole handshake one byte at a time
  std::string msg = "split me anywhere, in the header or the body";
  for (std::size_t cut = 1; cut <= 40; ++cut) {  // every split inside the header, into the body
    Pair q(cert);
    ASSERT_EQ(q.pump(), Session::Result::kOk);
    (*q.client)->write(reinterpret_cast<const std::byte*>(msg.data()), msg.size());
    std::vector<std::byte> rec = q.client->take();
    ASSERT_GT(rec.size(), cut);
    std::byte plain[256];
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

TEST(TlsSession, RecordsFedTogetherComeOutOneAtATime) {
  TempCert cert;
  Pair p(cert);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  (*p.client)->write(reinterpret_cast<const std::byte*>("one"), 3);
  (*p.client)->write(reinterpret_cast<const std::byte*>("two"), 3);
  std::vector<std::byte> wire = p.client->take();
  (*p.server)->feed(wire.data(), wire.size());
  std::byte plain[64];
  std::size_t n = 0;
  ASSERT_EQ((*p.server)->read(plain, sizeof plain, n), Session::Result::kOk);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(plain), n), "one");
  ASSERT_EQ((*p.server)->read(plain, sizeof plain, n), Session::Result::kOk);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(plain), n), "two");
  ASSERT_EQ((*p.server)->read(plain, sizeof plain, n), Session::Result::kOk);
  EXPECT_EQ(n, 0u);
}

TEST(TlsSession, CloseNotifyIsReported) {
  TempCert cert;
  Pair p(cert);
  ASSERT_EQ(p.pump(), Session::Result::kOk);
  (*p.client)->shutdown();
  EXPECT_EQ(p.pump(), Session::Result::kClosed);
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

using SessionPtr = std::unique_ptr<SSL_SESSION, decltype(&SSL_SESSION_free)>;

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
