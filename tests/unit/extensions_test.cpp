#include "engine/protocol/extensions.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace wsedge::protocol {
namespace {

// The list as "name(p=v,q)|name2()" so a whole parse compares at once; "!" when malformed.
std::string render(std::string_view list) {
  std::string out;
  bool ok = for_each_extension(list, [&](const Extension& e) {
    if (!out.empty()) out += "|";
    out.append(e.name).append("(");
    bool first = true;
    for_each_param(e, [&](const ExtensionParam& p) {
      if (!first) out += ",";
      first = false;
      out.append(p.name);
      if (p.has_value) out.append("=").append(p.value);
    });
    out += ")";
  });
  return ok ? out : (out.empty() ? "!" : "called fn on a malformed list");
}

TEST(Extensions, ParsesTheRfcExamples) {
  EXPECT_EQ(render("foo"), "foo()");
  EXPECT_EQ(render("foo, bar; baz=2"), "foo()|bar(baz=2)");
  EXPECT_EQ(render("permessage-deflate; client_max_window_bits; server_max_window_bits=10, "
                   "permessage-deflate; client_max_window_bits"),
            "permessage-deflate(client_max_window_bits,server_max_window_bits=10)|"
            "permessage-deflate(client_max_window_bits)");
}

TEST(Extensions, WhitespaceEmptyElementsAndQuotedTokens) {
  EXPECT_EQ(render(""), "");
  EXPECT_EQ(render(" ,\t, "), "");
  EXPECT_EQ(render(",a,,b ,"), "a()|b()");
  EXPECT_EQ(render("a ;\tp = 1 ; q"), "a(p=1,q)");
  EXPECT_EQ(render("a; p=\"15\""), "a(p=15)");  // the view between the quotes
  EXPECT_EQ(render("a;p=\"x-y.z\",b"), "a(p=x-y.z)|b()");
}

TEST(Extensions, MalformedListsAreRefusedWhole) {
  for (std::string_view bad : {"a b", ";p", "a;", "a; p=", "a; =1", "a;; p", "a; p==1", "a; p=\"\"",
                               "a; p=\"x", "a; p=\"x\\y\"", "a; p=\"x y\"", "a; p=x y", "a, b c",
                               "a; p=1 2", "a(b)", "a; p=\"x\"y", "good, b@d", "a\r\n"}) {
    EXPECT_FALSE(valid_extensions(bad)) << bad;
    EXPECT_EQ(render(bad), "!") << bad;
  }
}

TEST(Extensions, CursorsAdvancePastWhatTheyReturn) {
  std::string_view list = "a; x=1, b";
  Extension e;
  ASSERT_EQ(next_extension(list, e), ExtParse::kOk);
  EXPECT_EQ(e.name, "a");
  std::string_view params = e.params;
  ExtensionParam p;
  ASSERT_EQ(next_param(params, p), ExtParse::kOk);
  EXPECT_EQ(p.name, "x");
  EXPECT_EQ(p.value, "1");
  EXPECT_TRUE(p.has_value);
  EXPECT_EQ(next_param(params, p), ExtParse::kEnd);
  ASSERT_EQ(next_extension(list, e), ExtParse::kOk);
  EXPECT_EQ(e.name, "b");
  EXPECT_EQ(e.params, "");
  EXPECT_EQ(next_extension(list, e), ExtParse::kEnd);
}

}  // namespace
}  // namespace wsedge::protocol
