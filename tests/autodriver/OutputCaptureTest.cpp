#include <gtest/gtest.h>

#include <string>

#include "autodriver/OutputCapture.hpp"

namespace tango::autodriver {
namespace {

std::string numbered(std::size_t n) {
  std::string s;
  for (std::size_t i = 0; i < n; ++i) s += static_cast<char>('a' + i % 26);
  return s;
}

TEST(OutputCapture, UnderCapKeepsEverything) {
  OutputCapture capture(100);
  capture.append("hello ");
  capture.append("world\n");
  EXPECT_EQ(capture.total(), 12u);
  EXPECT_FALSE(capture.elided());
  EXPECT_EQ(capture.render(), "hello world\n");
}

TEST(OutputCapture, ExactlyCapKeepsEverythingForOddCaps) {
  for (std::size_t cap : {1u, 2u, 7u, 100u, 101u}) {
    const std::string data = numbered(cap);
    OutputCapture whole(cap);
    whole.append(data);
    EXPECT_EQ(whole.render(), data) << "cap " << cap;
    // The same bytes arriving one at a time must give the same result.
    OutputCapture bytewise(cap);
    for (char c : data) bytewise.append(std::string(1, c));
    EXPECT_EQ(bytewise.render(), data) << "cap " << cap;
    EXPECT_FALSE(bytewise.elided());
  }
}

TEST(OutputCapture, OverCapKeepsHeadAndTailByteExact) {
  const std::string data = numbered(1000);
  for (std::size_t chunk : {1u, 3u, 7u, 64u, 1000u}) {
    OutputCapture capture(10);
    for (std::size_t i = 0; i < data.size(); i += chunk) capture.append(data.substr(i, chunk));
    EXPECT_EQ(capture.total(), 1000u);
    EXPECT_TRUE(capture.elided());
    EXPECT_EQ(capture.render(),
              data.substr(0, 5) + "\n...[excess bytes elided]...\n" + data.substr(995))
        << "chunk " << chunk;
  }
}

TEST(OutputCapture, OddCapSplitsHeadDownTailUp) {
  OutputCapture capture(5);
  capture.append("0123456789");
  EXPECT_EQ(capture.render(), "01\n...[excess bytes elided]...\n789");
}

TEST(OutputCapture, OneByteOverCapIsElided) {
  OutputCapture capture(4);
  capture.append("abcde");
  EXPECT_EQ(capture.render(), "ab\n...[excess bytes elided]...\nde");
}

TEST(OutputCapture, AppendReportsHowMuchWentToTheHead) {
  OutputCapture capture(10);
  EXPECT_EQ(capture.append("abc"), 3u);
  EXPECT_EQ(capture.append("defgh"), 2u);
  EXPECT_EQ(capture.append("ijk"), 0u);
}

TEST(OutputCapture, NulAndInvalidUtf8PassThrough) {
  const std::string data("a\0b\xff\xfe\0", 6);
  OutputCapture capture(100);
  capture.append(data);
  EXPECT_EQ(capture.render(), data);

  OutputCapture small(4);
  small.append(data);
  EXPECT_EQ(small.render(),
            std::string("a\0", 2) + std::string(kElisionMarker) + std::string("\xfe\0", 2));
}

TEST(OutputCapture, ZeroCapKeepsOnlyTheCount) {
  OutputCapture capture(0);
  capture.append("abc");
  EXPECT_EQ(capture.total(), 3u);
  EXPECT_EQ(capture.render(), std::string(kElisionMarker));
}

}  // namespace
}  // namespace tango::autodriver
