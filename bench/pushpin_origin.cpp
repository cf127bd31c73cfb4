// pushpin_origin: the origin behind the Pushpin baseline, speaking WebSocket-over-HTTP (GRIP).
//
//   pushpin_origin --listen PORT [--publish ENDPOINT]
//
// Pushpin (route `* localhost:PORT,over_http`) turns each client's WebSocket events into HTTP
// POSTs of Content-Type application/websocket-events ("OPEN\r\n", "TEXT <hex len>\r\n<data>\r\n",
// "BINARY ...", "CLOSE ...", "PING", "DISCONNECT"), one request in flight per connection, and
// sends the events in the response to the client.
// Echo: OPEN is answered OPEN; every TEXT and BINARY comes back as it came; PING gets PONG,
// CLOSE gets CLOSE.
// Fan-out (--publish, Pushpin's handler's PULL, by default tcp://127.0.0.1:5560): OPEN is
// answered OPEN with GRIP enabled (Sec-WebSocket-Extensions: grip; message-prefix=""), a control
// message subscribing the connection to channel "bench", then the text "ready"; every TEXT is
// published to "bench" (a "J"-prefixed JSON item on a ZeroMQ PUSH) instead of echoed, like
// bridge_echo_backend does for wsedge.
// HTTP/1.1 keep-alive on epoll, one thread; requests may be pipelined.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zmq.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>

namespace {

struct Client {
  std::string in, out;
};

void* push = nullptr;
std::string scratch;

constexpr std::string_view kSubscribe = R"(c:{"type":"subscribe","channel":"bench"})";

void event(std::string& body, std::string_view type, std::string_view content) {
  char len[32];
  std::snprintf(len, sizeof len, " %zx\r\n", content.size());
  body += type;
  body += len;
  body += content;
  body += "\r\n";
}

void publish(std::string_view text) {
  scratch.assign(R"(J{"channel":"bench","formats":{"ws-message":{"content":")");
  scratch += text;  // wsload's triggers are hex digits and letters: nothing to escape
  scratch += R"("}}})";
  zmq_send(push, scratch.data(), scratch.size(), ZMQ_DONTWAIT);
}

// One request's events in, the response's events out. False when the body does not parse.
bool answer(std::string_view events, std::string& body, bool& opened) {
  while (!events.empty()) {
    std::size_t eol = events.find("\r\n");
    if (eol == std::string_view::npos) return false;
    std::string_view line = events.substr(0, eol);
    events.remove_prefix(eol + 2);
    std::size_t sp = line.find(' ');
    std::string_view type = line.substr(0, sp);
    std::string_view content;
    if (sp != std::string_view::npos) {
      std::size_t n = std::strtoul(std::string(line.substr(sp + 1)).c_str(), nullptr, 16);
      if (events.size() < n + 2) return false;
      content = events.substr(0, n);
      events.remove_prefix(n + 2);
    }
    if (type == "OPEN") {
      body += "OPEN\r\n";
      opened = true;
      if (push) {
        event(body, "TEXT", kSubscribe);
        event(body, "TEXT", "ready");
      }
    } else if (type == "TEXT") {
      if (push)
        publish(content);
      else
        event(body, "TEXT", content);
    } else if (type == "BINARY") {
      event(body, "BINARY", content);
    } else if (type == "PING") {
      event(body, "PONG", content);
    } else if (type == "CLOSE") {
      event(body, "CLOSE", content);
    }
  }
  return true;
}

// Parses what requests are complete in c.in and appends their responses to c.out.
bool serve(Client& c) {
  std::size_t pos = 0;
  for (;;) {
    std::string_view in(c.in.data() + pos, c.in.size() - pos);
    std::size_t end = in.find("\r\n\r\n");
    if (end == std::string_view::npos) break;
    std::string_view head = in.substr(0, end + 2);
    std::size_t length = 0;
    for (std::size_t p = head.find("\r\n") + 2; p < head.size();) {
      std::size_t e = head.find("\r\n", p);
      std::string_view h = head.substr(p, e - p);
      if (h.size() > 15 && strncasecmp(h.data(), "content-length:", 15) == 0)
        length = std::strtoul(std::string(h.substr(15)).c_str(), nullptr, 10);
      p = e + 2;
    }
    if (in.size() < end + 4 + length) break;
    std::string body;
    bool opened = false;
    if (!answer(in.substr(end + 4, length), body, opened)) return false;
    char head_out[256];
    int n = std::snprintf(
        head_out, sizeof head_out,
        "HTTP/1.1 200 OK\r\nContent-Type: application/websocket-events\r\n%s"
        "Content-Length: %zu\r\n\r\n",
        opened && push ? "Sec-WebSocket-Extensions: grip; message-prefix=\"\"\r\n" : "",
        body.size());
    c.out.append(head_out, static_cast<std::size_t>(n));
    c.out += body;
    pos += end + 4 + length;
  }
  c.in.erase(0, pos);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  int port = 0;
  std::string pub;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string_view a = argv[i];
    if (a == "--listen")
      port = std::atoi(argv[i + 1]);
    else if (a == "--publish")
      pub = argv[i + 1];
  }
  if (port == 0) {
    std::fprintf(stderr, "usage: pushpin_origin --listen PORT [--publish ENDPOINT]\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  void* ctx = zmq_ctx_new();
  if (!pub.empty()) {
    push = zmq_socket(ctx, ZMQ_PUSH);
    int hwm = 100000;
    zmq_setsockopt(push, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_connect(push, pub.c_str());
  }
  int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  int one = 1;
  setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<std::uint16_t>(port));
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof sa) || listen(ls, 4096)) {
    std::perror("pushpin_origin: bind");
    return 1;
  }
  int ep = epoll_create1(0);
  epoll_event ev{EPOLLIN, {.fd = ls}};
  epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev);
  std::unordered_map<int, Client> clients;
  epoll_event evs[256];
  char buf[65536];
  for (;;) {
    int n = epoll_wait(ep, evs, 256, -1);
    for (int i = 0; i < n; ++i) {
      int fd = evs[i].data.fd;
      if (fd == ls) {
        int c;
        while ((c = accept4(ls, nullptr, nullptr, SOCK_NONBLOCK)) >= 0) {
          setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          epoll_event cev{EPOLLIN | EPOLLRDHUP, {.fd = c}};
          epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev);
          clients[c];
        }
        continue;
      }
      Client& c = clients[fd];
      bool dead = false;
      for (;;) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r > 0) {
          c.in.append(buf, static_cast<std::size_t>(r));
          continue;
        }
        dead = r == 0 || errno != EAGAIN;
        break;
      }
      if (!dead) dead = !serve(c);
      // Responses are small; a full socket buffer here would mean the proxy stopped reading.
      while (!dead && !c.out.empty()) {
        ssize_t w = write(fd, c.out.data(), c.out.size());
        if (w <= 0) {
          dead = true;
          break;
        }
        c.out.erase(0, static_cast<std::size_t>(w));
      }
      if (dead) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
        close(fd);
        clients.erase(fd);
      }
    }
  }
}
