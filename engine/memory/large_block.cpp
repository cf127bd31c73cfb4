#include "large_block.hpp"

#include <sys/mman.h>

#include <new>

namespace wsedge::memory {

void* map_block(std::size_t bytes) noexcept {
  if (!kMapsLargeBlocks) return ::operator new(bytes, std::nothrow);
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;
}

void unmap_block(void* p, std::size_t bytes) noexcept {
  if (kMapsLargeBlocks)
    munmap(p, bytes);
  else
    ::operator delete(p);
}

}  // namespace wsedge::memory
