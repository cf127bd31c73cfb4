#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <exception>
#include <memory>
#include <stdexcept>
#include <zmq.hpp>

#include "bridge/edge.hpp"
#include "bridge/embedded_backend.hpp"
#include "echo_app.hpp"
#include "engine/log.hpp"
#include "engine/protocol/unmask.hpp"
#include "flags.hpp"
#include "static/demo_page.hpp"

#if WSEDGE_MIMALLOC
#include <mimalloc.h>
#endif

namespace {
using namespace wsedge;

// Memory freed after a burst must go back to the system. The engine's buffer pools are the
// cache (bounded by their watermark); mimalloc's own delayed decommit runs only when a thread
// allocates again, so an idle core kept a burst's memory resident indefinitely.
void tune_allocator() {
#if WSEDGE_MIMALLOC
  mi_option_set(mi_option_decommit_delay, 0);
  mi_option_set(mi_option_segment_decommit_delay, 0);
#endif
}
// FNV-1a: the node id in connection ids, stable for a node name.
std::uint32_t hash32(std::string_view s) {
  std::uint32_t h = 2166136261u;
  for (char c : s) h = (h ^ static_cast<unsigned char>(c)) * 16777619u;
  return h;
}

// The bridge's identity and defaults that depend on where it runs.
void complete_bridge_options(app::Flags& flags) {
  bridge::Options& b = flags.bridge;
  if (b.node_name.empty()) {
    char host[256] = {};
    gethostname(host, sizeof host - 1);
    b.node_name = host[0] ? host : "wsedge";
    // Two wsedge processes on one host must not share connection ids.
    b.node_name += ":" + std::to_string(flags.server.listen.front().port());
  }
  b.node_id = hash32(b.node_name);
  b.max_message = flags.server.endpoint.max_message;
  b.epoch = static_cast<std::uint32_t>(std::time(nullptr));
}

constexpr const char* kEmbeddedRouter = "inproc://wsedge-default";
constexpr const char* kEmbeddedPublish = "inproc://wsedge-default-pub";

void print_listening(const app::Flags& flags, const io::Address& a) {
  // Tests and scripts read this line to learn the port behind ":0": one per --listen, in the
  // order given, so the first line stays the first address.
  std::printf("listening on %s://%s cores=%u\n", flags.server.plain ? "ws" : "wss",
              a.to_string().c_str(), flags.server.cores);
  std::fflush(stdout);
  LOG_INFO("listening", log::kv("address", a.to_string()), log::kv("cores", flags.server.cores),
           log::kv("kernel", io::kernel_release()), log::kv("mask", protocol::mask_isa()));
}

void serve_bridge(app::Flags& flags) {
  bridge::Options& b = flags.bridge;
  // Before any thread starts (libzmq's, the embedded backend's): a thread created with SIGTERM
  // unblocked takes it with the default action and kills the process without a drain.
  server_detail::block_stop_signals();
  // libzmq's I/O threads carry TCP to backends for every core (inproc needs none): one per four
  // cores, unpinned, so they run wherever the reactors leave room rather than taking one's CPU.
  zmq::context_t ctx(static_cast<int>(std::max(1u, flags.server.cores / 4)));
  std::unique_ptr<bridge::EmbeddedBackend> embedded;
  if (b.routes.empty()) {
    embedded = std::make_unique<bridge::EmbeddedBackend>(ctx, kEmbeddedRouter, kEmbeddedPublish);
    b.routes.push_back({"/", {kEmbeddedRouter}});
    if (b.publish.empty()) b.publish.emplace_back(kEmbeddedPublish);
    // The page that talks to it, at / of the same port.
    flags.server.endpoint.pages.push_back({"/", "text/html; charset=utf-8", app::kDemoPage});
  }
  complete_bridge_options(flags);
  // Keys and the ACL are loaded here once, before any core starts, so a bad file stops the
  // server with its error instead of each core failing alone.
  if (flags.auth.enabled()) auth::Gate check(flags.auth);
  serve<bridge::Edge>(
      flags.server,
      [&](unsigned core) { return bridge::Edge(ctx, b, flags.auth, core, flags.server.cores); },
      [&](const io::Address& a) { print_listening(flags, a); });
}

}  // namespace

int main(int argc, char** argv) {
  using namespace wsedge;
  app::Flags flags;
  try {
    flags = app::parse_flags(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wsedge: %s\n", e.what());
    return 2;
  }
  if (flags.help) {
    std::fputs(app::usage().c_str(), stdout);
    return 0;
  }
  if (flags.version) {
    std::puts("wsedge " WSEDGE_VERSION);
    return 0;
  }
  tune_allocator();
  log::set_level(flags.log_level);
  log::set_format(flags.log_format);
  try {
    if (flags.echo)
      serve<app::EchoApp>(
          flags.server, [](unsigned) { return app::EchoApp{}; },
          [&](const io::Address& a) { print_listening(flags, a); });
    else
      serve_bridge(flags);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wsedge: %s\n", e.what());
    return 1;
  }
  return 0;
}
