// EndpointBase::reconfigure with connections open (a SIGHUP reload): state derived from the
// config is re-derived over what open connections already use. A rate turned on over an open
// connection indexed a bucket table sized for none; a per-address table dropped under counted
// connections left reset() releasing into freed memory.
#include <gtest/gtest.h>

#include <functional>
#include <string_view>
#include <vector>

#include "engine/io/reactor.hpp"
#include "engine/ws/endpoint.hpp"
#include "test_reactor.hpp"

namespace wsedge {
namespace {

using protocol::Opcode;

// The server echoes. Client events go to the test's steps.
struct App {
  ws::Endpoint<App>* ep = nullptr;
  std::function<void(ws::Connection)> opened = [](ws::Connection) {};
  std::function<void(ws::Connection)> echoed = [](ws::Connection) {};
  std::function<void()> closed = [] {};
  std::vector<std::uint16_t> client_codes;

  void on_open(ws::Connection c) {
    if (c.is_client()) opened(c);
  }
  void on_message(ws::Connection c, Opcode op, std::span<std::byte> p) {
    if (c.is_client())
      echoed(c);
    else
      c.send(op, p);
  }
  void on_close(ws::Connection c, std::uint16_t code, std::string_view) {
    if (!c.is_client()) return;
    client_codes.push_back(code);
    closed();
  }
  void on_drain(ws::Connection) {}
};

struct Harness {
  io::Reactor reactor{test::small_reactor(), 0};
  App app;
  ws::Endpoint<App> ep{reactor, {}, app};
  io::Address addr = io::parse_address("127.0.0.1:0");

  Harness() {
    app.ep = &ep;
    int lfd = io::open_listener(addr, 128);
    addr.set_port(io::local_address(lfd).port());
    reactor.listen(lfd);
  }
  void connect() { ep.connect(addr, "localhost", "/"); }
  void finish() {
    reactor.stop_listening();
    reactor.exit_when_idle();
  }
};

TEST(Reconfigure, AMessageRateTurnedOnAppliesToAnOpenConnection) {
  Harness h;
  ws::EndpointConfig limited;
  limited.max_msg_rate = 1;
  limited.msg_burst = 2;
  int echoes = 0;
  h.app.opened = [](ws::Connection c) { c.send_text("first"); };
  h.app.echoed = [&](ws::Connection c) {
    if (++echoes > 1) return;
    // Open, with no rate so far: the reload gives it a full bucket of the new burst (2).
    h.ep.reconfigure(limited);
    for (int i = 0; i < 4; ++i) c.send_text("again");
  };
  h.app.closed = [&] { h.finish(); };
  h.connect();
  h.reactor.run(h.ep);
  EXPECT_EQ(h.app.client_codes, (std::vector<std::uint16_t>{1008}));
  EXPECT_EQ(h.ep.counters().msg_rate_closes, 1u);
  EXPECT_EQ(echoes, 3);  // "first", then the burst of two
}

TEST(Reconfigure, APerAddressTableComesAndGoesUnderOpenConnections) {
  Harness h;
  ws::EndpointConfig per_ip;
  per_ip.max_conns_per_ip = 1;
  per_ip.min_recv_rate = 1;
  int opened = 0;
  bool dropped = false;
  std::vector<ws::Connection> open;
  // Once the refused client has failed and the counted one is open (in either order).
  auto drop = [&] {
    if (dropped || opened < 2 || h.app.client_codes.empty()) return;
    dropped = true;
    // Dropped while a connection counts in it: closing that connection must not touch it.
    h.ep.reconfigure({});
    for (ws::Connection c : open) c.close(1000, "done");
  };
  h.app.opened = [&](ws::Connection c) {
    open.push_back(c);
    if (++opened == 1) {
      // Counts connections accepted from now on: the open one is not among them.
      h.ep.reconfigure(per_ip);
      h.connect();  // counted: the address's one connection
      h.connect();  // its second: 503, the client sees the upgrade fail
    }
    drop();
  };
  h.app.closed = [&] {
    drop();
    if (h.app.client_codes.size() == 3) h.finish();
  };
  h.connect();
  h.reactor.run(h.ep);
  EXPECT_EQ(opened, 2);
  EXPECT_EQ(h.app.client_codes, (std::vector<std::uint16_t>{1006, 1000, 1000}));
  EXPECT_EQ(h.ep.counters().ip_conn_refused, 1u);
  EXPECT_EQ(h.reactor.live(), 0u);
}

TEST(Reconfigure, MaxMessageAppliesFromTheNextFrame) {
  Harness h;
  ws::EndpointConfig small;
  small.max_message = 10;
  h.app.opened = [](ws::Connection c) { c.send_text("twelve bytes"); };
  h.app.echoed = [&](ws::Connection c) {
    h.ep.reconfigure(small);
    c.send_text("twelve bytes");
  };
  h.app.closed = [&] { h.finish(); };
  h.connect();
  h.reactor.run(h.ep);
  EXPECT_EQ(h.app.client_codes, (std::vector<std::uint16_t>{1009}));
}

TEST(Reconfigure, DeflateSettingsChangeUnderCompressedConnections) {
  // Two connections with context takeover both ways (zlib streams at level 9). After the first
  // echo a reload lowers the level (a new codec), turns deflate off and leaves no context
  // budget, below what the streams hold: the open connections keep compressing with their
  // streams; a connection made after it negotiates nothing.
  Harness h;
  ws::EndpointConfig context;
  context.deflate.mode = ws::DeflateMode::kContextTakeover;
  context.deflate.level = 9;
  ws::EndpointConfig off;
  off.deflate.mode = ws::DeflateMode::kOff;
  off.deflate.level = 1;
  off.deflate.context_memory = 0;
  h.ep.reconfigure(context);
  std::string text;
  for (int i = 0; text.size() < 4000; ++i) text += "{\"seq\":" + std::to_string(i) + "},";
  std::vector<int> rounds(64);
  std::uint64_t context_bytes_before = 0;
  int opened = 0, closed = 0;
  h.app.opened = [&](ws::Connection c) {
    ++opened;
    c.send_text(text);
  };
  h.app.echoed = [&](ws::Connection c) {
    if (++rounds[c.id().idx] == 5) return c.close(1000, "done");
    if (opened == 2 && context_bytes_before == 0) {
      context_bytes_before = h.ep.counters().deflate_context_bytes;
      h.ep.reconfigure(off);
    }
    c.send_text(text);
  };
  h.app.closed = [&] {
    if (++closed == 2) h.connect();  // after the reload
    if (closed == 3) h.finish();
  };
  h.connect();
  h.connect();
  h.reactor.run(h.ep);
  EXPECT_EQ(h.app.client_codes, (std::vector<std::uint16_t>{1000, 1000, 1000}));
  // Four streams each way (client and server ends of two connections) were held.
  EXPECT_GT(context_bytes_before, 4u * (256u << 10));
  const ws::EndpointCounters& n = h.ep.counters();
  EXPECT_EQ(n.deflate_negotiated, 4u);  // both ends of the first two only
  EXPECT_EQ(n.messages_deflated, 20u);  // 5 messages and 5 echoes each
  EXPECT_EQ(n.messages_inflated, 20u);
  EXPECT_EQ(n.inflate_errors, 0u);
  EXPECT_EQ(n.protocol_errors, 0u);
  EXPECT_EQ(n.deflate_context_bytes, 0u);  // every stream given back
}

}  // namespace
}  // namespace wsedge
