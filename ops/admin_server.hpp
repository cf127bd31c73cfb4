#pragma once
// The admin port: /metrics, /healthz and /readyz over plain HTTP/1.1, served by one thread of
// its own with poll(2), never by a core and never on the public port. Everything it reads from
// the cores is a relaxed atomic load (metrics_registry.hpp), so a slow or hostile scraper costs
// the cores nothing; a client that holds every admin connection open without finishing a
// request loses the oldest of them to each newcomer, so it cannot lock a scraper out.
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>

#include "engine/io/address.hpp"
#include "metrics_registry.hpp"

namespace wsedge::ops {

struct AdminOptions {
  bool enabled = true;
  io::Address address;  // 127.0.0.1:9090 unless --admin says otherwise; port 0 picks one
  // The default address taken by another process (a second wsedge on the host, one replacing
  // this one) is waited for (AdminServer's wait_if_in_use); an address given with --admin
  // must bind, unless --reuse-port says this server replaces the one holding it.
  bool address_given = false;
};

// Bounds that keep one thread serving whoever connects.
inline constexpr std::size_t kAdminMaxHeader = 8192;  // request head; more: 431 and close
inline constexpr int kAdminReadTimeoutMs = 5000;      // head not complete by then: dropped
// More: a newcomer takes the slot of the oldest still sending its request head; when all are
// being answered, it waits in the listen backlog.
inline constexpr std::size_t kAdminMaxConnections = 16;

// The answer to one request, built from the request head alone (pure: tested without sockets).
struct AdminResponse {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  bool head = false;  // HEAD: headers only, Content-Length of the body a GET would get
};
// What the endpoints answer from: the registry (metrics, readiness).
AdminResponse answer_admin(std::string_view request_head, const MetricsRegistry& registry);
// Status line, headers and (unless HEAD) the body.
std::string render(const AdminResponse& r);

class AdminServer {
 public:
  // Binds and listens now, so a bad or busy address fails at start-up, before any core runs.
  // Throws std::system_error. With `wait_if_in_use`, an address another process holds (the
  // server a --reuse-port replacement takes over from) is not an error: the admin thread
  // tries it again every 250 ms and serves from the moment it is free.
  AdminServer(const io::Address& address, const MetricsRegistry& registry,
              bool wait_if_in_use = false);
  ~AdminServer();  // stops the thread and closes every socket
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  // The bound address (its port when :0 was asked for); the one asked for while waiting.
  const io::Address& address() const { return address_; }
  // False: the address was in use and is being waited for.
  bool bound_at_start() const { return bound_at_start_; }
  void start();

 private:
  void run();
  const MetricsRegistry& registry_;
  io::Address address_;
  int listen_fd_ = -1;  // -1 while waiting for the address (the admin thread's from start())
  bool bound_at_start_ = false;
  int stop_fd_ = -1;  // eventfd: the destructor wakes poll with it
  std::thread thread_;
};

}  // namespace wsedge::ops
