// Fuzzes the MessageReader as a connection drives it: the input's first bytes choose the limits
// and where the byte stream is cut into reads, the rest is the stream. Each call's result is
// checked (bounded consumption, progress, payload views inside the read or a pool buffer, text
// and close reasons valid UTF-8, nothing after a failure), and the events of the cut stream
// must equal those of the same stream given in one read.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "engine/memory/buffer_pool.hpp"
#include "engine/protocol/close_code.hpp"
#include "engine/protocol/message_reader.hpp"
#include "fuzz_check.hpp"

namespace {

using wsedge::fuzz::check;
using wsedge::memory::Buffer;
using wsedge::memory::BufferPool;
using namespace wsedge::protocol;

struct Event {
  ReadEvent kind;
  Opcode opcode;
  std::uint16_t code;
  std::string payload;
  std::string error;
  bool operator==(const Event&) const = default;
};

bool valid_utf8(std::span<const std::byte> s) {
  return wsedge::fuzz::utf8_reference(reinterpret_cast<const std::uint8_t*>(s.data()), s.size())
      .valid;
}

// A payload not in the read's bytes must be (a part starting `offset` bytes into) the written
// part of a live pooled buffer.
void check_in_pool(std::span<const std::byte> payload, std::size_t offset) {
  const auto* b = reinterpret_cast<const Buffer*>(payload.data() - offset) - 1;
  check(b->refs >= 1 && b->size_class < BufferPool::kClassCount);
  check(b->len <= b->capacity() && offset + payload.size() <= b->len);
}

void check_result(const ReadResult& res, const std::byte* read, std::size_t consumed,
                  const ReaderLimits& limits) {
  std::span<const std::byte> p = res.payload;
  if (!p.empty() && !(p.data() >= read && p.data() + p.size() <= read + consumed))
    check_in_pool(p, res.event == ReadEvent::kClose ? 2 : 0);
  switch (res.event) {
    case ReadEvent::kNeedMore:
      check(p.empty());
      break;
    case ReadEvent::kMessage:
      check(res.opcode == Opcode::kText || res.opcode == Opcode::kBinary);
      // Only the RSV bits an extension was granted; its messages' text is its to validate.
      check((res.rsv & ~limits.allowed_rsv) == 0);
      if (res.opcode == Opcode::kText && res.rsv == 0) check(valid_utf8(p));
      break;
    case ReadEvent::kPing:
    case ReadEvent::kPong:
      check(p.size() <= kMaxControlPayload);
      break;
    case ReadEvent::kClose:
      check(res.code == close_code::kNoStatus || is_valid_wire_close_code(res.code));
      check(p.size() <= kMaxControlPayload - 2 && valid_utf8(p));
      break;
    case ReadEvent::kFail:
      check(res.error != nullptr && p.empty());
      check(res.code == close_code::kProtocolError || res.code == close_code::kInvalidPayload ||
            res.code == close_code::kMessageTooBig);
      break;
  }
}

// Feeds `stream` in reads ending at `cuts` (ascending, the last one the stream's end), as an
// endpoint does: every byte of a read is handed over before the next read, delivered storage is
// given back after each read, and everything at the end.
std::vector<Event> run(std::vector<std::byte> stream, const std::vector<std::size_t>& cuts,
                       const ReaderLimits& limits) {
  BufferPool pool;
  MessageReader reader;
  std::vector<Event> events;
  std::vector<Buffer*> taken;  // delivered messages a "new holder" keeps until after the read
  bool failed = false;
  std::size_t start = 0;
  for (std::size_t end : cuts) {
    std::byte* p = stream.data() + start;
    std::size_t left = end - start;
    start = end;
    while (left > 0) {
      ReadResult res = reader.next(p, left, limits, pool);
      check(res.consumed > 0 && res.consumed <= left);
      // After a failure the reader swallows everything and delivers nothing.
      if (failed) check(res.event == ReadEvent::kNeedMore && res.consumed == left);
      check_result(res, p, res.consumed, limits);
      if (res.event == ReadEvent::kFail) failed = true;
      check(reader.failed() == failed);
      if (res.event != ReadEvent::kNeedMore) {
        events.push_back(
            {res.event, res.opcode, res.code,
             std::string(reinterpret_cast<const char*>(res.payload.data()), res.payload.size()),
             res.error ? res.error : ""});
      }
      if (res.event == ReadEvent::kMessage) {
        if (Buffer* b = reader.take_delivered(res.payload)) {
          check(b->data() == res.payload.data() && b->len == res.payload.size());
          taken.push_back(b);
        }
      }
      p += res.consumed;
      left -= res.consumed;
    }
    reader.release_delivered(pool);
    for (Buffer* b : taken) pool.release(b);
    taken.clear();
  }
  reader.release(pool);
  // Every byte charged to the budget was given back, whatever path the message took.
  if (limits.budget) check(limits.budget->used == 0);
  return events;  // the pool frees its cache here: a buffer the reader kept would leak (LSan)
}

constexpr std::uint64_t kMaxMessage[] = {0, 1, 2, 125, 126, 127, 1000, 65535, 65536, 1 << 20};
constexpr std::uint8_t kAllowedRsv[] = {0, 0x40, 0x70};
constexpr std::uint32_t kMaxFragments[] = {0, 1, 2, 3, 16};
constexpr std::uint64_t kBudget[] = {0, 128, 4096, 1 << 16};  // 0: no budget

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // [flags][extras][cut count][2-byte cut offsets...][stream]. flags bit 0: the reader expects
  // masked frames (a server); bits 1-4 pick max_message. extras: bits 0-1 the RSV bits an
  // extension allows, bits 2-4 a fragment limit, bits 5-6 an assembly budget. Offsets wrap
  // modulo the stream length.
  std::size_t at = 0;
  auto byte = [&]() -> std::uint8_t { return at < size ? data[at++] : 0; };
  std::uint8_t flags = byte();
  std::uint8_t extras = byte();
  std::size_t ncuts = byte() % 16;
  std::vector<std::size_t> raw;
  for (std::size_t i = 0; i < ncuts; ++i) {
    std::size_t lo = byte();  // little-endian, read in order (not two calls in one expression)
    raw.push_back(lo | std::size_t{byte()} << 8);
  }
  std::vector<std::byte> stream(size - at);
  if (!stream.empty()) std::memcpy(stream.data(), data + at, stream.size());

  std::uint64_t budget_bytes = kBudget[(extras >> 5) % std::size(kBudget)];
  AssemblyBudget budget{budget_bytes};
  const ReaderLimits limits{
      .max_message = kMaxMessage[(flags >> 1) % std::size(kMaxMessage)],
      .expect_masked = (flags & 1) != 0,
      .allowed_rsv = kAllowedRsv[(extras & 3) % std::size(kAllowedRsv)],
      .max_fragments = kMaxFragments[((extras >> 2) & 7) % std::size(kMaxFragments)],
      .budget = budget_bytes ? &budget : nullptr,
  };
  const std::size_t n = stream.size();
  std::vector<std::size_t> cuts;
  for (std::size_t c : raw) cuts.push_back(c % (n + 1));
  cuts.push_back(n);
  std::sort(cuts.begin(), cuts.end());

  std::vector<Event> whole = run(stream, {n}, limits);
  std::vector<Event> cut = run(stream, cuts, limits);
  // A frame whole in one read is delivered without assembly, so only an unbudgeted reader must
  // give the same events however the stream is cut.
  if (!limits.budget) check(cut == whole);
  return 0;
}
