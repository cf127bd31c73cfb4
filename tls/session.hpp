#pragma once
// One TLS connection driven by whoever owns the socket: ciphertext that arrived goes in with
// feed(), plaintext comes out of read(); plaintext goes in with write(), and the ciphertext it
// makes is handed to a sink at once. No socket, no blocking.
//
// The BIO under the SSL object is our own: OpenSSL reads records straight out of the caller's
// receive buffer and writes them straight into the caller's output queue, where memory BIOs
// would copy both ways and keep two growable buffers per connection.
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
  // Receives ciphertext to send, in order, from inside read(), write() and shutdown().
  using Sink = void (*)(void* arg, std::uint64_t key, const std::byte* data, std::size_t len);

  // Server side when `server`, client side otherwise (for tests and the load generator).
  Session(SSL_CTX* ctx, bool server, Sink sink, void* arg, std::uint64_t key);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Offers received ciphertext to the following read() calls, which must run until one yields
  // no plaintext: by then OpenSSL has taken every byte, and `data` may go away.
  void feed(const std::byte* data, std::size_t len);
  // Advances the handshake, then decrypts into `out`; `n` is the plaintext produced (0 when a
  // whole record has not arrived yet). Call until it yields 0 bytes.
  Result read(std::byte* out, std::size_t cap, std::size_t& n);
  // Encrypts plaintext: everything is accepted (records are at most 16 KiB each).
  Result write(const std::byte* data, std::size_t len);
  // Sends close_notify.
  void shutdown();

  bool handshake_done() const { return SSL_is_init_finished(ssl_) == 1; }
  SSL* ssl() const { return ssl_; }
  const char* error() const { return error_; }

 private:
  static int bio_read(BIO* b, char* out, std::size_t len, std::size_t* got);
  static int bio_write(BIO* b, const char* data, std::size_t len, std::size_t* done);
  static long bio_ctrl(BIO* b, int cmd, long num, void* ptr);
  static const BIO_METHOD* bio_method();
  Result fail(const char* why);
  Result want_more();

  SSL* ssl_;
  const std::byte* in_ = nullptr;  // ciphertext fed and not yet taken by OpenSSL
  std::size_t in_len_ = 0;
  Sink sink_;
  void* sink_arg_;
  std::uint64_t sink_key_;
  const char* error_ = nullptr;
};

}  // namespace wsedge::tls
