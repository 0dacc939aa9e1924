// Pure functions of the REST layer: URL splitting/decoding, MD5, UTF-8.
#include <gtest/gtest.h>

#include "tango/rest/TangoJson.hpp"
#include "tango/rest/Target.hpp"
#include "tango/util/Md5.hpp"

namespace tango {
namespace {

using Segs = std::vector<std::string>;

TEST(Target, SplitsAndDecodesPerSegment) {
  EXPECT_EQ(splitTarget("/"), Segs{});
  EXPECT_EQ(splitTarget("/open/test/lab/"), (Segs{"open", "test", "lab"}));
  EXPECT_EQ(splitTarget("/open/test/lab"), (Segs{"open", "test", "lab"}));
  EXPECT_EQ(splitTarget("/poll/k/l/..%2F..%2Fetc%2Fhostname"),
            (Segs{"poll", "k", "l", "../../etc/hostname"}));
  EXPECT_EQ(splitTarget("/a//b"), (Segs{"a", "", "b"}));
  EXPECT_EQ(splitTarget("/a/b?x=1/2"), (Segs{"a", "b"}));
  EXPECT_EQ(splitTarget("/a+b/%41"), (Segs{"a+b", "A"}));
  EXPECT_EQ(*urlDecode("%00"), std::string(1, '\0'));
  EXPECT_FALSE(splitTarget("/a/%zz"));
  EXPECT_FALSE(splitTarget("/a/%4"));
  EXPECT_FALSE(splitTarget("/a/%"));
  EXPECT_FALSE(splitTarget("http://host/a"));
  EXPECT_FALSE(splitTarget(""));
}

TEST(Md5, KnownDigests) {
  EXPECT_EQ(md5Hex(""), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(md5Hex("The quick brown fox jumps over the lazy dog"),
            "9e107d9d372bb6826bd81d3542a419d6");
  Md5 inc;
  inc.update("The quick brown ");
  inc.update("fox jumps over the lazy dog");
  EXPECT_EQ(inc.hexDigest(), "9e107d9d372bb6826bd81d3542a419d6");
}

TEST(Utf8, InvalidBecomesReplacement) {
  EXPECT_EQ(toValidUtf8("plain"), "plain");
  EXPECT_EQ(toValidUtf8("caf\xc3\xa9"), "caf\xc3\xa9");
  EXPECT_EQ(toValidUtf8("\xff"), "\xEF\xBF\xBD");
  EXPECT_EQ(toValidUtf8("\xc3"), "\xEF\xBF\xBD");
  EXPECT_EQ(toValidUtf8("\xed\xa0\x80"), "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // surrogate
  EXPECT_EQ(toValidUtf8("\xf0\x9f\x98\x80"), "\xf0\x9f\x98\x80");
}

}  // namespace
}  // namespace tango
