#pragma once
// The backend wsedge runs in its own process when no --backend is given, so a fresh install
// serves something real: a chat whose rooms are channels. It speaks the bridge protocol
// (docs/BRIDGE-PROTOCOL.md) over inproc:// through the same edge code as any backend, which
// also makes it the smallest complete example of a backend.
//
// What clients see (JSON text messages):
//   {"type":"system","room":R,"name":N,"text":...}  to one client: welcome, joined, renamed
//   {"type":"system","room":R,"text":...}           to a room: someone joined, left, renamed
//   {"type":"message","room":R,"from":N,"text":...} to a room: what a client wrote
//   {"type":"error","text":...}                     to one client: a refused command or message
// Clients send plain text: "/join ROOM", "/nick NAME", or a message for their room.
#include <memory>
#include <string>
#include <thread>

namespace zmq {
class context_t;
}

namespace wsedge::bridge {

class EmbeddedBackend {
 public:
  static constexpr const char* kRouterEndpoint = "inproc://wsedge-default";
  static constexpr const char* kPublishEndpoint = "inproc://wsedge-default-pub";

  // Binds a ROUTER on `router_endpoint` and a PUB on `publish_endpoint` in `ctx` before
  // returning, so edge cores can connect at once; then serves on its own thread until destroyed.
  // Throws zmq::error_t when an endpoint cannot be bound (e.g. already bound in `ctx`).
  EmbeddedBackend(zmq::context_t& ctx, std::string router_endpoint, std::string publish_endpoint);
  ~EmbeddedBackend();  // stops and joins
  EmbeddedBackend(const EmbeddedBackend&) = delete;
  EmbeddedBackend& operator=(const EmbeddedBackend&) = delete;

 private:
  struct Server;  // the sockets and the chat's state, touched only by the serving thread
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

}  // namespace wsedge::bridge
