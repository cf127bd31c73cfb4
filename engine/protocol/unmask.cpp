#include "unmask.hpp"

#include <immintrin.h>

#include <cstring>

namespace wsedge::protocol {
namespace {

std::uint32_t rotate_key(std::uint32_t key, std::size_t phase) {
  unsigned shift = static_cast<unsigned>(phase & 3) * 8;
  return shift == 0 ? key : (key >> shift) | (key << (32 - shift));
}

// Each kernel XORs `len` bytes of `src` into `dst` (which may be the same place), vector loops
// first, then eight bytes at a time, then single bytes.
void mask_tail(std::byte* dst, const std::byte* src, std::size_t len, std::uint32_t k) {
  std::uint64_t k64 = (std::uint64_t{k} << 32) | k;
  while (len >= 8) {
    std::uint64_t w;
    std::memcpy(&w, src, 8);
    w ^= k64;
    std::memcpy(dst, &w, 8);
    src += 8;
    dst += 8;
    len -= 8;
  }
  for (std::size_t i = 0; i < len; ++i)
    dst[i] = src[i] ^ static_cast<std::byte>(k >> (8 * (i & 3)));
}

void mask_sse2(std::byte* dst, const std::byte* src, std::size_t len, std::uint32_t k) {
  __m128i m = _mm_set1_epi32(static_cast<int>(k));
  while (len >= 16) {
    __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst), _mm_xor_si128(v, m));
    src += 16;
    dst += 16;
    len -= 16;
  }
  mask_tail(dst, src, len, k);
}

__attribute__((target("avx2"))) void mask_avx2(std::byte* dst, const std::byte* src,
                                               std::size_t len, std::uint32_t k) {
  __m256i m = _mm256_set1_epi32(static_cast<int>(k));
  while (len >= 64) {
    auto* s = reinterpret_cast<const __m256i*>(src);
    auto* d = reinterpret_cast<__m256i*>(dst);
    __m256i a = _mm256_loadu_si256(s);
    __m256i b = _mm256_loadu_si256(s + 1);
    _mm256_storeu_si256(d, _mm256_xor_si256(a, m));
    _mm256_storeu_si256(d + 1, _mm256_xor_si256(b, m));
    src += 64;
    dst += 64;
    len -= 64;
  }
  if (len >= 32) {
    __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst), _mm256_xor_si256(a, m));
    src += 32;
    dst += 32;
    len -= 32;
  }
  mask_sse2(dst, src, len, k);
}

const bool kHasAvx2 = __builtin_cpu_supports("avx2");

}  // namespace

void copy_masked(std::byte* dst, const std::byte* src, std::size_t len, std::uint32_t key,
                 std::size_t phase) {
  std::uint32_t k = rotate_key(key, phase);
  if (kHasAvx2 && len >= 32)
    mask_avx2(dst, src, len, k);
  else
    mask_sse2(dst, src, len, k);
}

void apply_mask(std::byte* data, std::size_t len, std::uint32_t key, std::size_t phase) {
  copy_masked(data, data, len, key, phase);
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
