// floor_echo: the least a WebSocket echo server can do per message on this kernel, as the
// yardstick for wsedge, not a server. One io_uring thread, multishot accept and recv into
// provided buffers, a 101 built from the client's key, and each client frame unmasked and sent
// back with no validation at all. Output is batched per loop turn like wsedge's.
//
//   floor_echo --listen HOST:PORT
#include "bench/server_args.hpp"

#include <arpa/inet.h>
#include <liburing.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

constexpr unsigned kBufCount = 4096, kBufSize = 16384;
constexpr std::uint64_t kAccept = 1, kRecv = 2, kSend = 3;

struct Conn {
  bool open = false, upgraded = false, sending = false, dirty = false, closing = false;
  std::string in, out, flight;
  std::size_t flight_off = 0;
};

io_uring ring;
io_uring_buf_ring* bufs;
char* buf_base;
std::vector<Conn> conns(1 << 16);
std::vector<int> dirty;
int listen_fd;

io_uring_sqe* sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring);
  if (!s) {
    io_uring_submit(&ring);
    s = io_uring_get_sqe(&ring);
  }
  return s;
}

void arm_recv(int fd) {
  io_uring_sqe* s = sqe();
  io_uring_prep_recv_multishot(s, fd, nullptr, 0, 0);
  s->flags |= IOSQE_BUFFER_SELECT;
  s->buf_group = 0;
  s->user_data = kRecv << 32 | static_cast<unsigned>(fd);
}

void close_conn(int fd) {
  Conn& c = conns[fd];
  c = Conn{};
  shutdown(fd, SHUT_RDWR);
  close(fd);
}

void mark(int fd) {
  Conn& c = conns[fd];
  if (!c.dirty) {
    c.dirty = true;
    dirty.push_back(fd);
  }
}

void unmask(char* p, std::size_t n, const unsigned char* key) {
  std::uint32_t k;
  std::memcpy(&k, key, 4);
  std::uint64_t k8 = (std::uint64_t{k} << 32) | k;
  std::size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    std::uint64_t w;
    std::memcpy(&w, p + i, 8);
    w ^= k8;
    std::memcpy(p + i, &w, 8);
  }
  for (; i < n; ++i) p[i] = static_cast<char>(p[i] ^ key[i & 3]);
}

// Echoes every complete frame in [data, data+len); returns the bytes consumed.
std::size_t echo_frames(int fd, char* data, std::size_t len) {
  Conn& c = conns[fd];
  std::size_t off = 0;
  while (len - off >= 2) {
    auto* h = reinterpret_cast<unsigned char*>(data + off);
    std::uint64_t n = h[1] & 0x7F;
    std::size_t hl = 2;
    if (n == 126) {
      if (len - off < 4) break;
      n = (std::uint64_t{h[2]} << 8) | h[3];
      hl = 4;
    } else if (n == 127) {
      if (len - off < 10) break;
      n = 0;
      for (int i = 0; i < 8; ++i) n = (n << 8) | h[2 + i];
      hl = 10;
    }
    if (len - off < hl + 4 + n) break;
    char* payload = data + off + hl + 4;
    unmask(payload, n, h + hl);
    char hdr[10];
    hdr[0] = static_cast<char>(h[0]);
    std::size_t ohl = 2;
    if (n < 126) {
      hdr[1] = static_cast<char>(n);
    } else if (n < 65536) {
      hdr[1] = 126;
      hdr[2] = static_cast<char>(n >> 8);
      hdr[3] = static_cast<char>(n);
      ohl = 4;
    } else {
      hdr[1] = 127;
      for (int i = 0; i < 8; ++i) hdr[2 + i] = static_cast<char>(n >> (56 - 8 * i));
      ohl = 10;
    }
    c.out.append(hdr, ohl);
    c.out.append(payload, n);
    off += hl + 4 + n;
    if ((h[0] & 0x0F) == 8) {  // Close: echoed like any frame, then the socket goes
      c.closing = true;
      off = len;
      break;
    }
  }
  if (off) mark(fd);
  return off;
}

void handshake(int fd) {
  Conn& c = conns[fd];
  std::size_t end = c.in.find("\r\n\r\n");
  if (end == std::string::npos) return;
  std::size_t k = c.in.find("Sec-WebSocket-Key: ");
  if (k == std::string::npos) return close_conn(fd);
  std::string key = c.in.substr(k + 19, 24) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char sha[20], b64[32];
  unsigned len = 0;
  EVP_Digest(key.data(), key.size(), sha, &len, EVP_sha1(), nullptr);
  EVP_EncodeBlock(b64, sha, 20);
  c.out +=
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: "
      "Upgrade\r\nSec-WebSocket-Accept: ";
  c.out += reinterpret_cast<char*>(b64);
  c.out += "\r\n\r\n";
  c.upgraded = true;
  c.in.erase(0, end + 4);
  mark(fd);
}

void on_bytes(int fd, char* data, std::size_t len) {
  Conn& c = conns[fd];
  if (!c.upgraded) {
    c.in.append(data, len);
    handshake(fd);
    if (!c.upgraded || c.in.empty()) return;
    std::string rest;
    rest.swap(c.in);
    std::size_t used = echo_frames(fd, rest.data(), rest.size());
    if (conns[fd].open) conns[fd].in.assign(rest, used);
    return;
  }
  if (c.in.empty()) {
    std::size_t used = echo_frames(fd, data, len);
    if (conns[fd].open && used < len) conns[fd].in.assign(data + used, len - used);
  } else {
    c.in.append(data, len);
    std::size_t used = echo_frames(fd, c.in.data(), c.in.size());
    if (conns[fd].open) conns[fd].in.erase(0, used);
  }
}

void start_send(int fd) {
  Conn& c = conns[fd];
  io_uring_sqe* s = sqe();
  io_uring_prep_send(s, fd, c.flight.data() + c.flight_off, c.flight.size() - c.flight_off,
                     MSG_NOSIGNAL);
  s->user_data = kSend << 32 | static_cast<unsigned>(fd);
  c.sending = true;
}

void flush() {
  for (int fd : dirty) {
    Conn& c = conns[fd];
    c.dirty = false;
    if (!c.open || c.sending || c.out.empty()) continue;
    c.flight.swap(c.out);
    c.out.clear();
    c.flight_off = 0;
    start_send(fd);
  }
  dirty.clear();
}

}  // namespace

int main(int argc, char** argv) {
  auto args = wsedge::bench::parse_server_args(argc, argv, "floor_echo", false);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(args.port);
  inet_pton(AF_INET, args.host.c_str(), &addr.sin_addr);
  signal(SIGPIPE, SIG_IGN);
  listen_fd = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  setsockopt(listen_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (bind(listen_fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) || listen(listen_fd, 4096)) {
    std::perror("floor_echo: listen");
    return 1;
  }
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
  p.cq_entries = 16384;
  if (io_uring_queue_init_params(4096, &ring, &p) < 0) return 1;
  bufs = static_cast<io_uring_buf_ring*>(mmap(nullptr, sizeof(io_uring_buf) * kBufCount,
                                              PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                                              -1, 0));
  buf_base = static_cast<char*>(mmap(nullptr, std::size_t{kBufCount} * kBufSize,
                                     PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  io_uring_buf_ring_init(bufs);
  io_uring_buf_reg reg{};
  reg.ring_addr = reinterpret_cast<std::uint64_t>(bufs);
  reg.ring_entries = kBufCount;
  io_uring_register_buf_ring(&ring, &reg, 0);
  int mask = io_uring_buf_ring_mask(kBufCount);
  for (unsigned i = 0; i < kBufCount; ++i)
    io_uring_buf_ring_add(bufs, buf_base + std::size_t{i} * kBufSize, kBufSize,
                          static_cast<unsigned short>(i), mask, static_cast<int>(i));
  io_uring_buf_ring_advance(bufs, kBufCount);
  io_uring_sqe* s = sqe();
  io_uring_prep_multishot_accept(s, listen_fd, nullptr, nullptr, 0);
  s->user_data = kAccept << 32;
  std::vector<int> rearm;
  for (;;) {
    flush();
    io_uring_submit_and_wait(&ring, 1);
    unsigned head, n = 0, recycled = 0;
    io_uring_cqe* cqe;
    io_uring_for_each_cqe(&ring, head, cqe) {
      ++n;
      auto op = cqe->user_data >> 32;
      int fd = static_cast<int>(cqe->user_data & 0xFFFFFFFF);
      if (op == kAccept) {
        if (cqe->res >= 0 && cqe->res < static_cast<int>(conns.size())) {
          conns[cqe->res].open = true;
          setsockopt(cqe->res, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          arm_recv(cqe->res);
        }
        if (!(cqe->flags & IORING_CQE_F_MORE)) {
          s = sqe();
          io_uring_prep_multishot_accept(s, listen_fd, nullptr, nullptr, 0);
          s->user_data = kAccept << 32;
        }
      } else if (op == kRecv) {
        if (cqe->flags & IORING_CQE_F_BUFFER) {
          unsigned bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
          if (cqe->res > 0 && conns[fd].open)
            on_bytes(fd, buf_base + std::size_t{bid} * kBufSize,
                     static_cast<std::size_t>(cqe->res));
          io_uring_buf_ring_add(bufs, buf_base + std::size_t{bid} * kBufSize, kBufSize,
                                static_cast<unsigned short>(bid), mask,
                                static_cast<int>(recycled++));
        }
        if (!(cqe->flags & IORING_CQE_F_MORE) && conns[fd].open) {
          if (cqe->res == -ENOBUFS)
            rearm.push_back(fd);
          else
            close_conn(fd);
        }
      } else if (op == kSend) {
        Conn& c = conns[fd];
        c.sending = false;
        if (!c.open) {
        } else if (cqe->res < 0) {
          close_conn(fd);
        } else if (c.flight_off + static_cast<std::size_t>(cqe->res) < c.flight.size()) {
          c.flight_off += static_cast<std::size_t>(cqe->res);
          start_send(fd);
        } else if (!c.out.empty()) {
          mark(fd);
        } else if (c.closing) {
          close_conn(fd);
        }
      }
    }
    io_uring_cq_advance(&ring, n);
    if (recycled) io_uring_buf_ring_advance(bufs, static_cast<int>(recycled));
    for (int fd : rearm) {
      if (conns[fd].open) arm_recv(fd);
    }
    rearm.clear();
  }
}
