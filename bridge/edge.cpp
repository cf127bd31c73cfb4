#include "edge.hpp"

#include <zmq.h>

#include <algorithm>
#include <cstring>

#include "engine/log.hpp"
#include "engine/protocol/close_code.hpp"
#include "engine/protocol/utf8.hpp"

namespace wsedge::bridge {
namespace {

constexpr std::uint32_t kSpreadTickMs = 100;
constexpr std::size_t kSnapshotPart = 64 << 10;
constexpr std::uint32_t kGapCheckMs = 10;    // how often clients owed a gap notice are looked at
constexpr std::uint32_t kLinkCheckMs = 100;  // how often links that are not up are looked at

std::span<const std::byte> bytes_of(const zmq::message_t& m) {
  return {static_cast<const std::byte*>(m.data()), m.size()};
}

}  // namespace

Edge::Edge(zmq::context_t& ctx, const Options& opts, const auth::Options& auth, unsigned core,
           unsigned cores, AuthSource auth_source)
    : ctx_(ctx),
      opts_(opts),
      core_(core),
      cores_(cores),
      scratch_(16 << 10),
      auth_opts_(auth),
      auth_source_(std::move(auth_source)) {}

void Edge::on_start(ws::Endpoint<Edge>& ep) {
  ep_ = &ep;
  reactor_ = &ep.reactor();
  std::string routing_id = opts_.node_name + "/" + std::to_string(core_);
  routes_.resize(opts_.routes.size());
  for (std::size_t r = 0; r < opts_.routes.size(); ++r) {
    routes_[r].edge = this;
    routes_[r].index = static_cast<std::uint16_t>(r);
    for (const std::string& endpoint : opts_.routes[r].endpoints) {
      // Routes that name one backend share its link: a second DEALER with the same routing id
      // would make the backend's ROUTER hand the identity back and forth between them.
      auto li = static_cast<std::uint16_t>(links_.size());
      for (std::uint16_t k = 0; k < links_.size(); ++k) {
        if (links_[k]->endpoint() == endpoint) li = k;
      }
      if (li == links_.size()) {
        links_.push_back(
            std::make_unique<Link>(ctx_, opts_, endpoint, routing_id, core_, li, counters_));
        link_routes_.emplace_back();
      }
      routes_[r].links.push_back(li);
      link_routes_[li].push_back(static_cast<std::uint16_t>(r));
    }
  }
  dirty_.assign(links_.size(), false);
  count_routes_down();
  sub_ = std::make_unique<zmq::socket_t>(ctx_, zmq::socket_type::sub);
  // Heartbeats too: a publisher or broker that dies without a FIN would otherwise leave every
  // core subscribed to nothing, losing publishes with no gap to count.
  set_common(*sub_, opts_);
  for (const std::string& endpoint : opts_.publish) {
    if (opts_.curve.enabled() && endpoint.rfind("inproc://", 0) != 0) {
      sub_->set(zmq::sockopt::curve_serverkey, opts_.curve.server_key);
      sub_->set(zmq::sockopt::curve_publickey, opts_.curve.public_key);
      sub_->set(zmq::sockopt::curve_secretkey, opts_.curve.secret_key);
    }
    sub_->connect(endpoint);
  }

  auto watch = [&](zmq::socket_t& s, int link, bool monitor) {
    auto w = std::make_unique<Watch>();
    w->edge = this;
    w->link = link;
    w->monitor = monitor;
    w->fd = s.get(zmq::sockopt::fd);
    w->events = POLLIN;
    w->ready = &Edge::on_ready;
    reactor_->watch(w.get());
    watches_.push_back(std::move(w));
  };
  for (std::uint16_t li = 0; li < links_.size(); ++li) {
    watch(links_[li]->socket(), li, false);
    if (!links_[li]->inproc()) watch(links_[li]->monitor(), li, true);
  }
  watch(*sub_, -1, false);
  // An inproc peer exists as soon as it has bound (the embedded backend binds before the cores
  // start): no handshake, no monitor event, so HELLO goes now.
  for (auto& l : links_) {
    if (l->inproc()) l->connected(opts_.node_name, conn_id({0, 0}), cores_);
  }
  start_auth();
  beat_timer_ = reactor_->schedule(opts_.beat_ms, &Edge::beat_timer, this);
  check_timer_ = reactor_->schedule(kLinkCheckMs, &Edge::check_timer, this);
  // No backend is up yet: a route whose backends never answer holds its clients for the grace
  // period too, not for ever.
  for (std::uint16_t r = 0; r < routes_.size(); ++r) hold(r);
  // Whatever arrived before the watches were armed raised no edge the reactor could see.
  for (std::uint16_t li = 0; li < links_.size(); ++li) {
    pump_monitor(li);
    pump_link(li);
  }
  pump_sub();
  LOG_INFO("bridge_started", log::kv("routes", routes_.size()), log::kv("backends", links_.size()),
           log::kv("publish", opts_.publish.size()));
}

void Edge::on_stop() {
  // Every client is gone and its CLOSE queued: a backend that is up gets two seconds to take
  // them; one that is down gets none (LINGER 0 stays: never hang the exit on a dead peer).
  for (auto& l : links_) {
    l->flush();
    if (l->state() == Link::State::kUp) l->linger(2000);
  }
  reactor_->cancel(beat_timer_);
  reactor_->cancel(check_timer_);
  if (gap_timer_ != io::TimerId{}) reactor_->cancel(gap_timer_);
  if (expiry_timer_ != io::TimerId{}) reactor_->cancel(expiry_timer_);
  for (auto& w : watches_) reactor_->unwatch(w.get());
  std::vector<log::Field> fields;
  append_metric_fields<BridgeCounters>(fields, kBridgeMetrics, counters_);
  // Some auth names are built for the call: kept here, since the fields only view them.
  std::vector<std::pair<std::string, std::uint64_t>> auth;
  if (gate_) {
    auth::for_each_auth_metric(gate_->counters(),
                               [&](const char* name, const char*, MetricType, std::uint64_t v) {
                                 auth.emplace_back(name, v);
                               });
  }
  for (const auto& [name, v] : auth) fields.push_back(log::kv(name, v));
  if (log::enabled(log::Level::kInfo)) log::emit(log::Level::kInfo, "bridge_stopped", fields);
  links_.clear();
  sub_.reset();
}

// --- ZeroMQ readiness ---

void Edge::on_ready(io::FdWatch* w, io::Reactor&, int revents) {
  auto* watch = static_cast<Watch*>(w);
  Edge* self = watch->edge;
  if (revents < 0) {
    // The reactor does not re-arm a failed watch: from now on the periodic check reads every
    // socket, so a core is slower to hear its backends, never deaf to them.
    LOG_ERROR("zmq_watch_failed", log::kv("error", -revents),
              log::kv("detail", "polling it every 100 ms"));
    self->watch_failed_ = true;
    return;
  }
  if (watch->link < 0)
    self->pump_sub();
  else if (watch->monitor)
    self->pump_monitor(static_cast<std::uint16_t>(watch->link));
  else
    self->pump_link(static_cast<std::uint16_t>(watch->link));
}

// ZMQ_FD is edge-triggered and only says "look". Receiving until EAGAIN is what re-arms it: a
// receive that finds nothing reads libzmq's command mailbox (the thing the fd signals), so the
// next change raises a new edge. ZMQ_EVENTS would read the mailbox again for every message, a
// poll and a getpid system call each; it is asked only by a link that waits to send.
void Edge::pump_link(std::uint16_t li) {
  Link& l = *links_[li];
  Frames m;
  for (;;) {
    bool oversized = false;
    while (Link::receive(l.socket(), m, oversized)) {
      if (oversized) {
        refuse_message(li, {}, {}, "bad-frame", "too many frames");
        continue;
      }
      handle_backend(li, m);
    }
    bool waiting = l.hello_pending() || (l.state() == Link::State::kUp && !l.accepting());
    if (!waiting || !(l.socket().get(zmq::sockopt::events) & ZMQ_POLLOUT)) break;
    if (l.hello_pending()) l.send_hello();
    if (l.state() == Link::State::kUp && l.flush()) resume(li);
    // Sending may have taken the fd's signal: receive again before leaving.
  }
  dirty_[li] = false;
}

void Edge::pump_monitor(std::uint16_t li) {
  Link& l = *links_[li];
  if (l.inproc()) return;  // no monitor: inproc has no connection to watch
  Frames m;
  bool oversized = false;
  while (Link::receive(l.monitor(), m, oversized)) {
    if (m.n < 1 || m.f[0].size() < 6) continue;
    std::uint16_t event;
    std::memcpy(&event, m.f[0].data(), sizeof event);  // native byte order (zmq_socket_monitor)
    if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      LOG_INFO("backend_connected", log::kv("endpoint", l.endpoint()));
      l.connected(opts_.node_name, conn_id({0, 0}), cores_);
      dirty_[li] = true;
    } else if (event == ZMQ_EVENT_DISCONNECTED) {
      link_down(li);
    }
  }
}

// A turn's events leave together at its end: libzmq's I/O thread is woken once for them and
// writes them to the backend in one batch, instead of once per message (each send to an idle
// pipe signals it, and on a shared CPU the woken thread preempts the reactor every time).
void Edge::on_flush() {
  for (std::uint16_t li = 0; li < links_.size(); ++li) {
    if (!dirty_[li]) continue;
    links_[li]->flush();
    pump_link(li);
  }
  if (sub_dirty_) {
    sub_dirty_ = false;
    pump_sub();
  }
}

// --- Events up ---

ws::UpgradeDecision Edge::on_upgrade(ws::Connection c, const protocol::UpgradeRequest& req) {
  std::string_view path = req.target.substr(0, req.target.find('?'));
  std::size_t best = 0;
  int route = -1;
  for (std::size_t r = 0; r < opts_.routes.size(); ++r) {
    const std::string& p = opts_.routes[r].path;
    bool match = path.substr(0, p.size()) == p &&
                 (path.size() == p.size() || p.back() == '/' || path[p.size()] == '/');
    if (match && (route < 0 || p.size() > best)) {
      route = static_cast<int>(r);
      best = p.size();
    }
  }
  if (route < 0) return ws::UpgradeDecision::refuse(404, "no route for this path");
  auto r16 = static_cast<std::uint16_t>(route);
  if (opts_.routes[r16].outage == Outage::kRefuse && !route_up(r16)) {
    ++counters_.outage_refused;
    return ws::UpgradeDecision::refuse(503, "backend unavailable", "Retry-After: 5\r\n");
  }
  ep_->state(c)->route = r16;
  // OPEN's meta is written now, while the request's bytes exist; on_open follows at once.
  MetaWriter w(scratch_.data(), scratch_.size());
  // A token in the query never reaches a backend (nor its logs).
  std::string target_buf;
  std::string_view target = gate_ ? auth::strip_token_param(req.target, target_buf) : req.target;
  w.add("path", target).add("peer", c.peer().to_string());
  char name[96];
  for (const std::string& h : opts_.forward_headers) {
    std::string_view v = req.header(h);
    if (v.empty() || h.size() + 2 > sizeof name) continue;
    std::memcpy(name, "h:", 2);
    std::memcpy(name + 2, h.data(), h.size());
    w.add(std::string_view(name, h.size() + 2), v);
  }
  std::unique_ptr<auth::Identity> who;
  if (gate_) {
    ws::UpgradeDecision refused;
    // `connect` is on the route, not the path as sent: a rule on /admin covers /admin/x and
    // /admin/ too, which that route serves (a deny on the literal path was bypassed by them).
    who = authorize(req, opts_.routes[r16].path, w, refused);
    if (!who) return refused;
  }
  // The subprotocol: the route's most preferred one that the client offers (RFC 6455 §4.2.2).
  std::string_view chosen;
  for (const std::string& p : opts_.routes[r16].protocols) {
    req.for_each_header("sec-websocket-protocol", [&](std::string_view offered) {
      if (chosen.empty() && protocol::has_token(offered, p)) chosen = p;
    });
    if (!chosen.empty()) break;
  }
  // A browser sending its token as a `bearer.` subprotocol must be answered one it offered, and
  // never the token: "wsedge" is the one to offer beside it (docs/AUTH.md §3).
  if (chosen.empty() && opts_.routes[r16].protocols.empty()) {
    req.for_each_header("sec-websocket-protocol", [&](std::string_view offered) {
      if (protocol::has_token(offered, "wsedge")) chosen = "wsedge";
    });
  }
  if (!chosen.empty()) w.add("protocol", chosen);
  // A meta that does not fit would go as an empty one: no path, no identity, the backend's view
  // of the client unlike the edge's. Only a --max-header raised far past its default gets here.
  if (!w.ok()) return ws::UpgradeDecision::refuse(431, "request too large to forward to backends");
  scratch_len_ = w.bytes().size();
  // Kept only now that the upgrade is sure: a refused one leaves no identity on its slot.
  if (who) {
    if (identities_.size() <= c.id().idx) identities_.resize(c.id().idx + 1);
    identities_[c.id().idx] = std::move(who);
  }
  return {.protocol = chosen, .deflate = opts_.routes[r16].deflate};
}

void Edge::on_open(ws::Connection c) {
  io::SocketId id = c.id();
  ConnState& st = *ep_->state(c);
  st.flags |= kOpened;
  ++open_count_;
  if (open_meta_.size() <= id.idx) open_meta_.resize(id.idx + 1);
  open_meta_[id.idx].rebuild(scratch_.data(), scratch_len_);
  if (gate_) start_identity(c);
  st.link = pick_link(st.route, id, true);
  push(st.link, open_event(id, false, false), id);
  // A client arriving after a grace period ran out (the route still down) gets one of its own.
  hold(st.route);
}

// An event about one connection: its header written and its route noted (where a closed
// client's uncounted events go when its backend fails).
Event Edge::event(Type type, std::uint16_t flags, io::SocketId id) {
  Event e;
  e.conn = id;
  e.type = type;
  if (ConnState* st = ep_->state(ws::Connection{ep_, id})) e.route = st->route;
  e.header = header_frame(type, flags, conn_id(id));
  return e;
}

Event Edge::open_event(io::SocketId id, bool failover, bool resumed) {
  Event e = event(Type::kOpen, 0, id);
  if (!failover && !resumed) {
    e.meta.copy(open_meta_[id.idx]);
    return e;
  }
  // What OPEN said, plus what has happened since: why it is announced again, and the channels
  // now (its `channels` replaced: a key twice makes the whole meta malformed). Sized by the
  // list, up to max_channels_per_conn names (a fixed 1 KiB margin made an OPEN with more go
  // as a fresh one); a list past a meta value's 64 KiB is left out, the rest still goes.
  std::vector<std::byte> list;
  channels_.for_each_of(id, [&](std::string_view ch) { append_name(list, ch); });
  std::span<const std::byte> first = bytes_of(open_meta_[id.idx]);
  std::vector<std::byte> meta(first.size() + list.size() + 64);
  MetaWriter w(meta.data(), meta.size());
  for_each_meta(first, [&](const MetaEntry& m) {
    if (m.key != "channels") w.add(m.key, m.value);
  });
  w.add(failover ? "failover" : "resumed", std::string_view());
  std::size_t marked = w.bytes().size();
  if (!list.empty()) w.add("channels", list);
  e.meta.rebuild(meta.data(), w.ok() ? w.bytes().size() : marked);
  return e;
}

void Edge::on_message(ws::Connection c, protocol::Opcode op, std::span<std::byte> payload) {
  io::SocketId id = c.id();
  ConnState& st = *ep_->state(c);
  if (op == protocol::Opcode::kText && opts_.routes[st.route].control &&
      control(c, as_text(payload)))
    return;
  Event e = event(Type::kMessage, op == protocol::Opcode::kBinary ? flag::kBinary : 0, id);
  e.payload.rebuild(payload.data(), payload.size());
  push(st.link, std::move(e), id);
}

// Queues an event on a link; a client whose backend cannot take more stops being read.
bool Edge::push(std::uint16_t li, Event&& e, io::SocketId id) {
  Link& l = *links_[li];
  bool ok = l.push(std::move(e));
  dirty_[li] = true;
  if (ok) return true;
  ConnState* st = ep_->state(ws::Connection{ep_, id});
  if (st && ep_->is_open(id) && !(st->flags & kPaused)) {
    st->flags |= kPaused;
    reactor_->pause_reading(id);
    l.paused().push_back(id);
  }
  return false;
}

void Edge::resume(std::uint16_t li) {
  if (links_[li]->accepting()) release_paused(li);
}

// Clients paused for a link read again (it accepts again, or they moved to another).
void Edge::release_paused(std::uint16_t li) {
  Link& l = *links_[li];
  for (io::SocketId id : l.paused()) {
    ConnState* st = ep_->state(ws::Connection{ep_, id});
    if (!st || !(st->flags & kPaused)) continue;
    st->flags &= static_cast<std::uint8_t>(~kPaused);
    reactor_->resume_reading(id);
  }
  l.paused().clear();
}

void Edge::on_close(ws::Connection c, std::uint16_t code, std::string_view reason) {
  io::SocketId id = c.id();
  ConnState& st = *ep_->state(c);
  channels_.unsubscribe_all(id, [&](std::string_view ch) { set_filter(ch, false); });
  counters_.subscriptions.set(channels_.subscription_count());
  --open_count_;
  Event e = event(Type::kClose, 0, id);
  std::byte meta[256];
  MetaWriter w(meta, sizeof meta);
  const char* by = st.flags & kClosedByBackend ? "backend"
                   : st.flags & kClosedByEdge  ? "edge"
                                               : "client";
  w.add_u16("code", code).add("reason", reason.substr(0, 123)).add("by", by);
  e.meta.rebuild(w.bytes().data(), w.bytes().size());
  open_meta_[id.idx].rebuild();
  if (gate_) identities_[id.idx].reset();
  push(st.link, std::move(e), id);
}

void Edge::on_drain(ws::Connection c) {
  ConnState* st = ep_->state(c);
  if (!st || st->dropped == 0) return;
  char text[64];
  int n = std::snprintf(text, sizeof text, "{\"wsedge\":\"gap\",\"dropped\":%u}", st->dropped);
  st->dropped = 0;
  c.send_text({text, static_cast<std::size_t>(n)});
}

// --- Links going up and down ---

void Edge::welcome(std::uint16_t li, std::span<const std::byte> meta) {
  Link& l = *links_[li];
  bool found = false;
  std::span<const std::byte> v = find_meta(meta, "version", found);
  if (!found || v.size() != 1 || v[0] != std::byte{kVersion}) {
    LOG_ERROR("backend_bad_version", log::kv("endpoint", l.endpoint()),
              log::kv("detail", "a version we did not offer; treated as down"));
    return;
  }
  std::uint64_t instance = 0;
  read_u64(find_meta(meta, "instance", found), instance);
  bool fresh = l.welcomed(instance);
  ++counters_.backend_ups;
  count_routes_down();
  LOG_INFO("backend_up", log::kv("endpoint", l.endpoint()), log::kv("resend", l.window().size()));
  if (fresh) {
    // A backend that forgot everything hears each connection routed to it before any event,
    // except those whose own OPEN is among what goes again.
    std::vector<bool> in_window(open_meta_.size(), false);
    for (std::size_t i = 0; i < l.window().size(); ++i) {
      Event& e = l.window()[i];
      if (e.type == Type::kOpen && e.conn.idx < in_window.size()) in_window[e.conn.idx] = true;
    }
    std::vector<Event> first;
    for_each_conn([&](ws::Connection c, ConnState& st) {
      if (st.link == li && !in_window[c.id().idx]) first.push_back(open_event(c.id(), false, true));
    });
    if (!first.empty()) l.prepend(first);
  }
  l.flush();
  dirty_[li] = true;
  resume(li);
  // Clients routed to a backend of this route that is still down (both were down when they
  // came, and only this one is back) move here: without it they stayed paused on the dead one
  // with no grace period left to close them.
  for (std::uint16_t r : link_routes_[li]) {
    for (std::uint16_t other : routes_[r].links) {
      if (links_[other]->state() != Link::State::kUp) fail_over(other);
    }
    RouteState& rs = routes_[r];
    reactor_->cancel(rs.grace);
    reactor_->cancel(rs.spread);
    rs.grace = {};
    rs.spread = {};
    rs.closing.clear();
  }
}

void Edge::count_routes_down() {
  std::uint64_t down = 0;
  for (std::size_t r = 0; r < routes_.size(); ++r) down += !route_up(static_cast<std::uint16_t>(r));
  counters_.routes_down.set(down);
}

void Edge::link_down(std::uint16_t li) {
  Link& l = *links_[li];
  if (l.state() == Link::State::kDown) return;
  l.down();
  ++counters_.backend_downs;
  count_routes_down();
  LOG_WARN("backend_down", log::kv("endpoint", l.endpoint()),
           log::kv("unacknowledged", l.window().size()));
  bool any_up = false;
  for (std::uint16_t r : link_routes_[li]) {
    // Hold: clients stay, each paused at its next message; the grace period, counted from
    // the moment the route lost its last backend, bounds it.
    if (!route_up(r))
      hold(r);
    else
      any_up = true;
  }
  if (any_up) fail_over(li);
}

// The link's connections move to the backends of its route that are up, each announced there
// before any of its events that the dead one had not counted.
void Edge::fail_over(std::uint16_t li) {
  Link& l = *links_[li];
  for_each_conn([&](ws::Connection c, ConnState& st) {
    // A route sharing this backend with none up keeps its clients here, held (link_down).
    if (st.link != li || !route_up(st.route)) return;
    st.link = pick_link(st.route, c.id(), true);
    ++counters_.failovers;
    links_[st.link]->push(open_event(c.id(), true, false));
    dirty_[st.link] = true;
  });
  // What the dead one had not counted follows, in order. An open connection's own OPEN is
  // left out (its failover OPEN went first); one that has closed since goes whole (its OPEN if
  // uncounted, its messages, its CLOSE) to the backend its id picks: nothing it sent is lost.
  // A held client's events go back where they were, in order, for when it returns.
  Ring<Event> moved = l.take_all();
  while (!moved.empty()) {
    Event& e = moved.front();
    ConnState* st = ep_->state(ws::Connection{ep_, e.conn});
    std::uint16_t to = st ? st->link : pick_link(e.route, e.conn, true);
    if (!st || e.type != Type::kOpen || to == li) {
      links_[to]->push(std::move(e));
      dirty_[to] = true;
    }
    moved.pop_front();
  }
  release_paused(li);
}

// Starts the route's grace period unless a backend of it is up or one runs (or its clients are
// being closed already).
void Edge::hold(std::uint16_t route) {
  RouteState& rs = routes_[route];
  if (route_up(route) || rs.grace != io::TimerId{} || rs.spread != io::TimerId{}) return;
  rs.grace = reactor_->schedule(opts_.grace_ms, &Edge::grace_timer, &rs);
}

void Edge::grace_timer(void* ctx, io::Reactor&) {
  auto* rs = static_cast<RouteState*>(ctx);
  rs->grace = {};
  rs->edge->start_closing(rs->index);
}

// The grace period is over: the route's clients are closed with 1013, a share every tick over
// the spread, so they do not all come back at the same instant.
void Edge::start_closing(std::uint16_t route) {
  RouteState& rs = routes_[route];
  rs.closing.clear();
  for_each_conn([&](ws::Connection c, ConnState& st) {
    if (st.route == route) rs.closing.push_back(c.id());
  });
  LOG_WARN("route_down_closing", log::kv("route", opts_.routes[route].path),
           log::kv("clients", rs.closing.size()));
  std::size_t ticks = std::max<std::size_t>(1, opts_.close_spread_ms / kSpreadTickMs);
  rs.closing_per_tick = (rs.closing.size() + ticks - 1) / ticks;
  spread_timer(&rs, *reactor_);
}

void Edge::spread_timer(void* ctx, io::Reactor& r) {
  auto* rs = static_cast<RouteState*>(ctx);
  Edge* self = rs->edge;
  for (std::size_t i = 0; i < rs->closing_per_tick && !rs->closing.empty(); ++i) {
    ws::Connection c{self->ep_, rs->closing.back()};
    rs->closing.pop_back();
    ConnState* st = self->ep_->state(c);
    if (!st || !c.open()) continue;
    st->flags |= kClosedByEdge;
    ++self->counters_.outage_closes;
    c.close(protocol::close_code::kTryAgainLater, "backend unavailable");
  }
  rs->spread =
      rs->closing.empty() ? io::TimerId{} : r.schedule(kSpreadTickMs, &Edge::spread_timer, rs);
}

bool Edge::route_up(std::uint16_t route) const {
  for (std::uint16_t li : routes_[route].links) {
    if (links_[li]->state() == Link::State::kUp) return true;
  }
  return false;
}

// Sticky: the connection id's hash over the route's backends that are up (all of them when
// none is, so events wait for whichever comes back first).
std::uint16_t Edge::pick_link(std::uint16_t route, io::SocketId id, bool up_only) const {
  const std::vector<std::uint16_t>& all = routes_[route].links;
  std::uint16_t up[64];
  std::size_t n = 0;
  for (std::uint16_t li : all) {
    if (n < 64 && (!up_only || links_[li]->state() == Link::State::kUp)) up[n++] = li;
  }
  std::uint64_t h = (std::uint64_t{id.idx} << 32 | id.gen) * 0x9E3779B97F4A7C15ull;
  if (n == 0) return all[(h >> 32) % all.size()];
  return up[(h >> 32) % n];
}

// --- Commands down ---

ws::Connection Edge::resolve(const ConnId& id) {
  if (id.node != opts_.node_id || id.epoch != opts_.epoch || id.core != core_) return {};
  ws::Connection c{ep_, io::SocketId{id.slot, id.gen}};
  return c.open() ? c : ws::Connection{};
}

void Edge::handle_backend(std::uint16_t li, Frames& m) {
  Header h;
  HeaderError he = m.n >= 2 ? decode_header(bytes_of(m.f[0]), h) : HeaderError::kShort;
  if (he != HeaderError::kOk) {
    refuse_message(li, {}, {}, error_code(he), "malformed message");
    return;
  }
  std::span<const std::byte> meta = bytes_of(m.f[1]);
  bool found = false;
  std::span<const std::byte> seq = find_meta(meta, "seq", found);
  if (!valid_meta(meta)) {
    refuse_message(li, h.id, {}, "bad-meta", "meta frame does not parse");
    return;
  }
  ++counters_.commands;
  counters_.received.count(static_cast<std::uint8_t>(h.type));
  bool ok = true;
  switch (h.type) {
    case Type::kWelcome:
      // Only an answer to our HELLO: one read after the monitor said the link broke would
      // mark a dead backend up (and cancel its route's grace period).
      if (links_[li]->state() == Link::State::kConnected) welcome(li, meta);
      return;
    case Type::kReceived: {
      std::uint64_t count = 0;
      if (links_[li]->state() == Link::State::kUp &&
          read_u64(find_meta(meta, "count", found), count)) {
        links_[li]->counted(count);
        resume(li);
      }
      return;
    }
    case Type::kSend: {
      if (m.n < 3) {
        refuse_message(li, h.id, seq, "bad-frame", "SEND without its payload frame");
        return;
      }
      SendOutcome o = command_send(h, meta, bytes_of(m.f[2]), li);
      if (o == SendOutcome::kRefused) return;  // answered ERROR already: never also ACK
      ok = o == SendOutcome::kDone;
      break;
    }
    case Type::kCloseCommand: {
      ws::Connection c = resolve(h.id);
      ok = c.open();
      if (ok) {
        std::uint16_t code = 1000;
        read_u16(find_meta(meta, "code", found), code);
        if (!protocol::may_send_close_code(code)) code = 1000;
        std::span<const std::byte> reason = find_meta(meta, "reason", found);
        if (!protocol::Utf8Validator::valid(reason.data(), reason.size())) reason = {};
        ep_->state(c)->flags |= kClosedByBackend;
        c.close(code, as_text(reason));
      }
      break;
    }
    case Type::kSubscribe:
    case Type::kUnsubscribe: {
      SendOutcome o = command_subscribe(h, meta, h.type == Type::kSubscribe, li, seq);
      if (o == SendOutcome::kRefused) return;  // answered ERROR already
      ok = o == SendOutcome::kDone;
      break;
    }
    case Type::kSnapshotRequest:
      send_snapshot(li, seq);
      return;
    case Type::kAcl:
      command_acl(li, h, meta, seq);
      return;
    case Type::kExpires:
      ok = command_expires(h, meta);
      break;
    default:
      refuse_message(li, h.id, seq, "unknown-type", "not a command this edge takes");
      return;
  }
  if (!ok) ++counters_.gone;
  if (h.flags & flag::kAck) {
    if (ok)
      answer(li, Type::kAck, h.id, seq);
    else
      answer(li, Type::kError, h.id, seq, "gone", "no such connection");
  }
}

Edge::SendOutcome Edge::command_send(const Header& h, std::span<const std::byte> meta,
                                     std::span<const std::byte> payload, std::uint16_t li) {
  bool found = false;
  std::span<const std::byte> seq = find_meta(meta, "seq", found);
  auto op = h.flags & flag::kBinary ? protocol::Opcode::kBinary : protocol::Opcode::kText;
  // Clients must fail a connection on bad text (RFC 6455 §8.1): refuse it here instead.
  if (op == protocol::Opcode::kText &&
      !protocol::Utf8Validator::valid(payload.data(), payload.size())) {
    refuse_message(li, h.id, seq, "bad-frame", "text is not UTF-8");
    return SendOutcome::kRefused;
  }
  std::span<const std::byte> ids = find_meta(meta, "ids", found);
  if (!found) {
    ws::Connection c = resolve(h.id);
    if (!c.open()) return SendOutcome::kGone;
    if (over_budget(c, payload.size())) {
      close_slow(c);
      return SendOutcome::kDone;
    }
    c.send(op, payload);
    ++counters_.sends;
    return SendOutcome::kDone;
  }
  if (ids.empty() || ids.size() % kConnIdSize != 0 || ids.size() / kConnIdSize > 128) {
    refuse_message(li, h.id, seq, "bad-meta", "ids: 1 to 128 ids of 18 bytes");
    return SendOutcome::kRefused;
  }
  // One frame for all of them (one per compressed variant): each client's queue holds a
  // reference, not a copy.
  ws::PreparedMessage frame = ep_->prepare_message(op, payload);
  if (!frame.ok()) {
    refuse_message(li, h.id, seq, "bad-frame", "payload too large");
    return SendOutcome::kRefused;
  }
  for (std::size_t off = 0; off < ids.size(); off += kConnIdSize) {
    ConnId id = read_conn_id(ids.data() + off);
    ws::Connection c = resolve(id);
    if (!c.open()) {
      ++counters_.gone;
      if (h.flags & flag::kAck) answer(li, Type::kError, id, seq, "gone", "no such connection");
      continue;
    }
    if (over_budget(c, frame.plain->len)) {
      close_slow(c);
      continue;
    }
    ep_->send_prepared(c.id(), frame);
    ++counters_.sends;
  }
  ep_->release_prepared(frame);
  // Gone ids were answered one by one; the command itself is acknowledged.
  return SendOutcome::kDone;
}

Edge::SendOutcome Edge::command_subscribe(const Header& h, std::span<const std::byte> meta, bool on,
                                          std::uint16_t li, std::span<const std::byte> seq) {
  bool found = false;
  std::span<const std::byte> list = find_meta(meta, "channels", found);
  // All or nothing: a list that is malformed anywhere changes nothing.
  std::size_t count = 0;
  bool valid = found && for_each_name(list, [&](std::string_view ch) {
                 if (ch.find('\0') != std::string_view::npos) found = false;
                 ++count;
               });
  if (!valid || !found) {
    refuse_message(li, h.id, seq, "bad-meta", "channels: names of 1-255 bytes, no NUL");
    return SendOutcome::kRefused;
  }
  ws::Connection c = resolve(h.id);
  if (!c.open()) return SendOutcome::kGone;
  // The limit counts what is new: subscribing again to what it holds changes nothing.
  if (on) {
    count = 0;
    for_each_name(list, [&](std::string_view ch) { count += !channels_.has(c.id(), ch); });
  }
  if (on && channels_.count_of(c.id()) + count > opts_.max_channels_per_conn) {
    answer(li, Type::kError, h.id, seq, "full", "too many channels for one connection");
    return SendOutcome::kRefused;
  }
  // The ACL binds backends too: all or nothing, like a malformed list.
  bool denied = false;
  if (on) for_each_name(list, [&](std::string_view ch) { denied |= !may_subscribe(c.id(), ch); });
  if (denied) {
    answer(li, Type::kError, h.id, seq, "denied", "the ACL does not allow subscribe");
    return SendOutcome::kRefused;
  }
  for_each_name(list, [&](std::string_view ch) { subscribe(c.id(), ch, on); });
  return SendOutcome::kDone;
}

void Edge::subscribe(io::SocketId id, std::string_view channel, bool on) {
  Channels::Change change =
      on ? channels_.subscribe(id, channel) : channels_.unsubscribe(id, channel);
  if (change == Channels::Change::kFirst) set_filter(channel, true);
  if (change == Channels::Change::kLast) set_filter(channel, false);
  counters_.subscriptions.set(channels_.subscription_count());
}

void Edge::set_filter(std::string_view channel, bool on) {
  // SUB matches prefixes: the terminator keeps "chat" from hearing "chatter".
  char topic[257];
  std::memcpy(topic, channel.data(), channel.size());
  topic[channel.size()] = '\0';
  std::string_view t(topic, channel.size() + 1);
  if (on)
    sub_->set(zmq::sockopt::subscribe, t);
  else
    sub_->set(zmq::sockopt::unsubscribe, t);
  sub_dirty_ = true;
}

void Edge::answer(std::uint16_t li, Type type, const ConnId& id, std::span<const std::byte> seq,
                  std::string_view code, std::string_view reason) {
  Frames m;
  m.f[0] = header_frame(type, 0, id);
  std::byte meta[512];
  MetaWriter w(meta, sizeof meta);
  if (!seq.empty()) w.add("seq", seq);
  if (!code.empty()) w.add("code", code).add("reason", reason);
  m.f[1].rebuild(w.bytes().data(), w.bytes().size());
  m.n = 2;
  if (!links_[li]->send_control(m)) ++counters_.control_dropped;
  dirty_[li] = true;
}

void Edge::bad_message(std::string_view from, std::string_view code, std::string_view reason) {
  ++counters_.bad_messages;
  LOG_WARN_LIMITED(10, "backend_bad_message", log::kv("from", from), log::kv("code", code),
                   log::kv("reason", reason),
                   log::kv("bad_messages", counters_.bad_messages.get()));
}

void Edge::refuse_message(std::uint16_t li, const ConnId& id, std::span<const std::byte> seq,
                          std::string_view code, std::string_view reason) {
  bad_message(links_[li]->endpoint(), code, reason);
  answer(li, Type::kError, id, seq, code, reason);
}

void Edge::send_snapshot(std::uint16_t li, std::span<const std::byte> seq) {
  std::vector<std::byte> part;
  std::uint32_t index = 0;
  auto flush_part = [&](bool last) {
    Frames m;
    m.f[0] = header_frame(Type::kSnapshot, 0, {});
    std::byte meta[64];
    MetaWriter w(meta, sizeof meta);
    if (!seq.empty()) w.add("seq", seq);
    w.add_u32("part", index++);
    if (last) w.add("last", std::string_view());
    m.f[1].rebuild(w.bytes().data(), w.bytes().size());
    m.f[2].rebuild(part.data(), part.size());
    m.n = 3;
    if (!links_[li]->send_control(m)) ++counters_.control_dropped;
    part.clear();
  };
  for_each_conn([&](ws::Connection c, ConnState& st) {
    if (st.link != li) return;
    if (part.size() > kSnapshotPart - 1024) flush_part(false);
    std::size_t at = part.size();
    part.resize(at + kConnIdSize + 2);
    write_conn_id(part.data() + at, conn_id(c.id()));
    std::uint16_t n = 0;
    channels_.for_each_of(c.id(), [&](std::string_view ch) {
      append_name(part, ch);
      ++n;
    });
    part[at + kConnIdSize] = static_cast<std::byte>(n >> 8);
    part[at + kConnIdSize + 1] = static_cast<std::byte>(n & 0xFF);
  });
  flush_part(true);
  dirty_[li] = true;
}

void Edge::beat_timer(void* self, io::Reactor&) {
  static_cast<Edge*>(self)->beat();
}

// A safety net for links that are not up: their monitor's readiness edge can go unseen (a
// handshake reported only at shutdown left a core without its backend), so they are looked at
// every tick until they are up. Up links cost nothing here.
void Edge::check_timer(void* self_ptr, io::Reactor& r) {
  auto* self = static_cast<Edge*>(self_ptr);
  for (std::uint16_t li = 0; li < self->links_.size(); ++li) {
    if (self->links_[li]->state() == Link::State::kUp && !self->watch_failed_) continue;
    self->pump_monitor(li);
    self->pump_link(li);
  }
  if (self->watch_failed_) self->pump_sub();
  self->check_timer_ = r.schedule(kLinkCheckMs, &Edge::check_timer, self);
}

void Edge::beat() {
  for (std::uint16_t li = 0; li < links_.size(); ++li) {
    if (links_[li]->hello_pending() && links_[li]->send_hello()) dirty_[li] = true;
    if (links_[li]->state() != Link::State::kUp) continue;
    Frames m;
    m.f[0] = header_frame(Type::kBeat, 0, conn_id({0, 0}));
    std::byte meta[96];
    MetaWriter w(meta, sizeof meta);
    w.add_u32("connections", open_count_).add_u32("interval", opts_.beat_ms);
    if (draining_) w.add_u32("draining", drain_ms_);
    m.f[1].rebuild(w.bytes().data(), w.bytes().size());
    m.n = 2;
    if (!links_[li]->send_control(m)) ++counters_.control_dropped;
    dirty_[li] = true;
  }
  beat_timer_ = reactor_->schedule(opts_.beat_ms, &Edge::beat_timer, this);
}

void Edge::on_draining(std::uint32_t window_ms) {
  // Backends hear it now, not at the next beat: they can stop routing work to this node's
  // connections, which close with 1001 over the window.
  draining_ = true;
  drain_ms_ = window_ms;
  reactor_->cancel(beat_timer_);
  beat();
  LOG_INFO("draining", log::kv("connections", open_count_), log::kv("window_ms", window_ms));
}

// --- Channels ---

// As pump_link: receiving until EAGAIN re-arms the fd.
void Edge::pump_sub() {
  Frames m;
  bool oversized = false;
  while (Link::receive(*sub_, m, oversized)) {
    if (oversized || m.n != 4) {
      bad_message("publish", "bad-frame", "not 4 frames");
      continue;
    }
    handle_publish(m);
  }
}

void Edge::handle_publish(Frames& m) {
  Header h;
  std::span<const std::byte> meta = bytes_of(m.f[2]);
  if (decode_header(bytes_of(m.f[1]), h) != HeaderError::kOk || h.type != Type::kPublish ||
      !valid_meta(meta)) {
    bad_message("publish", "bad-meta", "header or meta does not parse");
    return;
  }
  bool found = false;
  std::string_view channel = as_text(find_meta(meta, "channel", found));
  std::span<const std::byte> topic = bytes_of(m.f[0]);
  if (topic.size() != channel.size() + 1 || as_text(topic.first(channel.size())) != channel) {
    bad_message("publish", "bad-frame", "topic is not the channel");
    return;
  }
  ++counters_.publishes;
  counters_.received.count(static_cast<std::uint8_t>(Type::kPublish));
  Channels::Channel* ch = channels_.find(channel);
  if (!ch) return;  // the last subscriber left while it was on its way
  std::uint64_t seq = 0;
  if (read_u64(find_meta(meta, "seq", found), seq))
    counters_.publish_gaps +=
        Channels::note_seq(*ch, as_text(find_meta(meta, "publisher", found)), seq);
  std::span<const std::byte> payload = bytes_of(m.f[3]);
  auto op = h.flags & flag::kBinary ? protocol::Opcode::kBinary : protocol::Opcode::kText;
  if (op == protocol::Opcode::kText &&
      !protocol::Utf8Validator::valid(payload.data(), payload.size())) {
    bad_message("publish", "bad-frame", "text is not UTF-8");
    return;
  }
  // Framed once per variant (compressed per peer window, or not); every subscriber's queue
  // holds the same buffer as the others of its variant.
  ws::PreparedMessage frame = ep_->prepare_message(op, payload);
  if (!frame.ok()) {
    bad_message("publish", "bad-frame", "payload too large");
    return;
  }
  for (std::size_t i = 0; i < ch->subs.size(); ++i) deliver(ch->subs[i].id, frame);
  ep_->release_prepared(frame);
}

void Edge::deliver(io::SocketId id, ws::PreparedMessage& frame) {
  ws::Connection c{ep_, id};
  std::size_t queued = c.buffered();
  ConnState* st = ep_->state(c);
  // Budgeted by the uncompressed frame: an upper bound of what any variant queues.
  if (over_budget(c, frame.plain->len)) {
    if (opts_.routes[st->route].slow == SlowPolicy::kClose) {
      close_slow(c);
    } else {
      // The engine says "drained" only below its own low-water mark, which a budget under it
      // never reaches: a timer watches the connections owed a gap notice instead.
      if (st->dropped++ == 0) {
        gapped_.push_back(id);
        if (gap_timer_ == io::TimerId{})
          gap_timer_ = reactor_->schedule(kGapCheckMs, &Edge::gap_timer, this);
      }
      ++counters_.channel_drops;
    }
    return;
  }
  if (st->dropped && queued < opts_.output_budget / 2) on_drain(c);
  ep_->send_prepared(id, frame);
  ++counters_.deliveries;
}

// Tells each client that lost channel messages how many, once its output has drained to half
// the budget; those still full wait for the next tick.
void Edge::gap_timer(void* self_ptr, io::Reactor& r) {
  auto* self = static_cast<Edge*>(self_ptr);
  self->gap_timer_ = {};
  std::size_t keep = 0;
  for (io::SocketId id : self->gapped_) {
    ws::Connection c{self->ep_, id};
    ConnState* st = self->ep_->state(c);
    if (!st || !c.open() || st->dropped == 0) continue;  // gone, or told already
    if (c.buffered() < self->opts_.output_budget / 2) {
      self->on_drain(c);
      continue;
    }
    self->gapped_[keep++] = id;
  }
  self->gapped_.resize(keep);
  if (keep) self->gap_timer_ = r.schedule(kGapCheckMs, &Edge::gap_timer, self);
}

// The slow-consumer policy applies once what is queued to a client reaches the budget (a
// single message larger than the budget still goes to a client that keeps up), and before a
// message would take its queue past the engine's --max-outbound: that would end the connection
// at once, inside a fan-out loop over the channel the ending removes it from.
bool Edge::over_budget(ws::Connection c, std::size_t next) const {
  std::size_t queued = c.buffered();
  return queued >= opts_.output_budget || queued + next > ep_->config().max_outbound;
}

void Edge::close_slow(ws::Connection c) {
  ConnState* st = ep_->state(c);
  if (!st || !c.open()) return;
  st->flags |= kClosedByEdge;
  ++counters_.slow_closes;
  c.close(1008, "slow consumer");
}

}  // namespace wsedge::bridge
