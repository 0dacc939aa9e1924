// The engine-independent pieces of the Docker client: the attach stream
// demultiplexer, tar streams, version comparison, the usage line.
#include <gtest/gtest.h>

#include "tango/docker/DockerClient.hpp"
#include "tango/docker/StreamDemux.hpp"
#include "tango/docker/Tar.hpp"
#include "tango/vmms/UsageLine.hpp"

namespace tango::docker {
namespace {

std::string frame(unsigned char stream, const std::string& payload) {
  std::string f(8, '\0');
  f[0] = static_cast<char>(stream);
  const auto n = static_cast<std::uint32_t>(payload.size());
  f[4] = static_cast<char>(n >> 24);
  f[5] = static_cast<char>(n >> 16);
  f[6] = static_cast<char>(n >> 8);
  f[7] = static_cast<char>(n);
  return f + payload;
}

TEST(StreamDemux, SplitsFramesFedOneByteAtATime) {
  std::string out, err;
  StreamDemux d([&](std::string_view s) { out += s; }, [&](std::string_view s) { err += s; });
  const std::string stream =
      frame(1, "hello ") + frame(2, "oops") + frame(1, "") + frame(1, std::string(70000, 'x'));
  for (char c : stream) d.feed(std::string_view(&c, 1));
  EXPECT_EQ(out, "hello " + std::string(70000, 'x'));
  EXPECT_EQ(err, "oops");
  EXPECT_FALSE(d.partial());
  d.feed(frame(1, "cut").substr(0, 9));
  EXPECT_TRUE(d.partial());
}

TEST(Tar, RoundTripsTheFirstFileAndBoundsIt) {
  const std::string tar = makeTar({{"dir", TarEntry::Kind::Dir, "", 0755},
                                   {"dir/f", TarEntry::Kind::File, std::string(5000, 'a'), 0644}});
  // The first member is a directory: not a file to read.
  EXPECT_FALSE(firstFileOfTar(tar, 100));
  const std::string one = makeTar({{"f", TarEntry::Kind::File, "0123456789", 0644}});
  EXPECT_EQ(firstFileOfTar(one, 100), "0123456789");
  EXPECT_EQ(firstFileOfTar(one, 4), "0123");
  // A download cut in the middle of the data yields what arrived.
  const std::string big = makeTar({{"f", TarEntry::Kind::File, std::string(4096, 'b'), 0644}});
  auto cut = firstFileOfTar(std::string_view(big).substr(0, 512 + 1000), 1 << 20);
  ASSERT_TRUE(cut);
  EXPECT_LE(cut->size(), 1000u);
}

TEST(DockerClient, ComparesApiVersionsNumerically) {
  EXPECT_TRUE(versionLess("1.9", "1.41"));
  EXPECT_TRUE(versionLess("1.41", "1.43"));
  EXPECT_FALSE(versionLess("1.43", "1.43"));
  EXPECT_FALSE(versionLess("1.44", "1.43"));
}

TEST(UsageLine, ParsesTheLastReport) {
  auto u = parseUsageLine(
      "noise\nTANGO_USAGE {\"exit_status\":2,\"max_rss_kb\":10}\n"
      "TANGO_USAGE {\"exit_status\":3,\"timed_out\":true}\n");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->exitStatus, 3);
  EXPECT_TRUE(u->timedOut);
  EXPECT_FALSE(parseUsageLine("nothing here\n"));
  EXPECT_EQ(stderrExcerpt("a\nTANGO_USAGE {}\nb\n"), "a; b");
}

// Found by fuzz/usage_line (fuzz/regressions/usage_line): the line comes
// from inside the VM; 1e300 or 2^64-1 were cast as they were (undefined),
// and a separator at the 1 KiB edge made the excerpt longer than its cap.
TEST(UsageLine, NumbersAreClampedToWhatTheyCanMean) {
  auto u = parseUsageLine(
      "TANGO_USAGE {\"wall_ms\":1e300,\"user_ms\":-5,\"sys_ms\":18446744073709551615,"
      "\"exit_status\":18446744073709551615,\"signal\":-3,\"max_rss_kb\":2.5}\n");
  ASSERT_TRUE(u);
  EXPECT_EQ(u->wallMs, std::int64_t{1} << 53);
  EXPECT_EQ(u->userMs, 0);
  EXPECT_EQ(u->sysMs, std::int64_t{1} << 53);
  EXPECT_EQ(u->exitStatus, 255);
  EXPECT_EQ(u->signal, 0);
  EXPECT_EQ(u->maxRssKb, 2);
}

TEST(UsageLine, ExcerptNeverExceedsOneKiB) {
  const std::string excerpt = stderrExcerpt(std::string(1023, 'a') + "\nb\n");
  EXPECT_EQ(excerpt.size(), 1024u);
  EXPECT_EQ(excerpt, std::string(1023, 'a') + ";");
}

}  // namespace
}  // namespace tango::docker
