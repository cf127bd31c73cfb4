#include "session.hpp"

#include <openssl/err.h>

#include <stdexcept>

namespace wsedge::tls {

Session::Session(SSL_CTX* ctx, bool server) : ssl_(SSL_new(ctx)) {
  if (!ssl_) throw std::runtime_error("SSL_new failed");
  BIO* rbio = BIO_new(BIO_s_mem());
  wbio_ = BIO_new(BIO_s_mem());
  // An empty read BIO means "wait for more", not end of file.
  BIO_set_mem_eof_return(rbio, -1);
  BIO_set_mem_eof_return(wbio_, -1);
  SSL_set_bio(ssl_, rbio, wbio_);
  if (server)
    SSL_set_accept_state(ssl_);
  else
    SSL_set_connect_state(ssl_);
}

Session::~Session() {
  SSL_free(ssl_);
}

void Session::feed(const std::byte* data, std::size_t len) {
  BIO_write(SSL_get_rbio(ssl_), data, static_cast<int>(len));
}

Session::Result Session::fail(const char* why) {
  error_ = why;
  ERR_clear_error();
  return Result::kError;
}

Session::Result Session::read(std::byte* out, std::size_t cap, std::size_t& n) {
  n = 0;
  if (!handshake_done()) {
    int rc = SSL_do_handshake(ssl_);
    if (rc != 1) {
      int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return Result::kOk;
      return fail("TLS handshake failed");
    }
  }
  std::size_t got = 0;
  int rc = SSL_read_ex(ssl_, out, cap, &got);
  if (rc == 1) {
    n = got;
    return Result::kOk;
  }
  switch (SSL_get_error(ssl_, rc)) {
    case SSL_ERROR_WANT_READ:
    case SSL_ERROR_WANT_WRITE:
      return Result::kOk;
    case SSL_ERROR_ZERO_RETURN:
      return Result::kClosed;
    default:
      return fail("TLS record error");
  }
}

Session::Result Session::write(const std::byte* data, std::size_t len) {
  while (len > 0) {
    std::size_t done = 0;
    if (SSL_write_ex(ssl_, data, len, &done) != 1) return fail("TLS write failed");
    data += done;
    len -= done;
  }
  return Result::kOk;
}

void Session::shutdown() {
  if (handshake_done()) SSL_shutdown(ssl_);
}

std::size_t Session::pending() const {
  return BIO_ctrl_pending(wbio_);
}

std::size_t Session::drain(std::byte* out, std::size_t cap) {
  int n = BIO_read(wbio_, out, static_cast<int>(cap));
  return n > 0 ? static_cast<std::size_t>(n) : 0;
}

}  // namespace wsedge::tls
