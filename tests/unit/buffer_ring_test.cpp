#include "engine/io/buffer_ring.hpp"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <vector>

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
  BufferRing br(&ring, 4, 256, 7, false);
  EXPECT_FALSE(br.incremental());
  EXPECT_EQ(br.available(), 4u);
  arm(7);
  unsigned used[4];
  for (int i = 0; i < 4; ++i) {
    ASSERT_EQ(write(sv[1], "0123456789", 10), 10);
    io_uring_cqe c = next();
    ASSERT_EQ(c.res, 10);
    ASSERT_TRUE(c.flags & IORING_CQE_F_BUFFER);
    ASSERT_TRUE(c.flags & IORING_CQE_F_MORE);
    used[i] = c.flags >> IORING_CQE_BUFFER_SHIFT;
    BufferRing::Slice slice = br.consume(used[i], 10, c.flags);
    EXPECT_TRUE(slice.last);  // a whole buffer per read, however small
    EXPECT_EQ(slice.data, br.data(used[i]));
    EXPECT_EQ(std::string(reinterpret_cast<char*>(slice.data), 10), "0123456789");
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
  BufferRing::Slice slice = br.consume(again.flags >> IORING_CQE_BUFFER_SHIFT, 5, again.flags);
  EXPECT_EQ(std::string(reinterpret_cast<char*>(slice.data), 5), "after");
  EXPECT_EQ(br.available(), 3u);
}

// The kernel here (6.12 or later) has incremental consumption; an older one cannot run these.
#define REQUIRE_INCREMENTAL(br)                       \
  if (!(br).incremental()) {                          \
    GTEST_SKIP() << "kernel lacks IOU_PBUF_RING_INC"; \
  }

std::string text(const std::byte* p, std::size_t n) {
  return std::string(reinterpret_cast<const char*>(p), n);
}

TEST_F(RingFixture, IncrementalSmallReadsShareOneBuffer) {
  BufferRing br(&ring, 4, 256, 7);
  REQUIRE_INCREMENTAL(br);
  arm(7);
  unsigned first_bid = 0;
  for (unsigned i = 0; i < 5; ++i) {
    std::string msg = "message " + std::to_string(i);
    ASSERT_EQ(write(sv[1], msg.data(), msg.size()), static_cast<ssize_t>(msg.size()));
    io_uring_cqe c = next();
    ASSERT_EQ(c.res, static_cast<int>(msg.size()));
    ASSERT_TRUE(c.flags & IORING_CQE_F_BUFFER);
    EXPECT_TRUE(c.flags & kCqeBufMore);  // the rest of the buffer stays in the ring
    unsigned bid = c.flags >> IORING_CQE_BUFFER_SHIFT;
    if (i == 0) first_bid = bid;
    EXPECT_EQ(bid, first_bid);  // every read lands in the same buffer ...
    BufferRing::Slice slice = br.consume(bid, msg.size(), c.flags);
    EXPECT_EQ(slice.data, br.data(bid) + i * 9);  // ... right behind the one before
    EXPECT_FALSE(slice.last);
    EXPECT_EQ(text(slice.data, msg.size()), msg);
  }
  EXPECT_EQ(br.available(), 4u);  // none taken: the kernel still fills the first
}

TEST_F(RingFixture, IncrementalRecyclesOnlyWhenTheKernelIsDone) {
  BufferRing br(&ring, 4, 256, 7);
  REQUIRE_INCREMENTAL(br);
  arm(7);
  std::string a(200, 'a');
  ASSERT_EQ(write(sv[1], a.data(), a.size()), 200);
  io_uring_cqe c = next();
  ASSERT_EQ(c.res, 200);
  unsigned bid = c.flags >> IORING_CQE_BUFFER_SHIFT;
  EXPECT_FALSE(br.consume(bid, 200, c.flags).last);
  // 100 more bytes: 56 fill the buffer, which the kernel then gives up; 44 go to the next.
  std::string b(56, 'b');
  b.append(44, 'c');
  ASSERT_EQ(write(sv[1], b.data(), b.size()), 100);
  std::string got;
  bool finished = false;
  while (got.size() < 100) {
    io_uring_cqe d = next();
    ASSERT_GT(d.res, 0);
    unsigned dbid = d.flags >> IORING_CQE_BUFFER_SHIFT;
    BufferRing::Slice slice = br.consume(dbid, static_cast<unsigned>(d.res), d.flags);
    got += text(slice.data, static_cast<std::size_t>(d.res));
    if (dbid == bid) {
      EXPECT_EQ(d.res, 56);
      EXPECT_EQ(slice.data, br.data(bid) + 200);
      EXPECT_TRUE(slice.last);
      finished = true;
    } else {
      EXPECT_FALSE(slice.last);  // the next buffer has room left
      EXPECT_EQ(slice.data, br.data(dbid));
    }
  }
  EXPECT_TRUE(finished);
  EXPECT_EQ(got, b);
  EXPECT_EQ(br.available(), 3u);
  br.recycle(bid);
  br.commit();
  EXPECT_EQ(br.available(), 4u);
}

TEST_F(RingFixture, IncrementalRunsDryAndRecovers) {
  BufferRing br(&ring, 1, 256, 7);
  REQUIRE_INCREMENTAL(br);
  arm(7);
  std::string full(256, 'x');
  ASSERT_EQ(write(sv[1], full.data(), full.size()), 256);
  io_uring_cqe c = next();
  ASSERT_EQ(c.res, 256);
  EXPECT_FALSE(c.flags & kCqeBufMore);
  unsigned bid = c.flags >> IORING_CQE_BUFFER_SHIFT;
  EXPECT_TRUE(br.consume(bid, 256, c.flags).last);
  EXPECT_EQ(br.available(), 0u);
  ASSERT_EQ(write(sv[1], "after", 5), 5);
  io_uring_cqe dry = next();
  EXPECT_EQ(dry.res, -ENOBUFS);
  br.recycle(bid);
  br.commit();
  arm(7);
  io_uring_cqe again = next();
  ASSERT_EQ(again.res, 5);
  BufferRing::Slice slice = br.consume(bid, 5, again.flags);
  EXPECT_EQ(slice.data, br.data(bid));  // a recycled buffer starts over at its beginning
  EXPECT_EQ(text(slice.data, 5), "after");
}

TEST_F(RingFixture, IncrementalEndOfStreamKeepsTheBuffer) {
  BufferRing br(&ring, 4, 256, 7);
  REQUIRE_INCREMENTAL(br);
  arm(7);
  ASSERT_EQ(write(sv[1], "tail", 4), 4);
  io_uring_cqe c = next();
  unsigned bid = c.flags >> IORING_CQE_BUFFER_SHIFT;
  EXPECT_FALSE(br.consume(bid, 4, c.flags).last);
  shutdown(sv[1], SHUT_WR);
  io_uring_cqe eof = next();
  EXPECT_EQ(eof.res, 0);
  // Whether or not the kernel names the buffer on an empty completion, nothing was consumed:
  // recycling it would put the ring's head buffer in twice.
  if (eof.flags & IORING_CQE_F_BUFFER) {
    EXPECT_FALSE(br.consume(eof.flags >> IORING_CQE_BUFFER_SHIFT, 0, eof.flags).last);
  }
  EXPECT_EQ(br.consume(bid, 0, 0).data, br.data(bid) + 4);
  EXPECT_EQ(br.available(), 4u);
}

TEST_F(RingFixture, ProvidesTheInitialCountAndDoublesUpToTheMaximum) {
  // Without incremental consumption every read takes a whole buffer: all are provided at once.
  BufferRing whole(&ring, 64, 256, 1, false, 4);
  EXPECT_EQ(whole.provided(), 64u);
  EXPECT_EQ(whole.available(), 64u);
  EXPECT_FALSE(whole.grow());
  BufferRing capped(&ring, 8, 256, 2);  // the default initial count is more than the maximum
  EXPECT_EQ(capped.provided(), 8u);
  EXPECT_FALSE(capped.grow());
  BufferRing inc(&ring, 64, 256, 3, true, 4);
  REQUIRE_INCREMENTAL(inc);
  EXPECT_EQ(inc.count(), 64u);
  EXPECT_EQ(inc.provided(), 4u);
  EXPECT_EQ(inc.available(), 4u);
  for (unsigned want : {8u, 16u, 32u, 64u}) {
    EXPECT_TRUE(inc.grow());
    EXPECT_EQ(inc.provided(), want);
    EXPECT_EQ(inc.staged(), want / 2);  // the new buffers reach the kernel with the next commit
    inc.commit();
    EXPECT_EQ(inc.available(), want);
  }
  EXPECT_FALSE(inc.grow());  // never past the maximum
  EXPECT_EQ(inc.staged(), 0u);
  EXPECT_EQ(inc.provided(), 64u);
}

TEST_F(RingFixture, IncrementalGrowsWhenATurnRunsDryAndLosesNothing) {
  // One buffer of 256 at first, at most 8: 4000 bytes waiting in the socket. Each turn reads
  // until the ring is dry, recycles what it finished, grows, commits and re-arms, as the reactor
  // does: 256, 512, 1024, 2048 bytes, then the last 160 once the ring is at its maximum.
  BufferRing br(&ring, 8, 256, 7, true, 1);
  REQUIRE_INCREMENTAL(br);
  std::string sent(4000, '\0');
  for (std::size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<char>('a' + i % 23);
  ASSERT_EQ(write(sv[1], sent.data(), sent.size()), 4000);
  std::string got;
  std::vector<std::size_t> per_turn;
  unsigned grown = 0;
  while (got.size() < sent.size()) {
    arm(7);
    std::vector<unsigned> finished;
    std::size_t before = got.size();
    bool dry = false;
    while (!dry && got.size() < sent.size()) {
      io_uring_cqe c = next();
      if (c.res == -ENOBUFS) {
        dry = true;
        break;
      }
      ASSERT_GT(c.res, 0);
      unsigned bid = c.flags >> IORING_CQE_BUFFER_SHIFT;
      EXPECT_LT(bid, br.provided());  // never a buffer not provided yet
      BufferRing::Slice slice = br.consume(bid, static_cast<unsigned>(c.res), c.flags);
      got += text(slice.data, static_cast<std::size_t>(c.res));
      if (slice.last) finished.push_back(bid);
    }
    per_turn.push_back(got.size() - before);
    for (unsigned bid : finished) br.recycle(bid);
    if (dry && br.grow()) ++grown;
    br.commit();
    if (!dry) break;
  }
  EXPECT_EQ(got, sent);  // in order, nothing lost or repeated across the growths
  EXPECT_EQ(per_turn, (std::vector<std::size_t>{256, 512, 1024, 2048, 160}));
  EXPECT_EQ(grown, 3u);
  EXPECT_EQ(br.provided(), 8u);
  // Every buffer accounted for: the one still filling (160 bytes in) counts as available.
  EXPECT_EQ(br.available(), 8u);
  EXPECT_EQ(br.staged(), 0u);
}

TEST_F(RingFixture, DefaultMaximumFollowsTheMode) {
  BufferRing inc(&ring, 0, 256, 1, true);
  EXPECT_EQ(inc.count(),
            inc.incremental() ? BufferRing::kIncrementalMaxCount : BufferRing::kWholeCount);
  BufferRing whole(&ring, 0, 256, 2, false);
  EXPECT_EQ(whole.count(), BufferRing::kWholeCount);
  EXPECT_EQ(whole.provided(), BufferRing::kWholeCount);
}

TEST_F(RingFixture, RejectsBadGeometry) {
  EXPECT_THROW(BufferRing(&ring, 3, 256, 1), std::invalid_argument);
  EXPECT_THROW(BufferRing(&ring, 4, 16, 1), std::invalid_argument);
  EXPECT_THROW(BufferRing(&ring, 4, 256, 1, true, 0), std::invalid_argument);
}

}  // namespace
}  // namespace wsedge::io
