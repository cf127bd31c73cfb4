#include <cstdio>
#include <exception>
#include <stdexcept>

#include "echo_app.hpp"
#include "engine/log.hpp"
#include "engine/protocol/unmask.hpp"
#include "flags.hpp"

#if WSEDGE_MIMALLOC
#include <mimalloc.h>
#endif

namespace {
// Memory freed after a burst must go back to the system. The engine's buffer pools are the
// cache (bounded by their watermark); mimalloc's own delayed decommit runs only when a thread
// allocates again, so an idle core kept a burst's memory resident indefinitely.
void tune_allocator() {
#if WSEDGE_MIMALLOC
  mi_option_set(mi_option_decommit_delay, 0);
  mi_option_set(mi_option_segment_decommit_delay, 0);
#endif
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
  try {
    serve<app::EchoApp>(
        flags.server, [](unsigned) { return app::EchoApp{}; },
        [&](const io::Address& a) {
          // Tests and scripts read this line to learn the port behind ":0": one per --listen,
          // in the order given, so the first line stays the first address.
          std::printf("listening on %s://%s cores=%u\n", flags.server.plain ? "ws" : "wss",
                      a.to_string().c_str(), flags.server.cores);
          std::fflush(stdout);
          LOG_INFO("msg=\"listening\" address=%s cores=%u kernel=%s mask=%s", a.to_string().c_str(),
                   flags.server.cores, io::kernel_release().c_str(), protocol::mask_isa());
        });
  } catch (const std::exception& e) {
    std::fprintf(stderr, "wsedge: %s\n", e.what());
    return 1;
  }
  return 0;
}
