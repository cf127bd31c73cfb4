#pragma once
// Incremental UTF-8 validation for WebSocket text messages (RFC 6455 §8.1, RFC 3629).
// The state survives across frames and buffers so a message split anywhere is judged
// exactly as if it had arrived whole, and the first invalid byte is reported at once.
#include <cstddef>
#include <cstdint>

namespace wsedge::protocol {

class Utf8Validator {
 public:
  // Feeds bytes; false as soon as a byte can no longer start or continue valid UTF-8.
  bool feed(const std::byte* data, std::size_t len);
  // True when the bytes fed so far end on a character boundary.
  bool complete() const { return state_ == kAccept; }
  void reset() { state_ = kAccept; }

  static bool valid(const std::byte* data, std::size_t len) {
    Utf8Validator v;
    return v.feed(data, len) && v.complete();
  }

  static constexpr std::uint8_t kAccept = 0;
  static constexpr std::uint8_t kReject = 8;

 private:
  std::uint8_t state_ = kAccept;
};

}  // namespace wsedge::protocol
