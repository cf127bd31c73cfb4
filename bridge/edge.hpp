#pragma once
// The bridge on one core: a WebSocket application (engine/ws/endpoint.hpp) that hands its
// clients' opens, messages and closes to backend services over ZeroMQ and carries out their
// commands (docs/BRIDGE-PROTOCOL.md). Share-nothing like the engine: every core has its own
// DEALER per backend endpoint, its own SUB for channel publishes, its own subscription table;
// ZeroMQ's file descriptors are watched by the core's reactor, never blocked on.
#include <zmq.hpp>

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "auth/expiries.hpp"
#include "auth/gate.hpp"
#include "bridge/channels.hpp"
#include "bridge/counters.hpp"
#include "bridge/link.hpp"
#include "bridge/options.hpp"
#include "bridge/protocol.hpp"
#include "engine/ws/endpoint.hpp"

namespace wsedge::bridge {

class Edge {
 public:
  // 12 bytes per connection slot, in the endpoint's side table.
  struct ConnState {
    std::uint16_t route = 0;
    std::uint16_t link = 0;  // index in links_: every event of the connection goes there
    std::uint8_t flags = 0;
    std::uint32_t dropped = 0;  // channel messages dropped for it since it was last told
  };

  // Where on_reload() takes the auth options to switch to (a reloaded configuration).
  using AuthSource = std::function<std::shared_ptr<const auth::Options>()>;
  // `auth`: who may connect and what they may do (docs/AUTH.md); with auth off and no ACL the
  // edge keeps no identity and pays nothing for it. Without `auth_source`, a reload loads the
  // files `auth` names again.
  Edge(zmq::context_t& ctx, const Options& opts, const auth::Options& auth, unsigned core,
       unsigned cores, AuthSource auth_source = {});
  Edge(const Edge&) = delete;
  Edge& operator=(const Edge&) = delete;

  // --- ws application ---
  void on_start(ws::Endpoint<Edge>& ep);
  void on_stop();
  ws::UpgradeDecision on_upgrade(ws::Connection c, const protocol::UpgradeRequest& req);
  void on_open(ws::Connection c);
  void on_message(ws::Connection c, protocol::Opcode op, std::span<std::byte> payload);
  void on_close(ws::Connection c, std::uint16_t code, std::string_view reason);
  void on_drain(ws::Connection c);
  void on_flush();
  void on_reload();
  // The server is stopping: every backend is told at once (BEAT with `draining`).
  void on_draining(std::uint32_t window_ms);
  // The access log's fields (--access-log): the route as configured (never the request's
  // target, whose query may carry a token) and, with auth, the token's sub.
  void access_fields(ws::Connection c, log::Fields& f);

  const BridgeCounters& counters() const { return counters_; }
  // fn(endpoint, up gauge) for each backend link, any thread once on_start has run: the links
  // and their endpoints do not change after it, and the gauge is a Counter.
  template <class Fn>
  void for_each_link(Fn&& fn) const {
    for (const auto& l : links_) fn(l->endpoint(), l->up_gauge());
  }
  // Null when auth is off and there is no ACL.
  const auth::AuthCounters* auth_counters() const { return gate_ ? &gate_->counters() : nullptr; }
  // This core's id for a connection (what backends address it by).
  ConnId conn_id(io::SocketId id) const {
    return {opts_.node_id, opts_.epoch, static_cast<std::uint16_t>(core_), id.idx, id.gen};
  }

 private:
  enum Flag : std::uint8_t {
    kPaused = 1,        // reading paused for its link
    kClosedByEdge = 2,  // we closed it (slow consumer, outage, shutdown)
    kClosedByBackend = 4,
    kOpened = 8,  // on_open ran: backends have heard of it
  };
  // A watched ZeroMQ descriptor: which socket it belongs to.
  struct Watch : io::FdWatch {
    Edge* edge = nullptr;
    int link = -1;  // -1: the SUB socket
    bool monitor = false;
  };
  struct RouteState {
    Edge* edge = nullptr;  // for the route's timers
    std::uint16_t index = 0;
    std::vector<std::uint16_t> links;
    io::TimerId grace;                  // running while no backend of the route is up
    std::vector<io::SocketId> closing;  // after the grace: clients still to close
    std::size_t closing_per_tick = 0;
    io::TimerId spread;
  };

  static void on_ready(io::FdWatch* w, io::Reactor& r, int revents);
  void pump_link(std::uint16_t li);
  void pump_monitor(std::uint16_t li);
  void pump_sub();
  void handle_backend(std::uint16_t li, Frames& m);
  void handle_publish(Frames& m);
  void welcome(std::uint16_t li, std::span<const std::byte> meta);
  void link_down(std::uint16_t li);
  // After a link went up or down: the routes_down gauge readiness reads.
  void count_routes_down();
  void fail_over(std::uint16_t li);
  void resume(std::uint16_t li);
  void release_paused(std::uint16_t li);
  bool push(std::uint16_t li, Event&& e, io::SocketId id);

  // Commands. Each returns false when its connection is gone.
  // What a command to a connection came to.
  enum class SendOutcome : std::uint8_t {
    kDone,     // carried out (a SEND's client may have been closed as slow): ACK when asked
    kGone,     // no such connection: ERROR gone when asked
    kRefused,  // malformed, answered ERROR already (with the command's seq)
  };
  SendOutcome command_send(const Header& h, std::span<const std::byte> meta,
                           std::span<const std::byte> payload, std::uint16_t li);
  SendOutcome command_subscribe(const Header& h, std::span<const std::byte> meta, bool on,
                                std::uint16_t li, std::span<const std::byte> seq);
  void answer(std::uint16_t li, Type type, const ConnId& id, std::span<const std::byte> seq,
              std::string_view code = {}, std::string_view reason = {});
  // A backend message the edge cannot take: counted, logged (rate-limited: a broken backend
  // repeats its mistake for every message) and, on a link, answered with ERROR.
  void bad_message(std::string_view from, std::string_view code, std::string_view reason = {});
  void refuse_message(std::uint16_t li, const ConnId& id, std::span<const std::byte> seq,
                      std::string_view code, std::string_view reason);
  void send_snapshot(std::uint16_t li, std::span<const std::byte> seq);
  void beat();
  static void beat_timer(void* self, io::Reactor&);
  static void check_timer(void* self, io::Reactor&);

  ws::Connection resolve(const ConnId& id);
  std::uint16_t pick_link(std::uint16_t route, io::SocketId id, bool up_only) const;
  bool route_up(std::uint16_t route) const;
  Event event(Type type, std::uint16_t flags, io::SocketId id);
  Event open_event(io::SocketId id, bool failover, bool resumed);
  void deliver(io::SocketId id, ws::PreparedMessage& frame);
  bool over_budget(ws::Connection c, std::size_t next) const;
  void close_slow(ws::Connection c);
  static void gap_timer(void* self, io::Reactor& r);
  void set_filter(std::string_view channel, bool on);
  template <class Fn>
  void for_each_conn(Fn&& fn);

  // --- auth (bridge/edge_auth.cpp) ---
  void start_auth();
  // At the upgrade: the token and the ACL's `connect`; writes the identity into OPEN's meta and
  // returns it, for on_upgrade to keep once the upgrade is sure. Null: refused, with `out`.
  std::unique_ptr<auth::Identity> authorize(const protocol::UpgradeRequest& req,
                                            std::string_view path, MetaWriter& w,
                                            ws::UpgradeDecision& out);
  // on_open: the token's channels the ACL allows, and the expiry watch.
  void start_identity(ws::Connection c);
  // The connection's identity, or null (no auth, or not one of ours).
  auth::Identity* identity(io::SocketId id);
  bool may_subscribe(io::SocketId id, std::string_view channel);
  // A client's `wsedge:` command on a control route; false when the text is not one.
  bool control(ws::Connection c, std::string_view text);
  void subscribe(io::SocketId id, std::string_view channel, bool on);
  void command_acl(std::uint16_t li, const Header& h, std::span<const std::byte> meta,
                   std::span<const std::byte> seq);
  bool command_expires(const Header& h, std::span<const std::byte> meta);
  // After an ACL change: every connection's `connect` and subscriptions checked again.
  void recheck();
  // After the connection's exp changed (set at its upgrade, by EXPIRES or a refresh).
  void watch_expiry(io::SocketId id, auth::Identity& who);
  static void expiry_timer(void* self, io::Reactor& r);

  void hold(std::uint16_t route);
  static void grace_timer(void* ctx, io::Reactor&);
  static void spread_timer(void* ctx, io::Reactor&);
  void start_closing(std::uint16_t route);

  zmq::context_t& ctx_;
  const Options& opts_;
  unsigned core_;
  unsigned cores_;
  ws::Endpoint<Edge>* ep_ = nullptr;
  io::Reactor* reactor_ = nullptr;
  std::vector<std::unique_ptr<Link>> links_;
  std::vector<RouteState> routes_;
  std::vector<std::vector<std::uint16_t>> link_routes_;  // by link: the routes that use it
  std::vector<std::unique_ptr<Watch>> watches_;
  std::unique_ptr<zmq::socket_t> sub_;
  std::vector<bool> dirty_;  // links that sent this turn: ZMQ_FD may have lost its edge
  bool sub_dirty_ = false;
  bool watch_failed_ = false;  // some fd watch failed: check_timer reads every socket
  Channels channels_;
  std::vector<zmq::message_t> open_meta_;  // by slot: what OPEN said, for failover and resumes
  std::vector<std::byte> scratch_;         // OPEN meta between on_upgrade and on_open
  std::size_t scratch_len_ = 0;
  std::uint32_t open_count_ = 0;
  io::TimerId beat_timer_;
  char conn_text_[ConnId::kMaxText];  // access_fields' connection id, alive until the line is out
  bool draining_ = false;             // BEATs say so from on_draining on
  std::uint32_t drain_ms_ = 0;
  io::TimerId check_timer_;
  std::vector<io::SocketId> gapped_;  // clients that lost channel messages, not yet told
  io::TimerId gap_timer_;
  BridgeCounters counters_;

  const auth::Options& auth_opts_;
  AuthSource auth_source_;
  std::unique_ptr<auth::Gate> gate_;  // null: no auth and no ACL
  // By slot, only while gate_: who each connection is (set at its upgrade).
  std::vector<std::unique_ptr<auth::Identity>> identities_;
  std::vector<std::string> token_channels_;  // between on_upgrade and on_open
  auth::Expiries<io::SocketId> expiries_;
  io::TimerId expiry_timer_;
};

// Every connection backends have heard of (on_open ran), open or closing.
template <class Fn>
void Edge::for_each_conn(Fn&& fn) {
  for (std::uint32_t i = 0; i < reactor_->slots(); ++i) {
    ws::Connection c{ep_, reactor_->id_at(i)};
    ConnState* st = ep_->state(c);
    if (st && (st->flags & kOpened)) fn(c, *st);
  }
}

}  // namespace wsedge::bridge
