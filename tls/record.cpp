#include "record.hpp"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/kdf.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>

namespace wsedge::tls::record {

namespace {

constexpr std::uint16_t kFirstSuite = 0x1301;
constexpr std::size_t kSuites = 3;
constexpr std::uint8_t kTypeApplicationData = 23;
constexpr std::uint8_t kHandshakeKeyUpdate = 24;

std::size_t suite_index(Suite s) {
  return static_cast<std::uint16_t>(s) - kFirstSuite;
}

const char* digest_name(Suite s) {
  return s == Suite::kAes256GcmSha384 ? "SHA384" : "SHA256";
}

// OpenSSL 3.0 also has "TLS13-KDF" (EVP_KDF-TLS13_KDF(7)), but its page says it is meant for
// libssl's own use and supports less than HKDF; plain HKDF in expand-only mode over the
// HkdfLabel built here is §7.1's definition, and the RFC 8448 vectors pin it. Fetched once: a
// fetch walks the provider's algorithm table under a lock.
EVP_KDF* hkdf() {
  static EVP_KDF* const kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  return kdf;
}

// HKDF-Expand-Label(secret, label, "", len) (§7.1): the HkdfLabel is
// uint16 length, opaque label<7..255> = "tls13 " + label, opaque context<0..255> = "".
bool expand_label(Suite s, std::span<const std::uint8_t> secret, std::string_view label,
                  std::uint8_t* out, std::size_t len) {
  constexpr std::string_view kPrefix = "tls13 ";
  std::array<std::uint8_t, 2 + 1 + kPrefix.size() + 16 + 1> info;
  std::size_t n = 0;
  info[n++] = static_cast<std::uint8_t>(len >> 8);
  info[n++] = static_cast<std::uint8_t>(len);
  info[n++] = static_cast<std::uint8_t>(kPrefix.size() + label.size());
  std::memcpy(info.data() + n, kPrefix.data(), kPrefix.size());
  n += kPrefix.size();
  std::memcpy(info.data() + n, label.data(), label.size());
  n += label.size();
  info[n++] = 0;  // empty context

  EVP_KDF* kdf = hkdf();
  if (!kdf || secret.size() != secret_len(s)) return false;
  EVP_KDF_CTX* kctx = EVP_KDF_CTX_new(kdf);
  if (!kctx) return false;
  int mode = EVP_KDF_HKDF_MODE_EXPAND_ONLY;
  // The key is copied into the KDF context here, so `out` may overwrite `secret` (update()).
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_int(OSSL_KDF_PARAM_MODE, &mode),
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, const_cast<char*>(digest_name(s)), 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
                                        const_cast<std::uint8_t*>(secret.data()), secret.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), n),
      OSSL_PARAM_construct_end(),
  };
  bool ok = EVP_KDF_derive(kctx, out, len, params) == 1;
  EVP_KDF_CTX_free(kctx);  // cleanses the key it copied
  return ok;
}

}  // namespace

bool supported(std::uint16_t iana_id) {
  return iana_id >= kFirstSuite && iana_id < kFirstSuite + kSuites;
}

std::size_t key_len(Suite s) {
  return s == Suite::kAes128GcmSha256 ? 16 : 32;
}

std::size_t secret_len(Suite s) {
  return s == Suite::kAes256GcmSha384 ? 48 : 32;
}

bool derive(Suite s, std::span<const std::uint8_t> secret, TrafficKeys& out) {
  return expand_label(s, secret, "key", out.key.data(), key_len(s)) &&
         expand_label(s, secret, "iv", out.iv.data(), kIvLen);
}

bool next_secret(Suite s, std::span<const std::uint8_t> secret, std::span<std::uint8_t> out) {
  return out.size() >= secret_len(s) &&
         expand_label(s, secret, "traffic upd", out.data(), secret_len(s));
}

void wipe(DirectionState& st) {
  OPENSSL_cleanse(st.secret.data(), st.secret.size());
  OPENSSL_cleanse(st.key.data(), st.key.size());
  OPENSSL_cleanse(st.iv.data(), st.iv.size());
}

namespace {

// Derives the key and IV of st.secret into `st`, through a temporary that is wiped after.
bool rekey(DirectionState& st) {
  TrafficKeys keys;
  bool ok = derive(st.suite, std::span(st.secret.data(), secret_len(st.suite)), keys);
  if (ok) {
    st.key = keys.key;
    st.iv = keys.iv;
  }
  OPENSSL_cleanse(&keys, sizeof keys);
  return ok;
}

}  // namespace

bool init(DirectionState& st, Suite s, std::span<const std::uint8_t> secret, std::uint64_t seq) {
  if (!supported(static_cast<std::uint16_t>(s)) || secret.size() != secret_len(s)) return false;
  st = DirectionState{};
  st.suite = s;
  st.seq = seq;
  std::memcpy(st.secret.data(), secret.data(), secret.size());
  if (rekey(st)) return true;
  wipe(st);
  return false;
}

bool update(DirectionState& st) {
  std::span<std::uint8_t> secret(st.secret.data(), secret_len(st.suite));
  if (next_secret(st.suite, secret, secret) && rekey(st)) {
    st.seq = 0;
    return true;
  }
  wipe(st);
  return false;
}

NextRecord next_record(std::span<const std::uint8_t> stream) {
  using S = NextRecord::Status;
  if (stream.size() < kHeaderLen) return {S::kNeedMore, kHeaderLen};
  std::size_t size = kHeaderLen + (std::size_t{stream[3]} << 8 | stream[4]);
  // Refused at the header: waiting for up to 64 KiB of a record we will refuse anyway would
  // hold a buffer for nothing.
  if (size > kHeaderLen + kMaxCiphertext) return {S::kOverflow, size};
  return {size <= stream.size() ? S::kReady : S::kNeedMore, size};
}

Alert alert_for(OpenStatus s) {
  switch (s) {
    case OpenStatus::kBadRecordMac:
      return Alert::kBadRecordMac;
    case OpenStatus::kRecordOverflow:
      return Alert::kRecordOverflow;
    case OpenStatus::kUnexpectedMessage:
      return Alert::kUnexpectedMessage;
    case OpenStatus::kDecodeError:
      return Alert::kDecodeError;
    default:
      return Alert::kInternalError;
  }
}

std::array<std::uint8_t, 2> alert_message(Alert a) {
  return {static_cast<std::uint8_t>(a == Alert::kCloseNotify ? 1 : 2),
          static_cast<std::uint8_t>(a)};
}

RecordCrypto::RecordCrypto() {
  constexpr const char* kCiphers[kSuites] = {"AES-128-GCM", "AES-256-GCM", "ChaCha20-Poly1305"};
  for (std::size_t i = 0; i < kSuites; ++i) {
    EVP_CIPHER* cipher = EVP_CIPHER_fetch(nullptr, kCiphers[i], nullptr);
    ctx_[i] = EVP_CIPHER_CTX_new();
    // The context keeps its own reference to the cipher; the 12-byte IV is both AEADs' default.
    bool ok =
        cipher && ctx_[i] && EVP_CipherInit_ex2(ctx_[i], cipher, nullptr, nullptr, 1, nullptr);
    EVP_CIPHER_free(cipher);
    if (!ok) {
      release();
      throw std::runtime_error(std::string("no ").append(kCiphers[i]));
    }
  }
}

RecordCrypto::~RecordCrypto() {
  release();
}

void RecordCrypto::release() {
  for (EVP_CIPHER_CTX*& c : ctx_) {
    EVP_CIPHER_CTX_free(c);  // cleanses the expanded key of the last record
    c = nullptr;
  }
}

EVP_CIPHER_CTX* RecordCrypto::ctx_for(Suite s, const DirectionState& st, bool encrypt) {
  std::size_t i = suite_index(s);
  if (i >= kSuites) return nullptr;
  // The per-record nonce (§5.3): the IV XOR the sequence number, big-endian, left-padded.
  std::array<std::uint8_t, kIvLen> nonce = st.iv;
  for (std::size_t k = 0; k < 8; ++k)
    nonce[kIvLen - 1 - k] ^= static_cast<std::uint8_t>(st.seq >> (8 * k));
  // Re-keyed per record: the context is the core's, the key the connection's.
  if (EVP_CipherInit_ex2(ctx_[i], nullptr, st.key.data(), nonce.data(), encrypt ? 1 : 0, nullptr) !=
      1)
    return nullptr;
  return ctx_[i];
}

std::size_t RecordCrypto::seal(DirectionState& st, ContentType type,
                               std::span<const std::uint8_t> plaintext,
                               std::span<std::uint8_t> out) {
  const std::size_t n = plaintext.size();
  // A wrapped sequence number would repeat a nonce: the one failure AEADs do not survive.
  if (n > kMaxPlaintext || out.size() < sealed_size(n) ||
      st.seq == std::numeric_limits<std::uint64_t>::max())
    return 0;
  const std::size_t len = n + 1 + kTagLen;
  std::uint8_t* o = out.data();
  o[0] = kTypeApplicationData;  // every protected record's outer type (§5.2)
  o[1] = 3;
  o[2] = 3;
  o[3] = static_cast<std::uint8_t>(len >> 8);
  o[4] = static_cast<std::uint8_t>(len);
  EVP_CIPHER_CTX* ctx = ctx_for(st.suite, st, true);
  if (!ctx) return 0;
  const std::uint8_t inner_type = static_cast<std::uint8_t>(type);
  std::uint8_t* body = o + kHeaderLen;
  int got = 0;
  // The header is the additional data (§5.2); plaintext and type go through as one stream.
  bool ok = EVP_EncryptUpdate(ctx, nullptr, &got, o, kHeaderLen) == 1 &&
            EVP_EncryptUpdate(ctx, body, &got, plaintext.data(), static_cast<int>(n)) == 1 &&
            EVP_EncryptUpdate(ctx, body + n, &got, &inner_type, 1) == 1 &&
            EVP_EncryptFinal_ex(ctx, body + n + 1, &got) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, kTagLen, body + n + 1) == 1;
  if (!ok) return 0;
  ++st.seq;
  return sealed_size(n);
}

Opened RecordCrypto::open(DirectionState& st, std::span<std::uint8_t> record) {
  // A view as long as the largest body: the open() below writes only the ciphertext's length,
  // inside the record's own body, and only after checking it is at most kMaxOpened.
  std::span<std::uint8_t> body = record.size() > kHeaderLen ? record.subspan(kHeaderLen) : record;
  return open(st, std::span<const std::uint8_t>(record),
              std::span<std::uint8_t, kMaxOpened>(body.data(), kMaxOpened));
}

Opened RecordCrypto::open(DirectionState& st, std::span<const std::uint8_t> record,
                          std::span<std::uint8_t, kMaxOpened> out) {
  Opened r{OpenStatus::kDecodeError, ContentType::kApplicationData, {}};
  NextRecord next = next_record(record);
  if (next.status == NextRecord::Status::kOverflow) {
    r.status = OpenStatus::kRecordOverflow;
    return r;
  }
  if (next.status != NextRecord::Status::kReady || next.size != record.size()) return r;
  const std::size_t len = record.size() - kHeaderLen;
  if (record[0] != kTypeApplicationData) {
    // Plaintext alerts or a ChangeCipherSpec after the handshake: never accepted.
    r.status = OpenStatus::kUnexpectedMessage;
  } else if (len < 1 + kTagLen) {
    r.status = OpenStatus::kBadRecordMac;
  } else if (len > kMaxPlaintext + 1 + kTagLen) {
    // The inner plaintext, padding included, must not exceed 2^14 + 1 (§5.4): our AEADs'
    // 16-byte tag makes that a tighter bound than the header's 2^14 + 256.
    r.status = OpenStatus::kRecordOverflow;
  } else if (st.seq == std::numeric_limits<std::uint64_t>::max()) {
    r.status = OpenStatus::kExhausted;
  }
  if (r.status != OpenStatus::kDecodeError) return r;

  EVP_CIPHER_CTX* ctx = ctx_for(st.suite, st, false);
  const std::uint8_t* in = record.data() + kHeaderLen;
  std::uint8_t* body = out.data();
  const std::size_t ct_len = len - kTagLen;
  // The tag is copied out first: decrypting in place overwrites nothing past ct_len, but
  // SET_TAG wants a writable pointer and the record may be const.
  std::array<std::uint8_t, kTagLen> tag;
  std::memcpy(tag.data(), in + ct_len, kTagLen);
  int got = 0;
  bool ok = ctx && EVP_DecryptUpdate(ctx, nullptr, &got, record.data(), kHeaderLen) == 1 &&
            EVP_DecryptUpdate(ctx, body, &got, in, static_cast<int>(ct_len)) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, kTagLen, tag.data()) == 1 &&
            EVP_DecryptFinal_ex(ctx, body + ct_len, &got) == 1;
  if (!ok) {
    r.status = OpenStatus::kBadRecordMac;
    return r;
  }
  // The content type is the last non-zero byte; the zeros after it are padding (§5.4).
  std::size_t end = ct_len;
  while (end > 0 && body[end - 1] == 0) --end;
  const std::uint8_t type = end > 0 ? body[end - 1] : 0;
  if (type != static_cast<std::uint8_t>(ContentType::kAlert) &&
      type != static_cast<std::uint8_t>(ContentType::kHandshake) && type != kTypeApplicationData) {
    r.status = OpenStatus::kUnexpectedMessage;  // all zeros, or a type TLS 1.3 does not protect
    return r;
  }
  ++st.seq;
  r.status = OpenStatus::kOk;
  r.type = static_cast<ContentType>(type);
  r.plaintext = std::span(body, end - 1);
  return r;
}

void RecordCounter::feed(std::span<const std::uint8_t> bytes) {
  std::size_t i = 0;
  while (i < bytes.size()) {
    if (left > 0) {
      std::size_t take = std::min<std::size_t>(left, bytes.size() - i);
      left -= static_cast<std::uint32_t>(take);
      i += take;
      if (left == 0) ++records;
      continue;
    }
    // Header: type, version (2), length (2).
    if (have == 3) len_hi = bytes[i];
    if (++have < kHeaderLen) {
      ++i;
      continue;
    }
    left = static_cast<std::uint32_t>(len_hi) << 8 | bytes[i];
    have = 0;
    ++i;
    if (left == 0) ++records;  // an empty body: the header was the whole record
  }
}

std::array<std::uint8_t, kKeyUpdateLen> key_update_message(bool request_update) {
  return {kHandshakeKeyUpdate, 0, 0, 1, static_cast<std::uint8_t>(request_update ? 1 : 0)};
}

PostHandshake parse_post_handshake(std::span<const std::uint8_t> plaintext) {
  if (plaintext.empty() || plaintext[0] != kHandshakeKeyUpdate) return PostHandshake::kUnexpected;
  if (plaintext.size() < 4) return PostHandshake::kDecodeError;
  const std::size_t body =
      std::size_t{plaintext[1]} << 16 | std::size_t{plaintext[2]} << 8 | plaintext[3];
  if (body != 1 || plaintext.size() < kKeyUpdateLen) return PostHandshake::kDecodeError;
  // Another message after the KeyUpdate would straddle the key change (§5.1).
  if (plaintext.size() > kKeyUpdateLen) return PostHandshake::kUnexpected;
  switch (plaintext[4]) {
    case 0:
      return PostHandshake::kKeyUpdate;
    case 1:
      return PostHandshake::kKeyUpdateRequested;
    default:
      return PostHandshake::kIllegalParameter;
  }
}

std::size_t send_key_update(RecordCrypto& crypto, DirectionState& write, bool request_update,
                            std::span<std::uint8_t> out) {
  const auto msg = key_update_message(request_update);
  std::size_t n = crypto.seal(write, ContentType::kHandshake, msg, out);
  if (n == 0 || !update(write)) return 0;
  return n;
}

}  // namespace wsedge::tls::record
