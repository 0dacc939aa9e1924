#include <gtest/gtest.h>
#include <signal.h>

#include "autodriver/Report.hpp"

namespace tango::autodriver {
namespace {

TEST(Report, StatusLines) {
  JobReport report;
  record_wait_status(report, 2 << 8);  // exit(2)
  EXPECT_EQ(status_line(report), "Autodriver: Job exited with status 2\n");
  record_wait_status(report, SIGSEGV);  // killed by SIGSEGV
  EXPECT_EQ(report.signal, SIGSEGV);
  EXPECT_EQ(status_line(report), "Autodriver: Job exited with status 139\n");
  report.timed_out = true;
  report.timeout_secs = 20;
  EXPECT_EQ(status_line(report), "Autodriver: Job timed out after 20 seconds\n");
}

TEST(Report, UsageLine) {
  JobReport report;
  report.wall_ms = 1;
  report.user_ms = 2;
  report.sys_ms = 3;
  report.max_rss_kb = 4;
  report.exit_status = 137;
  report.signal = 9;
  report.timed_out = true;
  report.output_bytes = 5;
  EXPECT_EQ(usage_line(report),
            "TANGO_USAGE {\"wall_ms\":1,\"user_ms\":2,\"sys_ms\":3,\"max_rss_kb\":4,"
            "\"exit_status\":137,\"signal\":9,\"timed_out\":true,\"output_bytes\":5}\n");
}

}  // namespace
}  // namespace tango::autodriver
