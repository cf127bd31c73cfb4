#include "engine/io/buffer_ring.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace wsedge::io {
namespace {

struct RingFixture : ::testing::Test {
  io_uring ring{};
  int sv[2] = {-1, -1};
  void SetUp() override {
    ASSERT_EQ(io_uring_queue_init(16, &ring, 0), 0);
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
  }
  void TearDown() override {
    close(sv[0]);
    close(sv[1]);
    io_uring_queue_exit(&ring);
  }
  void arm(unsigned short group) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    io_uring_prep_recv_multishot(sqe, sv[0], nullptr, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = group;
    io_uring_submit(&ring);
  }
  io_uring_cqe next() {
    io_uring_cqe* cqe = nullptr;
    EXPECT_EQ(io_uring_wait_cqe(&ring, &cqe), 0);
    io_uring_cqe copy = *cqe;
    io_uring_cqe_seen(&ring, cqe);
    return copy;
  }
};

TEST_F(RingFixture, AccountsForEveryBufferAndRefillsAfterEnobufs) {
  BufferRing br(&ring, 4, 256, 7);
  EXPECT_EQ(br.available(), 4u);
  arm(7);
  unsigned used[4];
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(write(sv[1], "0123456789", 10), 10);
    io_uring_cqe c = next();
    ASSERT_EQ(c.res, 10);
    ASSERT_TRUE(c.flags & IORING_CQE_F_BUFFER);
    ASSERT_TRUE(c.flags & IORING_CQE_F_MORE);
    br.taken();
    used[i] = c.flags >> IORING_CQE_BUFFER_SHIFT;
    EXPECT_EQ(std::string(reinterpret_cast<char*>(br.data(used[i])), 10), "0123456789");
    EXPECT_EQ(br.available(), 3u - i);
  }
  // The ring is dry: the multishot recv ends with ENOBUFS and the data waits in the socket.
  ASSERT_EQ(write(sv[1], "after", 5), 5);
  io_uring_cqe dry = next();
  EXPECT_EQ(dry.res, -ENOBUFS);
  EXPECT_FALSE(dry.flags & IORING_CQE_F_MORE);

  for (unsigned bid : used) br.recycle(bid);
  EXPECT_EQ(br.staged(), 4u);
  EXPECT_EQ(br.available(), 0u);  // not visible to the kernel until committed
  br.commit();
  EXPECT_EQ(br.available(), 4u);
  EXPECT_EQ(br.staged(), 0u);

  arm(7);  // re-armed once buffers are back: nothing was lost
  io_uring_cqe again = next();
  ASSERT_EQ(again.res, 5);
  br.taken();
  EXPECT_EQ(
      std::string(reinterpret_cast<char*>(br.data(again.flags >> IORING_CQE_BUFFER_SHIFT)), 5),
      "after");
  EXPECT_EQ(br.available(), 3u);
}

TEST_F(RingFixture, RejectsBadGeometry) {
  EXPECT_THROW(BufferRing(&ring, 3, 256, 1), std::invalid_argument);
  EXPECT_THROW(BufferRing(&ring, 4, 16, 1), std::invalid_argument);
}

}  // namespace
}  // namespace wsedge::io
