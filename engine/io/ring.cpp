#include "ring.hpp"

#include <sys/utsname.h>

#include <cstring>
#include <stdexcept>

namespace wsedge::io {
namespace {

[[noreturn]] void missing(const char* what, int err) {
  throw std::runtime_error(std::string("io_uring: ") + what + " unavailable (" +
                           std::strerror(err) + "); wsedge needs Linux " + kRequiredKernel +
                           " or newer, this is " + kernel_release());
}

void init(io_uring& ring, unsigned entries) {
  io_uring_params p{};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE |
            IORING_SETUP_SUBMIT_ALL;
  p.cq_entries = entries * 4;
  int rc = io_uring_queue_init_params(entries, &ring, &p);
  if (rc < 0) missing("IORING_SETUP_SINGLE_ISSUER|DEFER_TASKRUN", -rc);
  if (!(p.features & IORING_FEAT_NODROP)) missing("IORING_FEAT_NODROP", EINVAL);
}

}  // namespace

Ring::Ring(unsigned entries) {
  init(ring_, entries);
}

Ring::~Ring() {
  io_uring_queue_exit(&ring_);
}

io_uring_sqe* Ring::sqe() {
  io_uring_sqe* s = io_uring_get_sqe(&ring_);
  while (!s) {
    io_uring_submit(&ring_);
    s = io_uring_get_sqe(&ring_);
  }
  return s;
}

std::string kernel_release() {
  utsname u{};
  uname(&u);
  return u.release;
}

void probe_kernel_features() {
  io_uring ring{};
  init(ring, 8);
  io_uring_probe* probe = io_uring_get_probe_ring(&ring);
  if (!probe) {
    io_uring_queue_exit(&ring);
    missing("IORING_REGISTER_PROBE", ENOSYS);
  }
  struct Op {
    int op;
    const char* name;
  };
  const Op ops[] = {{IORING_OP_ACCEPT, "IORING_OP_ACCEPT"},
                    {IORING_OP_RECV, "IORING_OP_RECV"},
                    {IORING_OP_SEND, "IORING_OP_SEND"},
                    {IORING_OP_SENDMSG, "IORING_OP_SENDMSG"},
                    {IORING_OP_TIMEOUT, "IORING_OP_TIMEOUT"},
                    {IORING_OP_CLOSE, "IORING_OP_CLOSE"},
                    {IORING_OP_CONNECT, "IORING_OP_CONNECT"},
                    {IORING_OP_MSG_RING, "IORING_OP_MSG_RING"},
                    {IORING_OP_ASYNC_CANCEL, "IORING_OP_ASYNC_CANCEL"},
                    {IORING_OP_READ, "IORING_OP_READ"},
                    {IORING_OP_POLL_ADD, "IORING_OP_POLL_ADD"}};
  for (const Op& o : ops) {
    if (!io_uring_opcode_supported(probe, o.op)) {
      io_uring_free_probe(probe);
      io_uring_queue_exit(&ring);
      missing(o.name, EOPNOTSUPP);
    }
  }
  io_uring_free_probe(probe);
  // Provided buffer rings: registering a tiny one proves the kernel has them (5.19).
  io_uring_buf_reg reg{};
  void* mem = aligned_alloc(4096, 4096);
  reg.ring_addr = reinterpret_cast<std::uint64_t>(mem);
  reg.ring_entries = 1;
  reg.bgid = 0;
  int rc = io_uring_register_buf_ring(&ring, &reg, 0);
  if (rc == 0) io_uring_unregister_buf_ring(&ring, 0);
  free(mem);
  io_uring_queue_exit(&ring);
  if (rc < 0) missing("provided buffer rings", -rc);
}

}  // namespace wsedge::io
