// The strict JSON reader auth/ reads token headers, claims and JWK Sets with: what RFC 8259
// allows, what it refuses, and extraction of strings (escapes, surrogates) and integers.
#include "auth/json.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <string>
#include <vector>

namespace wsedge::auth::json {
namespace {

bool valid(std::string_view text) {
  Value v;
  return parse(text, v);
}

std::string str(std::string_view text) {
  Value v;
  std::string out;
  EXPECT_TRUE(parse(text, v)) << text;
  EXPECT_TRUE(v.get_string(out)) << text;
  return out;
}

// The integer a number text floors to; nullopt when get_int refuses it.
std::optional<std::int64_t> integer(std::string_view text) {
  Value v;
  std::int64_t out = 0;
  EXPECT_TRUE(parse(text, v)) << text;
  if (!v.get_int(out)) return std::nullopt;
  return out;
}

TEST(AuthJson, AcceptsEveryKindOfValue) {
  for (std::string_view ok :
       {"null", "true", "false", "0", "-0", "12", "-1.5e3", "1E+2", "0.25", R"("")", R"("a\"b")",
        "[]", "{}", " [1, \"x\", {\"a\": [null]}] ", "\t{\"a\":1,\"b\":{}}\r\n"})
    EXPECT_TRUE(valid(ok)) << ok;
}

TEST(AuthJson, RefusesWhatRfc8259Does) {
  for (std::string_view bad :
       std::initializer_list<std::string_view>{"",
                                               " ",
                                               "nul",
                                               "True",
                                               "01",
                                               "-",
                                               "1.",
                                               ".5",
                                               "1e",
                                               "1e+",
                                               "+1",
                                               "0x10",
                                               "[1,]",
                                               "[,1]",
                                               "{\"a\":1,}",
                                               "{a:1}",
                                               "{\"a\" 1}",
                                               "{\"a\":}",
                                               "[1 2]",
                                               "\"abc",
                                               "\"a\\x\"",
                                               "\"\\u12\"",
                                               "\"\\u12G4\"",
                                               "\"tab\there\"",
                                               "'a'",
                                               "1 2",
                                               "[]]",
                                               "{}x",
                                               "NaN",
                                               "Infinity",
                                               std::string_view("\"\0\"", 3)})
    EXPECT_FALSE(valid(bad)) << bad;
}

TEST(AuthJson, RefusesInvalidUtf8InStrings) {
  EXPECT_TRUE(valid("\"Zo\xC3\xAB \xF0\x9F\x98\x80\""));
  for (std::string_view bad : {"\"\xC3\"", "\"\xC0\xAF\"", "\"\xED\xA0\x80\"",
                               "\"\xF4\x90\x80\x80\"", "\"\xFF\"", "\"\x80\"", "\"\xE2\x82\""})
    EXPECT_FALSE(valid(bad)) << bad;
}

TEST(AuthJson, DepthLimit) {
  auto nested = [](int n) { return std::string(n, '[') + std::string(n, ']'); };
  EXPECT_TRUE(valid(nested(kMaxDepth)));
  EXPECT_FALSE(valid(nested(kMaxDepth + 1)));
  EXPECT_FALSE(valid(std::string(100000, '[')));  // no stack overflow on hostile nesting
}

TEST(AuthJson, RefusesDuplicateMemberNames) {
  EXPECT_FALSE(valid(R"({"a":1,"a":2})"));
  EXPECT_FALSE(valid(R"({"a":1,"\u0061":2})"));  // the same name, escaped
  EXPECT_FALSE(valid(R"({"x":{"b":1,"b":1}})"));
  EXPECT_TRUE(valid(R"({"a":1,"A":2,"b":{"a":3}})"));
  // Up to 16 names are compared as they are written; more, or an escaped one, as sorted
  // unescaped copies: a duplicate is caught on either side of that line and across it.
  for (int n : {15, 16, 17, 40}) {
    std::string doc = "{";
    for (int i = 0; i < n; ++i) doc += "\"m" + std::to_string(i) + "\":" + std::to_string(i) + ",";
    EXPECT_TRUE(valid(doc.substr(0, doc.size() - 1) + "}")) << n;
    EXPECT_FALSE(valid(doc + "\"m0\":0}")) << n;
    EXPECT_FALSE(valid(doc + "\"m\\u0030\":0}")) << n;  // m0, escaped
    EXPECT_FALSE(valid(doc + "\"m" + std::to_string(n - 1) + "\":0}")) << n;
  }
}

TEST(AuthJson, StringEscapesAndSurrogates) {
  EXPECT_EQ(str(R"("a\"\\\/\b\f\n\r\t")"), "a\"\\/\b\f\n\r\t");
  EXPECT_EQ(str(R"("\u0041\u00e9\u20AC")"), "A\xC3\xA9\xE2\x82\xAC");
  EXPECT_EQ(str(R"("\ud83d\ude00")"), "\xF0\x9F\x98\x80");  // U+1F600 from a surrogate pair
  EXPECT_EQ(str(R"("\u0000")"), std::string(1, '\0'));
  for (std::string_view lone :
       {R"("\ud83d")", R"("\ude00")", R"("\ud83dx")", R"("\ud83d\u0041")", R"("\ud83d\ud83d")"})
    EXPECT_FALSE(valid(lone)) << lone;
}

TEST(AuthJson, FindAndIterate) {
  Value doc, v;
  ASSERT_TRUE(parse(R"( {"k\u0069d" : "x", "list": [1, [2], {"a": 3}, "s"], "n": null} )", doc));
  ASSERT_TRUE(doc.find("kid", v));  // matched after unescaping
  EXPECT_EQ(v.raw, "\"x\"");
  ASSERT_TRUE(doc.find("list", v));
  EXPECT_EQ(v.type, Type::kArray);
  EXPECT_EQ(v.size(), 4u);
  std::vector<std::string_view> raws;
  v.for_each_element([&](const Value& e) { raws.push_back(e.raw); });
  EXPECT_EQ(raws, (std::vector<std::string_view>{"1", "[2]", "{\"a\": 3}", "\"s\""}));
  ASSERT_TRUE(doc.find("n", v));
  EXPECT_EQ(v.type, Type::kNull);
  EXPECT_FALSE(doc.find("missing", v));
  EXPECT_FALSE(doc.find("ki", v));
  Value empty;
  ASSERT_TRUE(parse("[]", empty));
  EXPECT_EQ(empty.size(), 0u);
  EXPECT_FALSE(empty.find("a", v));  // not an object
  std::string s;
  EXPECT_FALSE(empty.get_string(s));
  std::int64_t i;
  EXPECT_FALSE(empty.get_int(i));
}

TEST(AuthJson, MembersInOnePassWithNamesUnescaped) {
  Value doc;
  ASSERT_TRUE(parse(R"( { "k\u0069d" : "x" , "list":[1,{"a":2}],"e\"q":{} , "n":null } )", doc));
  std::vector<std::pair<std::string, std::string_view>> seen;
  ASSERT_TRUE(doc.for_each_member([&](std::string_view name, const Value& v) {
    seen.emplace_back(std::string(name), v.raw);  // an escaped name's view ends with the step
  }));
  EXPECT_EQ(seen, (std::vector<std::pair<std::string, std::string_view>>{
                      {"kid", "\"x\""}, {"list", "[1,{\"a\":2}]"}, {"e\"q", "{}"}, {"n", "null"}}));
  Value empty, list;
  ASSERT_TRUE(parse(" { } ", empty));
  int calls = 0;
  EXPECT_TRUE(empty.for_each_member([&](std::string_view, const Value&) { ++calls; }));
  EXPECT_EQ(calls, 0);
  ASSERT_TRUE(parse("[1]", list));
  EXPECT_FALSE(list.for_each_member([&](std::string_view, const Value&) { ++calls; }));
  EXPECT_EQ(calls, 0);
}

TEST(AuthJson, IntegersFloorFractionsAndExponents) {
  EXPECT_EQ(integer("1700000000"), 1700000000);
  EXPECT_EQ(integer("1700000000.9"), 1700000000);
  EXPECT_EQ(integer("1.7e9"), 1700000000);
  EXPECT_EQ(integer("17E+8"), 1700000000);
  EXPECT_EQ(integer("170000000000e-2"), 1700000000);
  EXPECT_EQ(integer("0.5"), 0);
  EXPECT_EQ(integer("-0.5"), -1);
  EXPECT_EQ(integer("-2.0"), -2);
  EXPECT_EQ(integer("-2.01"), -3);
  EXPECT_EQ(integer("1e-999999999"), 0);
  EXPECT_EQ(integer("0e999999999"), 0);
  EXPECT_EQ(integer("-0"), 0);
}

TEST(AuthJson, IntegersOutOfRangeAreRefused) {
  EXPECT_EQ(integer("9223372036854775807"), std::numeric_limits<std::int64_t>::max());
  EXPECT_EQ(integer("-9223372036854775808"), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(integer("9223372036854775808"), std::nullopt);
  EXPECT_EQ(integer("-9223372036854775809"), std::nullopt);
  EXPECT_EQ(integer("-9223372036854775807.5"), std::numeric_limits<std::int64_t>::min());
  EXPECT_EQ(integer("-9223372036854775808.5"), std::nullopt);
  EXPECT_EQ(integer("1e19"), std::nullopt);
  EXPECT_EQ(integer("1e999999999"), std::nullopt);
  EXPECT_EQ(integer("99999999999999999999"), std::nullopt);
}

}  // namespace
}  // namespace wsedge::auth::json
