#include "admin_server.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <system_error>
#include <vector>

#include "engine/log.hpp"

namespace wsedge::ops {

namespace {

constexpr std::string_view kMetricsType = "text/plain; version=0.0.4; charset=utf-8";

const char* reason_phrase(int status) {
  switch (status) {
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

AdminResponse error(int status, std::string_view why) {
  AdminResponse r;
  r.status = status;
  r.body.append(why).append("\n");
  return r;
}

constexpr std::int64_t kAdminAcceptRetryMs = 100;
// An address in use (the server being replaced holds it): how often to try it again.
constexpr std::int64_t kAdminBindRetryMs = 250;

// A listening socket on `a`, or -1 with errno set. No SO_REUSEPORT, unlike the public
// listeners: a second process must not take a share of the scrapes, it gets "address in use".
int listen_on(const io::Address& a) {
  int fd = socket(a.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return -1;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(fd, a.sa(), a.len) < 0 || listen(fd, 64) < 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

std::int64_t now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count();
}

}  // namespace

AdminResponse answer_admin(std::string_view head, const MetricsRegistry& registry) {
  // Request line: METHOD SP TARGET SP HTTP/1.x CRLF. Anything else is 400, not a guess.
  std::size_t eol = head.find("\r\n");
  std::string_view line = head.substr(0, eol);
  std::size_t sp1 = line.find(' ');
  std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (eol == std::string_view::npos || sp2 == std::string_view::npos || sp1 == 0 ||
      sp2 == sp1 + 1 || !line.substr(sp2 + 1).starts_with("HTTP/1.") ||
      line.substr(sp2 + 1).size() != 8)
    return error(400, "bad request");
  std::string_view method = line.substr(0, sp1);
  std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  if (target[0] != '/') return error(400, "bad request target");
  // Prometheus may add a query (?name[]=...): it selects nothing here.
  std::string_view path = target.substr(0, target.find('?'));
  bool known = path == "/metrics" || path == "/healthz" || path == "/readyz";
  if (!known) return error(404, "not found: /metrics, /healthz, /readyz");
  bool is_head = method == "HEAD";
  if (method != "GET" && !is_head) return error(405, "method not allowed: GET or HEAD");
  AdminResponse r;
  r.head = is_head;
  if (path == "/metrics") {
    r.content_type = kMetricsType;
    r.body = registry.scrape();
  } else if (path == "/healthz") {
    r.body = "ok\n";  // the process runs and this thread answers
  } else if (std::string why = registry.not_ready(); !why.empty()) {
    r = error(503, why);
    r.head = is_head;
  } else {
    r.body = "ready\n";
  }
  return r;
}

std::string render(const AdminResponse& r) {
  std::string out = "HTTP/1.1 ";
  out.append(std::to_string(r.status)).append(" ").append(reason_phrase(r.status));
  out.append("\r\nContent-Type: ").append(r.content_type);
  out.append("\r\nContent-Length: ").append(std::to_string(r.body.size()));
  if (r.status == 405) out.append("\r\nAllow: GET, HEAD");
  out.append("\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n");
  if (!r.head) out += r.body;
  return out;
}

AdminServer::AdminServer(const io::Address& address, const MetricsRegistry& registry,
                         bool wait_if_in_use)
    : registry_(registry), address_(address) {
  listen_fd_ = listen_on(address);
  if (listen_fd_ >= 0) {
    address_ = io::local_address(listen_fd_);
  } else if (!wait_if_in_use || errno != EADDRINUSE) {
    throw std::system_error(errno, std::generic_category(), "admin port on " + address.to_string());
  }
  bound_at_start_ = listen_fd_ >= 0;
  stop_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd_ < 0) {
    int e = errno;
    if (listen_fd_ >= 0) close(listen_fd_);
    throw std::system_error(e, std::generic_category(), "admin eventfd");
  }
}

AdminServer::~AdminServer() {
  if (thread_.joinable()) {
    std::uint64_t one = 1;
    [[maybe_unused]] auto n = write(stop_fd_, &one, sizeof one);
    thread_.join();
  }
  close(stop_fd_);
  if (listen_fd_ >= 0) close(listen_fd_);
}

void AdminServer::start() {
  thread_ = std::thread([this] { run(); });
}

void AdminServer::run() {
  struct Client {
    int fd;
    std::int64_t deadline;
    std::string in;
    std::string out;  // non-empty: the answer is being written
    std::size_t sent = 0;
  };
  std::vector<Client> clients;
  std::vector<pollfd> fds;
  // Until then the listener rests: accept failed for want of a resource, or (no listener yet)
  // the address was still in use.
  std::int64_t accept_after = 0;
  auto drop = [&](std::size_t i) {
    // Connection: close; shutdown first so the answer is not cut by a reset for unread input.
    shutdown(clients[i].fd, SHUT_WR);
    close(clients[i].fd);
    clients[i] = std::move(clients.back());
    clients.pop_back();
  };
  for (;;) {
    fds.clear();
    fds.push_back({stop_fd_, POLLIN, 0});
    // The listener is polled while a slot is free or can be freed: at the limit, a newcomer
    // takes the slot of the oldest client still sending its request head. Waiting in the
    // backlog instead let anyone who holds every slot with silent connections (slowloris,
    // each renewed before its deadline) make /readyz and /metrics time out for everyone.
    bool evictable =
        std::any_of(clients.begin(), clients.end(), [](const Client& c) { return c.out.empty(); });
    std::int64_t now = now_ms();
    if (listen_fd_ < 0 && now >= accept_after) {
      listen_fd_ = listen_on(address_);
      if (listen_fd_ >= 0)
        LOG_INFO("admin_port_bound", log::kv("address", address_.to_string()));
      else
        accept_after = now + kAdminBindRetryMs;
    }
    // A negative fd (not bound yet) is one poll(2) skips.
    bool room = (clients.size() < kAdminMaxConnections || evictable) && now >= accept_after;
    fds.push_back({listen_fd_, static_cast<short>(room ? POLLIN : 0), 0});
    int timeout = now < accept_after ? static_cast<int>(accept_after - now) : -1;
    for (const Client& c : clients) {
      fds.push_back({c.fd, static_cast<short>(c.out.empty() ? POLLIN : POLLOUT), 0});
      int left = static_cast<int>(std::max<std::int64_t>(0, c.deadline - now));
      timeout = timeout < 0 ? left : std::min(timeout, left);
    }
    if (poll(fds.data(), fds.size(), timeout) < 0 && errno != EINTR) {
      LOG_ERROR("admin_port_stopped", log::kv("error", std::strerror(errno)));
      break;
    }
    if (fds[0].revents) break;
    now = now_ms();
    // Clients first, by index into fds (offset 2), before accept appends new ones.
    for (std::size_t i = clients.size(); i-- > 0;) {
      Client& c = clients[i];
      short ev = fds[i + 2].revents;
      bool done = false;
      if (ev & (POLLERR | POLLHUP | POLLNVAL)) {
        done = true;
      } else if (c.out.empty() && (ev & POLLIN)) {
        char buf[4096];
        ssize_t n = recv(c.fd, buf, sizeof buf, 0);
        if (n <= 0) {
          done = n == 0 || (errno != EAGAIN && errno != EINTR);
        } else {
          c.in.append(buf, static_cast<std::size_t>(n));
          if (c.in.find("\r\n\r\n") != std::string::npos) {
            try {
              c.out = render(answer_admin(c.in, registry_));
            } catch (const std::exception& e) {
              // A metrics table's bug (a name the format refuses) or no memory: this scrape
              // fails, the admin port and the cores go on.
              LOG_ERROR("admin_request_failed", log::kv("error", e.what()));
              c.out = render(error(500, "internal error"));
            }
          } else if (c.in.size() > kAdminMaxHeader) {
            c.out = render(error(431, "request head over 8 KiB"));
          }
          // The answer gets its own deadline: a scraper that stops reading is dropped too.
          if (!c.out.empty()) c.deadline = now + kAdminReadTimeoutMs;
        }
      } else if (!c.out.empty() && (ev & POLLOUT)) {
        ssize_t n = send(c.fd, c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL);
        if (n > 0) c.sent += static_cast<std::size_t>(n);
        done = c.sent == c.out.size() || (n < 0 && errno != EAGAIN && errno != EINTR);
      }
      if (!done && now >= c.deadline) done = true;  // a slow or silent client
      if (done) drop(i);
    }
    // At most half the slots per turn: a client accepted in one turn is among the newest
    // when the next turn evicts, so its request (sent with its connect) is read before any
    // flood of newcomers can take its slot.
    for (std::size_t n = 0; (fds[1].revents & POLLIN) && n < kAdminMaxConnections / 2; ++n) {
      // Full: the oldest that is still reading (its deadline comes first) goes, but only once
      // a newcomer is there to take its place; none: all are being answered, and the rest
      // wait in the backlog for one of them to finish.
      auto oldest = clients.end();
      for (auto it = clients.begin(); clients.size() == kAdminMaxConnections && it != clients.end();
           ++it) {
        if (it->out.empty() && (oldest == clients.end() || it->deadline < oldest->deadline))
          oldest = it;
      }
      if (clients.size() == kAdminMaxConnections && oldest == clients.end()) break;
      int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        // Out of descriptors or memory, the connection stays queued and the listener readable:
        // polled again at once, it would spin a CPU for as long as the shortage lasts.
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
          accept_after = now + kAdminAcceptRetryMs;
        break;
      }
      if (oldest != clients.end()) drop(static_cast<std::size_t>(oldest - clients.begin()));
      clients.push_back({fd, now + kAdminReadTimeoutMs, {}, {}, 0});
    }
  }
  for (const Client& c : clients) close(c.fd);
}

}  // namespace wsedge::ops
