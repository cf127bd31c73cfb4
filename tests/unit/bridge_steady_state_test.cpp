// The bridge's path end to end on one core, counted like the engine's echo
// (endpoint_test.cpp): WebSocket clients (their own reactor and thread) send to wsedge's edge
// (bridge::Edge on a reactor of its own), which hands each message to a backend over ZeroMQ
// (a ROUTER on a third thread, echoing with SEND); the echo comes back to the client. Between a
// warm-up and the end of the steady state, not one operator new runs on the edge's or the
// backend's thread.
// (libzmq's message bodies over 33 bytes come from malloc, outside this count: they are
// libzmq's to pool.) Auth costs nothing per message either: with a token verified at the
// upgrade and an ACL, on a route with the client control protocol, half the messages are
// client publishes the ACL checks.
#include <gtest/gtest.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "auth_test_keys.hpp"
#include "bridge/edge.hpp"
#include "counting_new.hpp"
#include "engine/io/address.hpp"
#include "test_reactor.hpp"

namespace wsedge {
namespace {

using protocol::Opcode;

// A backend that echoes every MESSAGE with a SEND and counts events with RECEIVED, reusing its
// message objects so that it allocates nothing itself.
void echo_backend(zmq::socket_t& router, const std::atomic<bool>& stop) {
  using namespace bridge;
  zmq::message_t f[4];
  zmq::message_t rid;
  std::uint64_t taken = 0;
  while (!stop.load()) {
    zmq::pollitem_t item{router.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(20)) == 0) continue;
    int n = 0;
    do {
      (void)router.recv(f[n], zmq::recv_flags::none);
    } while (f[n++].more() && n < 4);
    Header h;
    if (n < 3 || decode_header({static_cast<const std::byte*>(f[1].data()), f[1].size()}, h) !=
                     HeaderError::kOk)
      continue;
    std::byte meta[64];
    MetaWriter w(meta, sizeof meta);
    auto reply = [&](Type type, std::uint16_t flags, const ConnId& id, bool payload) {
      auto hb = encode_header({kVersion, type, flags, id});
      rid.copy(f[0]);  // sending empties a message: the routing id serves every reply
      router.send(rid, zmq::send_flags::sndmore);
      router.send(zmq::const_buffer(hb.data(), hb.size()), zmq::send_flags::sndmore);
      router.send(zmq::const_buffer(meta, w.bytes().size()),
                  payload ? zmq::send_flags::sndmore : zmq::send_flags::none);
      if (payload) router.send(f[3], zmq::send_flags::none);
    };
    if (h.type == Type::kHello) {
      const std::byte version[] = {std::byte{kVersion}};
      w.add("version", version).add_u64("instance", 1);
      reply(Type::kWelcome, 0, {}, false);
      taken = 0;
      continue;
    }
    // A client publish is answered like a message: the client sees its round trip end.
    if ((h.type == Type::kMessage || h.type == Type::kClientPublish) && n == 4)
      reply(Type::kSend, h.flags, h.id, true);
    if (h.type == Type::kOpen || h.type == Type::kMessage || h.type == Type::kClose ||
        h.type == Type::kClientPublish) {
      if (++taken % 64 == 0) {
        w = MetaWriter(meta, sizeof meta);
        w.add_u64("count", taken);
        reply(Type::kReceived, 0, {}, false);
      }
    }
  }
}

// Clients that each send, wait for the echo, and send again, `rounds` times; with `publish`
// set, every other message is a `wsedge:pub` (text) and the backend answers it the same way.
struct Clients {
  struct ConnState {
    std::uint64_t left = 0;
  };
  ws::Endpoint<Clients>* ep = nullptr;
  io::Reactor* reactor = nullptr;
  std::vector<std::byte> payload;
  std::vector<std::byte> publish;  // empty: binary messages only
  std::uint64_t rounds = 0;
  unsigned count = 0, closed = 0;
  std::uint64_t echoes = 0, mismatches = 0;
  std::uint64_t warm_at = 0, end_at = 0, warm_allocs = 0, end_allocs = 0;
  // What the edge's and the backend's threads allocated: the path under test. The clients'
  // own output pool may still grow with the scheduling of three threads; it is not measured.
  const std::atomic<std::uint64_t>* counted = nullptr;

  void send(ws::Connection c) {
    if (!publish.empty() && ep->state(c)->left % 2)
      c.send(Opcode::kText, publish);
    else
      c.send(Opcode::kBinary, payload);
  }
  void on_open(ws::Connection c) {
    ep->state(c)->left = rounds;
    send(c);
  }
  void on_message(ws::Connection c, Opcode op, std::span<std::byte> p) {
    ++echoes;
    // A publish comes back as what followed its channel: the payload, as text.
    bool same = op == Opcode::kText
                    ? std::equal(p.begin(), p.end(), publish.end() - payload.size(), publish.end())
                    : std::equal(p.begin(), p.end(), payload.begin(), payload.end());
    if (!same) ++mismatches;
    if (echoes == warm_at) warm_allocs = counted->load();
    if (echoes == end_at) end_allocs = counted->load();
    if (--ep->state(c)->left == 0)
      c.close(1000, "done");
    else
      send(c);
  }
  void on_close(ws::Connection, std::uint16_t, std::string_view) {
    if (++closed == count) reactor->exit_when_idle();
  }
  void on_drain(ws::Connection) {}
};

TEST(BridgeSteadyState, ClientToBackendAndBackAllocatesNothing) {
  test::TempDir dir;
  const std::string secret(32, 's');
  struct Case {
    std::size_t size;
    bool auth;
  };
  for (Case k : {Case{16, false}, Case{1024, false}, Case{16, true}}) {
    std::size_t size = k.size;
    zmq::context_t ctx(1);
    zmq::socket_t router(ctx, zmq::socket_type::router);
    router.bind("inproc://steady-state");
    bridge::Options opts;
    opts.routes.push_back({"/", {"inproc://steady-state"}});
    opts.routes.back().control = k.auth;
    auth::Options auth_opts;
    std::string target = "/";
    if (k.auth) {
      auth_opts.mode = auth::Mode::kRequired;
      auth_opts.keys.secret_files.emplace_back(auth::Alg::kHS256, dir.write("k.key", secret));
      auth_opts.acl_file = dir.write("acl.toml", R"([[allow]]
roles = ["user"]
resources = ["/", "chat:*"]
permissions = ["connect", "publish"]
)");
      target += "?token=" + test::make_token(auth::Alg::kHS256, nullptr, secret,
                                             R"({"alg":"HS256","typ":"JWT"})",
                                             R"({"sub":"u","exp":4000000000,"roles":["user"]})");
    }
    opts.node_name = "test";
    std::atomic<bool> stop_backend{false};
    std::atomic<std::uint64_t> allocations{0};
    std::thread backend([&] {
      test::count_thread_into(&allocations);
      echo_backend(router, stop_backend);
    });

    io::Address addr = io::parse_address("127.0.0.1:0");
    int lfd = io::open_listener(addr, 128);
    addr.set_port(io::local_address(lfd).port());
    std::atomic<io::Reactor*> server_reactor{nullptr};
    std::thread server([&] {
      test::count_thread_into(&allocations);
      io::Reactor reactor(test::small_reactor(), 0);
      bridge::Edge edge(ctx, opts, auth_opts, 0, 1);
      // The access log on: its per-message statistics must not allocate either.
      ws::EndpointConfig cfg;
      cfg.access_log = true;
      ws::Endpoint<bridge::Edge> ep(reactor, cfg, edge);
      edge.on_start(ep);
      reactor.listen(lfd);
      server_reactor = &reactor;
      reactor.run(ep);
      edge.on_stop();
      EXPECT_EQ(edge.counters().bad_messages, 0u);
    });
    while (!server_reactor.load()) std::this_thread::yield();

    Clients app;
    app.payload.assign(size, std::byte{'b'});
    if (k.auth) {
      std::string_view pub = "wsedge:pub chat:x ";
      auto b = std::as_bytes(std::span(pub.data(), pub.size()));
      app.publish.assign(b.begin(), b.end());
      app.publish.insert(app.publish.end(), app.payload.begin(), app.payload.end());
    }
    app.rounds = 2000;
    app.count = 4;
    app.warm_at = 2000;
    app.end_at = 6000;
    app.counted = &allocations;
    {
      io::Reactor reactor(test::small_reactor(), 1);
      app.reactor = &reactor;
      ws::Endpoint<Clients> ep(reactor, {}, app);
      app.ep = &ep;
      for (unsigned i = 0; i < app.count; ++i) ep.connect(addr, "localhost", target);
      reactor.run(ep);
    }
    server_reactor.load()->request_stop();
    server.join();
    stop_backend = true;
    backend.join();

    ASSERT_EQ(app.echoes, 8000u) << size;
    EXPECT_EQ(app.mismatches, 0u);
    EXPECT_GT(app.warm_allocs, 0u);
    EXPECT_EQ(app.end_allocs, app.warm_allocs) << "allocations per message at " << size << " bytes";
  }
}

}  // namespace
}  // namespace wsedge
