#pragma once
// A session whose ciphertext collects in memory instead of a socket's output queue: two of them
// wired back to back exercise TLS without the network (unit tests, the handshake ceiling
// benchmark).
#include <cstdint>
#include <utility>
#include <vector>

#include "session.hpp"

namespace wsedge::tls {

class MemorySession {
 public:
  // A server with a `shard` moves to our record layer after a TLS 1.3 handshake.
  MemorySession(SSL_CTX* ctx, bool server, RecordShard* shard = nullptr,
                std::shared_ptr<const void> owner = {})
      : session_(ctx, server, &collect, this, 0, shard, std::move(owner)) {}
  MemorySession(const MemorySession&) = delete;
  MemorySession& operator=(const MemorySession&) = delete;

  Session* operator->() { return &session_; }
  Session& operator*() { return session_; }
  // The ciphertext sent since the last call.
  std::vector<std::byte> take() { return std::exchange(sent_, {}); }

 private:
  static void collect(void* self, std::uint64_t, const std::byte* data, std::size_t len) {
    auto& sent = static_cast<MemorySession*>(self)->sent_;
    sent.insert(sent.end(), data, data + len);
  }

  std::vector<std::byte> sent_;
  Session session_;
};

}  // namespace wsedge::tls
