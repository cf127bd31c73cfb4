#pragma once
// One io_uring per reactor thread, set up SINGLE_ISSUER + DEFER_TASKRUN: completions run only
// when this thread enters the kernel to wait, so a loop turn sees a consistent batch.
#include <liburing.h>

#include <cstdint>
#include <string>

namespace wsedge::io {

// What wsedge needs from the kernel, and since when. Probed at start-up so a missing feature is
// one clear error naming the kernel to use, instead of an EINVAL in the middle of serving.
//   IORING_SETUP_SINGLE_ISSUER         6.0
//   IORING_SETUP_DEFER_TASKRUN         6.1   (implies everything below)
//   multishot accept, provided buffer rings (IORING_REGISTER_PBUF_RING)   5.19
//   multishot recv (IORING_RECV_MULTISHOT)                               6.0
//   IORING_OP_MSG_RING 5.18, IORING_OP_CONNECT 5.5, IORING_ASYNC_CANCEL_* 5.19
//   multishot IORING_OP_POLL_ADD (IORING_POLL_ADD_MULTI, for FdWatch)   5.13
// (No IORING_OP_SHUTDOWN: the reactor calls shutdown(2) directly, which never blocks on TCP.)
constexpr const char* kRequiredKernel = "6.1";

class Ring {
 public:
  explicit Ring(unsigned entries);
  ~Ring();
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;

  // Never null: submits to make room when the submission queue is full.
  io_uring_sqe* sqe();
  io_uring* raw() { return &ring_; }
  int fd() const { return ring_.ring_fd; }

 private:
  io_uring ring_{};
};

// Throws std::runtime_error naming the missing feature and kRequiredKernel.
void probe_kernel_features();

std::string kernel_release();

}  // namespace wsedge::io
