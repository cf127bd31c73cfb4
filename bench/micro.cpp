// Micro-benchmarks of the per-message hot paths: frame parsing, unmasking, UTF-8 validation,
// permessage-deflate, the ACL check of each publish, and the opening handshake with its token
// verification.
#include <benchmark/benchmark.h>

#include <libdeflate.h>
#include <unistd.h>
#include <zlib.h>

#include <chrono>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "auth/acl.hpp"
#include "auth/jwt.hpp"
#include "engine/deflate/codec.hpp"
#include "engine/protocol/frame.hpp"
#include "engine/protocol/http_upgrade.hpp"
#include "engine/protocol/message_reader.hpp"
#include "engine/protocol/unmask.hpp"
#include "engine/protocol/utf8.hpp"
#include "tls/context.hpp"
#include "tls/memory_session.hpp"
#include "tls/record.hpp"
#include "tls/self_signed.hpp"

// The unit tests' signer (keys made with OpenSSL, ES signatures as raw r||s), so the bench signs
// exactly what the tests prove verifies.
#include "tests/unit/auth_test_keys.hpp"
// The deflate tests' messages, so the ratios here are those the tests check.
#include "tests/unit/json_like.hpp"

namespace wsedge::protocol {
namespace {

std::vector<std::byte> masked_frames(std::size_t payload, std::size_t count) {
  std::vector<std::byte> out;
  std::uint32_t key = 0x12345678;
  std::vector<std::byte> body(payload, std::byte{'a'});
  apply_mask(body.data(), body.size(), key);
  for (std::size_t i = 0; i < count; ++i) {
    std::byte hdr[kMaxFrameHeader];
    std::size_t n = write_frame_header(hdr, true, Opcode::kText, payload, &key);
    out.insert(out.end(), hdr, hdr + n);
    out.insert(out.end(), body.begin(), body.end());
  }
  return out;
}

void BM_FrameHeaderParse(benchmark::State& state) {
  auto frames = masked_frames(16, 1);
  FrameHeader h;
  for (auto _ : state) {
    benchmark::DoNotOptimize(parse_frame_header(frames.data(), frames.size(), h));
    benchmark::DoNotOptimize(h);
  }
}
BENCHMARK(BM_FrameHeaderParse);

// Whole messages through the reader (parse, unmask, validate UTF-8) from one receive buffer.
void BM_ReadMessages(benchmark::State& state) {
  auto size = static_cast<std::size_t>(state.range(0));
  const std::size_t count = std::max<std::size_t>(1, (64 << 10) / (size + 14));
  auto frames = masked_frames(size, count);
  memory::BufferPool pool;
  ReaderLimits lim{1 << 24, true};
  std::vector<std::byte> work(frames.size());
  for (auto _ : state) {
    std::memcpy(work.data(), frames.data(), frames.size());  // the reader unmasks in place
    MessageReader r;
    std::size_t off = 0;
    while (off < work.size()) {
      ReadResult res = r.next(work.data() + off, work.size() - off, lim, pool);
      off += res.consumed;
      benchmark::DoNotOptimize(res.payload);
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * count));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * frames.size()));
}
BENCHMARK(BM_ReadMessages)->Arg(16)->Arg(1024)->Arg(16384);

using MaskFn = void (*)(std::byte*, std::size_t, std::uint32_t, std::size_t);

// The vector path against the scalar reference, in GB/s.
void BM_Unmask(benchmark::State& state, MaskFn mask) {
  std::vector<std::byte> buf(static_cast<std::size_t>(state.range(0)), std::byte{7});
  for (auto _ : state) {
    mask(buf.data(), buf.size(), 0xA1B2C3D4, 1);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * buf.size()));
}
BENCHMARK_CAPTURE(BM_Unmask, simd, apply_mask)->Arg(16)->Arg(1024)->Arg(65536);
BENCHMARK_CAPTURE(BM_Unmask, scalar, apply_mask_scalar)->Arg(65536);

void BM_Utf8(benchmark::State& state, const std::string& unit) {
  std::string text;
  while (text.size() < 65536) text += unit;
  auto* p = reinterpret_cast<const std::byte*>(text.data());
  for (auto _ : state) benchmark::DoNotOptimize(Utf8Validator::valid(p, text.size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
}
BENCHMARK_CAPTURE(BM_Utf8, ascii, std::string("The quick brown fox jumps over the lazy dog. "));
BENCHMARK_CAPTURE(BM_Utf8, mixed, std::string("Grüße, κόσμε, мир, 世界 🌍 "));

std::span<const std::byte> as_bytes(const std::string& s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// One JSON-like message compressed on its own, as every no-context-takeover send is (the core's
// zlib stream, reset, level 6, ending in a sync flush); `ratio` is compressed / original.
void BM_DeflateCompress(benchmark::State& state) {
  const std::string msg = test::json_like(static_cast<std::size_t>(state.range(0)));
  deflate::Codec codec(6);
  std::size_t out = 0;
  for (auto _ : state) out = codec.compress(as_bytes(msg), 15).size();
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * msg.size()));
  state.counters["ratio"] = static_cast<double>(out) / static_cast<double>(msg.size());
}
BENCHMARK(BM_DeflateCompress)->Arg(1 << 10)->Arg(16 << 10);

// libdeflate's whole-buffer compressor at the same level: faster on large messages, but its
// output always ends in a final block, which Beast, websocketpp and Chromium fail on (Codec
// sends a sync flush instead: codec.cpp, Codec::sync_flush).
void BM_LibdeflateCompress(benchmark::State& state) {
  const std::string msg = test::json_like(static_cast<std::size_t>(state.range(0)));
  libdeflate_compressor* c = libdeflate_alloc_compressor(6);
  std::vector<std::byte> out(libdeflate_deflate_compress_bound(c, msg.size()));
  std::size_t n = 0;
  for (auto _ : state)
    benchmark::DoNotOptimize(
        n = libdeflate_deflate_compress(c, msg.data(), msg.size(), out.data(), out.size()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * msg.size()));
  state.counters["ratio"] = static_cast<double>(n) / static_cast<double>(msg.size());
  libdeflate_free_compressor(c);
}
BENCHMARK(BM_LibdeflateCompress)->Arg(1 << 10)->Arg(16 << 10);

// Inflating a message as a browser sends it (zlib, sync flush, tail removed) with the core's
// zlib stream into a pooled buffer; bytes/s counts the inflated bytes.
void BM_DeflateInflate(benchmark::State& state) {
  const std::string msg = test::json_like(static_cast<std::size_t>(state.range(0)));
  std::vector<std::byte> c(msg.size() + 64);
  z_stream z{};
  deflateInit2(&z, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY);
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(msg.data()));
  z.avail_in = static_cast<uInt>(msg.size());
  z.next_out = reinterpret_cast<Bytef*>(c.data());
  z.avail_out = static_cast<uInt>(c.size());
  ::deflate(&z, Z_SYNC_FLUSH);
  c.resize(z.total_out - 4);
  deflateEnd(&z);
  deflate::Codec codec(6);
  memory::BufferPool pool;
  for (auto _ : state) {
    memory::Buffer* out = nullptr;
    if (codec.inflate(c, 1 << 20, pool, out) != deflate::InflateResult::kOk)
      state.SkipWithError("inflate failed");
    pool.release(out);
  }
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * msg.size()));
  state.counters["ratio"] = static_cast<double>(c.size()) / static_cast<double>(msg.size());
}
BENCHMARK(BM_DeflateInflate)->Arg(1 << 10)->Arg(16 << 10);

// The check the edge makes on every publish, against a 1000-rule ACL: half the rules on exact
// channels, half on `teamN:*` patterns, two `{sub}` patterns, and every role under one parent.
void BM_AclAllowed(benchmark::State& state, std::string channel) {
  using Names = std::vector<std::string>;
  auth::AclModel m;
  for (int i = 0; i < 1000; ++i) {
    std::string role = std::string("r").append(std::to_string(i % 50));
    std::string res = i % 2 == 0 ? std::string("chat:room").append(std::to_string(i))
                                 : std::string("team").append(std::to_string(i)).append(":*");
    m.allow(Names{role}, Names{res}, Names{"subscribe", "publish"});
    m.add_role_parents(role, Names{"base"});
  }
  m.allow(Names{"base"}, Names{"user:{sub}", "inbox:{sub}:*"}, Names{"*"});
  auto acl = auth::Acl::compile(m);
  auto p = acl->principal("alice", Names{"r0", "r1", "r7"});
  const auth::PermMask publish = acl->perm("publish");
  if (!acl->allowed(p, channel, publish)) state.SkipWithError("not allowed");
  for (auto _ : state) benchmark::DoNotOptimize(acl->allowed(p, channel, publish));
}
BENCHMARK_CAPTURE(BM_AclAllowed, exact, std::string("chat:room500"));
BENCHMARK_CAPTURE(BM_AclAllowed, pattern, std::string("team501:general"));
BENCHMARK_CAPTURE(BM_AclAllowed, sub, std::string("inbox:alice:1"));

// What a token adds to one upgrade: auth::verify of a token like bench/auth's (sub, exp, iat,
// one role), header and payload decoded, signature checked, claims read. HS256 is one HMAC;
// ES256 one ECDSA P-256 verification, to compare with `openssl speed ecdsap256`'s verify/s.
void BM_JwtVerify(benchmark::State& state, auth::Alg alg) {
  test::TempDir dir;
  test::TestKey ec = test::ec_key("P-256");
  const std::string secret(32, 's');
  auth::KeySource src;
  if (alg == auth::Alg::kHS256)
    src.secret_files.emplace_back(alg, dir.write("hs.key", secret));
  else
    src.public_key_files.push_back(dir.write("es.pem", ec.public_pem()));
  auth::KeySet keys = auth::KeySet::load(src);
  const std::int64_t now = 1'800'000'000;
  std::string header =
      std::string(R"({"alg":")").append(auth::alg_name(alg)).append(R"(","typ":"JWT"})");
  std::string payload = std::string(R"({"sub":"user-42","iat":)")
                            .append(std::to_string(now))
                            .append(R"(,"exp":)")
                            .append(std::to_string(now + 3600))
                            .append(R"(,"roles":["member"]})");
  std::string token = test::make_token(alg, &ec, secret, header, payload);
  auth::VerifyOptions opts;
  auth::Claims claims;
  if (auth::verify(token, keys, opts, now, claims) != auth::TokenError::kNone)
    state.SkipWithError("token does not verify");
  for (auto _ : state) {
    auth::Claims c;
    benchmark::DoNotOptimize(auth::verify(token, keys, opts, now, c));
    benchmark::DoNotOptimize(c);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_JwtVerify, hs256, auth::Alg::kHS256);
BENCHMARK_CAPTURE(BM_JwtVerify, es256, auth::Alg::kES256);

void BM_Handshake(benchmark::State& state) {
  const std::string req =
      "GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
      "User-Agent: bench\r\nOrigin: http://example.com\r\n\r\n";
  char out[kMaxResponseFixed + 64];
  for (auto _ : state) {
    UpgradeRequest r;
    auto res = parse_upgrade_request(req, 8192, r);
    benchmark::DoNotOptimize(res);
    benchmark::DoNotOptimize(write_switching_protocols(out, sizeof out, r.key, {}));
  }
}
BENCHMARK(BM_Handshake);

// What the handover to our record layer derives per connection: a key and an IV per direction
// (four HKDF-Expand-Label calls), as record::init does.
void BM_TlsRecordInit(benchmark::State& state) {
  const std::array<std::uint8_t, 32> secret{};
  tls::record::DirectionState st;
  for (auto _ : state) {
    benchmark::DoNotOptimize(
        tls::record::init(st, tls::record::Suite::kAes128GcmSha256, secret, 1));
    benchmark::DoNotOptimize(
        tls::record::init(st, tls::record::Suite::kAes128GcmSha256, secret, 0));
  }
  tls::record::wipe(st);
}
BENCHMARK(BM_TlsRecordInit);

// The ceiling for TLS handshakes per core: OpenSSL alone, a client and a server session
// exchanging bytes in memory (TLS 1.3, P-256 certificate). Only the server's work is timed, from
// SSL_new to SSL_free, so the figure compares with one wsedge core accepting handshakes. With
// `resume`, the client offers the session of a previous handshake (ticket). With `own`, the
// server moves to our record layer after the handshake (--tls-record-layer own): the handover
// (two HKDF derivations, the SSL freed early) is in the timed work.
void BM_TlsServerHandshake(benchmark::State& state, bool resume, bool own) {
  std::string dir = "/tmp/wsedge-micro-" + std::to_string(getpid());
  tls::write_self_signed(dir + "-cert.pem", dir + "-key.pem", "localhost");
  auto server_ctx = tls::Context::load({{{dir + "-cert.pem", dir + "-key.pem"}}});
  unlink((dir + "-cert.pem").c_str());
  unlink((dir + "-key.pem").c_str());
  tls::CtxPtr client_ctx(SSL_CTX_new(TLS_client_method()), SSL_CTX_free);
  SSL_SESSION* saved = nullptr;
  tls::RecordShard shard;
  std::byte plain[tls::Session::kReadCapacity];
  using Clock = std::chrono::steady_clock;
  for (auto _ : state) {
    tls::MemorySession client(client_ctx.get(), false);
    if (resume && saved) SSL_set_session(client->ssl(), saved);
    auto t0 = Clock::now();
    std::optional<tls::MemorySession> server(std::in_place, server_ctx->default_ctx(), true,
                                             own ? &shard : nullptr);
    std::chrono::nanoseconds server_time = Clock::now() - t0;
    std::size_t n = 0;
    std::vector<std::byte> to_client;
    for (int round = 0; round < 10 && !((*server)->handshake_done() && client->handshake_done());
         ++round) {
      client->feed(to_client.data(), to_client.size());
      client->read(plain, sizeof plain, n);
      std::vector<std::byte> to_server = client.take();
      t0 = Clock::now();
      (*server)->feed(to_server.data(), to_server.size());
      (*server)->read(plain, sizeof plain, n);
      to_client = server->take();
      server_time += Clock::now() - t0;
    }
    client->feed(to_client.data(), to_client.size());
    client->read(plain, sizeof plain, n);  // takes the session ticket
    if (!client->handshake_done() || !(*server)->handshake_done() ||
        (*server)->own_records() != own)
      state.SkipWithError("handshake did not finish on the expected record layer");
    if (resume && !saved) saved = SSL_get1_session(client->ssl());
    t0 = Clock::now();
    server.reset();
    server_time += Clock::now() - t0;
    state.SetIterationTime(std::chrono::duration<double>(server_time).count());
  }
  if (saved) SSL_SESSION_free(saved);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK_CAPTURE(BM_TlsServerHandshake, full, false, false)->UseManualTime();
BENCHMARK_CAPTURE(BM_TlsServerHandshake, resumed, true, false)->UseManualTime();
BENCHMARK_CAPTURE(BM_TlsServerHandshake, full_own, false, true)->UseManualTime();
BENCHMARK_CAPTURE(BM_TlsServerHandshake, resumed_own, true, true)->UseManualTime();

}  // namespace
}  // namespace wsedge::protocol

BENCHMARK_MAIN();
