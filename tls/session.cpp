#include "session.hpp"

#include <openssl/crypto.h>
#include <openssl/err.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string_view>
#include <utility>

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
  if (s->shard_ && !s->handshake_done())
    s->written_.feed({reinterpret_cast<const std::uint8_t*>(data), len});
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

Session::Session(SSL_CTX* ctx, bool server, Sink sink, void* arg, std::uint64_t key,
                 RecordShard* shard, std::shared_ptr<const void> owner)
    : ssl_(SSL_new(ctx)),
      shard_(server ? shard : nullptr),
      owner_(std::move(owner)),
      sink_(sink),
      sink_arg_(arg),
      sink_key_(key),
      server_(server) {
  if (!ssl_) throw std::runtime_error("SSL_new failed");
  BIO* bio = BIO_new(bio_method());
  if (!bio) {
    SSL_free(ssl_);
    throw std::runtime_error("BIO_new failed");
  }
  BIO_set_data(bio, this);
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl_, bio, bio);   // one BIO both ways: one reference, owned by ssl_
  SSL_set_app_data(ssl_, this);  // for keylog()
  if (server)
    SSL_set_accept_state(ssl_);
  else
    SSL_set_connect_state(ssl_);
}

Session::~Session() {
  SSL_free(ssl_);
  release_partial();
  record::wipe(read_);
  record::wipe(write_);
}

void Session::enable_handover(SSL_CTX* ctx) {
  SSL_CTX_set_keylog_callback(ctx, keylog);
}

void Session::keylog(const SSL* ssl, const char* line) {
  auto* s = static_cast<Session*>(SSL_get_app_data(ssl));
  if (!s || !s->shard_) return;
  // "LABEL <client random> <secret>", all hex. Only the application traffic secrets are kept;
  // OpenSSL wipes its line after this returns.
  constexpr std::string_view kClient = "CLIENT_TRAFFIC_SECRET_0 ";
  constexpr std::string_view kServer = "SERVER_TRAFFIC_SECRET_0 ";
  std::string_view l(line);
  bool client = l.starts_with(kClient);
  if (!client && !l.starts_with(kServer)) return;
  const char* hex = std::strrchr(line, ' ');
  if (!hex) return;
  // The server reads what the client's secret protects and writes under its own.
  record::DirectionState& st = client == s->server_ ? s->read_ : s->write_;
  std::uint8_t& len = client == s->server_ ? s->read_secret_len_ : s->write_secret_len_;
  std::size_t got = 0;
  len = OPENSSL_hexstr2buf_ex(st.secret.data(), st.secret.size(), &got, hex + 1, '\0') == 1
            ? static_cast<std::uint8_t>(got)
            : 0;
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
  // Our layer decrypts a whole record into `out` at once; it cannot stop at a smaller cap.
  if (shard_ && cap < kReadCapacity) return fail("TLS read buffer too small");
  if (!ssl_) return read_own(reinterpret_cast<std::uint8_t*>(out), n);
  if (!handshake_done()) {
    std::uint64_t written = written_.records;
    int rc = SSL_do_handshake(ssl_);
    if (rc != 1) {
      int err = SSL_get_error(ssl_, rc);
      if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) return want_more();
      return fail("TLS handshake failed");
    }
    owner_.reset();  // no callback of the context's runs after the handshake
    if (shard_) {
      hand_over(written_.records - written);
      if (!ssl_) return read_own(reinterpret_cast<std::uint8_t*>(out), n);
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
  if (!ssl_) return write_own(reinterpret_cast<const std::uint8_t*>(data), len);
  while (len > 0) {
    std::size_t done = 0;
    if (SSL_write_ex(ssl_, data, len, &done) != 1) return fail("TLS write failed");
    data += done;
    len -= done;
  }
  return Result::kOk;
}

void Session::shutdown() {
  // After a fatal error the alert, if any, has gone out; OpenSSL must not be asked for more
  // (SSL_shutdown(3): not after SSL_ERROR_SSL).
  if (error_) return;
  if (ssl_) {
    if (handshake_done()) SSL_shutdown(ssl_);
    return;
  }
  if (sent_close_) return;
  sent_close_ = true;
  send_record(record::ContentType::kAlert, record::alert_message(record::Alert::kCloseNotify));
}

// --- our own record layer (docs/TLS-RECORD.md) ---

void Session::hand_over(std::uint64_t tickets) {
  // The handshake call that read the client's Finished wrote the tickets under the server's
  // first traffic key and nothing else, so their count is the write sequence number; it read
  // nothing past the Finished, so the read sequence number is 0. OpenSSL must hold no byte we
  // have not seen go by: no plaintext, no partial record either way.
  const SSL_CIPHER* cipher = SSL_get_current_cipher(ssl_);
  const std::uint16_t id = cipher ? SSL_CIPHER_get_protocol_id(cipher) : 0;
  bool ok = SSL_version(ssl_) == TLS1_3_VERSION && record::supported(id) &&
            !SSL_has_pending(ssl_) && written_.at_boundary();
  const auto suite = static_cast<record::Suite>(id);
  const std::size_t len = ok ? record::secret_len(suite) : 0;
  ok = ok && read_secret_len_ == len && write_secret_len_ == len;
  if (ok) {
    // init() copies the secret into the state it fills: through a copy, not onto itself.
    std::array<std::uint8_t, record::kMaxSecretLen> rs = read_.secret, ws = write_.secret;
    ok = record::init(read_, suite, std::span(rs.data(), len), 0) &&
         record::init(write_, suite, std::span(ws.data(), len), tickets);
    OPENSSL_cleanse(rs.data(), rs.size());
    OPENSSL_cleanse(ws.data(), ws.size());
  }
  if (!ok) {
    // OpenSSL keeps the connection, as with the flag off: the secrets the keylog callback gave
    // must not wait in this session for the rest of its life (a CCM suite, a partial record).
    record::wipe(read_);
    record::wipe(write_);
    return;
  }
  resumed_ = SSL_session_reused(ssl_) == 1;
  SSL_free(ssl_);
  ssl_ = nullptr;
}

void Session::release_partial() {
  if (partial_) shard_->release(partial_);
  partial_ = nullptr;
  partial_len_ = 0;
}

Session::Result Session::refuse(record::Alert a, const char* why) {
  // The alert goes out under the current key: a peer learns why before the connection ends.
  if (!sent_close_) {
    sent_close_ = true;
    send_record(record::ContentType::kAlert, record::alert_message(a));
  }
  release_partial();
  // A failed EVP call may have queued errors on this thread; left there, the next SSL_get_error
  // of another connection on this core would report them as its own.
  ERR_clear_error();
  error_ = why;
  return Result::kError;
}

bool Session::next_input(std::span<const std::uint8_t>& rec, Result& r) {
  using S = record::NextRecord::Status;
  auto* in = reinterpret_cast<const std::uint8_t*>(in_);
  if (!partial_) {
    record::NextRecord next = record::next_record({in, in_len_});
    if (next.status == S::kReady) {
      rec = {in, next.size};
      in_ += next.size;
      in_len_ -= next.size;
      return true;
    }
    if (next.status == S::kOverflow) {
      r = refuse(record::Alert::kRecordOverflow, "TLS record too long");
      return false;
    }
    if (in_len_ == 0) return false;
    partial_ = shard_->acquire();
  }
  // Assembling: never more than the record needs, so what follows stays in the input.
  for (;;) {
    record::NextRecord next = record::next_record({partial_, partial_len_});
    if (next.status == S::kOverflow) {
      r = refuse(record::Alert::kRecordOverflow, "TLS record too long");
      return false;
    }
    if (next.status == S::kReady) {
      rec = {partial_, next.size};
      return true;
    }
    std::size_t take = std::min(next.size - partial_len_, in_len_);
    if (take == 0) return false;
    std::memcpy(partial_ + partial_len_, in_, take);
    partial_len_ += static_cast<std::uint32_t>(take);
    in_ += take;
    in_len_ -= take;
  }
}

Session::Result Session::read_own(std::uint8_t* out, std::size_t& n) {
  using record::ContentType;
  for (;;) {
    std::span<const std::uint8_t> rec;
    Result r = Result::kOk;
    if (!next_input(rec, r)) return r;
    record::Opened o = shard_->crypto().open(
        read_, rec, std::span<std::uint8_t, record::kMaxOpened>(out, record::kMaxOpened));
    if (partial_) release_partial();  // `rec` was the block: opened into `out` by now
    if (o.status != record::OpenStatus::kOk)
      return refuse(record::alert_for(o.status), "TLS record refused");
    // A record without data (an empty one, a KeyUpdate, user_canceled) costs a decryption, a
    // KeyUpdate six key derivations and maybe an answer, and the peer nothing: a stream of them
    // would keep the core busy for free. OpenSSL refuses a 33rd empty record in a row
    // (MAX_EMPTY_RECORDS), BoringSSL a 33rd KeyUpdate (kMaxKeyUpdates); so do we, for all of
    // them together.
    if (o.type == ContentType::kApplicationData && !o.plaintext.empty())
      quiet_ = 0;
    else if (++quiet_ > kMaxQuietRecords)
      return refuse(record::Alert::kUnexpectedMessage, "TLS too many records without data");
    switch (o.type) {
      case ContentType::kApplicationData:
        if (o.plaintext.empty()) continue;  // legal, and 0 would read as "nothing more"
        n = o.plaintext.size();
        return Result::kOk;
      case ContentType::kAlert:
        if (o.plaintext.size() != 2) return refuse(record::Alert::kDecodeError, "TLS bad alert");
        if (o.plaintext[1] == static_cast<std::uint8_t>(record::Alert::kCloseNotify)) {
          in_len_ = 0;  // nothing after close_notify is read (RFC 8446 §6.1)
          return Result::kClosed;
        }
        // A closure alert, not an error (§6.1): a close_notify should follow. OpenSSL ignores
        // it too; failing on it would count a polite client's close as a TLS error.
        if (o.plaintext[1] == static_cast<std::uint8_t>(record::Alert::kUserCanceled)) continue;
        error_ = "TLS alert received";
        return Result::kError;
      case ContentType::kHandshake:
        switch (record::parse_post_handshake(o.plaintext)) {
          case record::PostHandshake::kKeyUpdateRequested: {
            // Our answer goes under the current write key, then that key moves on (§4.6.3);
            // none once our close_notify is out: it was our last record (§6.1).
            if (!sent_close_) {
              std::size_t sent =
                  record::send_key_update(shard_->crypto(), write_, false, shard_->sealed());
              if (sent == 0) return refuse(record::Alert::kInternalError, "TLS key update failed");
              sink_(sink_arg_, sink_key_,
                    reinterpret_cast<const std::byte*>(shard_->sealed().data()), sent);
            }
            [[fallthrough]];
          }
          case record::PostHandshake::kKeyUpdate:
            if (!record::update(read_))
              return refuse(record::Alert::kInternalError, "TLS key update failed");
            continue;
          case record::PostHandshake::kDecodeError:
            return refuse(record::Alert::kDecodeError, "TLS bad handshake message");
          case record::PostHandshake::kIllegalParameter:
            return refuse(record::Alert::kIllegalParameter, "TLS bad handshake message");
          case record::PostHandshake::kUnexpected:
            return refuse(record::Alert::kUnexpectedMessage, "TLS unexpected handshake message");
        }
    }
    return refuse(record::Alert::kUnexpectedMessage, "TLS unexpected record");
  }
}

bool Session::send_record(record::ContentType type, std::span<const std::uint8_t> plaintext) {
  // Before a key reaches its usage limit (§5.5), the peer is told to move on.
  if (write_.seq >= shard_->records_per_key()) {
    std::size_t sent = record::send_key_update(shard_->crypto(), write_, false, shard_->sealed());
    if (sent == 0) return false;
    sink_(sink_arg_, sink_key_, reinterpret_cast<const std::byte*>(shard_->sealed().data()), sent);
  }
  std::size_t sealed = shard_->crypto().seal(write_, type, plaintext, shard_->sealed());
  if (sealed == 0) return false;
  sink_(sink_arg_, sink_key_, reinterpret_cast<const std::byte*>(shard_->sealed().data()), sealed);
  return true;
}

Session::Result Session::write_own(const std::uint8_t* data, std::size_t len) {
  if (sent_close_) return fail("TLS write after close");
  while (len > 0) {
    std::size_t chunk = std::min(len, record::kMaxPlaintext);
    if (!send_record(record::ContentType::kApplicationData, {data, chunk}))
      return fail("TLS write failed");
    data += chunk;
    len -= chunk;
  }
  return Result::kOk;
}

std::uint8_t* RecordShard::acquire() {
  if (spare_.empty()) return new std::uint8_t[kBlockSize];
  std::uint8_t* b = spare_.back().release();
  spare_.pop_back();
  return b;
}

void RecordShard::release(std::uint8_t* block) {
  // Ciphertext only: nothing to wipe.
  if (spare_.size() < kSpareBlocks)
    spare_.emplace_back(block);
  else
    delete[] block;
}

}  // namespace wsedge::tls
