#pragma once
// The TLS 1.3 record layer after the handshake (RFC 8446 §5, §7), without OpenSSL's SSL object:
// what a connection keeps once OpenSSL has done the handshake (docs/TLS-RECORD.md). Pure: no
// sockets, no SSL; records are sealed and opened over the caller's byte spans with OpenSSL's
// EVP AEADs (AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305).
//
// A connection holds two DirectionStates (~100 bytes each: keys, not cipher contexts); a core
// holds one RecordCrypto with one EVP_CIPHER_CTX per suite, re-keyed for every record, so
// 10,000 idle connections cost 10,000 × 2 DirectionStates and nothing of OpenSSL's.
//
// What this layer does NOT do (the caller's job): assembling records split across reads (it
// tells how many bytes the next one needs: next_record()), alerts' effect on the connection,
// and the handover out of a live SSL (docs/TLS-RECORD.md §3).
#include <openssl/evp.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace wsedge::tls::record {

// The TLS 1.3 suites by their IANA ids, as SSL_CIPHER_get_protocol_id() gives them.
enum class Suite : std::uint16_t {
  kAes128GcmSha256 = 0x1301,
  kAes256GcmSha384 = 0x1302,
  kChacha20Poly1305Sha256 = 0x1303,
};
// False for any other id (TLS_AES_128_CCM_SHA256 and friends: no handover, OpenSSL keeps it).
bool supported(std::uint16_t iana_id);
std::size_t key_len(Suite s);     // 16 or 32
std::size_t secret_len(Suite s);  // the hash length: 32 (SHA-256) or 48 (SHA-384)

enum class ContentType : std::uint8_t {
  kAlert = 21,
  kHandshake = 22,
  kApplicationData = 23,
};

inline constexpr std::size_t kHeaderLen = 5;
inline constexpr std::size_t kTagLen = 16;  // all three AEADs
inline constexpr std::size_t kIvLen = 12;
inline constexpr std::size_t kMaxKeyLen = 32;
inline constexpr std::size_t kMaxSecretLen = 48;
inline constexpr std::size_t kMaxPlaintext = 1 << 14;
// The largest TLSCiphertext.length a peer may send (§5.2): more is a record_overflow.
inline constexpr std::size_t kMaxCiphertext = kMaxPlaintext + 256;
// What seal() writes for `n` plaintext bytes: header, plaintext, content type, tag.
constexpr std::size_t sealed_size(std::size_t n) {
  return kHeaderLen + n + 1 + kTagLen;
}
inline constexpr std::size_t kMaxSealed = sealed_size(kMaxPlaintext);
// The most an accepted record decrypts to: 2^14 bytes of content and its type byte (padding
// beyond that is refused as record_overflow, §5.4).
inline constexpr std::size_t kMaxOpened = kMaxPlaintext + 1;
// Records sealed under one key before we must send a KeyUpdate: AES-GCM's limit is 2^24.5 full
// records (§5.5); ChaCha20-Poly1305's is far higher, the same count is well inside it.
inline constexpr std::uint64_t kRecordsPerKey = std::uint64_t{1} << 24;

struct TrafficKeys {
  std::array<std::uint8_t, kMaxKeyLen> key;  // key_len(suite) bytes used
  std::array<std::uint8_t, kIvLen> iv;
};

// HKDF-Expand-Label(secret, "key" / "iv", "", len) (§7.3). `secret` is secret_len(s) bytes.
// False only when OpenSSL's KDF fails (no memory, or a provider without HKDF).
bool derive(Suite s, std::span<const std::uint8_t> secret, TrafficKeys& out);
// application_traffic_secret_N+1 = HKDF-Expand-Label(secret_N, "traffic upd", "", Hash.length)
// (§7.2) into `out` (secret_len(s) bytes; may be `secret` itself).
bool next_secret(Suite s, std::span<const std::uint8_t> secret, std::span<std::uint8_t> out);

// One direction of one connection. A plain struct: it lives wherever the connection's state
// lives, and is copied only by tests.
struct DirectionState {
  std::array<std::uint8_t, kMaxSecretLen> secret;  // current traffic secret, for KeyUpdate
  std::array<std::uint8_t, kMaxKeyLen> key;
  std::array<std::uint8_t, kIvLen> iv;
  Suite suite;
  std::uint64_t seq;  // of the next record
};

// Takes `secret` (application_traffic_secret_N) and `seq`, the number of records already
// protected under it (by OpenSSL before the handover), and derives the key and IV.
bool init(DirectionState& st, Suite s, std::span<const std::uint8_t> secret, std::uint64_t seq);
// The next generation (KeyUpdate, §4.6.3): next_secret, derive, seq 0; the old secret and key
// are overwritten. False leaves `st` wiped: the connection must close.
bool update(DirectionState& st);
// Overwrites keys and secrets (OPENSSL_cleanse, which the compiler may not drop as a dead
// store): when a connection closes or a key is replaced.
void wipe(DirectionState& st);

// Where the next record in a byte stream ends.
struct NextRecord {
  enum class Status : std::uint8_t {
    kNeedMore,  // `size` bytes are needed from the start of the stream (more than given)
    kReady,     // the first `size` bytes are one whole record: hand them to open()
    kOverflow,  // its length is over kMaxCiphertext: record_overflow, without waiting for it
  };
  Status status;
  std::size_t size;
};
NextRecord next_record(std::span<const std::uint8_t> stream);

enum class OpenStatus : std::uint8_t {
  kOk,
  kBadRecordMac,       // tag mismatch, or too short to hold a tag and a type: bad_record_mac
  kRecordOverflow,     // length over 2^14 + 256, or inner plaintext over 2^14 + 1
  kUnexpectedMessage,  // outer type not application_data, inner all zeros or of no known type
  kDecodeError,        // the span is not exactly one record (next_record() says how long)
  kExhausted,          // the sequence number would wrap: the connection must close
};
// Alert descriptions (§6): what to send for each refusal.
enum class Alert : std::uint8_t {
  kCloseNotify = 0,
  kUnexpectedMessage = 10,
  kBadRecordMac = 20,
  kRecordOverflow = 22,
  kDecodeError = 50,
  kIllegalParameter = 47,
  kInternalError = 80,
  kUserCanceled = 90,  // received only: a closure alert (§6.1), not an error
};
Alert alert_for(OpenStatus s);  // not for kOk
// An alert record's plaintext: level (1 warning for close_notify, else 2 fatal), description.
std::array<std::uint8_t, 2> alert_message(Alert a);

struct Opened {
  OpenStatus status;
  ContentType type;                   // only with kOk
  std::span<std::uint8_t> plaintext;  // only with kOk: inside the record, padding stripped
};

// One cipher context per suite, for all the connections of a core (or one thread). Not
// thread-safe; no allocation after construction.
class RecordCrypto {
 public:
  RecordCrypto();
  ~RecordCrypto();
  RecordCrypto(const RecordCrypto&) = delete;
  RecordCrypto& operator=(const RecordCrypto&) = delete;

  // Writes one record (header 17 03 03 LEN, plaintext + `type`, no padding, tag) to `out` and
  // returns its size, sealed_size(plaintext.size()); seq + 1. Returns 0 and leaves `st` as it
  // was when the plaintext is over 2^14, `out` is too small, the sequence number would wrap
  // or the AEAD fails. `plaintext` may be exactly `out`'s bytes after the header (in place).
  std::size_t seal(DirectionState& st, ContentType type, std::span<const std::uint8_t> plaintext,
                   std::span<std::uint8_t> out);
  // Opens exactly one record (as next_record() cut it), decrypting in place into the record's
  // own bytes; seq + 1 only on kOk. On a refusal the record's bytes are garbage.
  Opened open(DirectionState& st, std::span<std::uint8_t> record);
  // The same, decrypting into `out` instead (at least kMaxOpened bytes): the record can stay
  // where it arrived, in a receive buffer that is not ours to write. On a refusal `out` holds
  // garbage.
  Opened open(DirectionState& st, std::span<const std::uint8_t> record,
              std::span<std::uint8_t, kMaxOpened> out);

 private:
  EVP_CIPHER_CTX* ctx_for(Suite s, const DirectionState& st, bool encrypt);
  void release();
  std::array<EVP_CIPHER_CTX*, 3> ctx_{};  // indexed by suite id - 0x1301
};

// Counts whole records in a stream of records that arrives in pieces of any size. The handover
// needs the number of records OpenSSL has written under the new keys (docs/TLS-RECORD.md §3),
// which OpenSSL 3.0 does not expose; our BIO sees every byte it writes.
struct RecordCounter {
  std::uint64_t records = 0;  // whole records so far
  std::uint32_t left = 0;     // bytes of the current record's body still to come
  std::uint8_t have = 0;      // bytes of the current record's header seen (0..4)
  std::uint8_t len_hi = 0;    // the header's length, high byte, once seen

  void feed(std::span<const std::uint8_t> bytes);
  // No record begun and unfinished.
  bool at_boundary() const { return left == 0 && have == 0; }
};

// KeyUpdate (§4.6.3): handshake type 24, length 1, request_update 0 or 1.
inline constexpr std::size_t kKeyUpdateLen = 5;
std::array<std::uint8_t, kKeyUpdateLen> key_update_message(bool request_update);
enum class PostHandshake : std::uint8_t {
  kKeyUpdate,           // update the read side
  kKeyUpdateRequested,  // update the read side and answer with our own KeyUpdate
  kUnexpected,          // any other handshake message (or several in one record)
  kDecodeError,         // a KeyUpdate of the wrong length, or cut short
  kIllegalParameter,    // request_update neither 0 nor 1
};
// Judges the plaintext of one handshake record. Exactly one KeyUpdate per record: the key
// changes after it, so it must end its record (§5.1), and a server expects no other
// post-handshake message from a client (a client role receiving NewSessionTicket after the
// handover is not supported).
PostHandshake parse_post_handshake(std::span<const std::uint8_t> plaintext);
// Seals a KeyUpdate under the current write key into `out`, then moves the write side to the
// next generation; returns the record's size, 0 on failure (the connection must close).
std::size_t send_key_update(RecordCrypto& crypto, DirectionState& write, bool request_update,
                            std::span<std::uint8_t> out);

}  // namespace wsedge::tls::record
