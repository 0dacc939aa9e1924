// The service's reader of the autodriver's framed stdout (-F): the partial
// output as it grows, the result, and a stream from inside a container
// refused, bounded, when it is not what the autodriver writes.
#include <gtest/gtest.h>

#include "tango/vmms/AutodriverFrames.hpp"

namespace tango {
namespace {
using namespace std::string_literals;

std::string frame(char kind, const std::string& data) {
  return std::string(1, kind) + ' ' + std::to_string(data.size()) + '\n' + data;
}

struct Reader {
  std::string partial;
  AutodriverFrames frames;
  explicit Reader(std::size_t partialCap = 100, std::size_t outputCap = 1000)
      : frames(partialCap, outputCap, [this](std::string_view s) { partial += s; }) {}
};

TEST(AutodriverFrames, PartialBytesThenTheResultFedOneByteAtATime) {
  Reader r;
  const std::string body = "line 1\nbinary \0\n P 9\n"s;
  const std::string stream = frame('P', "line 1\n") + frame('P', "") + frame('P', body.substr(7)) +
                             frame('O', "Autodriver: ok\n" + body);
  for (char c : stream) {
    EXPECT_FALSE(r.frames.complete());
    r.frames.feed(std::string_view(&c, 1));
  }
  EXPECT_FALSE(r.frames.error()) << *r.frames.error();
  EXPECT_TRUE(r.frames.complete());
  EXPECT_EQ(r.partial, body);
  EXPECT_EQ(r.frames.takeOutput(), "Autodriver: ok\n" + body);
}

TEST(AutodriverFrames, TheWholeStreamInOneChunk) {
  Reader r;
  r.frames.feed(frame('P', "abc") + frame('O', "xyz"));
  EXPECT_TRUE(r.frames.complete());
  EXPECT_EQ(r.partial, "abc");
  EXPECT_EQ(r.frames.takeOutput(), "xyz");
}

TEST(AutodriverFrames, AnEmptyResultIsComplete) {
  Reader r;
  r.frames.feed("O 0\n");
  EXPECT_TRUE(r.frames.complete());
  EXPECT_FALSE(r.frames.error());
  EXPECT_EQ(r.frames.takeOutput(), "");
}

TEST(AutodriverFrames, PartialOutputUpToItsCapAndNotBeyond) {
  Reader r(8);
  r.frames.feed(frame('P', "abc") + frame('P', "defgh") + frame('O', "r"));
  EXPECT_EQ(r.partial, "abcdefgh");
  EXPECT_TRUE(r.frames.complete());
  Reader over(8);
  over.frames.feed(frame('P', "abc") + frame('P', "defghi") + frame('O', "r"));
  EXPECT_EQ(over.partial, "abc");
  ASSERT_TRUE(over.frames.error());
  EXPECT_NE(over.frames.error()->find("partial output beyond its cap of 8 bytes"),
            std::string::npos)
      << *over.frames.error();
}

TEST(AutodriverFrames, AStreamCutShortIsNotComplete) {
  Reader r;
  r.frames.feed(frame('O', "whole result").substr(0, 10));
  EXPECT_FALSE(r.frames.complete());
  EXPECT_FALSE(r.frames.error());
}

TEST(AutodriverFrames, MalformedStreamsAreRefusedAndKeepNothing) {
  const std::vector<std::pair<std::string, std::string>> cases{
      {"plain text\n", "bad frame header"},
      {"X 3\nabc", "bad frame header"},
      {"P\n", "bad frame header"},
      {"P -3\nabc", "bad frame header"},
      {"P 3x\nabc", "bad frame header"},
      {"P  3\nabc", "bad frame header"},
      {"O 99999999999999999999\n", "bad frame header"},
      {"O 1001\n", "a result of 1001 bytes (at most 1000)"},
      {"P 99999999999\n", "partial output beyond its cap"},
      {std::string(30, 'P'), "a frame header longer than"},
      {frame('O', "done") + "more", "bytes after the result"},
      {frame('O', "done") + frame('O', "again"), "bytes after the result"},
  };
  for (const auto& [stream, why] : cases) {
    Reader r;
    r.frames.feed(stream);
    ASSERT_TRUE(r.frames.error()) << stream;
    EXPECT_NE(r.frames.error()->find(why), std::string::npos)
        << stream << ": " << *r.frames.error();
    EXPECT_FALSE(r.frames.complete()) << stream;
    EXPECT_EQ(r.frames.takeOutput(), "") << stream;
    // Nothing after a refusal is read.
    r.frames.feed(frame('P', "later"));
    EXPECT_EQ(r.partial.find("later"), std::string::npos) << stream;
  }
}

}  // namespace
}  // namespace tango
