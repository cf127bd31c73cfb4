#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <exception>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>
#include <zmq.hpp>

#include "bridge/edge.hpp"
#include "bridge/embedded_backend.hpp"
#include "bridge/io_threads.hpp"
#include "echo_app.hpp"
#include "engine/log.hpp"
#include "engine/protocol/unmask.hpp"
#include "flags.hpp"
#include "ops/admin_server.hpp"
#include "ops_sources.hpp"
#include "static/demo_page.hpp"
#include "systemd.hpp"

#if WSEDGE_MIMALLOC
#include <mimalloc.h>
#endif

namespace {
using namespace wsedge;

// Memory freed after a burst must go back to the system. The engine's buffer pools are the
// cache (bounded by their watermark); mimalloc's own delayed decommit runs only when a thread
// allocates again, so an idle core kept a burst's memory resident indefinitely, and new
// connections reused it unseen: resident size, which the idle-connection figures and tests
// read, stopped measuring what connections hold. The price is on the bridge, where each message
// body libzmq allocates and frees faults its page back in (bridge echo at 1 KiB: 7.66 server
// CPU-us per message, 5.83 with mimalloc's delay).
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

// The admin port and what it reads: every core's counters and the readiness state.
struct Ops {
  ops::Health health;
  ops::MetricsRegistry registry{health};
  std::unique_ptr<ops::AdminServer> admin;
  std::size_t listening_printed = 0;

  explicit Ops(const app::Flags& flags) : health{flags.server.cores, flags.ready_needs_backends} {
    if (!flags.admin.enabled) return;
    // An address in use is waited for, not skipped, where it is the default (a second wsedge
    // on the host) or where --reuse-port says this server replaces the one holding it: left
    // off, the node would have no /metrics or /readyz once the old one exits. An address
    // asked for without --reuse-port must bind or stop the server.
    bool wait = !flags.admin.address_given || flags.server.reuse_port;
    admin = std::make_unique<ops::AdminServer>(flags.admin.address, registry, wait);
    if (!admin->bound_at_start())
      LOG_WARN("admin_port_waiting", log::kv("address", flags.admin.address.to_string()),
               log::kv("detail", "in use by another process; taken once it is free"));
    admin->start();
  }

  // serve()'s core hook: each core's counters are scraped between its up and its down.
  template <class App>
  void on_core(unsigned core, const ws::Endpoint<App>& endpoint, const App& app, bool up) {
    if (!up) {
      registry.remove(core);
    } else if constexpr (std::is_same_v<App, bridge::Edge>) {
      registry.add(core, app::bridge_sources(endpoint, app));
    } else {
      registry.add(core, {&endpoint.reactor().counters(), &endpoint.counters()});
    }
  }
  auto core_hook() {
    return [this](unsigned core, const auto& endpoint, const auto& app, bool up) {
      on_core(core, endpoint, app, up);
    };
  }
};

void print_listening(const app::Flags& flags, Ops& ops, const io::Address& a) {
  // Tests and scripts read this line to learn the port behind ":0": one per --listen, in the
  // order given, so the first line stays the first address.
  std::printf("listening on %s://%s cores=%u\n", flags.server.plain ? "ws" : "wss",
              a.to_string().c_str(), flags.server.cores);
  // After the last listening line, so whoever reads only the first one is not disturbed.
  if (++ops.listening_printed == flags.server.listen.size() && ops.admin &&
      ops.admin->bound_at_start())
    std::printf("admin on http://%s\n", ops.admin->address().to_string().c_str());
  std::fflush(stdout);
  LOG_INFO("listening", log::kv("address", a.to_string()), log::kv("cores", flags.server.cores),
           log::kv("kernel", io::kernel_release()), log::kv("mask", protocol::mask_isa()));
}

// SIGHUP, as serve()'s on_sighup on the main thread: the command line parsed again (so the
// config file is read again under the same flags), everything a start would load checked, and
// only then one snapshot published, which each core takes in its on_reload. Anything wrong and
// nothing changes: the error is logged with its FILE:LINE:COLUMN.
class Reloader {
 public:
  // `started`: the flags as parsed at start (restart_keys compares with them, so a change that
  // needs a restart is named at every reload until one); `running`: completed for serving.
  Reloader(std::span<const std::string> args, const app::Flags& started, const app::Flags& running)
      : args_(args.begin(), args.end()),
        started_(started),
        live_(std::make_shared<const app::Flags>(running)) {}

  std::shared_ptr<const ServerOptions> operator()() {
    try {
      app::Flags next = app::parse_flags(args_);
      std::shared_ptr<const app::Flags> running = live_.get();
      auto snapshot = std::make_shared<const app::Flags>(app::reloadable(*running, next));
      app::check_files(*snapshot);
      std::string restart;
      for (const std::string& k : app::restart_keys(next, started_))
        restart.append(restart.empty() ? "" : ",").append(k);
      if (!restart.empty())
        LOG_WARN("config_needs_restart", log::kv("keys", restart),
                 log::kv("detail", "each needs a restart; the running values stay"));
      live_.publish(snapshot);
      log::set_level(snapshot->log_level);
      log::set_format(snapshot->log_format);
      LOG_INFO("configuration_reloaded", log::kv("file", snapshot->config_file));
      // The engine's part of the same snapshot: it lives as long as any part of it is held.
      return {snapshot, &snapshot->server};
    } catch (const std::exception& e) {
      std::string error = e.what();
      std::replace(error.begin(), error.end(), '\n', ';');  // one log line for every error
      LOG_ERROR("reload_refused", log::kv("error", error),
                log::kv("detail", "the running configuration stays"));
      return nullptr;
    }
  }

  // Each core's Edge takes its auth options from the snapshot the engine's came from.
  bridge::Edge::AuthSource auth_source() {
    return [this] {
      std::shared_ptr<const app::Flags> f = live_.get();
      return std::shared_ptr<const auth::Options>(f, &f->auth);
    };
  }

 private:
  std::vector<std::string> args_;
  app::Flags started_;
  Published<app::Flags> live_;
};

void serve_bridge(app::Flags& flags, Ops& ops, std::span<const std::string> args) {
  const app::Flags started = flags;
  bridge::Options& b = flags.bridge;
  // libzmq's I/O threads carry TCP to backends for every core (inproc needs none): one per four
  // cores, on any CPU, yielding to the reactors (bridge/io_threads.hpp).
  zmq::context_t ctx;
  bridge::IoThreads io = bridge::configure_io_threads(ctx, flags.server.cores);
  LOG_INFO("bridge_io_threads", log::kv("count", io.count),
           log::kv("policy", io.batch ? "batch" : "inherited"));
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
  Reloader reload(args, started, flags);
  serve<bridge::Edge>(
      flags.server,
      [&](unsigned core) {
        return bridge::Edge(ctx, b, flags.auth, core, flags.server.cores, reload.auth_source());
      },
      [&](const io::Address& a) { print_listening(flags, ops, a); }, ops.core_hook(),
      [&] { return reload(); });
}

}  // namespace

int main(int argc, char** argv) {
  using namespace wsedge;
  app::Flags flags;
  std::vector<std::string> args(argv + 1, argv + argc);
  try {
    flags = app::parse_flags(args);
    if (flags.check_config && !flags.help && !flags.version) {
      app::check_files(flags);
      std::puts("config ok");
      return 0;
    }
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
  app::install_systemd_hooks(flags.server);
  log::set_level(flags.log_level);
  log::set_format(flags.log_format);
  try {
    // Before any thread starts (the admin port's, libzmq's, the embedded backend's): a thread
    // created with SIGTERM unblocked takes it with the default action and kills the process
    // without a drain.
    server_detail::block_stop_signals();
    Ops ops(flags);
    // /readyz answers 503 the moment a drain begins, before any core has closed anything.
    flags.server.hooks.stopping = [&ops, notify = flags.server.hooks.stopping] {
      ops.health.set_draining();
      if (notify) notify();
    };
    if (flags.echo) {
      Reloader reload(args, flags, flags);
      serve<app::EchoApp>(
          flags.server, [](unsigned) { return app::EchoApp{}; },
          [&](const io::Address& a) { print_listening(flags, ops, a); }, ops.core_hook(),
          [&] { return reload(); });
    } else {
      serve_bridge(flags, ops, args);
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wsedge: %s\n", e.what());
    return 1;
  }
  return 0;
}
