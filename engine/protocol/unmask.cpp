#include "unmask.hpp"

#include <immintrin.h>

#include <cstring>

namespace wsedge::protocol {
namespace {

std::uint32_t rotate_key(std::uint32_t key, std::size_t phase) {
  unsigned shift = static_cast<unsigned>(phase & 3) * 8;
  return shift == 0 ? key : (key >> shift) | (key << (32 - shift));
}

// Finishes what the vector loops leave: eight bytes at a time, then single bytes.
void mask_tail(std::byte* p, std::size_t len, std::uint32_t k) {
  std::uint64_t k64 = (std::uint64_t{k} << 32) | k;
  while (len >= 8) {
    std::uint64_t w;
    std::memcpy(&w, p, 8);
    w ^= k64;
    std::memcpy(p, &w, 8);
    p += 8;
    len -= 8;
  }
  for (std::size_t i = 0; i < len; ++i) p[i] ^= static_cast<std::byte>(k >> (8 * (i & 3)));
}

void mask_sse2(std::byte* p, std::size_t len, std::uint32_t k) {
  __m128i m = _mm_set1_epi32(static_cast<int>(k));
  while (len >= 16) {
    auto* q = reinterpret_cast<__m128i*>(p);
    _mm_storeu_si128(q, _mm_xor_si128(_mm_loadu_si128(q), m));
    p += 16;
    len -= 16;
  }
  mask_tail(p, len, k);
}

__attribute__((target("avx2"))) void mask_avx2(std::byte* p, std::size_t len, std::uint32_t k) {
  __m256i m = _mm256_set1_epi32(static_cast<int>(k));
  while (len >= 64) {
    auto* q = reinterpret_cast<__m256i*>(p);
    _mm256_storeu_si256(q, _mm256_xor_si256(_mm256_loadu_si256(q), m));
    _mm256_storeu_si256(q + 1, _mm256_xor_si256(_mm256_loadu_si256(q + 1), m));
    p += 64;
    len -= 64;
  }
  while (len >= 32) {
    auto* q = reinterpret_cast<__m256i*>(p);
    _mm256_storeu_si256(q, _mm256_xor_si256(_mm256_loadu_si256(q), m));
    p += 32;
    len -= 32;
  }
  mask_sse2(p, len, k);
}

const bool kHasAvx2 = __builtin_cpu_supports("avx2");

}  // namespace

void apply_mask(std::byte* data, std::size_t len, std::uint32_t key, std::size_t phase) {
  std::uint32_t k = rotate_key(key, phase);
  if (kHasAvx2 && len >= 32)
    mask_avx2(data, len, k);
  else
    mask_sse2(data, len, k);
}

void apply_mask_scalar(std::byte* data, std::size_t len, std::uint32_t key, std::size_t phase) {
  for (std::size_t i = 0; i < len; ++i) {
    data[i] ^= static_cast<std::byte>(key >> (8 * ((phase + i) & 3)));
  }
}

const char* mask_isa() {
  return kHasAvx2 ? "avx2" : "sse2";
}

}  // namespace wsedge::protocol
