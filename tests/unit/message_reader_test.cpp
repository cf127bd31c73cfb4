#include "engine/protocol/message_reader.hpp"

#include <gtest/gtest.h>

#include <algorithm>
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
  int rsv = 0;
  bool operator==(const Ev&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Ev& e) {
  return os << "{" << static_cast<int>(e.kind) << " op" << e.opcode << " '"
            << e.payload.substr(0, 40) << "' code" << e.code << " rsv" << e.rsv << "}";
}

constexpr ReaderLimits kServer{1 << 20, true};

// Feeds `input` in reads cut at `cuts` (ascending offsets) and collects the events until the
// first failure or close. With a budget, checks that the reader gives back all it charged: at
// once on a failure, and on release() after a delivery, a close or a message left unfinished.
std::vector<Ev> run(Bytes input, std::vector<std::size_t> cuts, ReaderLimits lim = kServer) {
  memory::BufferPool pool;
  MessageReader r;
  std::vector<Ev> out;
  const std::uint64_t held_by_others = lim.budget ? lim.budget->used : 0;
  auto expect_budget_back = [&] {
    if (lim.budget) {
      EXPECT_EQ(lim.budget->used, held_by_others);
    }
  };
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
      out.push_back(
          {res.event, static_cast<int>(res.opcode), test::str(res.payload), res.code, res.rsv});
      if (res.event == ReadEvent::kFail) expect_budget_back();
      if (res.event == ReadEvent::kFail || res.event == ReadEvent::kClose) {
        r.release(pool);
        expect_budget_back();
        return out;
      }
    }
    r.release_delivered(pool);
  }
  r.release(pool);
  expect_budget_back();
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

Ev msg(int op, std::string p, int rsv = 0) {
  return {ReadEvent::kMessage, op, std::move(p), 0, rsv};
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

struct Case {
  const char* name;
  Bytes input;
};

// Each input fails with `code`, however it is split.
void expect_failures(const std::vector<Case>& cases, int code, ReaderLimits lim = kServer) {
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    expect_events(c.input, {fail(code)}, lim);
  }
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
  EXPECT_EQ(b->refs, 1u);  // the taker's reference keeps it out of the pool
  EXPECT_EQ(b->data()[0], std::byte{'m'});
  pool.release(b);
  // A message delivered in place lives in the caller's bytes: nothing to take.
  Bytes whole = frame(2, "in place");
  res = r.next(whole.data(), whole.size(), kServer, pool);
  ASSERT_EQ(res.event, ReadEvent::kMessage);
  EXPECT_EQ(r.take_delivered(res.payload), nullptr);
}

TEST(MessageReader, ProtocolViolationsFailWith1002) {
  expect_failures(
      {
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
      },
      close_code::kProtocolError);
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

constexpr ReaderLimits kDeflate{1 << 20, true, 0x40};

TEST(MessageReader, AnExtensionsRsvBitMarksTheFirstFrameOfAMessage) {
  // Transformed text is not validated here: the caller validates it once restored.
  expect_events(frame(1, "\xFF\xFE", true, true, 0x40), {msg(1, "\xFF\xFE", 0x40)}, kDeflate);
  expect_events(cat({frame(1, "\xC3", false, true, 0x40), frame(9, "p"), frame(0, "\xFF")}),
                {{ReadEvent::kPing, 9, "p", 0}, msg(1, "\xC3\xFF", 0x40)}, kDeflate);
  expect_events(cat({frame(2, "a", false, true, 0x40), frame(0, "b")}), {msg(2, "ab", 0x40)},
                kDeflate);
  // Without the bit, the same connection's text is still validated, and rsv is 0.
  expect_events(cat({frame(1, "ok", true, true, 0x40), frame(1, "fine")}),
                {msg(1, "ok", 0x40), msg(1, "fine")}, kDeflate);
  expect_events(cat({frame(1, "ok", true, true, 0x40), frame(1, "\xFF")}),
                {msg(1, "ok", 0x40), fail(close_code::kInvalidPayload)}, kDeflate);
}

TEST(MessageReader, RsvBitsOutsideTheFirstDataFrameFailWith1002) {
  expect_failures(
      {
          {"rsv2 not allowed", frame(1, "x", true, true, 0x20)},
          {"rsv3 not allowed", frame(2, "x", true, true, 0x10)},
          {"rsv1 with rsv2", frame(1, "x", true, true, 0x60)},
          {"rsv1 on a continuation",
           cat({frame(1, "a", false, true, 0x40), frame(0, "b", true, true, 0x40)})},
          {"rsv1 on a continuation only",
           cat({frame(2, "a", false), frame(0, "b", true, true, 0x40)})},
          {"rsv1 on a ping", frame(9, "", true, true, 0x40)},
          {"rsv1 on a pong", frame(10, "x", true, true, 0x40)},
          {"rsv1 on a close", frame(8, "", true, true, 0x40)},
          {"rsv1 on a ping inside a message",
           cat({frame(1, "a", false, true, 0x40), frame(9, "", true, true, 0x40)})},
      },
      close_code::kProtocolError, kDeflate);
}

TEST(MessageReader, FragmentsPerMessageAreLimited) {
  ReaderLimits lim{1 << 20, true, 0, 3};
  Bytes three = cat({frame(1, "a", false), frame(9, "p"), frame(0, "b", false), frame(0, "c")});
  expect_events(
      cat({three, three}),
      {{ReadEvent::kPing, 9, "p", 0}, msg(1, "abc"), {ReadEvent::kPing, 9, "p", 0}, msg(1, "abc")},
      lim);
  Bytes four =
      cat({frame(2, "a", false), frame(0, "b", false), frame(0, "", false), frame(0, "d")});
  expect_events(four, {fail(close_code::kMessageTooBig)}, lim);
  memory::BufferPool pool;
  MessageReader r;
  ReadResult res{};
  for (std::size_t at = 0; at < four.size() && res.event != ReadEvent::kFail; at += res.consumed)
    res = r.next(four.data() + at, four.size() - at, lim, pool);
  EXPECT_STREQ(res.error, "too many fragments");
  // 0 is no limit.
  expect_events(four, {msg(2, "abd")});
}

TEST(MessageReader, AssemblyBudgetIsGivenBackOnEveryPath) {
  AssemblyBudget budget{1 << 20};
  ReaderLimits lim{1 << 20, true, 0, 0, &budget};
  // Delivered (whole frames in place, assembled ones, fragmented ones), then closed.
  expect_events(cat({frame(2, std::string(300, 'b')), frame(1, "fra", false), frame(10, "pong"),
                     frame(0, "gmented"), close_frame(1000)}),
                {msg(2, std::string(300, 'b')),
                 {ReadEvent::kPong, 10, "pong", 0},
                 msg(1, "fragmented"),
                 {ReadEvent::kClose, 8, "", 1000}},
                lim);
  // Released with a message unfinished.
  expect_events(cat({frame(2, "done"), frame(2, std::string(200, 'u'), false)}), {msg(2, "done")},
                lim);
  // Failed mid-message.
  expect_events(cat({frame(1, "abc", false), frame(0, "\xFF")}),
                {fail(close_code::kInvalidPayload)}, lim);
  EXPECT_EQ(budget.used, 0u);
}

TEST(MessageReader, AMessageOverTheAssemblyBudgetFailsWith1009) {
  AssemblyBudget budget{256};
  ReaderLimits lim{1 << 20, true, 0, 0, &budget};
  // 200 bytes fit a 256-byte buffer; the second fragment needs a larger one.
  Bytes first = frame(2, std::string(200, 'a'), false);
  Bytes in = cat({first, frame(0, std::string(200, 'b'))});
  expect_events(in, {fail(close_code::kMessageTooBig)}, lim);
  memory::BufferPool pool;
  MessageReader r;
  ASSERT_EQ(r.next(in.data(), first.size(), lim, pool).event, ReadEvent::kNeedMore);
  EXPECT_EQ(budget.used, 256u);  // the first fragment's buffer
  ReadResult b = r.next(in.data() + first.size(), in.size() - first.size(), lim, pool);
  ASSERT_EQ(b.event, ReadEvent::kFail);
  EXPECT_STREQ(b.error, "message assembly budget exhausted");
  EXPECT_EQ(budget.used, 0u);
}

TEST(MessageReader, AReaderIsRefusedWhileAnotherHoldsTheBudget) {
  AssemblyBudget budget{4096};
  ReaderLimits lim{1 << 20, true, 0, 0, &budget};
  memory::BufferPool pool;
  MessageReader holder;
  Bytes big = frame(2, std::string(3000, 'h'), false);
  ASSERT_EQ(holder.next(big.data(), big.size(), lim, pool).event, ReadEvent::kNeedMore);
  ASSERT_EQ(budget.used, 4096u);
  Bytes small = cat({frame(2, "x", false), frame(0, "y")});
  expect_events(small, {fail(close_code::kMessageTooBig)}, lim);
  // A frame that arrives whole is delivered in place, costing no budget, even now.
  EXPECT_EQ(run(frame(2, "in place"), {}, lim), (std::vector<Ev>{msg(2, "in place")}));
  holder.release(pool);
  EXPECT_EQ(budget.used, 0u);
  expect_events(small, {msg(2, "xy")}, lim);
}

TEST(MessageReader, ATakenMessageStopsCountingWhenTheReaderLetsGo) {
  AssemblyBudget budget{1 << 20};
  ReaderLimits lim{1 << 20, true, 0, 0, &budget};
  Bytes in = frame(2, std::string(5000, 'm'));
  memory::BufferPool pool;
  MessageReader r;
  ASSERT_EQ(r.next(in.data(), 100, lim, pool).event, ReadEvent::kNeedMore);
  EXPECT_EQ(budget.used, 8192u);
  ReadResult res = r.next(in.data() + 100, in.size() - 100, lim, pool);
  ASSERT_EQ(res.event, ReadEvent::kMessage);
  memory::Buffer* b = r.take_delivered(res.payload);
  ASSERT_NE(b, nullptr);
  r.release_delivered(pool);
  // The output queue's reference is no longer assembly: the reader's charge is gone.
  EXPECT_EQ(budget.used, 0u);
  EXPECT_EQ(b->refs, 1u);
  pool.release(b);
}

}  // namespace
}  // namespace wsedge::protocol

namespace wsedge::protocol {
namespace {

// mid_frame() after every prefix of a stream: false exactly at frame boundaries (before the
// first byte, after each whole frame, between the fragments of a message), true inside a
// header or a payload, control frames included.
TEST(MessageReader, MidFrameIsTrueExactlyInsideAFrame) {
  Bytes f1 = frame(0x1, "hello", false);  // a fragment: its end is a frame boundary
  Bytes f2 = frame(0x9, "p");
  Bytes f3 = frame(0x0, std::string(300, 'x'));  // 16-bit length: a longer header
  Bytes f4 = frame(0x2, "");
  Bytes input = cat({f1, f2, f3, f4});
  std::vector<std::size_t> boundaries = {0, f1.size(), f1.size() + f2.size(),
                                         f1.size() + f2.size() + f3.size(), input.size()};
  for (std::size_t cut = 0; cut <= input.size(); ++cut) {
    memory::BufferPool pool;
    MessageReader r;
    Bytes copy = input;
    std::byte* p = copy.data();
    std::size_t n = cut;
    while (n > 0) {
      ReadResult res = r.next(p, n, kServer, pool);
      ASSERT_NE(res.event, ReadEvent::kFail) << "cut " << cut;
      p += res.consumed;
      n -= res.consumed;
    }
    bool boundary = std::find(boundaries.begin(), boundaries.end(), cut) != boundaries.end();
    EXPECT_EQ(r.mid_frame(), !boundary) << "after " << cut << " bytes";
    r.release(pool);
  }
}

}  // namespace
}  // namespace wsedge::protocol
