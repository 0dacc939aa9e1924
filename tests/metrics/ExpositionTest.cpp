// The exposition writer on its own: escaping, number formatting and
// cumulative histogram buckets, checked by value and by promtool.
#include <gtest/gtest.h>

#include "PromTool.hpp"
#include "tango/metrics/Exposition.hpp"
#include "tango/metrics/Histogram.hpp"

namespace tango::metrics {
namespace {

TEST(Exposition, EscapesLabelValuesAndHelp) {
  EXPECT_EQ(Exposition::escapeLabel("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
  EXPECT_EQ(Exposition::escapeHelp("x\\y\nz\""), "x\\\\y\\nz\"");
}

TEST(Exposition, FormatsValuesLikePrometheus) {
  EXPECT_EQ(Exposition::formatValue(3), "3");
  EXPECT_EQ(Exposition::formatValue(0.25), "0.25");
  EXPECT_EQ(Exposition::formatValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(Exposition::formatValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(Exposition::formatValue(0.0 / 0.0), "NaN");
}

TEST(Histogram, BucketsAreCumulativeAndInclusive) {
  Histogram h({1, 2, 5});
  for (double v : {0.5, 1.0, 1.5, 2.0, 7.0}) h.observe(v);
  auto s = h.snapshot();
  ASSERT_EQ(s.cumulative.size(), 4u);
  EXPECT_EQ(s.cumulative[0], 2u);  // 0.5, 1.0 (le is inclusive)
  EXPECT_EQ(s.cumulative[1], 4u);
  EXPECT_EQ(s.cumulative[2], 4u);
  EXPECT_EQ(s.cumulative[3], 5u);  // +Inf = count
  EXPECT_EQ(s.count, 5u);
  EXPECT_DOUBLE_EQ(s.sum, 12.0);

  Exposition e;
  e.family("x_seconds", "A test.", "histogram");
  e.histogram("x_seconds", {{"step", "a"}}, s);
  const std::string& t = e.text();
  EXPECT_NE(t.find("x_seconds_bucket{step=\"a\",le=\"1\"} 2\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_bucket{step=\"a\",le=\"+Inf\"} 5\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_sum{step=\"a\"} 12\n"), std::string::npos) << t;
  EXPECT_NE(t.find("x_seconds_count{step=\"a\"} 5\n"), std::string::npos) << t;
}

TEST(Exposition, HostileLabelValuesStillParse) {
  Exposition e;
  e.family("tango_pool_vms", "VMs with a \\ and a\nnewline in the help.", "gauge");
  e.sample("tango_pool_vms", {{"image", "we\"ird\\image\nname"}, {"state", "total"}}, 2);
  auto r = test::promtoolCheck(e.text());
  EXPECT_TRUE(r.ok) << r.output << "\n" << e.text();
}

}  // namespace
}  // namespace tango::metrics
