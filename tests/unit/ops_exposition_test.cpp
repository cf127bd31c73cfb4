#include "ops/exposition.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>

namespace wsedge::ops {
namespace {

std::size_t count(const std::string& s, std::string_view what) {
  std::size_t n = 0;
  for (std::size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}

TEST(Exposition, HelpAndTypeOncePerFamilyWhateverTheOrder) {
  Exposition e;
  // Core 0's families, then core 1's: the second core's samples join the first's.
  for (std::string_view core : {"0", "1"}) {
    e.add("wsedge_a_total", "a", FamilyType::kCounter, {{"core", core}}, 1);
    e.add("wsedge_b", "b", FamilyType::kGauge, {{"core", core}}, 2);
  }
  EXPECT_EQ(e.families(), 2u);
  EXPECT_EQ(e.text(),
            "# HELP wsedge_a_total a\n# TYPE wsedge_a_total counter\n"
            "wsedge_a_total{core=\"0\"} 1\nwsedge_a_total{core=\"1\"} 1\n"
            "# HELP wsedge_b b\n# TYPE wsedge_b gauge\n"
            "wsedge_b{core=\"0\"} 2\nwsedge_b{core=\"1\"} 2\n");
}

TEST(Exposition, NoLabelsNoBraces) {
  Exposition e;
  e.add("wsedge_up", "up", FamilyType::kGauge, {}, 1);
  EXPECT_EQ(count(e.text(), "wsedge_up 1\n"), 1u);
}

TEST(Exposition, LabelValuesAreEscaped) {
  Exposition e;
  e.add("wsedge_x_total", "x", FamilyType::kCounter, {{"endpoint", "a\\b\"c\nd"}}, 7);
  EXPECT_NE(e.text().find("wsedge_x_total{endpoint=\"a\\\\b\\\"c\\nd\"} 7\n"), std::string::npos);
}

TEST(Exposition, HelpIsEscapedButQuotesStay) {
  std::string out;
  append_help(out, "a \"b\" \\ c\nd");
  EXPECT_EQ(out, "a \"b\" \\\\ c\\nd");
}

TEST(Exposition, RefusesWhatAScraperWouldRefuse) {
  Exposition e;
  // A counter must end in _total; gauges and histograms must not take a sample suffix.
  EXPECT_THROW(e.add("wsedge_a", "", FamilyType::kCounter, {}, 0), std::invalid_argument);
  EXPECT_THROW(e.add("wsedge_a_total", "", FamilyType::kGauge, {}, 0), std::invalid_argument);
  EXPECT_THROW(e.add("wsedge_a_count", "", FamilyType::kGauge, {}, 0), std::invalid_argument);
  EXPECT_THROW(e.add("1abc_total", "", FamilyType::kCounter, {}, 0), std::invalid_argument);
  EXPECT_THROW(e.add("wsedge-a_total", "", FamilyType::kCounter, {}, 0), std::invalid_argument);
  EXPECT_THROW(e.add("wsedge_b_total", "", FamilyType::kCounter, {{"__x", "v"}}, 0),
               std::invalid_argument);
  EXPECT_THROW(e.add("wsedge_b_total", "", FamilyType::kCounter, {{"a-b", "v"}}, 0),
               std::invalid_argument);
  // The same family with another type.
  e.add("wsedge_c", "", FamilyType::kGauge, {}, 0);
  EXPECT_THROW(e.add("wsedge_c", "", FamilyType::kHistogram, {}, 0), std::invalid_argument);
}

TEST(Exposition, HistogramBucketsAreCumulativeEndingWithInf) {
  Exposition e;
  const double bounds[] = {0.001, 0.5};
  const std::uint64_t buckets[] = {2, 3, 4};  // per bucket, +Inf last
  Label core[] = {{"core", "0"}};
  e.add_histogram("wsedge_h_seconds", "h", core, {bounds, buckets, 1.25});
  EXPECT_EQ(e.text(),
            "# HELP wsedge_h_seconds h\n# TYPE wsedge_h_seconds histogram\n"
            "wsedge_h_seconds_bucket{core=\"0\",le=\"0.001\"} 2\n"
            "wsedge_h_seconds_bucket{core=\"0\",le=\"0.5\"} 5\n"
            "wsedge_h_seconds_bucket{core=\"0\",le=\"+Inf\"} 9\n"
            "wsedge_h_seconds_sum{core=\"0\"} 1.25\n"
            "wsedge_h_seconds_count{core=\"0\"} 9\n");
  const std::uint64_t short_buckets[] = {1};
  EXPECT_THROW(e.add_histogram("wsedge_h_seconds", "h", core, {bounds, short_buckets, 0}),
               std::invalid_argument);
}

TEST(Exposition, DoublesRoundTrip) {
  for (double v : {0.0, 1.0, 0.00025, 2.5, 1e-9, 12345.678}) {
    std::string s;
    append_double(s, v);
    EXPECT_EQ(std::stod(s), v) << s;
  }
  std::string inf;
  append_double(inf, INFINITY);
  EXPECT_EQ(inf, "+Inf");
}

TEST(Exposition, LargeCountersAreExact) {
  Exposition e;
  e.add("wsedge_big_total", "", FamilyType::kCounter, {}, UINT64_MAX);
  EXPECT_NE(e.text().find("wsedge_big_total 18446744073709551615\n"), std::string::npos);
}

}  // namespace
}  // namespace wsedge::ops
