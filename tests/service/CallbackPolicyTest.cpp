// Callbacks through a real tangod: the address policy (CALLBACK_DENY here
// denies loopback, where the receivers are; nothing is sent anywhere else),
// and the output a callback sends is the job's own, even after a later job
// wrote a file of the same name.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "Receiver.hpp"
#include "ServiceFixture.hpp"

namespace tango::test {
namespace {

using namespace std::chrono_literals;

class CallbackServiceTest : public ServiceTest {
 protected:
  // The job's "callback" object once its state is final (delivered or failed).
  std::optional<json::object> finalCallback(std::int64_t id, std::chrono::seconds within) {
    auto deadline = std::chrono::steady_clock::now() + within;
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto job = deadJob(id); job && job->at("callback").is_object()) {
        auto cb = job->at("callback").as_object();
        if (cb.at("state") == "delivered" || cb.at("state") == "failed") return cb;
      }
      std::this_thread::sleep_for(100ms);
    }
    return std::nullopt;
  }
};

class DeniedLoopbackTest : public CallbackServiceTest {
 protected:
  std::string extraConfig() override {
    return "POOL_SIZE = 2\nCALLBACK_DENY = [\"127.0.0.0/8\", \"169.254.0.0/16\"]\n";
  }
};

TEST_F(DeniedLoopbackTest, ACallbackToADeniedAddressIsNeverSent) {
  Receiver receiver;
  const std::string url =
      "http://127.0.0.1:" + std::to_string(receiver.port()) + "/cb?secret=AUTOLAB-SECRET";
  auto id = submit("lab", {{"autograde-Makefile", kHelloMakefile}, {"hello.sh", kHelloScript}},
                   "hello.out", {{"notifyURL", url}});
  ASSERT_GT(id, 0);
  // The job itself is fine; only its callback is refused, once, with the reason.
  auto out = waitOutput("lab", "hello.out");
  ASSERT_TRUE(out);
  EXPECT_TRUE(std::regex_match(*out, helloOutputRe(id))) << *out;
  auto cb = finalCallback(id, 30s);
  ASSERT_TRUE(cb);
  EXPECT_EQ(cb->at("state"), "failed");
  const std::string detail(cb->at("detail").as_string());
  EXPECT_NE(detail.find("127.0.0.1 is not allowed"), std::string::npos) << detail;
  EXPECT_NE(detail.find("1 attempt"), std::string::npos) << detail;
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(receiver.requests().empty());
  // The log names the URL without its query (Autolab's secret).
  EXPECT_EQ(tangod->log().find("AUTOLAB-SECRET"), std::string::npos);
}

// A port nothing listens on now (bound, read, released).
int closedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

class CallbackSnapshotTest : public CallbackServiceTest {
 protected:
  std::string extraConfig() override {
    return "POOL_SIZE = 2\nCALLBACK_RETRIES = 8\nCALLBACK_BACKOFF_SECS = 0.5\n";
  }
};

TEST_F(CallbackSnapshotTest, TheCallbackSendsTheOutputAsItsJobLeftIt) {
  // The receiver is down while the first job finishes, so its callback
  // waits in backoff while a second job writes the same output file.
  const int port = closedPort();
  const std::string url = "http://127.0.0.1:" + std::to_string(port) + "/cb";
  auto first = submit("lab", {{"autograde-Makefile", "all:\n\t@echo FIRST-JOB-OUTPUT\n"}},
                      "same.out", {{"notifyURL", url}});
  ASSERT_GT(first, 0);
  ASSERT_TRUE(waitDead(first));
  auto second =
      submit("lab", {{"autograde-Makefile", "all:\n\t@echo SECOND-JOB-OUTPUT\n"}}, "same.out");
  ASSERT_GT(second, 0);
  ASSERT_TRUE(waitDead(second));
  auto now = waitOutput("lab", "same.out");
  ASSERT_TRUE(now);
  ASSERT_NE(now->find("SECOND-JOB-OUTPUT"), std::string::npos) << *now;

  Receiver receiver(port);
  auto cb = finalCallback(first, 60s);
  ASSERT_TRUE(cb);
  EXPECT_EQ(cb->at("state"), "delivered") << json::serialize(*cb);
  auto reqs = receiver.completeRequests();
  ASSERT_EQ(reqs.size(), 1u);
  EXPECT_NE(reqs[0].find("FIRST-JOB-OUTPUT"), std::string::npos) << reqs[0];
  EXPECT_EQ(reqs[0].find("SECOND-JOB-OUTPUT"), std::string::npos) << reqs[0];
  // The job's copy is gone once delivered; only the published file stays.
  std::vector<std::string> left;
  for (const auto& e : std::filesystem::directory_iterator(tangod->dataDir() / "courselabs" /
                                                           "test-lab" / "output"))
    left.push_back(e.path().filename().string());
  EXPECT_EQ(left, std::vector<std::string>{"same.out"});
}

}  // namespace
}  // namespace tango::test
