// The pieces the front's security rests on, one by one: which key may do
// what, which callback addresses are allowed, and the log sink that hides keys.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>

#include <memory>
#include <sstream>

#include "tango/rest/ApiKeys.hpp"
#include "tango/util/AddressRange.hpp"
#include "tango/util/RedactingSink.hpp"

namespace tango {
namespace {

TEST(ApiKeysTest, EachKeyGetsItsOwnAccessAndNothingElseMatches) {
  ApiKeys keys({"course-a-secret", "course-b-secret", "ops-secret"}, {"ops-secret"});
  EXPECT_EQ(keys.check("course-a-secret"), Access::Course);
  EXPECT_EQ(keys.check("course-b-secret"), Access::Course);
  EXPECT_EQ(keys.check("ops-secret"), Access::Operator);
  // Prefixes, extensions, case and the empty key are not keys.
  for (const char* wrong :
       {"", "course-a", "course-a-secret ", "course-a-secretx", "OPS-SECRET", "ops-secre"})
    EXPECT_EQ(keys.check(wrong), Access::None) << wrong;
  EXPECT_EQ(keys.check(std::string_view("ops-secret\0", 11)), Access::None);
}

TEST(AddressRangeTest, ParsesCidrAndBareAddressesAndRefusesTheRest) {
  auto r = AddressRange::parse("169.254.0.0/16");
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->v6);
  EXPECT_EQ(r->prefix, 16);
  EXPECT_EQ(r->str(), "169.254.0.0/16");
  auto one = AddressRange::parse("100.100.100.200");
  ASSERT_TRUE(one);
  EXPECT_EQ(one->prefix, 32);
  auto v6 = AddressRange::parse("fe80::/10");
  ASSERT_TRUE(v6);
  EXPECT_TRUE(v6->v6);
  EXPECT_EQ(v6->prefix, 10);
  for (const char* bad : {"", "/8", "10.0.0.0/33", "fe80::/129", "10.0.0.0/-1", "10.0.0/8",
                          "example.com", "10.0.0.0/8/8", "10.0.0.0/ 8", "10.0.0.0/8x"})
    EXPECT_FALSE(AddressRange::parse(bad)) << bad;
}

TEST(AddressRangeTest, PolicyDenyWinsAndV4RangesCoverMappedAddresses) {
  auto addr = [](const char* text) {
    auto a = PeerAddress::parse(text);
    EXPECT_TRUE(a) << text;
    return *a;
  };
  AddressPolicy metadataDenied({}, {"169.254.0.0/16", "fe80::/10"});
  EXPECT_FALSE(metadataDenied.allows(addr("169.254.169.254")));
  EXPECT_FALSE(metadataDenied.allows(addr("::ffff:169.254.169.254")));
  EXPECT_FALSE(metadataDenied.allows(addr("fe80::1")));
  EXPECT_TRUE(metadataDenied.allows(addr("127.0.0.1")));
  EXPECT_TRUE(metadataDenied.allows(addr("10.1.2.3")));
  EXPECT_TRUE(metadataDenied.allows(addr("::1")));
  EXPECT_TRUE(metadataDenied.allows(addr("169.255.0.1")));

  // An operator narrowing callbacks to Autolab's address: only that one.
  AddressPolicy onlyAutolab({"10.0.0.5/32"}, {"169.254.0.0/16"});
  EXPECT_TRUE(onlyAutolab.allows(addr("10.0.0.5")));
  EXPECT_TRUE(onlyAutolab.allows(addr("::ffff:10.0.0.5")));
  EXPECT_FALSE(onlyAutolab.allows(addr("10.0.0.6")));
  EXPECT_FALSE(onlyAutolab.allows(addr("127.0.0.1")));
  // Deny wins over allow.
  AddressPolicy both({"127.0.0.0/8"}, {"127.0.0.2/32"});
  EXPECT_TRUE(both.allows(addr("127.0.0.1")));
  EXPECT_FALSE(both.allows(addr("127.0.0.2")));

  EXPECT_THROW(AddressPolicy({"not-a-range"}, {}), std::invalid_argument);
  EXPECT_THROW(AddressPolicy({}, {"10.0.0.0/40"}), std::invalid_argument);
}

TEST(AddressRangeTest, PeerOfASocketAddress) {
  sockaddr_in v4{};
  v4.sin_family = AF_INET;
  v4.sin_addr.s_addr = htonl(0x7f000002);
  auto a = PeerAddress::of(reinterpret_cast<sockaddr*>(&v4));
  ASSERT_TRUE(a);
  EXPECT_EQ(a->str(), "127.0.0.2");
  sockaddr_in6 v6{};
  v6.sin6_family = AF_INET6;
  v6.sin6_addr = in6addr_loopback;
  auto b = PeerAddress::of(reinterpret_cast<sockaddr*>(&v6));
  ASSERT_TRUE(b);
  EXPECT_TRUE(b->v6);
  sockaddr other{};
  other.sa_family = AF_UNIX;
  EXPECT_FALSE(PeerAddress::of(&other));
}

TEST(RedactingSinkTest, NoKeyReachesTheLogWholeOrInsideAnother) {
  std::ostringstream out;
  auto inner = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  auto sink = std::make_shared<RedactingSink>(std::vector<std::string>{"k3y", "k3y-longer"},
                                              std::vector<spdlog::sink_ptr>{inner});
  spdlog::logger log("redact-test", sink);
  log.info("GET /poll/k3y-longer/lab/out and /open/k3y/lab/ in /labs/k3y-lab");
  log.flush();
  const std::string text = out.str();
  EXPECT_EQ(text.find("k3y"), std::string::npos) << text;
  EXPECT_NE(text.find("/poll/<key>/lab/out and /open/<key>/lab/ in /labs/<key>-lab"),
            std::string::npos)
      << text;
}

}  // namespace
}  // namespace tango
