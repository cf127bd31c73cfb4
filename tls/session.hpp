#pragma once
// One TLS connection over memory BIOs, driven by whoever owns the socket: ciphertext that
// arrived goes in with feed(), plaintext comes out of read(); plaintext goes in with write(),
// ciphertext to send comes out of drain(). No socket, no blocking, no callbacks.
#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>

namespace wsedge::tls {

class Session {
 public:
  enum class Result : std::uint8_t {
    kOk,      // progress (or nothing to do yet)
    kClosed,  // the peer sent close_notify
    kError,   // protocol error or failed handshake: drop the connection
  };

  // Server side when `server`, client side otherwise (for tests and the load generator).
  Session(SSL_CTX* ctx, bool server);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Hands received ciphertext to OpenSSL (copied into the read BIO).
  void feed(const std::byte* data, std::size_t len);
  // Advances the handshake, then decrypts into `out`; `n` is the plaintext produced (0 when a
  // whole record has not arrived yet). Call until it yields 0 bytes.
  Result read(std::byte* out, std::size_t cap, std::size_t& n);
  // Encrypts plaintext: everything is accepted (records are at most 16 KiB each).
  Result write(const std::byte* data, std::size_t len);
  // Sends close_notify.
  void shutdown();
  // Ciphertext waiting to be sent.
  std::size_t pending() const;
  // Moves up to `cap` bytes of pending ciphertext into `out`; returns how many.
  std::size_t drain(std::byte* out, std::size_t cap);

  bool handshake_done() const { return SSL_is_init_finished(ssl_) == 1; }
  SSL* ssl() const { return ssl_; }
  const char* error() const { return error_; }

 private:
  Result fail(const char* why);

  SSL* ssl_;
  BIO* wbio_;  // ciphertext produced by OpenSSL, owned by ssl_
  const char* error_ = nullptr;
};

}  // namespace wsedge::tls
