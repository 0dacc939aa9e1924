#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "autodriver/Options.hpp"

namespace tango::autodriver {
namespace {

std::variant<Options, UsageError> parse(std::vector<const char*> args) {
  args.insert(args.begin(), "autodriver");
  return parse_options(static_cast<int>(args.size()), args.data());
}

Options parse_ok(std::vector<const char*> args) {
  auto result = parse(std::move(args));
  if (auto* error = std::get_if<UsageError>(&result)) {
    ADD_FAILURE() << error->message;
    return {};
  }
  return std::get<Options>(result);
}

std::string parse_error(std::vector<const char*> args) {
  auto result = parse(std::move(args));
  if (auto* error = std::get_if<UsageError>(&result)) return error->message;
  ADD_FAILURE() << "expected a usage error";
  return {};
}

TEST(Options, Defaults) {
  const Options o = parse_ok({"job"});
  EXPECT_EQ(o.dir, "job");
  EXPECT_FALSE(o.nproc);
  EXPECT_FALSE(o.fsize);
  EXPECT_EQ(o.timeout_secs, 0);
  EXPECT_EQ(o.output_cap, 1024000);
  EXPECT_EQ(o.user, "autograde");
  EXPECT_FALSE(o.partial_file);
  EXPECT_FALSE(o.report_usage);
}

TEST(Options, TangoCommandLine) {
  const Options o = parse_ok({"-u", "100", "-f", "104857600", "-t", "20", "-o", "4096", "autolab"});
  EXPECT_EQ(o.nproc, 100);
  EXPECT_EQ(o.fsize, 104857600);
  EXPECT_EQ(o.timeout_secs, 20);
  EXPECT_EQ(o.output_cap, 4096);
  EXPECT_EQ(o.dir, "autolab");
}

TEST(Options, OurExtensionsAndGluedValues) {
  const Options o = parse_ok({"-t5", "-U", "1001", "-P", "/tmp/partial", "-R", "dir"});
  EXPECT_EQ(o.timeout_secs, 5);
  EXPECT_EQ(o.user, "1001");
  EXPECT_EQ(o.partial_file, "/tmp/partial");
  EXPECT_TRUE(o.report_usage);
}

TEST(Options, LimitsOomFileAndInputDir) {
  const Options o =
      parse_ok({"-c", "7", "-m", "67108864", "-M", "/run/oom", "-I", "/run/in", "dir"});
  EXPECT_EQ(o.cpu_secs, 7);
  EXPECT_EQ(o.memory_bytes, 67108864);
  EXPECT_EQ(o.oom_events, "/run/oom");
  EXPECT_EQ(o.input_dir, "/run/in");
  // 0 means no limit, as with -t.
  const Options none = parse_ok({"-c", "0", "-m", "0", "dir"});
  EXPECT_FALSE(none.cpu_secs);
  EXPECT_FALSE(none.memory_bytes);
  EXPECT_NE(parse_error({"-m", "-5", "dir"}).find("invalid value for -m"), std::string::npos);
  EXPECT_NE(parse_error({"-I", "", "dir"}).find("needs a value"), std::string::npos);
}

TEST(Options, FlagsAfterDirAndDoubleDash) {
  EXPECT_EQ(parse_ok({"dir", "-t", "3"}).timeout_secs, 3);
  EXPECT_EQ(parse_ok({"--", "-weird-dir"}).dir, "-weird-dir");
}

TEST(Options, ZeroMeansNoTimeoutAndDefaultCap) {
  const Options o = parse_ok({"-t", "0", "-o", "0", "dir"});
  EXPECT_EQ(o.timeout_secs, 0);
  EXPECT_EQ(o.output_cap, kDefaultOutputCap);
}

TEST(Options, BadArguments) {
  EXPECT_NE(parse_error({}).find("missing DIR"), std::string::npos);
  EXPECT_NE(parse_error({"-x", "dir"}).find("unknown option"), std::string::npos);
  EXPECT_NE(parse_error({"-Rx", "dir"}).find("unknown option"), std::string::npos);
  EXPECT_NE(parse_error({"-t"}).find("needs a value"), std::string::npos);
  EXPECT_NE(parse_error({"dir", "-u"}).find("needs a value"), std::string::npos);
  EXPECT_NE(parse_error({"a", "b"}).find("more than one DIR"), std::string::npos);
  for (const char* bad :
       {"abc", "-1", "+1", " 1", "1 ", "1x", "0x10", "", "1e3", "99999999999999999999"}) {
    EXPECT_NE(parse_error({"-t", bad, "dir"}).find("invalid value for -t"), std::string::npos)
        << "'" << bad << "'";
  }
  // Out of the per-flag bounds.
  parse_error({"-o", "2000000000", "dir"});
  parse_error({"-u", "5000000", "dir"});
  parse_error({"-t", "100000000", "dir"});
  parse_error({"-U", "", "dir"});
}

TEST(Options, JobUid) {
  EXPECT_FALSE(parse_ok({"dir"}).job_uid);
  EXPECT_EQ(parse_ok({"-J", "200123", "dir"}).job_uid, 200123);
  EXPECT_EQ(parse_ok({"-J4294967294", "dir"}).job_uid, 4294967294);
  EXPECT_NE(parse_error({"-J", "0", "dir"}).find("uid 0"), std::string::npos);
  EXPECT_NE(parse_error({"-J", "4294967295", "dir"}).find("invalid value for -J"),
            std::string::npos);
  EXPECT_NE(parse_error({"-J", "grader", "dir"}).find("invalid value for -J"), std::string::npos);
}

}  // namespace
}  // namespace tango::autodriver

namespace tango::autodriver {
namespace {

TEST(Options, StdinJobAndRepeatedEventFiles) {
  const Options o = parse_ok({"-S", "-E", "/a/memory.events", "-E/b/pids.events", "dir"});
  EXPECT_TRUE(o.stdin_job);
  EXPECT_EQ(o.event_files, (std::vector<std::string>{"/a/memory.events", "/b/pids.events"}));
  EXPECT_FALSE(parse_ok({"dir"}).stdin_job);
  EXPECT_EQ(parse_error({"-Sx", "dir"}), "unknown option: -Sx");
  EXPECT_EQ(parse_error({"dir", "-E"}), "option -E needs a value");
}

TEST(Options, FramedStdout) {
  EXPECT_TRUE(parse_ok({"-S", "-F", "dir"}).framed);
  EXPECT_FALSE(parse_ok({"-S", "dir"}).framed);
  EXPECT_EQ(parse_error({"-F1", "dir"}), "unknown option: -F1");
}

}  // namespace
}  // namespace tango::autodriver
