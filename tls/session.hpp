#pragma once
// One TLS connection driven by whoever owns the socket: ciphertext that arrived goes in with
// feed(), plaintext comes out of read(); plaintext goes in with write(), and the ciphertext it
// makes is handed to a sink at once. No socket, no blocking.
//
// The BIO under the SSL object is our own: OpenSSL reads records straight out of the caller's
// receive buffer and writes them straight into the caller's output queue, where memory BIOs
// would copy both ways and keep two growable buffers per connection.
//
// A server session given a RecordShard leaves OpenSSL once a TLS 1.3 handshake is over: it
// takes the traffic secrets, frees the SSL object (about 14 KB that OpenSSL 3.0 keeps per
// connection) and seals and opens records itself (tls/record.*, docs/TLS-RECORD.md). The
// caller sees no difference.
#include <openssl/ssl.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "record.hpp"

namespace wsedge::tls {

// What the sessions of one core (one thread) share once they have left OpenSSL: the cipher
// contexts, the buffer records are sealed into, and spare blocks for records that arrive split
// across reads. Outlives its sessions.
class RecordShard {
 public:
  // `records_per_key`: how many records a write key seals before a KeyUpdate replaces it
  // (RFC 8446 §5.5); lower only in tests, which cannot send 2^24 records.
  explicit RecordShard(std::uint64_t records_per_key = record::kRecordsPerKey)
      : sealed_(record::kMaxSealed), records_per_key_(records_per_key) {
    spare_.reserve(kSpareBlocks);
  }

  record::RecordCrypto& crypto() { return crypto_; }
  std::span<std::uint8_t> sealed() { return sealed_; }
  std::uint64_t records_per_key() const { return records_per_key_; }
  // A block that holds one whole record (header and the largest body), and its return. A few
  // are kept: a bulk transfer splits nearly every record across reads.
  std::uint8_t* acquire();
  void release(std::uint8_t* block);
  static constexpr std::size_t kBlockSize = record::kHeaderLen + record::kMaxCiphertext;

 private:
  static constexpr std::size_t kSpareBlocks = 16;
  record::RecordCrypto crypto_;
  std::vector<std::uint8_t> sealed_;
  std::uint64_t records_per_key_;
  std::vector<std::unique_ptr<std::uint8_t[]>> spare_;
};

class Session {
 public:
  enum class Result : std::uint8_t {
    kOk,      // progress (or nothing to do yet)
    kClosed,  // the peer sent close_notify
    kError,   // protocol error or failed handshake: drop the connection
  };
  // Receives ciphertext to send, in order, from inside read(), write() and shutdown().
  using Sink = void (*)(void* arg, std::uint64_t key, const std::byte* data, std::size_t len);
  // read()'s `out` holds at least this much: one record's plaintext and its type byte.
  static constexpr std::size_t kReadCapacity = record::kMaxOpened;
  // Records without data (empty, KeyUpdate, user_canceled) accepted in a row; one more is
  // refused with unexpected_message (read_own() says why).
  static constexpr std::uint8_t kMaxQuietRecords = 32;

  // Server side when `server`, client side otherwise (for tests and the load generator). A
  // server with a `shard` moves to our own record layer after a TLS 1.3 handshake; without
  // one (or for TLS 1.2), OpenSSL keeps the connection to its end. `owner` is what `ctx`'s
  // callbacks point into (a tls::Context: its SNI callback reads its certificate list), held
  // until the handshake is done: a reload may drop every other reference before the
  // ClientHello arrives.
  Session(SSL_CTX* ctx, bool server, Sink sink, void* arg, std::uint64_t key,
          RecordShard* shard = nullptr, std::shared_ptr<const void> owner = {});
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Lets the sessions of `ctx` leave OpenSSL after the handshake (it installs the keylog
  // callback that hands each session its traffic secrets; nothing is logged).
  static void enable_handover(SSL_CTX* ctx);

  // Offers received ciphertext to the following read() calls, which must run until one yields
  // no plaintext: by then every byte is taken (decrypted, or kept as part of a record still
  // incomplete), and `data` may go away.
  void feed(const std::byte* data, std::size_t len);
  // Advances the handshake, then decrypts into `out` (kReadCapacity bytes at least); `n` is
  // the plaintext produced (0 when a whole record has not arrived yet). Call until it yields
  // 0 bytes.
  Result read(std::byte* out, std::size_t cap, std::size_t& n);
  // Encrypts plaintext: everything is accepted (records are at most 16 KiB each).
  Result write(const std::byte* data, std::size_t len);
  // Sends close_notify (not after an error: then the alert, if any, was the last record).
  void shutdown();

  bool handshake_done() const { return !ssl_ || SSL_is_init_finished(ssl_) == 1; }
  // Our own record layer has the connection; OpenSSL's SSL object is gone.
  bool own_records() const { return !ssl_; }
  bool server() const { return server_; }
  bool resumed() const { return ssl_ ? SSL_session_reused(ssl_) == 1 : resumed_; }
  // The SSL object while OpenSSL has the connection, null after the handover.
  SSL* ssl() const { return ssl_; }
  const char* error() const { return error_; }

 private:
  static int bio_read(BIO* b, char* out, std::size_t len, std::size_t* got);
  static int bio_write(BIO* b, const char* data, std::size_t len, std::size_t* done);
  static long bio_ctrl(BIO* b, int cmd, long num, void* ptr);
  static const BIO_METHOD* bio_method();
  static void keylog(const SSL* ssl, const char* line);
  Result fail(const char* why);
  Result want_more();
  // After the handshake call that wrote `tickets` records: moves to our record layer when
  // everything it needs holds (docs/TLS-RECORD.md §3), else leaves OpenSSL in charge.
  void hand_over(std::uint64_t tickets);
  Result read_own(std::uint8_t* out, std::size_t& n);
  // The next whole record of the input, from the assembly block or in place; empty when more
  // bytes are needed (then every byte fed is taken).
  bool next_input(std::span<const std::uint8_t>& rec, Result& r);
  Result write_own(const std::uint8_t* data, std::size_t len);
  // Seals one record and hands it to the sink; false (and the connection must go) if sealing
  // failed.
  bool send_record(record::ContentType type, std::span<const std::uint8_t> plaintext);
  Result refuse(record::Alert a, const char* why);
  void release_partial();

  SSL* ssl_;
  RecordShard* shard_;
  std::shared_ptr<const void> owner_;  // until the handshake is done
  const std::byte* in_ = nullptr;      // ciphertext fed and not yet taken
  std::size_t in_len_ = 0;
  Sink sink_;
  void* sink_arg_;
  std::uint64_t sink_key_;
  const char* error_ = nullptr;
  // The own layer: keys, IVs, sequence numbers, secrets. Before the handover the secrets the
  // keylog callback gave wait in `.secret`.
  record::DirectionState read_{};
  record::DirectionState write_{};
  std::uint8_t* partial_ = nullptr;  // a record split across reads (a shard block), or null
  std::uint32_t partial_len_ = 0;
  record::RecordCounter written_;  // records OpenSSL wrote, until the handover
  std::uint8_t read_secret_len_ = 0;
  std::uint8_t write_secret_len_ = 0;
  std::uint8_t quiet_ = 0;  // records in a row that carried no application data
  bool server_;
  bool resumed_ = false;
  bool sent_close_ = false;
};

}  // namespace wsedge::tls
