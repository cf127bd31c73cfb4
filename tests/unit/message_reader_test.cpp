#include "engine/protocol/message_reader.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/protocol/close_code.hpp"
#include "test_bytes.hpp"

namespace wsedge::protocol {
namespace {

using test::Bytes;
using test::bytes;
using test::cat;
using test::frame;

struct Ev {
  ReadEvent kind;
  int opcode;
  std::string payload;
  int code;
  bool operator==(const Ev&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Ev& e) {
  return os << "{" << static_cast<int>(e.kind) << " op" << e.opcode << " '"
            << e.payload.substr(0, 40) << "' code" << e.code << "}";
}

constexpr ReaderLimits kServer{1 << 20, true};

// Feeds `input` in reads cut at `cuts` (ascending offsets) and collects the events until the
// first failure or close.
std::vector<Ev> run(Bytes input, std::vector<std::size_t> cuts, ReaderLimits lim = kServer) {
  memory::BufferPool pool;
  MessageReader r;
  std::vector<Ev> out;
  cuts.push_back(input.size());
  std::size_t start = 0;
  for (std::size_t end : cuts) {
    std::byte* p = input.data() + start;
    std::size_t n = end - start;
    start = end;
    while (n > 0) {
      ReadResult res = r.next(p, n, lim, pool);
      EXPECT_GT(res.consumed, 0u);
      p += res.consumed;
      n -= res.consumed;
      if (res.event == ReadEvent::kNeedMore) continue;
      out.push_back({res.event, static_cast<int>(res.opcode), test::str(res.payload), res.code});
      if (res.event == ReadEvent::kFail || res.event == ReadEvent::kClose) {
        r.release(pool);
        return out;
      }
    }
    r.release_delivered(pool);
  }
  r.release(pool);
  return out;
}

// Every way of cutting the input into reads must give the same events.
void expect_events(const Bytes& input, const std::vector<Ev>& want, ReaderLimits lim = kServer) {
  ASSERT_EQ(run(input, {}, lim), want) << "whole";
  for (std::size_t cut = 1; cut < input.size(); ++cut) {
    ASSERT_EQ(run(input, {cut}, lim), want) << "split at " << cut;
  }
  std::vector<std::size_t> every;
  for (std::size_t i = 1; i < input.size(); ++i) every.push_back(i);
  ASSERT_EQ(run(input, every, lim), want) << "byte by byte";
}

Ev msg(int op, std::string p) {
  return {ReadEvent::kMessage, op, std::move(p), 0};
}
Ev fail(int code) {
  return {ReadEvent::kFail, 8, "", code};
}
Bytes close_frame(int code, std::string_view reason = "") {
  std::string body;
  body += static_cast<char>(code >> 8);
  body += static_cast<char>(code & 0xFF);
  body += reason;
  return frame(8, body);
}

TEST(MessageReader, SingleFramesOfEverySizeEncoding) {
  for (std::size_t n : {0, 1, 125, 126, 127, 1000, 65535, 65536, 70000}) {
    std::string p(n, 'x');
    for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<char>('a' + i % 26);
    Bytes in = cat({frame(1, p), frame(2, p)});
    ASSERT_EQ(run(in, {}), (std::vector<Ev>{msg(1, p), msg(2, p)})) << n;
    ASSERT_EQ(run(in, {in.size() / 3, in.size() / 2}), (std::vector<Ev>{msg(1, p), msg(2, p)}))
        << n;
  }
}

TEST(MessageReader, StreamSplitAtEveryByteBoundary) {
  Bytes in = cat({frame(1, "Hello"), frame(9, "ping!"), frame(2, std::string(300, 'b')),
                  frame(1, "fra", false), frame(10, "pong"), frame(0, "gme", false),
                  frame(0, "nted", true), frame(1, "κόσμε"), close_frame(1000, "bye")});
  expect_events(in, {msg(1, "Hello"),
                     {ReadEvent::kPing, 9, "ping!", 0},
                     msg(2, std::string(300, 'b')),
                     {ReadEvent::kPong, 10, "pong", 0},
                     msg(1, "fragmented"),
                     msg(1, "κόσμε"),
                     {ReadEvent::kClose, 8, "bye", 1000}});
}

TEST(MessageReader, WholeFramesAreDeliveredInPlace) {
  Bytes in = frame(2, "zero-copy");
  memory::BufferPool pool;
  MessageReader r;
  ReadResult res = r.next(in.data(), in.size(), kServer, pool);
  ASSERT_EQ(res.event, ReadEvent::kMessage);
  EXPECT_EQ(res.payload.data(), in.data() + 6);  // unmasked where it arrived
  EXPECT_EQ(pool.allocations(), 0u);
}

TEST(MessageReader, AnAssembledMessageCanBeTakenOnlyWhole) {
  Bytes in = frame(2, std::string(5000, 'm'));
  memory::BufferPool pool;
  MessageReader r;
  ReadResult first = r.next(in.data(), 100, kServer, pool);
  ASSERT_EQ(first.event, ReadEvent::kNeedMore);
  ReadResult res = r.next(in.data() + 100, in.size() - 100, kServer, pool);
  ASSERT_EQ(res.event, ReadEvent::kMessage);
  EXPECT_EQ(r.take_delivered(res.payload.subspan(1)), nullptr);  // only the whole message
  memory::Buffer* b = r.take_delivered(res.payload);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->data(), res.payload.data());
  EXPECT_EQ(b->len, 5000u);
  EXPECT_EQ(r.take_delivered(res.payload), nullptr);  // one other holder at most
  r.release_delivered(pool);
  EXPECT_EQ(b->refs, 1);  // the taker's reference keeps it out of the pool
  EXPECT_EQ(b->data()[0], std::byte{'m'});
  pool.release(b);
  // A message delivered in place lives in the caller's bytes: nothing to take.
  Bytes whole = frame(2, "in place");
  res = r.next(whole.data(), whole.size(), kServer, pool);
  ASSERT_EQ(res.event, ReadEvent::kMessage);
  EXPECT_EQ(r.take_delivered(res.payload), nullptr);
}

TEST(MessageReader, ProtocolViolationsFailWith1002) {
  struct Case {
    const char* name;
    Bytes input;
  };
  std::vector<Case> cases = {
      {"rsv1", frame(1, "x", true, true, 0x40)},
      {"rsv2", frame(1, "x", true, true, 0x20)},
      {"rsv3", frame(1, "x", true, true, 0x10)},
      {"opcode 3", frame(3, "")},
      {"opcode 7", frame(7, "")},
      {"opcode 0xB", frame(0xB, "")},
      {"opcode 0xF", frame(0xF, "")},
      {"unmasked client frame", frame(1, "hi", true, false)},
      {"continuation first", frame(0, "x")},
      {"text inside fragmented", cat({frame(1, "a", false), frame(1, "b")})},
      {"fragmented ping", frame(9, "x", false)},
      {"ping over 125", frame(9, std::string(126, 'p'))},
      {"close over 125", frame(8, std::string(126, 'c'))},
      {"close one byte", frame(8, "\x03")},
      {"close code 999", close_frame(999)},
      {"close code 1004", close_frame(1004)},
      {"close code 1005", close_frame(1005)},
      {"close code 1006", close_frame(1006)},
      {"close code 1012", close_frame(1012)},
      {"close code 1015", close_frame(1015)},
      {"close code 2999", close_frame(2999)},
      {"close code 5000", close_frame(5000)},
      {"64-bit length top bit", bytes({0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4})},
      {"16-bit length under 126", bytes({0x82, 0xFE, 0x00, 0x01, 1, 2, 3, 4, 'x'})},
      {"64-bit length under 65536",
       bytes({0x82, 0xFF, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 1, 2, 3, 4, 'x'})},
      {"non-minimal length after a fragment",
       cat({frame(2, "a", false), bytes({0x80, 0xFE, 0x00, 0x01, 1, 2, 3, 4, 'x'})})},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    expect_events(c.input, {fail(close_code::kProtocolError)});
  }
}

TEST(MessageReader, ClientRoleRejectsMaskedFrames) {
  ReaderLimits client{1 << 20, false};
  expect_events(frame(1, "hi", true, false), {msg(1, "hi")}, client);
  expect_events(frame(1, "hi", true, true), {fail(close_code::kProtocolError)}, client);
}

TEST(MessageReader, ValidCloseCodesAreDelivered) {
  for (int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999}) {
    expect_events(close_frame(code, "why"), {{ReadEvent::kClose, 8, "why", code}});
  }
  expect_events(frame(8, ""), {{ReadEvent::kClose, 8, "", close_code::kNoStatus}});
}

TEST(MessageReader, InvalidUtf8FailsWith1007) {
  expect_events(frame(1, "bad \xFF byte"), {fail(close_code::kInvalidPayload)});
  expect_events(frame(1, "\xED\xA0\x80"), {fail(close_code::kInvalidPayload)});
  // Truncated sequence at the end of the message.
  expect_events(frame(1, "end \xE2\x82"), {fail(close_code::kInvalidPayload)});
  // Valid only when the fragments are joined...
  expect_events(cat({frame(1, "\xE2\x82", false), frame(0, "\xAC")}), {msg(1, "\xE2\x82\xAC")});
  // ... and invalid across a fragment boundary.
  expect_events(cat({frame(1, "\xE2\x82", false), frame(0, "A")}),
                {fail(close_code::kInvalidPayload)});
  // Binary is never validated.
  expect_events(frame(2, "\xFF\xFE"), {msg(2, "\xFF\xFE")});
  // Close reason must be UTF-8 too.
  expect_events(close_frame(1000, "\xC0\xAF"), {fail(close_code::kInvalidPayload)});
}

TEST(MessageReader, InvalidUtf8FailsBeforeTheMessageEnds) {
  // First fragment carries the bad byte; the message never finishes, yet the reader fails.
  Bytes in = frame(1, "fine \xF5 then more", false);
  auto events = run(in, {});
  ASSERT_EQ(events, (std::vector<Ev>{fail(close_code::kInvalidPayload)}));
  // Even in the middle of a single frame whose tail has not arrived.
  Bytes big = frame(1, std::string(100, 'a') + "\xC1" + std::string(5000, 'a'));
  EXPECT_EQ(run(Bytes(big.begin(), big.begin() + 200), {}),
            (std::vector<Ev>{fail(close_code::kInvalidPayload)}));
}

TEST(MessageReader, MessageSizeLimitFailsWith1009) {
  ReaderLimits lim{100, true};
  expect_events(frame(2, std::string(100, 'x')), {msg(2, std::string(100, 'x'))}, lim);
  expect_events(frame(2, std::string(101, 'x')), {fail(close_code::kMessageTooBig)}, lim);
  // The limit applies to the whole message, fragments added up, and fails at the header.
  Bytes frags = cat({frame(2, std::string(60, 'x'), false), frame(0, std::string(41, 'x'))});
  expect_events(frags, {fail(close_code::kMessageTooBig)}, lim);
}

TEST(MessageReader, ManyEmptyFragmentsMakeOneEmptyMessage) {
  Bytes in = frame(1, "", false);
  for (int i = 0; i < 50; ++i) in = cat({in, frame(0, "", false)});
  in = cat({in, frame(0, "")});
  expect_events(in, {msg(1, "")});
}

TEST(MessageReader, NothingAfterAFailure) {
  memory::BufferPool pool;
  MessageReader r;
  Bytes in = cat({frame(3, ""), frame(1, "ignored")});
  ReadResult a = r.next(in.data(), in.size(), kServer, pool);
  EXPECT_EQ(a.event, ReadEvent::kFail);
  EXPECT_TRUE(r.failed());
  ReadResult b = r.next(in.data() + a.consumed, in.size() - a.consumed, kServer, pool);
  EXPECT_EQ(b.event, ReadEvent::kNeedMore);
  EXPECT_EQ(b.consumed, in.size() - a.consumed);
}

}  // namespace
}  // namespace wsedge::protocol
