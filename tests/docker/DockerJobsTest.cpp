// Jobs on localDocker through the REST API: Tango's output format, make
// failures, timeouts, the output cap, the network switch, partial output.
#include <regex>

#include "DockerFixture.hpp"

namespace tango::test {
namespace {

using DockerJobsTest = DockerTest;

TEST_F(DockerJobsTest, HelloJobOutputIsTangosFormat) {
  auto id = submitTo("lab", {{"autograde-Makefile", kHelloMakefile}, {"hello.sh", kHelloScript}},
                     "hello.out");
  ASSERT_GT(id, 0);
  auto out = waitOutput("lab", "hello.out");
  ASSERT_TRUE(out) << tangod->log();
  EXPECT_TRUE(std::regex_match(*out, helloOutputRe(id))) << *out;
  auto job = waitDead(id);
  ASSERT_TRUE(job);
  EXPECT_EQ((*job)["vm"].as_object().at("vmms").as_string(), "localDocker");
  EXPECT_EQ((*job)["outcome"].as_string(), "success");
  EXPECT_TRUE((*job)["usage"].is_object());
  // Each container runs one job and is gone once the output is in place.
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (containersOfPrefix() > 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(containersOfPrefix(), 0u);
}

TEST_F(DockerJobsTest, MakeFailureTimeoutAndOutputCap) {
  submitTo("fail", {{"autograde-Makefile", "all:\n\t@echo compiling\n\t@exit 3\n"}}, "fail.out");
  submitTo("slow", {{"autograde-Makefile", "all:\n\t@echo started\n\tsleep 100\n"}}, "slow.out",
           {{"timeout", 2}});
  submitTo("big", {{"autograde-Makefile", "all:\n\t@echo FIRST; seq 1 40000; echo LAST\n"}},
           "big.out", {{"max_kb", 1}});
  auto fail = waitOutput("fail", "fail.out");
  ASSERT_TRUE(fail) << tangod->log();
  // make reports its recipe's status 3 as its own status 2.
  EXPECT_TRUE(
      fail->ends_with("---\nAutodriver: Job exited with status 2\ncompiling\n"
                      "make: *** [Makefile:3: all] Error 3\n"))
      << *fail;

  const auto t0 = std::chrono::steady_clock::now();
  auto slow = waitOutput("slow", "slow.out");
  ASSERT_TRUE(slow) << tangod->log();
  EXPECT_NE(slow->find("Error: Job timed out after 2 seconds"), std::string::npos) << *slow;
  EXPECT_NE(slow->find("Autodriver: Job timed out after 2 seconds"), std::string::npos) << *slow;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));

  auto big = waitOutput("big", "big.out");
  ASSERT_TRUE(big) << tangod->log();
  auto body = big->substr(big->find("---\n") + 4);
  EXPECT_EQ(body.rfind("Autodriver: Job exited with status 0\nFIRST\n1\n2\n", 0), 0u)
      << body.substr(0, 200);
  EXPECT_NE(body.find("\n...[excess bytes elided]...\n"), std::string::npos);
  EXPECT_TRUE(body.ends_with("39999\n40000\nLAST\n"));
  EXPECT_LT(body.size(), 1024u + 200u);
}

TEST_F(DockerJobsTest, NetworkIsCutUnlessTheJobAsksForIt) {
  Listener listener;
  // The host as seen from the default bridge: the container's gateway.
  const std::string mk =
      "all:\n\t@ls /sys/class/net | tr '\\n' ' '; echo\n"
      "\t@gw=$$(awk '$$2==\"00000000\" {print $$3}' /proc/net/route | head -n1); "
      "if [ -z \"$$gw\" ]; then echo no-route; else "
      "ip=$$(printf '%d.%d.%d.%d' 0x$${gw:6:2} 0x$${gw:4:2} 0x$${gw:2:2} 0x$${gw:0:2}); "
      "if timeout 5 bash -c \"echo > /dev/tcp/$$ip/" +
      std::to_string(listener.port()) +
      "\" 2>/dev/null; then echo connected; else echo refused; fi; fi\n";
  const std::string withBash = "SHELL := /bin/bash\n" + mk;
  submitTo("off", {{"autograde-Makefile", withBash}}, "netoff.out");
  submitTo("on", {{"autograde-Makefile", withBash}}, "neton.out", {{"disable_network", false}});
  auto off = waitOutput("off", "netoff.out");
  auto on = waitOutput("on", "neton.out");
  ASSERT_TRUE(off && on) << tangod->log();
  EXPECT_TRUE(off->ends_with("status 0\nlo \nno-route\n")) << *off;
  EXPECT_TRUE(on->ends_with("connected\n")) << *on;
  EXPECT_NE(on->find("eth0"), std::string::npos) << *on;
}

TEST_F(DockerJobsTest, PartialOutputOfARunningJob) {
  auto id = submitTo("lab", {{"autograde-Makefile", "all:\n\t@echo early bird\n\t@sleep 10\n"}},
                     "partial.out");
  std::string seen;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline &&
         seen.find("early bird") == std::string::npos) {
    auto r = http->get("/getPartialOutput/test/" + std::to_string(id) + "/").json();
    if (r["statusId"].as_int64() == 0) seen = r["output"].as_string();
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_NE(seen.find("early bird"), std::string::npos) << tangod->log();
  ASSERT_TRUE(waitOutput("lab", "partial.out"));
}

}  // namespace
}  // namespace tango::test
