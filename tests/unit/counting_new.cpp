// Every allocation through operator new in the unit-test binary is counted, to prove that
// steady states (the engine's echo, the bridge's path) allocate nothing per message. One
// definition per binary: it replaces the global operators.
#include "counting_new.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<std::uint64_t> g_allocations{0};
thread_local std::atomic<std::uint64_t>* t_counter = nullptr;
}  // namespace

namespace wsedge::test {
std::uint64_t allocations() {
  return g_allocations.load(std::memory_order_relaxed);
}
void count_thread_into(std::atomic<std::uint64_t>* counter) {
  t_counter = counter;
}
}  // namespace wsedge::test

[[gnu::noinline]] void* operator new(std::size_t n) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (t_counter) t_counter->fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void* operator new[](std::size_t n) {
  return operator new(n);
}
[[gnu::noinline]] void* operator new(std::size_t n, std::align_val_t a) {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (t_counter) t_counter->fetch_add(1, std::memory_order_relaxed);
  if (void* p =
          std::aligned_alloc(static_cast<std::size_t>(a), (n + static_cast<std::size_t>(a) - 1) &
                                                              ~(static_cast<std::size_t>(a) - 1)))
    return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete[](void* p, std::size_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::align_val_t) noexcept {
  std::free(p);
}
[[gnu::noinline]] void operator delete(void* p, std::size_t, std::align_val_t) noexcept {
  std::free(p);
}
