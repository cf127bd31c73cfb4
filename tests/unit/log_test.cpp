// engine/log: the line format (JSON escaping, logfmt quoting, truncation), the level filter,
// the rate limiter.
#include "engine/log.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine/protocol/utf8.hpp"

namespace wsedge {
namespace {

// 2026-11-30T02:56:07.123Z
constexpr timespec kTime{1796007367, 123456789};

std::string line_of(log::Format f, std::initializer_list<log::Field> fields, int core = 0,
                    std::size_t cap = log::kMaxLine, std::string_view event = "ev") {
  std::vector<char> buf(cap);
  log::Line line(buf.data(), buf.size(), f);
  line.head(kTime, log::Level::kWarn, core, event);
  for (const log::Field& x : fields) line.field(x);
  std::size_t n = line.finish();
  EXPECT_LE(n, cap);
  return {buf.data(), n};
}

std::string json_value(std::string_view s) {
  std::string l = line_of(log::Format::kJson, {log::kv("v", s)}, -1);
  std::string_view head = R"({"ts":"2026-11-30T02:56:07.123Z","level":"warn","event":"ev","v":)";
  EXPECT_EQ(l.substr(0, head.size()), head);
  EXPECT_EQ(l.substr(l.size() - 2), "}\n");
  return l.substr(head.size(), l.size() - head.size() - 2);
}

std::string logfmt_value(std::string_view s) {
  std::string l = line_of(log::Format::kLogfmt, {log::kv("v", s)}, -1);
  std::string_view head = "ts=2026-11-30T02:56:07.123Z level=warn event=ev v=";
  EXPECT_EQ(l.substr(0, head.size()), head);
  EXPECT_EQ(l.back(), '\n');
  return l.substr(head.size(), l.size() - head.size() - 1);
}

TEST(Log, JsonLineHasTheHeadAndTypedFields) {
  EXPECT_EQ(line_of(log::Format::kJson,
                    {log::kv("s", "x"), log::kv("i", -5), log::kv("u", std::uint64_t{1} << 63),
                     log::kv("d", 0.25), log::kv("b", true)},
                    3),
            R"({"ts":"2026-11-30T02:56:07.123Z","level":"warn","core":3,"event":"ev","s":"x",)"
            R"("i":-5,"u":9223372036854775808,"d":0.25,"b":true})"
            "\n");
}

TEST(Log, LogfmtLineHasTheSameKeys) {
  EXPECT_EQ(
      line_of(log::Format::kLogfmt, {log::kv("s", "x"), log::kv("i", -5), log::kv("b", false)}, 1),
      "ts=2026-11-30T02:56:07.123Z level=warn core=1 event=ev s=x i=-5 b=false\n");
}

TEST(Log, NoCoreKeyOffACoreThread) {
  EXPECT_EQ(line_of(log::Format::kJson, {}, -1),
            R"({"ts":"2026-11-30T02:56:07.123Z","level":"warn","event":"ev"})"
            "\n");
}

TEST(Log, JsonEscapesQuotesBackslashAndControlCharacters) {
  EXPECT_EQ(json_value("a\"b\\c"), R"("a\"b\\c")");
  EXPECT_EQ(json_value("\n\r\t"), R"("\n\r\t")");
  EXPECT_EQ(json_value(std::string_view("\0\x01\x1f\x7f", 4)), R"("\u0000\u0001\u001f\u007f")");
  EXPECT_EQ(json_value(""), R"("")");
  // Valid UTF-8 passes as it is.
  EXPECT_EQ(json_value("é€😀"), "\"é€😀\"");
}

TEST(Log, InvalidUtf8IsReplacedNeverPassedOn) {
  const std::string r = "\xEF\xBF\xBD";  // U+FFFD
  EXPECT_EQ(json_value("a\xFF"
                       "b"),
            "\"a" + r + "b\"");
  EXPECT_EQ(json_value("\xC0\xAF"), "\"" + r + r + "\"");                  // overlong '/'
  EXPECT_EQ(json_value("\xED\xA0\x80"), "\"" + r + r + r + "\"");          // a surrogate
  EXPECT_EQ(json_value("\xF4\x90\x80\x80"), "\"" + r + r + r + r + "\"");  // past U+10FFFF
  EXPECT_EQ(json_value("\x80"), "\"" + r + "\"");                          // a stray continuation
  // A multi-byte character cut at every point: whatever is left decodes (a reason or a path
  // cut by its sender must not make a log shipper drop the line).
  const std::string text = "a\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80z";
  for (std::size_t cut = 0; cut <= text.size(); ++cut) {
    for (std::string_view s :
         {std::string_view(text).substr(0, cut), std::string_view(text).substr(cut)}) {
      std::string v = json_value(s);
      EXPECT_TRUE(
          protocol::Utf8Validator::valid(reinterpret_cast<const std::byte*>(v.data()), v.size()))
          << cut;
    }
  }
}

TEST(Log, LogfmtQuotesOnlyWhatWouldSplitAValue) {
  EXPECT_EQ(logfmt_value("plain/path:1"), "plain/path:1");
  EXPECT_EQ(logfmt_value(""), R"("")");
  EXPECT_EQ(logfmt_value("two words"), R"("two words")");
  EXPECT_EQ(logfmt_value("a=b"), R"("a=b")");
  EXPECT_EQ(logfmt_value("say \"hi\""), R"("say \"hi\"")");
  EXPECT_EQ(logfmt_value("back\\slash"), R"("back\\slash")");
  EXPECT_EQ(logfmt_value("line\nbreak"), R"("line\nbreak")");
  EXPECT_EQ(logfmt_value("é"), "\"é\"");
  EXPECT_EQ(logfmt_value("\xFF"), "\"\xEF\xBF\xBD\"");
}

TEST(Log, NumbersThatJsonCannotSayAreNull) {
  EXPECT_EQ(json_value(""), R"("")");
  std::string l = line_of(log::Format::kJson, {log::kv("d", 0.0 / 0.0)}, -1);
  EXPECT_NE(l.find(R"("d":null})"), std::string::npos) << l;
}

TEST(Log, TooLongLinesDropWholeFieldsAndSaySo) {
  const std::string big(300, 'x');
  std::string full =
      line_of(log::Format::kJson, {log::kv("a", 1), log::kv("big", big), log::kv("c", 2)}, -1);
  ASSERT_EQ(full.find("truncated"), std::string::npos);
  // Every buffer size from one that holds only the head up to the whole line: a line ending in
  // "}\n" whose fields are a prefix of the full line's, marked when any was left out.
  for (std::size_t cap = 100; cap <= full.size() + log::Line::kReserve; ++cap) {
    for (log::Format f : {log::Format::kJson, log::Format::kLogfmt}) {
      std::string l = line_of(f, {log::kv("a", 1), log::kv("big", big), log::kv("c", 2)}, -1, cap);
      ASSERT_LE(l.size(), cap);
      ASSERT_EQ(l.back(), '\n');
      bool json = f == log::Format::kJson;
      std::string whole =
          json ? full : line_of(f, {log::kv("a", 1), log::kv("big", big), log::kv("c", 2)}, -1);
      std::string_view marker = json ? R"(,"truncated":true})" : " truncated=true";
      if (l == whole) continue;
      ASSERT_GE(l.size(), marker.size() + 1) << cap;
      ASSERT_EQ(l.substr(l.size() - 1 - marker.size(), marker.size()), marker) << cap;
      std::string kept = l.substr(0, l.size() - 1 - marker.size());
      EXPECT_EQ(whole.substr(0, kept.size()), kept) << cap;
      // A field is kept whole or not at all.
      EXPECT_EQ(kept.find("xxx") == std::string::npos || kept.find(big) != std::string::npos, true)
          << cap;
    }
  }
}

TEST(Log, ParsesLevelsAndFormats) {
  log::Level l = log::Level::kError;
  EXPECT_TRUE(log::parse_level("debug", l));
  EXPECT_EQ(l, log::Level::kDebug);
  EXPECT_TRUE(log::parse_level("warn", l));
  EXPECT_EQ(l, log::Level::kWarn);
  EXPECT_FALSE(log::parse_level("WARN", l));
  EXPECT_FALSE(log::parse_level("verbose", l));
  log::Format f = log::Format::kJson;
  EXPECT_TRUE(log::parse_format("logfmt", f));
  EXPECT_EQ(f, log::Format::kLogfmt);
  EXPECT_FALSE(log::parse_format("text", f));
}

int evaluated = 0;
int touch() {
  return ++evaluated;
}

TEST(Log, FilteredCallsEvaluateNothing) {
  log::Level saved = log::level();
  log::set_level(log::Level::kWarn);
  evaluated = 0;
  testing::internal::CaptureStderr();
  LOG_INFO("hidden", log::kv("n", touch()));
  LOG_DEBUG("hidden", log::kv("n", touch()));
  LOG_WARN("shown", log::kv("n", touch()));
  LOG_ERROR("shown", log::kv("n", touch()));
  std::string out = testing::internal::GetCapturedStderr();
  log::set_level(saved);
  EXPECT_EQ(evaluated, 2);
  EXPECT_EQ(out.find("hidden"), std::string::npos);
  // Off a core thread: no core key; one line each.
  EXPECT_NE(out.find(R"("level":"warn","event":"shown","n":1})"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("level":"error","event":"shown","n":2})"), std::string::npos) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2);
}

TEST(Log, TheCoreAndFormatApplyToEveryLine) {
  log::set_core(5);
  log::set_format(log::Format::kLogfmt);
  testing::internal::CaptureStderr();
  LOG_ERROR("one", log::kv("why", "a b"));
  std::string out = testing::internal::GetCapturedStderr();
  log::set_format(log::Format::kJson);
  log::set_core(-1);
  EXPECT_NE(out.find(R"( level=error core=5 event=one why="a b")"), std::string::npos) << out;
}

TEST(Log, RateLimiterLetsABurstThroughThenCountsWhatItRefused) {
  log::RateLimiter lim(3);
  std::uint64_t suppressed = 99;
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(lim.allow(10'000, suppressed));
    EXPECT_EQ(suppressed, 0u);
  }
  for (int i = 0; i < 7; ++i) EXPECT_FALSE(lim.allow(10'000 + i, suppressed));
  EXPECT_FALSE(lim.allow(10'999, suppressed));  // the window is one second from its start
  ASSERT_TRUE(lim.allow(11'000, suppressed));
  EXPECT_EQ(suppressed, 8u);  // said once, by the first line after
  ASSERT_TRUE(lim.allow(11'001, suppressed));
  EXPECT_EQ(suppressed, 0u);
  // A quiet spell: the next window starts with the next line.
  ASSERT_TRUE(lim.allow(50'000, suppressed));
  EXPECT_EQ(suppressed, 0u);
}

TEST(Log, RateLimitedCallSitesReportTheSuppressedCount) {
  log::Level saved = log::level();
  log::set_level(log::Level::kWarn);
  testing::internal::CaptureStderr();
  for (int i = 0; i < 50; ++i) LOG_WARN_LIMITED(2, "flood", log::kv("i", i));
  std::string out = testing::internal::GetCapturedStderr();
  log::set_level(saved);
  // Two lines in this second (the loop takes far less); the 48 others are counted for the next.
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 2) << out;
  EXPECT_EQ(out.find("suppressed"), std::string::npos);
}

TEST(Log, FieldsKeepWhatFitsWithoutAllocating) {
  log::Fields f;
  for (std::size_t i = 0; i < log::Fields::kCapacity + 3; ++i) f.add(log::kv("k", i));
  EXPECT_EQ(f.view().size(), log::Fields::kCapacity);
  EXPECT_TRUE(f.has("k"));
  EXPECT_FALSE(f.has("user"));
}

}  // namespace
}  // namespace wsedge
