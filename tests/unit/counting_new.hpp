#pragma once
// How many times operator new has run in this process (tests/unit/counting_new.cpp).
#include <atomic>
#include <cstdint>

namespace wsedge::test {
std::uint64_t allocations();
// From now on, operator new on the calling thread also counts into `counter` (null: stop), so
// a test can count the threads under test apart from its own driver threads.
void count_thread_into(std::atomic<std::uint64_t>* counter);
}  // namespace wsedge::test
