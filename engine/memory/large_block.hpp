#pragma once
// Large blocks, mapped from the kernel and unmapped when freed: their memory leaves the process
// the moment they are freed, whatever the allocator's policy. A burst of large messages (the
// buffer pool's large classes) or of per-connection compression state (zlib's windows and hash
// chains) is therefore not kept by a core that then goes idle. That lets mimalloc keep its
// delay before giving back freed pages (app/main.cpp), which spares the small allocations that
// come and go with every message a page fault each. A system call each: for what is made once
// per large message or per connection, never per small message.
#include <cstddef>

// Not under AddressSanitizer, which watches only what the allocator hands out: there every
// block comes from operator new. GCC says so with __SANITIZE_ADDRESS__, Clang (the fuzz build)
// only through __has_feature.
#if defined(__SANITIZE_ADDRESS__)
#define WSEDGE_MAPS_LARGE_BLOCKS 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define WSEDGE_MAPS_LARGE_BLOCKS 0
#endif
#endif
#ifndef WSEDGE_MAPS_LARGE_BLOCKS
#define WSEDGE_MAPS_LARGE_BLOCKS 1
#endif

namespace wsedge::memory {

inline constexpr bool kMapsLargeBlocks = WSEDGE_MAPS_LARGE_BLOCKS;

// `bytes` mapped from the kernel (from operator new where blocks are not mapped); null when it
// has none. Each caller decides what is large enough, and passes the same `bytes` back.
void* map_block(std::size_t bytes) noexcept;
void unmap_block(void* p, std::size_t bytes) noexcept;

}  // namespace wsedge::memory
