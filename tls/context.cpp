#include "context.hpp"

#include "session.hpp"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <stdexcept>

namespace wsedge::tls {
namespace {

constexpr unsigned char kAlpn[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
// TLS 1.2 suites: forward secret AEAD only (TLS 1.3 suites are all AEAD already).
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305";

int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
                unsigned inlen, void*) {
  unsigned char* chosen = nullptr;
  if (SSL_select_next_proto(&chosen, outlen, kAlpn, sizeof kAlpn, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED)
    return SSL_TLSEXT_ERR_ALERT_FATAL;  // a client that offers ALPN but not http/1.1
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

int ticket_cb(SSL*, unsigned char key_name[16], unsigned char iv[EVP_MAX_IV_LENGTH],
              EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc) {
  TicketKeys::Key k;
  bool is_current = true;
  if (enc) {
    k = ticket_keys().current();
    std::memcpy(key_name, k.name.data(), 16);
    if (RAND_bytes(iv, 16) != 1) return -1;
  } else if (!ticket_keys().find(key_name, k, is_current)) {
    return 0;  // unknown or expired key: full handshake
  }
  OSSL_PARAM params[] = {OSSL_PARAM_construct_octet_string("key", k.hmac.data(), k.hmac.size()),
                         OSSL_PARAM_construct_utf8_string("digest", const_cast<char*>("sha256"), 0),
                         OSSL_PARAM_construct_end()};
  if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
  if (enc)
    return EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k.aes.data(), iv) == 1 ? 1 : -1;
  if (EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, k.aes.data(), iv) != 1) return -1;
  return is_current ? 1 : 2;  // 2: valid, but issue a fresh ticket under the current key
}

int servername_cb(SSL* ssl, int*, void* arg) {
  const char* host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (!host) return SSL_TLSEXT_ERR_NOACK;
  SSL_CTX* ctx = static_cast<const Context*>(arg)->for_host(host);
  if (ctx != SSL_get_SSL_CTX(ssl)) SSL_set_SSL_CTX(ssl, ctx);
  return SSL_TLSEXT_ERR_OK;
}

CtxPtr make_ctx(const CertKey& ck) {
  CtxPtr ctx(SSL_CTX_new(TLS_server_method()), SSL_CTX_free);
  if (!ctx) throw std::runtime_error("SSL_CTX_new: " + last_error());
  SSL_CTX* c = ctx.get();
  SSL_CTX_set_min_proto_version(c, TLS1_2_VERSION);
  SSL_CTX_set_max_proto_version(c, TLS1_3_VERSION);
  if (SSL_CTX_set_cipher_list(c, kTls12Ciphers) != 1)
    throw std::runtime_error("cipher list: " + last_error());
  SSL_CTX_set_options(
      c, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
  // Idle connections give their read and write buffers back to the allocator.
  SSL_CTX_set_mode(c, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_session_cache_mode(c, SSL_SESS_CACHE_OFF);  // stateless tickets only: no shared cache
  SSL_CTX_set_num_tickets(c, 1);
  Session::enable_handover(c);  // sessions given a RecordShard leave OpenSSL after TLS 1.3
  SSL_CTX_set_tlsext_ticket_key_evp_cb(c, ticket_cb);
  SSL_CTX_set_alpn_select_cb(c, select_alpn, nullptr);
  if (SSL_CTX_use_certificate_chain_file(c, ck.cert_file.c_str()) != 1)
    throw std::runtime_error("certificate " + ck.cert_file + ": " + last_error());
  if (SSL_CTX_use_PrivateKey_file(c, ck.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    throw std::runtime_error("key " + ck.key_file + ": " + last_error());
  if (SSL_CTX_check_private_key(c) != 1)
    throw std::runtime_error("key " + ck.key_file + " does not match " + ck.cert_file + ": " +
                             last_error());
  return ctx;
}

}  // namespace

std::string last_error() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown error" : out;
}

TicketKeys::TicketKeys() {
  rotate();
}

void TicketKeys::rotate() {
  std::uint64_t gen = generation_.load(std::memory_order_acquire);
  // Filled first and published after: a failure leaves the keys in use as they were.
  Key k;
  if (RAND_bytes(k.name.data(), 16) != 1 || RAND_bytes(k.aes.data(), 32) != 1 ||
      RAND_bytes(k.hmac.data(), 32) != 1)
    throw std::runtime_error("no random bytes for session-ticket keys: " + last_error());
  slots_[(gen + 1) % slots_.size()] = k;
  generation_.store(gen + 1, std::memory_order_release);
}

TicketKeys::Key TicketKeys::current() const {
  return slots_[generation_.load(std::memory_order_acquire) % slots_.size()];
}

bool TicketKeys::find(const unsigned char* name, Key& out, bool& is_current) const {
  // One load gives both the current slot and whether a previous key exists, so a reader can
  // never pair a new index with a stale "has previous" (or look at a slot never written).
  std::uint64_t gen = generation_.load(std::memory_order_acquire);
  std::uint64_t oldest = gen >= 2 ? gen - 1 : gen;
  for (std::uint64_t g = gen; g >= oldest; --g) {
    const Key& k = slots_[g % slots_.size()];
    if (std::memcmp(k.name.data(), name, 16) == 0) {
      out = k;
      is_current = g == gen;
      return true;
    }
  }
  return false;
}

TicketKeys& ticket_keys() {
  static TicketKeys keys;
  return keys;
}

std::shared_ptr<Context> Context::load(const Config& cfg) {
  if (cfg.certs.empty()) throw std::runtime_error("no TLS certificate configured");
  // Makes the first key here, where a failure stops start-up, rather than inside OpenSSL's
  // ticket callback during a handshake.
  ticket_keys();
  auto c = std::make_shared<Context>();
  for (const CertKey& ck : cfg.certs) c->ctxs_.push_back(make_ctx(ck));
  if (c->ctxs_.size() > 1) {
    for (auto& ctx : c->ctxs_) {
      SSL_CTX_set_tlsext_servername_callback(ctx.get(), servername_cb);
      SSL_CTX_set_tlsext_servername_arg(ctx.get(), c.get());
    }
  }
  return c;
}

SSL_CTX* Context::for_host(const char* host) const {
  for (const CtxPtr& ctx : ctxs_) {
    X509* cert = SSL_CTX_get0_certificate(ctx.get());
    if (cert && X509_check_host(cert, host, 0, 0, nullptr) == 1) return ctx.get();
  }
  return default_ctx();
}

}  // namespace wsedge::tls
