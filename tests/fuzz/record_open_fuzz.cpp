// Fuzzes the TLS 1.3 record opener and splitter (tls/record.*): what a peer sends is untrusted.
// Layout: FuzzedDataProvider takes from the input's end, in this order: `sealed` (1 byte: bit
// 0), the suite (1 byte, modulo 3), the flip count (1 byte, modulo 5) and as many flip offsets
// (2 bytes each), the cut count (1 byte, modulo 9) and as many cut offsets (2 bytes each); the
// bytes before them are the body.
//   sealed: the body is records to seal, each [inner type][length: 2 bytes little-endian,
//     modulo what is left][plaintext], sealed under a fixed secret (any type byte, so all-zero
//     and unknown inner types and padding are reached); then the flips XOR 0x01 into the sealed
//     stream. Without flips every record must open as the reference predicts; with them, the
//     first record holding a flipped byte must not open (a forgery), those before it must.
//   otherwise: the body is the stream as the peer sent it.
// Either way the stream is opened whole and again fed in pieces at the cuts through an
// assembler built on next_record(), as a reactor would: both must give the same results, every
// refusal leaves the sequence number as it was, and plaintext lies inside its record.
#include <fuzzer/FuzzedDataProvider.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_check.hpp"
#include "tls/record.hpp"

using namespace wsedge::tls::record;
using wsedge::fuzz::check;

namespace {

struct Event {
  OpenStatus status;
  ContentType type;
  std::string plaintext;
  bool operator==(const Event&) const = default;
};

RecordCrypto& crypto() {
  static RecordCrypto c;
  return c;
}

DirectionState fresh(Suite s) {
  static const std::vector<std::uint8_t> secret(48, 0x42);
  DirectionState st;
  check(init(st, s, std::span(secret).first(secret_len(s)), 7));
  return st;
}

// Opens one whole record (a copy: open() decrypts in place), checking what it promises, and
// that opening it where it lies into another buffer (what a session does with a record that
// arrived whole) gives the same.
Event open_one(DirectionState& st, std::span<const std::uint8_t> record) {
  std::vector<std::uint8_t> copy(record.begin(), record.end());
  const std::uint64_t seq = st.seq;
  DirectionState other = st;
  static std::array<std::uint8_t, kMaxOpened> out;
  Opened apart = crypto().open(other, record, out);
  Opened o = crypto().open(st, copy);
  check(apart.status == o.status && other.seq == st.seq);
  if (o.status != OpenStatus::kOk) {
    check(st.seq == seq);
    return {o.status, ContentType::kApplicationData, {}};
  }
  check(apart.type == o.type && apart.plaintext.data() == out.data() &&
        std::equal(apart.plaintext.begin(), apart.plaintext.end(), o.plaintext.begin(),
                   o.plaintext.end()));
  check(st.seq == seq + 1);
  check(o.plaintext.data() == copy.data() + kHeaderLen);
  check(o.plaintext.size() <= kMaxPlaintext && o.plaintext.size() + kHeaderLen < copy.size());
  if (o.type == ContentType::kHandshake) {
    PostHandshake p = parse_post_handshake(o.plaintext);
    check((p != PostHandshake::kKeyUpdate && p != PostHandshake::kKeyUpdateRequested) ||
          o.plaintext.size() == kKeyUpdateLen);
  }
  return {o.status, o.type, std::string(o.plaintext.begin(), o.plaintext.end())};
}

// The stream whole: records until the first refusal (the connection would close there), or a
// status-less stop when it ends inside a record. `ends` gets where each record opened ends.
std::vector<Event> open_whole(Suite s, std::span<const std::uint8_t> stream,
                              std::vector<std::size_t>& ends) {
  DirectionState st = fresh(s);
  std::vector<Event> events;
  std::size_t at = 0;
  while (at < stream.size()) {
    NextRecord n = next_record(stream.subspan(at));
    check(n.size >= kHeaderLen);
    if (n.status == NextRecord::Status::kOverflow) {
      events.push_back({OpenStatus::kRecordOverflow, ContentType::kApplicationData, {}});
      break;
    }
    if (n.status == NextRecord::Status::kNeedMore) {
      check(n.size > stream.size() - at);
      break;
    }
    events.push_back(open_one(st, stream.subspan(at, n.size)));
    at += n.size;
    ends.push_back(at);
    if (events.back().status != OpenStatus::kOk) break;
  }
  return events;
}

// The same stream arriving in pieces, assembled as a caller would: whatever is buffered is
// offered to next_record(), which says when a whole record is there.
std::vector<Event> open_in_pieces(Suite s, std::span<const std::uint8_t> stream,
                                  const std::vector<std::size_t>& cuts) {
  DirectionState st = fresh(s);
  std::vector<Event> events;
  std::vector<std::uint8_t> pending;
  std::size_t start = 0;
  for (std::size_t end : cuts) {
    pending.insert(pending.end(), stream.begin() + static_cast<std::ptrdiff_t>(start),
                   stream.begin() + static_cast<std::ptrdiff_t>(end));
    start = end;
    for (;;) {
      NextRecord n = next_record(pending);
      if (n.status == NextRecord::Status::kOverflow) {
        events.push_back({OpenStatus::kRecordOverflow, ContentType::kApplicationData, {}});
        return events;
      }
      if (n.status == NextRecord::Status::kNeedMore) {
        check(n.size > pending.size());
        break;
      }
      events.push_back(open_one(st, std::span(pending).first(n.size)));
      if (events.back().status != OpenStatus::kOk) return events;
      pending.erase(pending.begin(), pending.begin() + static_cast<std::ptrdiff_t>(n.size));
    }
  }
  return events;
}

// What opening a record sealed from `plain` with inner type `type` must give (§5.4).
Event expected(std::uint8_t type, const std::string& plain) {
  std::string inner = plain + static_cast<char>(type);
  std::size_t end = inner.find_last_not_of('\0');
  if (end == std::string::npos || (inner[end] != 21 && inner[end] != 22 && inner[end] != 23))
    return {OpenStatus::kUnexpectedMessage, ContentType::kApplicationData, {}};
  return {OpenStatus::kOk, static_cast<ContentType>(inner[end]), inner.substr(0, end)};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider fdp(data, size);
  const bool sealed = fdp.ConsumeIntegral<std::uint8_t>() & 1;
  const Suite suite = static_cast<Suite>(0x1301 + fdp.ConsumeIntegralInRange<int>(0, 2));
  std::vector<std::uint16_t> flips(fdp.ConsumeIntegralInRange<std::size_t>(0, 4));
  for (auto& f : flips) f = fdp.ConsumeIntegral<std::uint16_t>();
  std::vector<std::uint16_t> raw_cuts(fdp.ConsumeIntegralInRange<std::size_t>(0, 8));
  for (auto& c : raw_cuts) c = fdp.ConsumeIntegral<std::uint16_t>();
  const std::vector<std::uint8_t> body = fdp.ConsumeRemainingBytes<std::uint8_t>();

  std::vector<std::uint8_t> stream;
  std::vector<Event> want;  // sealed mode: what each record must open as
  if (sealed) {
    DirectionState w = fresh(suite);
    std::size_t at = 0;
    while (at + 3 <= body.size()) {
      const std::uint8_t type = body[at];
      std::size_t len = body[at + 1] | std::size_t{body[at + 2]} << 8;
      at += 3;
      len %= body.size() - at + 1;
      const std::span<const std::uint8_t> plain(body.data() + at, len);
      at += len;
      std::size_t off = stream.size();
      stream.resize(off + sealed_size(len));
      check(crypto().seal(w, static_cast<ContentType>(type), plain,
                          std::span(stream).subspan(off)) == sealed_size(len));
      want.push_back(expected(type, std::string(plain.begin(), plain.end())));
    }
  } else {
    stream = body;
  }
  const std::vector<std::uint8_t> unflipped = stream;
  for (std::uint16_t f : flips)
    if (!stream.empty()) stream[f % stream.size()] ^= 0x01;

  std::vector<std::size_t> ends;
  const std::vector<Event> whole = open_whole(suite, stream, ends);
  std::vector<std::size_t> cuts;
  for (std::uint16_t c : raw_cuts) cuts.push_back(stream.empty() ? 0 : c % (stream.size() + 1));
  cuts.push_back(stream.size());
  std::sort(cuts.begin(), cuts.end());
  check(open_in_pieces(suite, stream, cuts) == whole);
  if (!sealed) return 0;

  // Records wholly before the first flipped byte open exactly as sealed; the first one holding
  // a flipped byte (however the flip reframed the stream) is refused: opening it would be a
  // forgery. Without flips every record opens as sealed, up to the first one refused.
  // (Two flips of one byte cancel: the first byte that differs is what counts.)
  const std::size_t first_flip = static_cast<std::size_t>(
      std::mismatch(stream.begin(), stream.end(), unflipped.begin()).first - stream.begin());
  for (std::size_t i = 0; i < whole.size(); ++i) {
    if (i >= ends.size() || ends[i] > first_flip) {  // an overflow has no end: its header
      check(whole[i].status != OpenStatus::kOk);
      break;
    }
    check(i < want.size() && whole[i] == want[i]);
  }
  if (first_flip == stream.size()) {
    std::size_t n = 0;
    while (n < want.size() && want[n].status == OpenStatus::kOk) ++n;
    check(whole.size() == std::min(n + 1, want.size()));
  }
  return 0;
}
