#pragma once
// The application-independent half of a WebSocket endpoint: per-connection protocol state,
// framing of outgoing messages, and the handshake answers. Endpoint<App> adds the calls into
// the application; keeping this half out of the template keeps it compiled once.
#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "config.hpp"
#include "connection.hpp"
#include "counters.hpp"
#include "engine/deflate/codec.hpp"
#include "engine/io/reactor.hpp"
#include "engine/log.hpp"
#include "engine/protocol/close_code.hpp"
#include "engine/protocol/http_upgrade.hpp"
#include "engine/protocol/message_reader.hpp"
#include "engine/protocol/permessage_deflate.hpp"
#include "limits.hpp"
#include "tls/context.hpp"
#include "tls/session.hpp"

namespace wsedge::ws {

// One message for many connections (a publish), framed once per variant as connections need
// it: uncompressed, and compressed per peer window class for those that negotiated
// permessage-deflate (docs/DEFLATE.md §3). From EndpointBase::prepare_message; `payload` must
// stay valid until release_prepared(), which gives back the frames.
struct PreparedMessage {
  protocol::Opcode op = protocol::Opcode::kText;
  std::span<const std::byte> payload;
  memory::Buffer* plain = nullptr;  // null: a message no peer may be sent
  // Compressed frames by the peer's window bits (8..15); payloads of at most 256 bytes have
  // one for every window, in [15 - 8]. `tried` bit b: window b was compressed (its frame may
  // still be null: compression did not pay, and `plain` goes instead).
  memory::Buffer* deflated[8] = {};
  std::uint8_t tried = 0;
  bool ok() const { return plain != nullptr; }
};

class EndpointBase {
 public:
  EndpointBase(io::Reactor& reactor, const EndpointConfig& cfg);
  ~EndpointBase();
  EndpointBase(const EndpointBase&) = delete;
  EndpointBase& operator=(const EndpointBase&) = delete;

  SendResult send(io::SocketId id, protocol::Opcode op, std::span<const std::byte> payload,
                  bool fin, std::uint8_t rsv);
  SendResult ping(io::SocketId id, std::span<const std::byte> payload);
  // One complete, unmasked (server-role) frame of `payload` in a pooled buffer, for
  // send_prepared to any number of connections: the frame is built once and, in plain ws,
  // queued to each without a copy. The caller holds its one reference and gives it back with
  // reactor().pool().release() when done publishing; its bytes must not change meanwhile
  // (queues still sending it share them). Null for a frame a peer must refuse: a continuation
  // or reserved opcode, RSV bits beyond 0x70, a control frame with RSV bits or over 125 bytes.
  memory::Buffer* prepare_frame(protocol::Opcode op, std::span<const std::byte> payload,
                                std::uint8_t rsv = 0);
  // Queues a prepare_frame() frame to one connection, with send()'s checks and results:
  // kClosed unless open, kInvalid for a null frame, for RSV bits the connection did not
  // negotiate, and for a client-role connection (its frames must be masked, each with a key of
  // its own); kBackpressure, and closing past max_outbound, as send(). Plain ws queues the
  // buffer itself (a view: Reactor::write_shared); TLS encrypts from it.
  SendResult send_prepared(io::SocketId id, memory::Buffer* frame);
  // A message for many connections: see PreparedMessage. !ok() for one no peer may be sent
  // (as prepare_frame's null). Each send_prepared queues the variant the connection negotiated,
  // compressing it on first need; release_prepared gives back every frame it built.
  PreparedMessage prepare_message(protocol::Opcode op, std::span<const std::byte> payload);
  SendResult send_prepared(io::SocketId id, PreparedMessage& m);
  void release_prepared(PreparedMessage& m);
  // Calls fn(Connection) for every open connection, server or client side (not those in their
  // handshake or closing). A scan of every slot: for rare work (failing over the clients of a
  // backend that went away), not per message. fn may send, close or end the connection.
  template <class Fn>
  void for_each_open(Fn&& fn);
  // Starts the closing handshake; the application hears on_close when it completes.
  void close(io::SocketId id, std::uint16_t code, std::string_view reason);
  // Connection::decide: the answer to an upgrade on_upgrade deferred.
  bool decide(io::SocketId id, const UpgradeDecision& d);
  bool is_open(io::SocketId id) const {
    return reactor_.alive(id) && id.idx < conns_.size() && conns_[id.idx].phase == kOpen;
  }
  // The id still names a connection this endpoint tracks (upgrade to on_close).
  bool is_current(io::SocketId id) const {
    return (reactor_.current(id) || id == finishing_) && id.idx < conns_.size() &&
           conns_[id.idx].phase != kIdle;
  }
  std::size_t buffered(io::SocketId id) const {
    return reactor_.alive(id) ? reactor_.queued(id) : 0;
  }
  bool is_client(io::SocketId id) const {
    return is_current(id) && (conns_[id.idx].flags & kClient);
  }
  // Connections accepted on `listener` speak plain ws even when the endpoint serves TLS (an
  // admin or metrics port beside the public wss one).
  void set_listener_plain(unsigned listener) {
    if (plain_listeners_.size() <= listener) plain_listeners_.resize(listener + 1);
    plain_listeners_[listener] = true;
  }
  // Connections accepted on `listener` come through a proxy (HAProxy, a cloud load balancer)
  // and start with its PROXY protocol header (v1 or v2), before TLS: the client's address it
  // names replaces the proxy's (Reactor::set_peer) for per-address limits, logs and the
  // application. A connection without a valid header is closed. Only for listeners that
  // every connection reaches through the proxy: anyone who can connect directly could name
  // any address.
  void set_listener_proxy(unsigned listener) {
    if (proxy_listeners_.size() <= listener) proxy_listeners_.resize(listener + 1);
    proxy_listeners_[listener] = true;
  }

  // Serve TLS on connections accepted from now on; established ones keep the context they
  // started with. Null serves plain ws://. Reactor thread only.
  void set_tls(std::shared_ptr<tls::Context> ctx) { tls_ = std::move(ctx); }
  // How on_reload() gets a fresh TLS context (SIGHUP: new certificates); it may throw, and then
  // the current context stays.
  void set_tls_loader(std::function<std::shared_ptr<tls::Context>()> loader) {
    tls_loader_ = std::move(loader);
  }
  // How on_reload() gets the configuration to switch to (SIGHUP: a reloaded config file);
  // unset, the configuration stays.
  void set_config_loader(std::function<EndpointConfig()> loader) {
    config_loader_ = std::move(loader);
  }
  // SIGHUP, on the core's thread: a new TLS context (set_tls_loader), then the configuration
  // (set_config_loader) through reconfigure().
  void on_reload();
  // Closes every open connection with 1001, spread evenly over window_ms from now: the k-th
  // of N at k * window_ms / N. Again with 0 (or once the window has passed): the rest at once.
  void drain(std::uint32_t window_ms);
  // Switches to `cfg` and re-derives everything derived from it, safe with connections open.
  // Every connection, open ones included, sees from its next event on: max_message,
  // max_fragments, max_assembly_bytes, max_header_bytes, max_outbound, allowed_origins (next
  // upgrade), the message and byte rates (a rate that changes gives every connection a full
  // bucket of the new burst), min_recv_rate (turned on, it watches what is incomplete from
  // its next read), ping_interval_ms (from the next keep-alive arming), close_timeout_ms (the
  // next close). Only new connections: the handshake and first-byte deadlines (a running timer
  // keeps its time), and the per-address table: one a reload creates counts connections
  // accepted from then on; one a reload drops forgets every address at once; a changed
  // handshake rate keeps each address's bucket level. `pages` are replaced whole.
  void reconfigure(const EndpointConfig& cfg);
  // Client role over TLS: connections from connect() use `ctx` (no ownership taken). With
  // `resume`, each new connection offers the session of the last completed handshake.
  void set_client_tls(SSL_CTX* ctx, bool resume) {
    client_tls_ = ctx;
    client_resume_ = resume;
  }
  // End of a loop turn: encrypts what each TLS connection queued during it, so a turn's
  // frames leave in as few records as fit (16 KiB each).
  void on_flush();

  io::Reactor& reactor() { return reactor_; }
  const io::Reactor& reactor() const { return reactor_; }
  const EndpointConfig& config() const { return cfg_; }
  const EndpointCounters& counters() const { return counters_; }

 protected:
  enum Phase : std::uint8_t {
    kIdle,             // slot unused
    kProxyHeader,      // on a PROXY protocol listener: waiting for the proxy's header
    kServerHandshake,  // waiting for the client's upgrade request
    kClientHandshake,  // waiting for the server's 101
    kUpgradePending,   // on_upgrade deferred its decision; the request waits in `handshake`
    kOpen,
    kCloseSent,  // our Close is out; waiting for the peer's
    kDone,       // finished; the reactor is closing the socket
  };
  enum ConnFlag : std::uint8_t {
    kClient = 1,
    kHeardFrom = 2,
    kAwaitingPong = 4,
    // Its bytes are being processed further up the stack: its storage (reader, TLS session)
    // is given back when that returns, not under the code still using it.
    kBusy = 8,
    // Server handshake: the first-byte deadline has passed (bytes had come); the timer now
    // runs to the handshake deadline.
    kHandshakeRest = 16,
    // The peer's Close came first: the close is counted on its side.
    kPeerClose = 32,
  };

  struct Conn {
    protocol::MessageReader reader;
    memory::Buffer* handshake = nullptr;  // upgrade bytes split across reads; client: key first
    Phase phase = kIdle;
    std::uint8_t flags = 0;
    std::uint8_t rsv = 0;  // RSV bits the accepted extensions allow on incoming messages
    // Server handshake: when it was accepted (the turn's clock, microseconds, wrapping every
    // 71 minutes), for the handshake histogram. It sits in what was padding: open connections
    // pay nothing for it.
    std::uint32_t accepted_us = 0;
  };
  static_assert(sizeof(Conn) == sizeof(protocol::MessageReader) + 16, "Conn grew");
  std::uint32_t now_us() const { return static_cast<std::uint32_t>(reactor_.now_ns() / 1000); }

  // How a connection ends: gracefully (what is queued is flushed, then FIN: the peer may still
  // be reading, e.g. after a half-close), or at once (the peer is gone or misbehaving).
  enum class Ending : std::uint8_t { kGraceful, kAbort };

  // TLS state, in a table of its own so plain endpoints pay nothing for it.
  struct TlsConn {
    std::unique_ptr<tls::Session> session;
    memory::Buffer* staged = nullptr;  // plaintext queued this turn
    bool dirty = false;
  };

  // permessage-deflate's state of a connection (docs/DEFLATE.md §5), in a table of its own
  // sized when a first connection negotiates it: 16 bytes a slot, and a stream pair on the
  // heap only for context takeover.
  struct ContextStreams {
    std::unique_ptr<deflate::DeflateStream> out;  // our messages' window (send_context)
    std::unique_ptr<deflate::InflateStream> in;   // the peer's (recv_context)
  };
  struct DeflateConn {
    std::unique_ptr<ContextStreams> streams;
    std::uint8_t send_bits = 0;  // the peer's window for what we send; 0: not negotiated
    // Client role: what the upgrade request offered (a DeflateMode), to check the answer by.
    DeflateMode offered = DeflateMode::kDefault;
  };
  static_assert(sizeof(DeflateConn) == 16, "DeflateConn grew");
  DeflateConn* deflate_conn(io::SocketId id) {
    return id.idx < deflate_conns_.size() && deflate_conns_[id.idx].send_bits
               ? &deflate_conns_[id.idx]
               : nullptr;
  }

  // What the access log says of a connection, in a table of its own sized only when the access
  // log is on: counted where messages are delivered and sent.
  struct ConnStats {
    std::uint64_t start_ms = 0;
    std::uint64_t messages_in = 0, messages_out = 0, bytes_in = 0, bytes_out = 0;
  };

  Conn& conn(io::SocketId id) { return conns_[id.idx]; }
  // The bytes of a request that may arrive in pieces (a PROXY header, an upgrade request):
  // this read's alone, or, once a piece has been kept, all of them so far in the
  // connection's handshake buffer.
  std::span<std::byte> gather(Conn& c, std::byte* data, std::size_t len) {
    if (!c.handshake) return {data, len};
    c.handshake = reactor_.pool().append(c.handshake, data, len);
    return {c.handshake->data(), c.handshake->len};
  }
  // The connection's access-log statistics, or null when the access log is off.
  ConnStats* stats(io::SocketId id) { return id.idx < stats_.size() ? &stats_[id.idx] : nullptr; }
  // The `access` line of a server connection that ends with `code` (rate-limited).
  void log_access(io::SocketId id, std::uint16_t code, bool by_peer);
  // The peer's address as text in `buf`, for log lines.
  std::string_view peer_text(io::SocketId id, char (&buf)[io::PeerAddress::kMaxText]) const {
    return {buf, reactor_.peer(id).format(buf)};
  }
  // The connection's TLS state, or null when it speaks plain ws.
  TlsConn* tls_conn(io::SocketId id) {
    return id.idx < tls_conns_.size() && tls_conns_[id.idx].session ? &tls_conns_[id.idx] : nullptr;
  }
  tls::Session* tls_session(io::SocketId id) {
    TlsConn* t = tls_conn(id);
    return t ? t->session.get() : nullptr;
  }
  // Queues `len` output bytes made by fill(dst, offset, n): straight to the socket, or for
  // TLS to this turn's plaintext.
  template <class Fill>
  void emit(io::SocketId id, std::size_t len, Fill&& fill);
  void emit(io::SocketId id, const void* data, std::size_t len);
  // Starts TLS on a new connection when the endpoint speaks it in that role.
  void start_tls(io::SocketId id);
  void start_client_tls(io::SocketId id, std::string_view host);
  // Decrypts ciphertext; hands each piece of plaintext to deliver(plain, n). False when the
  // TLS layer failed or the peer closed it (the connection is finished and aborted then).
  template <class Deliver>
  bool tls_receive(io::SocketId id, tls::Session& s, const std::byte* data, std::size_t len,
                   Deliver&& deliver);
  void remember_client_session(tls::Session& s);
  // Encrypts what is staged (the records go straight to the socket's output queue); closing,
  // adds close_notify after it.
  void tls_flush(TlsConn& t, bool close_notify);
  // Where a session's ciphertext goes: the output queue of the socket named by `key`.
  static void tls_out(void* self, std::uint64_t key, const std::byte* data, std::size_t len);
  std::unique_ptr<tls::Session> new_session(io::SocketId id, SSL_CTX* ctx, bool server);
  // Graceful close: for TLS, staged data and close_notify go out first.
  void close_socket(io::SocketId id);
  Conn& start(io::SocketId id, Phase phase, std::uint8_t flags, std::uint32_t timer_ms);
  // Gives back the connection's pooled storage and the application's state for it; idempotent.
  void reset(io::SocketId id);
  // Ends the connection's application-visible life: on_close once, if the application knew it.
  void finish(io::SocketId id, std::uint16_t code, std::string_view reason);
  // The one way a connection ends: finish(), the socket closed or aborted, then reset() — at
  // once, or when the processing that holds it busy returns.
  void end(io::SocketId id, std::uint16_t code, std::string_view reason, Ending how);
  // Marks the connection busy for the duration of fn() and resets it afterwards if it ended
  // meanwhile. Nested calls for the same connection leave the reset to the outermost.
  template <class Fn>
  void busy(io::SocketId id, Fn&& fn);
  protocol::ReaderLimits limits(io::SocketId id, const Conn& c) {
    // A compressed message may be a little larger than the inflated one it carries (stored
    // blocks: 5 bytes per 64 KiB, and a few more); inflate_message holds the limit itself.
    // Only permessage-deflate's: an application's own RSV1 extension has no check after this.
    std::uint64_t max = cfg_.max_message;
    if (deflate_conn(id)) max += (max >> 10) + 64;
    return {max, !(c.flags & kClient), c.rsv, cfg_.max_fragments, &assembly_};
  }

  // Server payloads this large are not copied into output: over TLS they are encrypted from
  // where they lie; in plain ws, a message being delivered is queued in its own buffer.
  static constexpr std::size_t kLargePayload = 8192;
  static constexpr std::size_t kTlsRecord = 16384;  // the most plaintext one TLS record holds
  void write_frame(io::SocketId id, bool client, protocol::Opcode op,
                   std::span<const std::byte> payload, bool fin, std::uint8_t rsv);
  void send_close(io::SocketId id, std::uint16_t code, std::string_view reason);
  // Protocol, extensions and extra headers an application's answer may add to a response.
  static constexpr std::size_t kMaxAnswerExtras = 2048;
  // Answers a handshake with an HTTP error and closes.
  void refuse(io::SocketId id, std::uint16_t status, std::string_view reason,
              std::string_view headers = {});
  // Answers GET /healthz (load balancers) and closes.
  void answer_health(io::SocketId id);
  // Answers a plain GET: /healthz, a configured static page, or 426 (this port speaks
  // WebSocket); then closes.
  void answer_plain_get(io::SocketId id, std::string_view target);
  // send_prepared(frame) without its epilogue: the checks, then the frame queued (kOk).
  SendResult queue_prepared(io::SocketId id, memory::Buffer* frame);
  // send()'s epilogue: counts the message (and its payload bytes, for the access log), closes a
  // peer past max_outbound, reports backpressure.
  SendResult sent(io::SocketId id, std::size_t payload_bytes);
  // The 101, with the extensions negotiated here (permessage-deflate) or the application's;
  // false when it could not be given (the request was refused).
  bool accept_upgrade(io::SocketId id, const protocol::UpgradeRequest& req,
                      const UpgradeDecision& d);
  // Counts a protocol failure by the close code it earns (and the budget's apart).
  void count_failure(const protocol::ReadResult& r);
  // Schedules the next keep-alive check: a ping after an idle interval.
  void arm_keepalive(io::SocketId id);
  // --- Deadlines and abuse limits (limits.hpp). Each feature's per-connection state lives in
  // a table of its own, sized only when the feature is configured (docs/ARCHITECTURE.md). ---
  // An accepted connection: the first-byte (or handshake) deadline, its address counted, TLS;
  // on a PROXY protocol listener the last two wait for the header (proxy_header()).
  void begin_server_handshake(io::SocketId id);
  // Once the client's address is known: counted against the per-address limits, then TLS.
  void begin_stream(io::SocketId id);
  // What follows a PROXY header in the bytes received so far: the client's own stream, to go
  // through TLS or the upgrade as any connection's first bytes. It may lie in `held`, the
  // pooled buffer the header was assembled in, which the caller releases after using it.
  struct ProxyRest {
    std::byte* data = nullptr;
    std::size_t len = 0;
    memory::Buffer* held = nullptr;
  };
  // Bytes of a connection in kProxyHeader. A whole header sets the peer address, moves the
  // connection to kServerHandshake and calls begin_stream(); a malformed one (or none: a
  // ClientHello, a GET) ends it, counted. Until then the bytes wait in the handshake buffer.
  ProxyRest proxy_header(io::SocketId id, std::byte* data, std::size_t len);
  // The server handshake's timer: no first byte (dropped), the first-byte stage over (the
  // rest of the handshake deadline), or the handshake deadline.
  void handshake_deadline(io::SocketId id);
  // The endpoint's checks on an upgrade request before the application sees it: its address's
  // connections (503) and handshake rate (429), its Origin (403). False when it refused.
  bool screen_upgrade(io::SocketId id, std::string_view origin);
  // Charges a received message to the connection's rates; false when that closed it (1008).
  bool charge_message(io::SocketId id, std::size_t bytes) {
    return (!msg_limit_.rate && !byte_limit_.rate) || within_rates(id, bytes);
  }
  bool within_rates(io::SocketId id, std::size_t bytes);
  // After each read of an upgrade request or of frames: whether it left one incomplete, and
  // how many bytes it brought. Incomplete connections are listed for the receive-rate sweep.
  void track_incomplete(io::SocketId id, bool incomplete, std::size_t bytes);
  void unwatch(std::uint32_t idx);
  // Closes the listed connections whose request or frame arrives below min_recv_rate.
  void check_recv_rates();
  // The state derived from cfg_ (rates, per-address table, receive-rate watch list), brought
  // in line with it: at construction, and by reconfigure() over what connections already use.
  void derive_limits();
  static void sweep_slow(void* self, io::Reactor& r);
  static void sweep_ips(void* self, io::Reactor& r);

  // --- permessage-deflate (endpoint_deflate.cpp, docs/DEFLATE.md) ---
  // The codec and the side table, created with the first connection that needs them.
  void ensure_deflate();
  // Server: negotiates from the request unless the application answered extensions itself;
  // the answer to put in the 101 (empty when none) and the RSV bits it allows.
  std::string_view negotiate(io::SocketId id, const protocol::UpgradeRequest& req,
                             const UpgradeDecision& d, std::span<char, 128> out);
  // Client: the server's answer checked against our offer; false when it fails the connection.
  bool accept_answer(io::SocketId id, std::string_view extensions);
  // Sets up what an agreement needs (streams for context takeover, counted) and RSV1; false
  // when zlib could not allocate its streams (nothing negotiated then).
  bool agree(io::SocketId id, const protocol::DeflateAgreement& a);
  // A message just assembled on a connection that negotiated deflate: a compressed one is
  // inflated into `held` (released by the caller after delivery) and `r` made to show it; an
  // uncompressed one is checked against max_message (limits() allows compressed ones deflate's
  // overhead). False when that closed the connection (1002, 1007, 1009), counted.
  bool inflate_message(io::SocketId id, protocol::ReadResult& r, memory::Buffer*& held);
  // Fails the connection over a message the reader passed: counted, Close sent, ended.
  bool fail_message(io::SocketId id, std::uint16_t code, const char* why);
  // send()'s compression: the message as it should go (compressed into the codec's scratch
  // with rsv 0x40, or as given).
  std::span<const std::byte> maybe_compress(io::SocketId id, protocol::Opcode op,
                                            std::span<const std::byte> payload, bool fin,
                                            std::uint8_t& rsv);
  void end_deflate(std::uint32_t idx);  // a connection's streams freed, its entry cleared

  // Client role: writes the upgrade request and keeps the key to check the answer.
  void begin_client_handshake(io::SocketId id, std::string_view host, std::string_view target,
                              std::string_view protocols);

  // Endpoint<App> points this at App::on_close, so code outside the template can end a
  // connection. Called only when a connection ends, never per message.
  using CloseHook = void (*)(EndpointBase*, io::SocketId, std::uint16_t, std::string_view);
  CloseHook on_close_hook_ = nullptr;
  // Endpoint<App> completes a deferred upgrade (on_open and frames are the application's).
  using DecideHook = void (*)(EndpointBase*, io::SocketId, const UpgradeDecision&);
  DecideHook decide_hook_ = nullptr;
  // Endpoint<App> asks the application for its access-log fields (App::access_fields), if any.
  using AccessHook = void (*)(EndpointBase*, io::SocketId, log::Fields&);
  AccessHook access_hook_ = nullptr;
  // Endpoint<App> clears the application's per-connection state (App::ConnState), if any.
  using ResetHook = void (*)(EndpointBase*, std::uint32_t idx);
  ResetHook reset_hook_ = nullptr;

  io::Reactor& reactor_;
  EndpointConfig cfg_;
  EndpointCounters counters_;
  std::vector<Conn> conns_;                        // indexed like the reactor's slots
  std::vector<bool> plain_listeners_;              // by listener index: no TLS there
  std::vector<bool> proxy_listeners_;              // by listener index: PROXY header first
  protocol::AssemblyBudget assembly_;              // bytes of this core's unfinished messages
  protocol::MessageReader* delivering_ = nullptr;  // whose message on_message is handling
  // Whose on_close is running: a client whose connect failed has had its socket released by
  // the reactor already, and its state (ConnState, is_client) must still answer (wsload
  // crashed reading a null state there).
  io::SocketId finishing_;
  std::uint64_t mask_state_;  // xorshift state for client masking keys
  std::shared_ptr<tls::Context> tls_;
  std::function<std::shared_ptr<tls::Context>()> tls_loader_;
  std::function<EndpointConfig()> config_loader_;
  // Cipher contexts and buffers of the own record layer, made with the first TLS connection
  // that may use it; declared before tls_conns_, whose sessions return blocks to it.
  std::unique_ptr<tls::RecordShard> record_shard_;
  std::vector<TlsConn> tls_conns_;          // indexed like conns_, only when serving TLS
  std::vector<ConnStats> stats_;            // indexed like conns_, only with the access log
  std::unique_ptr<deflate::Codec> codec_;   // once some connection negotiates permessage-deflate
  std::vector<DeflateConn> deflate_conns_;  // indexed like conns_, with codec_
  deflate::MemoryBudget deflate_memory_;    // context-takeover streams' zlib state
  log::RateLimiter access_limit_{0};
  std::vector<std::uint32_t> tls_dirty_;  // slots with staged plaintext or pending records
  std::vector<std::byte> tls_plain_;      // decrypted bytes of one record at a time
  SSL_CTX* client_tls_ = nullptr;
  bool client_resume_ = false;
  SSL_SESSION* client_session_ = nullptr;  // the last client handshake's, to resume

  // A connection with a request or frame incomplete since `since_ms` (now_ms truncated: only
  // differences are used), and the bytes received since.
  struct Incomplete {
    std::uint32_t idx;
    std::uint32_t since_ms;
    std::uint32_t bytes;
  };
  static constexpr std::uint32_t kUnwatched = UINT32_MAX;
  // One sweep timer per core, armed only while some connection is incomplete: a stalled peer
  // sends nothing that could trigger a check, and scanning every slot would cost what idle
  // connections should not.
  static constexpr std::uint32_t kSlowSweepMs = 250;
  static constexpr std::uint32_t kIpSweepMs = 1000;
  std::vector<Incomplete> incomplete_;
  std::vector<std::uint32_t> incomplete_pos_;  // by slot, with min_recv_rate: index or kUnwatched
  // A per-core timer that re-arms itself while it has work.
  struct Sweep {
    io::TimerId timer;
    bool armed = false;
  };
  void arm(Sweep& s, std::uint32_t ms, io::TimerFn fn);
  Sweep slow_sweep_;
  RateLimit msg_limit_, byte_limit_;
  std::vector<TokenBucket> msg_buckets_, byte_buckets_;  // by slot, each only when its rate is set
  std::unique_ptr<IpTable> ips_;                         // only with a per-address limit
  std::vector<IpTable::Entry*> ip_of_;  // by slot: the entry an accepted connection counts in
  Sweep ip_sweep_;
  // A drain under way: the connections open when it began, in the order they are closed.
  struct Drain {
    bool started = false;
    std::vector<io::SocketId> ids;
    std::size_t closed = 0;  // ids[0, closed) have been sent their Close
    std::uint64_t start_ms = 0;
    std::uint32_t window_ms = 0;
    Sweep step;
  };
  static constexpr std::uint32_t kDrainStepMs = 10;  // the reactor's tick
  static void drain_step(void* self, io::Reactor& r);
  void close_due();                   // sends Close to those whose turn has come; re-arms the step
  void drain_later(io::SocketId id);  // a connection that opened during the drain
  Drain drain_;
};

template <class Fill>
void EndpointBase::emit(io::SocketId id, std::size_t len, Fill&& fill) {
  TlsConn* tp = tls_conn(id);
  if (!tp) {
    reactor_.write_with(id, len, fill);
    return;
  }
  TlsConn& t = *tp;
  // Room for a whole record at once: the frames of a turn then land in one buffer without
  // being moved as it grows. It goes back to the pool at the end of the turn.
  t.staged = reactor_.pool().reserve(t.staged, t.staged ? len : std::max(len, kTlsRecord));
  fill(t.staged->data() + t.staged->len, 0, len);
  t.staged->len += static_cast<std::uint32_t>(len);
  if (!t.dirty) {
    t.dirty = true;
    tls_dirty_.push_back(id.idx);
  }
}

template <class Fn>
void EndpointBase::for_each_open(Fn&& fn) {
  // conns_ never reallocates (reserved up front), and a connection fn opens is not open yet.
  for (std::uint32_t i = 0; i < conns_.size(); ++i) {
    io::SocketId id = reactor_.id_at(i);
    if (is_open(id)) fn(Connection{this, id});
  }
}

template <class Deliver>
bool EndpointBase::tls_receive(io::SocketId id, tls::Session& s, const std::byte* data,
                               std::size_t len, Deliver&& deliver) {
  bool was_done = s.handshake_done();
  s.feed(data, len);
  for (;;) {
    std::size_t n = 0;
    tls::Session::Result r = s.read(tls_plain_.data(), tls_plain_.size(), n);
    if (!was_done && s.handshake_done()) {
      was_done = true;
      ++counters_.tls_handshakes;
      if (s.resumed()) ++counters_.tls_resumed;
      if (s.own_records()) ++counters_.tls_own_records;
    }
    if (client_resume_ && !s.server() && s.handshake_done()) remember_client_session(s);
    if (r != tls::Session::Result::kOk) {
      if (r == tls::Session::Result::kError) {
        ++counters_.tls_errors;
        // Scanners and broken clients fail handshakes by the thousand: a few lines a second.
        char peer[io::PeerAddress::kMaxText];
        LOG_WARN_LIMITED(10, "tls_error", log::kv("peer", peer_text(id, peer)),
                         log::kv("error", s.error()), log::kv("handshake_done", s.handshake_done()),
                         log::kv("tls_errors", counters_.tls_errors.get()));
      } else if (conns_[id.idx].phase != kServerHandshake)
        ++counters_.abnormal_closes;
      // A close_notify is TLS's half-close (the peer may still read, RFC 8446 §6.1): what was
      // queued in answer goes out, then ours. A TLS error drops the plaintext not yet sealed,
      // but the alert the session wrote still goes out before our FIN: RFC 8446 §5.2 makes a
      // bad record end "with a bad_record_mac alert", and a client that failed a handshake
      // learns why instead of reading a reset.
      bool error = r == tls::Session::Result::kError;
      if (error && tls_conns_[id.idx].staged) {
        reactor_.pool().release(tls_conns_[id.idx].staged);
        tls_conns_[id.idx].staged = nullptr;
      }
      end(id, protocol::close_code::kAbnormal,
          error ? s.error() : "TLS closed without a Close frame", Ending::kGraceful);
      return false;
    }
    if (n == 0) break;
    deliver(tls_plain_.data(), n);
    // The connection may have ended while handling the plaintext; what follows is not for it.
    if (conns_[id.idx].phase == kDone) return false;
  }
  TlsConn& t = tls_conns_[id.idx];
  // What a client queued before its handshake ended.
  if (t.staged && s.handshake_done() && !t.dirty) {
    t.dirty = true;
    tls_dirty_.push_back(id.idx);
  }
  return true;
}

template <class Fn>
void EndpointBase::busy(io::SocketId id, Fn&& fn) {
  Conn& c = conns_[id.idx];  // stable: conns_ never reallocates (reserved up front)
  bool outer = !(c.flags & kBusy);
  c.flags |= kBusy;
  fn();
  if (!outer) return;
  c.flags &= static_cast<std::uint8_t>(~kBusy);
  if (c.phase == kDone) reset(id);
}

inline SendResult Connection::send(protocol::Opcode op, std::span<const std::byte> payload,
                                   bool fin, std::uint8_t rsv) const {
  return ep_ ? ep_->send(id_, op, payload, fin, rsv) : SendResult::kClosed;
}
inline SendResult Connection::send_prepared(memory::Buffer* frame) const {
  return ep_ ? ep_->send_prepared(id_, frame) : SendResult::kClosed;
}
inline SendResult Connection::send_prepared(PreparedMessage& m) const {
  return ep_ ? ep_->send_prepared(id_, m) : SendResult::kClosed;
}
inline SendResult Connection::ping(std::span<const std::byte> payload) const {
  return ep_ ? ep_->ping(id_, payload) : SendResult::kClosed;
}
inline void Connection::close(std::uint16_t code, std::string_view reason) const {
  if (ep_) ep_->close(id_, code, reason);
}
inline bool Connection::open() const {
  return ep_ && ep_->is_open(id_);
}
inline std::size_t Connection::buffered() const {
  return ep_ ? ep_->buffered(id_) : 0;
}
inline bool Connection::decide(const UpgradeDecision& d) const {
  return ep_ && ep_->decide(id_, d);
}
inline void Connection::pause_reading() const {
  if (ep_ && ep_->is_current(id_)) ep_->reactor().pause_reading(id_);
}
inline void Connection::resume_reading() const {
  if (ep_ && ep_->is_current(id_)) ep_->reactor().resume_reading(id_);
}
inline bool Connection::current() const {
  return ep_ && ep_->is_current(id_);
}
inline bool Connection::is_client() const {
  return ep_ && ep_->is_client(id_);
}
inline io::PeerAddress Connection::peer() const {
  return ep_ && ep_->is_current(id_) ? ep_->reactor().peer(id_) : io::PeerAddress{};
}
inline unsigned Connection::listener() const {
  return ep_ && ep_->is_current(id_) ? ep_->reactor().listener(id_) : io::Reactor::kNoListener;
}

}  // namespace wsedge::ws
