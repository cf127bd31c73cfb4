#pragma once
// Server-side TLS configuration: one SSL_CTX per core (loaded from the same files, so cores
// never contend), TLS 1.2 and 1.3 only with AEAD suites, ALPN http/1.1, SNI choosing among
// several certificates, session tickets whose keys every core shares and the main thread
// rotates, and no renegotiation.
#include <openssl/ssl.h>

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace wsedge::tls {

struct CertKey {
  std::string cert_file;  // PEM, leaf first, then the chain
  std::string key_file;   // PEM private key (ECDSA P-256 or RSA)
};

struct Config {
  std::vector<CertKey> certs;  // the first is the default when SNI matches none
};

// Keys for stateless session tickets (RFC 5077), shared read-only by all cores. Tickets are
// issued with the current key and accepted with the current or the previous one.
class TicketKeys {
 public:
  struct Key {
    std::array<unsigned char, 16> name;
    std::array<unsigned char, 32> aes;
    std::array<unsigned char, 32> hmac;
  };
  // Starts with one random key. Throws std::runtime_error if there are no random bytes: zero
  // or guessable keys would let anyone forge a ticket.
  TicketKeys();
  // Makes a fresh current key; the old current becomes previous. Main thread only. Throws as
  // the constructor does, and then the keys in use stay as they were.
  void rotate();
  Key current() const;
  bool find(const unsigned char* name, Key& out, bool& is_current) const;

 private:
  // Two generations in a ring of three slots: a rotation writes a slot no reader is using
  // (readers copy a 80-byte key, rotations are hours apart), then publishes its generation.
  std::array<Key, 3> slots_{};
  // Keys made so far: the current key is in slot generation_ % 3, and the previous one, once
  // there is one (generation_ >= 2), in the slot before. find() looks only at slots the last
  // two generations wrote, so a slot never written (all zeros) cannot match a ticket.
  std::atomic<std::uint64_t> generation_{0};
};

TicketKeys& ticket_keys();

using CtxPtr = std::unique_ptr<SSL_CTX, decltype(&SSL_CTX_free)>;

class Context {
 public:
  // Loads and checks every certificate and key; throws std::runtime_error naming the file
  // and OpenSSL's reason. Nothing changes if it throws.
  static std::shared_ptr<Context> load(const Config& cfg);
  SSL_CTX* default_ctx() const { return ctxs_.front().get(); }
  // The context whose certificate covers `host`, or the default.
  SSL_CTX* for_host(const char* host) const;

 private:
  std::vector<CtxPtr> ctxs_;
};

// OpenSSL's error queue as one line, and cleared.
std::string last_error();

}  // namespace wsedge::tls
