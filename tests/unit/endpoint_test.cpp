// The engine end to end on real sockets: one reactor serves the echo side and drives client
// connections to itself, so everything runs on one thread, deterministically.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <new>
#include <thread>
#include <vector>

#include "engine/io/reactor.hpp"
#include "engine/protocol/close_code.hpp"
#include "engine/ws/endpoint.hpp"
#include "temp_cert.hpp"
#include "test_reactor.hpp"
#include "tls/context.hpp"

#include "counting_new.hpp"

namespace wsedge {
namespace {

using protocol::Opcode;

io::ReactorConfig small_reactor() {
  return test::small_reactor(256, 4096, 4096);
}

// Server side echoes; client side sends `rounds` messages one after another, checks each echo,
// then closes with `close_code`.
struct RoundTripApp {
  struct ConnState {
    std::uint64_t rounds_left = 0;
  };
  io::Reactor* reactor = nullptr;
  ws::Endpoint<RoundTripApp>* ep = nullptr;
  std::vector<std::byte> payload;
  Opcode opcode = Opcode::kBinary;
  std::uint64_t rounds = 0;
  unsigned clients = 0;
  std::uint16_t close_code = 1000;
  bool server_closes = false;  // the server side starts the closing handshake instead
  bool one_at_a_time = false;  // each client connects when the previous one has closed
  std::function<void()> connect;
  // Results.
  unsigned opened = 0, client_closes = 0, server_closes_seen = 0;
  std::uint64_t echoes = 0, mismatches = 0;
  std::vector<std::uint16_t> client_codes, server_codes;
  // Allocation snapshots taken after a warm-up and at the end of the steady state.
  std::uint64_t warm_at = 0, end_at = 0, warm_allocs = 0, end_allocs = 0;

  void on_open(ws::Connection c) {
    if (!c.is_client()) return;
    ++opened;
    ep->state(c)->rounds_left = rounds;
    c.send(opcode, payload);
  }
  void on_message(ws::Connection c, Opcode op, std::span<std::byte> p) {
    if (!c.is_client()) {
      if (server_closes && p.size() == 5 && std::memcmp(p.data(), "close", 5) == 0)
        c.close(close_code, "server says bye");
      else
        c.send(op, p);
      return;
    }
    ++echoes;
    if (op != opcode || !std::equal(p.begin(), p.end(), payload.begin(), payload.end()))
      ++mismatches;
    if (echoes == warm_at) warm_allocs = test::allocations();
    if (echoes == end_at) end_allocs = test::allocations();
    if (--ep->state(c)->rounds_left == 0) {
      if (server_closes)
        c.send_text("close");
      else
        c.close(close_code, "done");
    } else {
      c.send(opcode, payload);
    }
  }
  void on_close(ws::Connection c, std::uint16_t code, std::string_view) {
    if (c.is_client()) {
      client_codes.push_back(code);
      if (++client_closes == clients) {
        reactor->stop_listening();
        reactor->exit_when_idle();
      } else if (one_at_a_time) {
        connect();
      }
    } else {
      server_codes.push_back(code);
      ++server_closes_seen;
    }
  }
  void on_drain(ws::Connection) {}
};

RoundTripApp round_trips(std::size_t size, std::uint64_t rounds, unsigned clients,
                         std::byte fill = std::byte{'a'}) {
  RoundTripApp app;
  app.payload.assign(size, fill);
  app.rounds = rounds;
  app.clients = clients;
  return app;
}

// With `tls`, the endpoint serves wss:// and its clients speak TLS too.
void run_round_trips(RoundTripApp& app, io::ReactorConfig rc = small_reactor(),
                     const test::TempCert* tls = nullptr, ws::EndpointCounters* counters = nullptr,
                     const ws::EndpointConfig& cfg = {},
                     io::ReactorCounters* reactor_counters = nullptr) {
  io::Reactor reactor(rc, 0);
  app.reactor = &reactor;
  ws::Endpoint<RoundTripApp> ep(reactor, cfg, app);
  app.ep = &ep;
  tls::CtxPtr client_ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  if (tls) {
    ep.set_tls(tls::Context::load({{{tls->cert, tls->key}}}));
    ep.set_client_tls(client_ctx.get(), true);
  }
  io::Address addr = io::parse_address("127.0.0.1:0");
  int lfd = io::open_listener(addr, 128);
  addr.set_port(io::local_address(lfd).port());
  reactor.listen(lfd);
  app.connect = [&] { ep.connect(addr, "localhost", "/"); };
  for (unsigned i = 0; i < (app.one_at_a_time ? 1 : app.clients); ++i) app.connect();
  reactor.run(ep);
  EXPECT_EQ(reactor.live(), 0u);
  EXPECT_EQ(ep.counters().protocol_errors, 0u);
  if (counters) *counters = ep.counters();
  if (reactor_counters) *reactor_counters = reactor.counters();
}

ws::EndpointConfig deflating(ws::DeflateMode mode) {
  ws::EndpointConfig cfg;
  cfg.deflate.mode = mode;
  return cfg;
}

// Text that compresses as API traffic does, and bytes that do not compress at all.
std::vector<std::byte> json_like(std::size_t size) {
  std::string s;
  for (int i = 0; s.size() < size; ++i)
    s += "{\"id\":" + std::to_string(i * 7919 % 100000) + ",\"name\":\"user" +
         std::to_string(i % 97) + "\",\"ts\":\"2026-11-30T05:0" + std::to_string(i % 10) +
         ":00Z\",\"tags\":[\"a\",\"b\"]},";
  s.resize(size);
  auto b = std::as_bytes(std::span(s));
  return {b.begin(), b.end()};
}

TEST(Endpoint, EchoesEverySizeThroughItsOwnClient) {
  for (std::size_t size : {0, 1, 125, 126, 4000, 65535, 65536, 300000, 4 << 20}) {
    RoundTripApp app = round_trips(size, 3, 2, std::byte{'t'});
    app.opcode = size % 2 ? Opcode::kBinary : Opcode::kText;
    if (app.opcode == Opcode::kBinary) {
      for (std::size_t i = 0; i < size; ++i) app.payload[i] = static_cast<std::byte>(i * 7 + 3);
    }
    run_round_trips(app);
    EXPECT_EQ(app.echoes, 6u) << size;
    EXPECT_EQ(app.mismatches, 0u) << size;
    EXPECT_EQ(app.client_codes, (std::vector<std::uint16_t>{1000, 1000})) << size;
  }
}

TEST(Endpoint, CloseCodesTravelBothWays) {
  RoundTripApp a = round_trips(10, 1, 3);
  a.close_code = 4321;
  run_round_trips(a);
  EXPECT_EQ(a.client_codes, (std::vector<std::uint16_t>{4321, 4321, 4321}));
  EXPECT_EQ(a.server_codes, (std::vector<std::uint16_t>{4321, 4321, 4321}));

  RoundTripApp b = round_trips(10, 1, 2);
  b.close_code = 4001;
  b.server_closes = true;
  run_round_trips(b);
  EXPECT_EQ(b.client_codes, (std::vector<std::uint16_t>{4001, 4001}));
  EXPECT_EQ(b.server_codes, (std::vector<std::uint16_t>{4001, 4001}));
}

TEST(Endpoint, EchoesOverTlsBothRoles) {
  test::TempCert cert;
  for (std::size_t size : {0, 100, 20000, 300000}) {
    RoundTripApp app = round_trips(size, 3, 4);
    ws::EndpointCounters c;
    run_round_trips(app, small_reactor(), &cert, &c);
    EXPECT_EQ(app.echoes, 12u) << size;
    EXPECT_EQ(app.mismatches, 0u) << size;
    EXPECT_EQ(app.client_codes, (std::vector<std::uint16_t>(4, 1000))) << size;
    EXPECT_EQ(c.tls_handshakes, 8u);  // both ends of 4 connections
    EXPECT_EQ(c.tls_errors, 0u);
  }
}

TEST(Endpoint, TlsClientsResumeTheLastSession) {
  test::TempCert cert;
  RoundTripApp app = round_trips(100, 2, 4);
  app.one_at_a_time = true;
  ws::EndpointCounters c;
  run_round_trips(app, small_reactor(), &cert, &c);
  EXPECT_EQ(app.echoes, 8u);
  EXPECT_EQ(c.tls_handshakes, 8u);
  EXPECT_EQ(c.tls_resumed, 6u);  // both ends of every connection after the first
}

TEST(Endpoint, ManyConcurrentConnections) {
  RoundTripApp app = round_trips(64, 5, 500);
  run_round_trips(app);
  EXPECT_EQ(app.opened, 500u);
  EXPECT_EQ(app.echoes, 2500u);
  EXPECT_EQ(app.mismatches, 0u);
}

TEST(Endpoint, SteadyStateEchoAllocatesNothing) {
  // Small and large messages: the large ones span receive buffers (pooled reassembly) and
  // several output buffers (gathered sends). With the access log on, its statistics are
  // counted per message too.
  ws::EndpointConfig access;
  access.access_log = true;
  // Compressed both ways (both roles here negotiate it): libdeflate per message, the core's
  // inflater, or each connection's zlib streams; their scratch and streams are made once.
  ws::EndpointConfig deflate = deflating(ws::DeflateMode::kNoContextTakeover);
  ws::EndpointConfig context = deflating(ws::DeflateMode::kContextTakeover);
  for (auto [size, cfg] : {std::pair<std::size_t, ws::EndpointConfig>{16, {}},
                           {1024, {}},
                           {100000, {}},
                           {16, access},
                           {100000, access},
                           {1024, deflate},
                           {16384, deflate},
                           {1024, context},
                           {16384, context}}) {
    RoundTripApp app = round_trips(size, 2000, 4);
    if (cfg.deflate.mode != ws::DeflateMode::kOff) app.payload = json_like(size);
    // Snapshots while every client is still mid-stream (teardown allocates, e.g. free lists).
    app.warm_at = 2000;
    app.end_at = 6000;
    run_round_trips(app, small_reactor(), nullptr, nullptr, cfg);
    ASSERT_EQ(app.echoes, 8000u);
    EXPECT_EQ(app.mismatches, 0u);
    EXPECT_GT(app.warm_allocs, 0u);
    // Between echo 2000 and 6000, thousands of messages passed both ways.
    EXPECT_EQ(app.end_allocs, app.warm_allocs) << "allocations per message at " << size << " bytes";
  }
}

TEST(Endpoint, DeflateEchoesEverySizeBothRolesBothModes) {
  test::TempCert cert;
  for (ws::DeflateMode mode :
       {ws::DeflateMode::kNoContextTakeover, ws::DeflateMode::kContextTakeover}) {
    for (bool tls : {false, true}) {
      for (std::size_t size : {0, 1, 63, 64, 100, 4000, 65536, 300000}) {
        for (bool text : {true, false}) {
          RoundTripApp app = round_trips(size, 3, 2);
          app.opcode = text ? Opcode::kText : Opcode::kBinary;
          if (text)
            app.payload = json_like(size);
          else
            for (std::uint64_t i = 0, x = 88172645463325252ull; i < size; ++i) {
              x ^= x << 13;  // xorshift64: bytes no compressor can shrink
              x ^= x >> 7;
              x ^= x << 17;
              app.payload[i] = static_cast<std::byte>(x >> 32);
            }
          ws::EndpointCounters c;
          run_round_trips(app, small_reactor(), tls ? &cert : nullptr, &c, deflating(mode));
          std::string what = std::to_string(size) + (text ? " text" : " binary") +
                             (tls ? " wss" : " ws") +
                             (mode == ws::DeflateMode::kContextTakeover ? " context" : "");
          EXPECT_EQ(app.echoes, 6u) << what;
          EXPECT_EQ(app.mismatches, 0u) << what;
          EXPECT_EQ(c.deflate_negotiated, 4u) << what;  // both ends of 2 connections
          if (text && size >= 64) {
            // Both ends compress what they send: the clients' messages and the echoes.
            EXPECT_EQ(c.messages_deflated, 12u) << what;
            EXPECT_EQ(c.messages_inflated, 12u) << what;
            EXPECT_LT(c.deflate_out_bytes * (size >= 4000 ? 3 : 1), c.deflate_in_bytes) << what;
          }
          // Noise does not shrink: without a stream it goes uncompressed.
          if (!text && mode == ws::DeflateMode::kNoContextTakeover) {
            EXPECT_EQ(c.messages_deflated, 0u) << what;
          }
          EXPECT_EQ(c.inflate_errors, 0u) << what;
          // Every stream given back as its connection ended.
          EXPECT_EQ(c.deflate_context_bytes, 0u) << what;
        }
      }
    }
  }
}

// 20 connections each echoing 20 messages of 3000 bytes through a ring of 256-byte buffers
// (at most `count`, `initial` provided at first): every echo arrives, byte for byte.
io::ReactorCounters ring_round_trips(unsigned count, unsigned initial, bool incremental) {
  io::ReactorConfig rc = small_reactor();
  rc.buf_count = count;
  rc.buf_initial = initial;
  rc.buf_size = 256;
  rc.buf_incremental = incremental;
  RoundTripApp app = round_trips(3000, 20, 20);
  io::ReactorCounters counters;
  run_round_trips(app, rc, nullptr, nullptr, {}, &counters);
  EXPECT_EQ(app.echoes, 400u) << incremental;
  EXPECT_EQ(app.mismatches, 0u) << incremental;
  return counters;
}

TEST(Endpoint, TinyBufferRingStillDeliversEverything) {
  // 8 receive buffers of 256 bytes for 20 connections: recvs run dry (ENOBUFS) and re-arm. A
  // 3000-byte message spans many slices, of buffers other connections' reads share when they
  // are consumed incrementally; both ways every byte arrives in order.
  for (bool incremental : {true, false}) {
    io::ReactorCounters counters = ring_round_trips(8, 8, incremental);
    EXPECT_GT(counters.recv_no_buffers, 0u) << incremental;
    EXPECT_EQ(counters.recv_ring_buffers, 8u) << incremental;  // already the maximum
    EXPECT_EQ(counters.recv_ring_grown, 0u) << incremental;
    if (!incremental) {
      EXPECT_EQ(counters.recv_ring_incremental, 0u);
    }
  }
}

TEST(Endpoint, BufferRingGrowsUnderLoadAndDeliversEverything) {
  // The same load through a ring that starts at 2 buffers of 256 and may grow to 64: dry turns
  // double it while 3000-byte messages span buffers of both generations, every byte in order.
  // Without incremental consumption all 64 are provided from the start.
  for (bool incremental : {true, false}) {
    io::ReactorCounters counters = ring_round_trips(64, 2, incremental);
    if (counters.recv_ring_incremental == 0) {
      EXPECT_EQ(counters.recv_ring_grown, 0u);
      EXPECT_EQ(counters.recv_ring_buffers, 64u);
      continue;
    }
    EXPECT_GT(counters.recv_ring_grown, 0u);
    EXPECT_LE(counters.recv_ring_grown, 5u);  // 2 → 64 takes five doublings, then it stops
    EXPECT_EQ(counters.recv_ring_buffers, 2u << counters.recv_ring_grown);
  }
}

TEST(Endpoint, SmallMessagesShareReceiveBuffersWhenIncremental) {
  // 200 connections' handshakes and 64-byte echoes through 16 buffers of 16 KiB: one buffer per
  // read would run dry at every turn; shared, the ring never does.
  io::ReactorConfig rc = small_reactor();
  rc.buf_count = 16;
  rc.buf_size = 16384;
  RoundTripApp app = round_trips(64, 5, 200);
  io::ReactorCounters counters;
  run_round_trips(app, rc, nullptr, nullptr, {}, &counters);
  EXPECT_EQ(app.echoes, 1000u);
  EXPECT_EQ(app.mismatches, 0u);
  if (counters.recv_ring_incremental == 0) GTEST_SKIP() << "kernel lacks IOU_PBUF_RING_INC";
  EXPECT_EQ(counters.recv_no_buffers, 0u);
}

// Cross-core posts: A posts to B, B posts back to A, on each reactor's own thread.
struct Hop : io::PostTask {
  io::Reactor* back = nullptr;
  std::thread::id ran_on;
  Hop* reply = nullptr;
};

TEST(Reactor, PostsRunOnTheTargetCore) {
  io::Reactor* ra = nullptr;
  io::Reactor* rb = nullptr;
  std::atomic<int> ready{0};
  std::thread::id ta, tb;
  Hop to_b, to_a;
  to_b.reply = &to_a;
  to_b.run = [](io::PostTask* t, io::Reactor& on) {
    auto* h = static_cast<Hop*>(t);
    h->ran_on = std::this_thread::get_id();
    on.post(*h->back, h->reply);
  };
  to_a.run = [](io::PostTask* t, io::Reactor& on) {
    auto* h = static_cast<Hop*>(t);
    h->ran_on = std::this_thread::get_id();
    h->back->exit_when_idle();
    h->back->request_stop();
    on.exit_when_idle();
  };
  std::thread a([&] {
    io::Reactor r(small_reactor(), 0);
    ra = &r;
    ta = std::this_thread::get_id();
    ++ready;
    while (ready < 2) std::this_thread::yield();
    test::NoSockets h{[&] { r.post(*rb, &to_b); }};
    r.run(h);
  });
  std::thread b([&] {
    io::Reactor r(small_reactor(), 1);
    rb = &r;
    tb = std::this_thread::get_id();
    ++ready;
    while (ready < 2) std::this_thread::yield();
    test::NoSockets h;
    r.run(h);
  });
  while (ready < 2) std::this_thread::yield();
  to_b.back = ra;
  to_a.back = rb;
  ra->request_stop();  // A's on_stop (on A's thread) starts the exchange
  a.join();
  b.join();
  EXPECT_EQ(to_b.ran_on, tb);
  EXPECT_EQ(to_a.ran_on, ta);
}

}  // namespace
}  // namespace wsedge
