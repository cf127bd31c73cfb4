#include "session.hpp"

#include <openssl/err.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>

namespace wsedge::tls {

const BIO_METHOD* Session::bio_method() {
  static const BIO_METHOD* method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "wsedge session");
    if (!m || BIO_meth_set_read_ex(m, bio_read) != 1 || BIO_meth_set_write_ex(m, bio_write) != 1 ||
        BIO_meth_set_ctrl(m, bio_ctrl) != 1)
      throw std::runtime_error("BIO_meth_new failed");
    return m;
  }();
  return method;
}

int Session::bio_read(BIO* b, char* out, std::size_t len, std::size_t* got) {
  auto* s = static_cast<Session*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (s->in_len_ == 0) {
    BIO_set_retry_read(b);  // "wait for more", not end of file
    return 0;
  }
  std::size_t n = std::min(len, s->in_len_);
  std::memcpy(out, s->in_, n);
  s->in_ += n;
  s->in_len_ -= n;
  *got = n;
  return 1;
}

int Session::bio_write(BIO* b, const char* data, std::size_t len, std::size_t* done) {
  auto* s = static_cast<Session*>(BIO_get_data(b));
  s->sink_(s->sink_arg_, s->sink_key_, reinterpret_cast<const std::byte*>(data), len);
  *done = len;
  return 1;
}

long Session::bio_ctrl(BIO* b, int cmd, long, void*) {
  switch (cmd) {
    case BIO_CTRL_FLUSH:
      return 1;  // the sink took everything already
    case BIO_CTRL_PENDING:
      return static_cast<long>(static_cast<Session*>(BIO_get_data(b))->in_len_);
    default:
      return 0;
  }
}

Session::Session(SSL_CTX* ctx, bool server, Sink sink, void* arg, std::uint64_t key)
    : ssl_(SSL_new(ctx)), sink_(sink), sink_arg_(arg), sink_key_(key) {
  if (!ssl_) throw std::runtime_error("SSL_new failed");
  BIO* bio = BIO_new(bio_method());
  if (!bio) {
    SSL_free(ssl_);
    throw std::runtime_error("BIO_new failed");
  }
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);  // one BIO both ways: one reference, owned by ssl_
  if (server)
    SSL_set_accept_state(ssl_);
  else
    SSL_set_connect_state(ssl_);
}

Session::~Session() {
  SSL_free(ssl_);
}

void Session::feed(const std::byte* data, std::size_t len) {
  in_ = data;
  in_len_ = len;
}

Session::Result Session::want_more() {
  // OpenSSL asks for more only once it has taken every byte fed: anything left would be lost
  // with the caller's buffer.
  return in_len_ == 0 ? Result::kOk : fail("TLS input left unread");
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
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return want_more();
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
      return want_more();
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

}  // namespace wsedge::tls
