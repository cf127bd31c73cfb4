#pragma once
// XOR masking of WebSocket payloads (RFC 6455 §5.3), in place. Masking and unmasking are the
// same operation; `phase` is how many payload bytes precede `data` in the frame, so a payload
// that arrives in pieces is unmasked piece by piece.
#include <cstddef>
#include <cstdint>

namespace wsedge::protocol {

// `key` holds the four mask bytes in wire order, loaded as a little-endian word.
void apply_mask(std::byte* data, std::size_t len, std::uint32_t key, std::size_t phase = 0);

// Copies `len` bytes from `src` to `dst`, unmasking on the way: one pass instead of two where
// a payload has to be copied anyway (reassembly, client-side sends).
void copy_masked(std::byte* dst, const std::byte* src, std::size_t len, std::uint32_t key,
                 std::size_t phase = 0);

// The same, without SIMD: the reference the vector paths are tested against.
void apply_mask_scalar(std::byte* data, std::size_t len, std::uint32_t key, std::size_t phase = 0);

// Which vector path apply_mask uses on this CPU ("avx2" or "sse2").
const char* mask_isa();

}  // namespace wsedge::protocol
