#include "engine/protocol/unmask.hpp"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace wsedge::protocol {
namespace {

std::vector<std::byte> random_bytes(std::size_t n, std::mt19937& rng) {
  std::vector<std::byte> v(n);
  for (auto& b : v) b = static_cast<std::byte>(rng());
  return v;
}

TEST(Unmask, VectorPathsMatchScalarForEveryLengthAndPhase) {
  std::mt19937 rng(42);
  for (std::size_t len = 0; len < 300; ++len) {
    for (std::size_t phase = 0; phase < 4; ++phase) {
      auto data = random_bytes(len + 7, rng);
      std::uint32_t key = static_cast<std::uint32_t>(rng());
      // Misaligned starts too: the vector loops use unaligned loads.
      std::size_t start = len % 7;
      auto expect = data;
      apply_mask_scalar(expect.data() + start, len, key, phase);
      apply_mask(data.data() + start, len, key, phase);
      ASSERT_EQ(data, expect) << "len " << len << " phase " << phase;
    }
  }
}

TEST(Unmask, PiecewiseEqualsWhole) {
  std::mt19937 rng(7);
  auto data = random_bytes(5000, rng);
  auto whole = data;
  std::uint32_t key = 0xA1B2C3D4;
  apply_mask(whole.data(), whole.size(), key, 0);
  std::size_t off = 0;
  while (off < data.size()) {
    std::size_t n = std::min<std::size_t>(1 + rng() % 97, data.size() - off);
    apply_mask(data.data() + off, n, key, off);
    off += n;
  }
  EXPECT_EQ(data, whole);
}

TEST(Unmask, CopyMaskedMatchesMaskInPlace) {
  std::mt19937 rng(3);
  for (std::size_t len : {0, 1, 7, 31, 32, 33, 63, 64, 65, 200, 4099}) {
    for (std::size_t phase = 0; phase < 4; ++phase) {
      auto src = random_bytes(len, rng);
      auto expect = src;
      apply_mask_scalar(expect.data(), len, 0x5A6B7C8D, phase);
      std::vector<std::byte> dst(len);
      copy_masked(dst.data(), src.data(), len, 0x5A6B7C8D, phase);
      ASSERT_EQ(dst, expect) << len << " " << phase;
    }
  }
}

TEST(Unmask, IsItsOwnInverse) {
  std::mt19937 rng(1);
  auto data = random_bytes(1 << 16, rng);
  auto orig = data;
  apply_mask(data.data(), data.size(), 0xDEADBEEF);
  EXPECT_NE(data, orig);
  apply_mask(data.data(), data.size(), 0xDEADBEEF);
  EXPECT_EQ(data, orig);
}

TEST(Unmask, ReportsIsa) {
  std::string isa = mask_isa();
  EXPECT_TRUE(isa == "avx2" || isa == "sse2");
}

}  // namespace
}  // namespace wsedge::protocol
