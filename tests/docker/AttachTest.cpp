// The attach connection against the real engine: what is written reaches the
// container's stdin, its end closes stdin (StdinOnce), stdout and stderr come
// back apart, /wait gives the exit code; a missing container is a 404. The
// same over TCP with TLS client certificates (a socat TLS front for the same
// engine), and the certificates either side must refuse.
#include <gtest/gtest.h>
#include <unistd.h>

#include "DockerFixture.hpp"
#include "TlsFront.hpp"
#include "tango/docker/Engine.hpp"
#include "tango/util/Md5.hpp"

namespace tango::test {
namespace {

using namespace std::chrono_literals;

// A started container running `cmd` with stdin open once; removed with this.
class Started {
 public:
  Started(docker::Engine& engine, std::string name, std::vector<std::string> cmd,
          bool readOnly = false)
      : engine_(engine), name_(std::move(name)) {
    docker::ContainerSpec spec;
    spec.name = name_;
    spec.image = testImage();
    spec.labels = {{"tango.prefix", name_}};
    spec.entrypoint = {cmd.front()};
    spec.cmd.assign(cmd.begin() + 1, cmd.end());
    spec.openStdin = true;
    spec.readonlyRootfs = readOnly;
    spec.networkNone = true;
    engine_.createContainer(spec, 30s);
    engine_.startContainer(name_, 30s);
  }
  ~Started() { engine_.removeContainer(name_); }
  const std::string& name() const { return name_; }

 private:
  docker::Engine& engine_;
  std::string name_;
};

struct Output {
  std::string out, err;
};

// Writes `input` to the container's stdin, ends it, and reads stdout and
// stderr to their end.
Output roundTrip(docker::Attachment& att, std::string_view input) {
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  EXPECT_TRUE(att.write(input, deadline));
  att.closeStdin();
  Output o;
  att.drain([&](std::string_view c) { o.out.append(c); },
            [&](std::string_view c) { o.err.append(c); }, deadline);
  return o;
}

std::string uniqueName(const std::string& what) {
  return "tango-attach-" + what + "-" + std::to_string(::getpid());
}

TEST(Attach, StdinInStdoutAndStderrOutThenTheExitCode) {
  docker::Engine engine;
  if (auto why = engineProblem(engine); !why.empty()) GTEST_FAIL() << why;
  // Reads stdin to its end: it only ends if closing our side closed it.
  Started c(engine, uniqueName("test"), {"/bin/sh", "-c", "tr a-z A-Z; echo to-stderr >&2; exit 7"},
            /*readOnly=*/true);
  auto att = engine.attach(c.name(), 30s);
  const Output o = roundTrip(att, "hello through stdin\n");
  EXPECT_EQ(o.out, "HELLO THROUGH STDIN\n");
  EXPECT_EQ(o.err, "to-stderr\n");
  EXPECT_EQ(engine.waitContainer(c.name(), 30s), 7);
}

// Over TLS, with more than a TLS record each way: stdin ends with
// close_notify (the engine then closes the container's stdin), and the
// output still comes in full after it.
TEST(Attach, OverTlsStdinInStdoutAndStderrOutThenTheExitCode) {
  docker::Engine engine;
  if (auto why = engineProblem(engine); !why.empty()) GTEST_FAIL() << why;
  const TestCerts certs;
  const TlsFront front(certs);
  Started c(engine, uniqueName("tls"),
            {"/bin/sh", "-c",
             "tr a-z A-Z | md5sum; yes tango | head -c 1000000; echo to-stderr >&2; exit 7"},
            /*readOnly=*/true);
  std::string input;
  for (int i = 0; input.size() < 300000; ++i) input += "line " + std::to_string(i) + " of stdin\n";
  std::string upper = input;
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));

  auto att = docker::Attachment::open(front.endpoint(), engine.apiVersion(), c.name(), 30s);
  const Output o = roundTrip(att, input);
  std::string tangos;
  while (tangos.size() < 1000000) tangos += "tango\n";
  tangos.resize(1000000);
  EXPECT_EQ(o.out.size(), 36 + tangos.size());
  EXPECT_EQ(o.out.substr(0, 36), md5Hex(upper) + "  -\n");
  EXPECT_TRUE(o.out.substr(36) == tangos) << "stdout after the checksum differs";
  EXPECT_EQ(o.err, "to-stderr\n");
  EXPECT_EQ(engine.waitContainer(c.name(), 30s), 7);
}

// Opening an attach to `engine` fails, soon and without reaching the
// container; returns the message.
std::string attachFailure(const docker::Endpoint& engine, const std::string& apiVersion) {
  const auto t0 = std::chrono::steady_clock::now();
  try {
    docker::Attachment::open(engine, apiVersion, uniqueName("unreached"), 20s);
    ADD_FAILURE() << "the attach succeeded";
  } catch (const docker::EngineError& e) {
    ADD_FAILURE() << "the request reached the engine: " << e.what();
  } catch (const docker::DockerTimeout& e) {
    ADD_FAILURE() << "a timeout, not a refusal: " << e.what();
  } catch (const docker::DockerError& e) {
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 5s);
    const std::string message = e.what();
    EXPECT_NE(message.find("cannot reach the Docker engine at " + engine.describe() + ": "),
              std::string::npos)
        << message;
    return message;
  }
  return "";
}

TEST(Attach, OverTlsTheEngineRefusesAClientCertificateItsCaDidNotSign) {
  docker::Engine engine;
  if (auto why = engineProblem(engine); !why.empty()) GTEST_FAIL() << why;
  const TestCerts certs;
  const TlsFront front(certs);
  for (const std::string client : {"stranger", ""}) {
    SCOPED_TRACE("client certificate: " + (client.empty() ? "none" : client));
    const std::string message = attachFailure(front.endpoint(client), engine.apiVersion());
    // OpenSSL's reason for the alert, e.g. "tlsv1 alert unknown ca" or
    // "tlsv13 alert certificate required".
    EXPECT_NE(message.find("it refused our client certificate: TLS: "), std::string::npos)
        << message;
    EXPECT_NE(message.find(" alert "), std::string::npos) << message;
  }
}

TEST(Attach, OverTlsAServerCertificateForAnotherNameOrFromAnotherCaIsRejected) {
  docker::Engine engine;
  if (auto why = engineProblem(engine); !why.empty()) GTEST_FAIL() << why;
  const TestCerts certs;
  {
    // Signed by our CA, but for redis.example: not who we dialled.
    const TlsFront front(certs, "wrongname");
    const std::string message = attachFailure(front.endpoint(), engine.apiVersion());
    EXPECT_NE(
        message.find("TLS handshake failed: server certificate rejected: IP address mismatch"),
        std::string::npos)
        << message;
  }
  {
    const TlsFront front(certs);
    const std::string message =
        attachFailure(front.endpoint("client", "other-ca"), engine.apiVersion());
    EXPECT_NE(message.find("TLS handshake failed: server certificate rejected: "),
              std::string::npos)
        << message;
  }
}

TEST(Attach, AContainerThatDoesNotExistIsA404) {
  docker::Engine engine;
  try {
    engine.attach(uniqueName("missing"), 10s);
    ADD_FAILURE() << "attach to a missing container succeeded";
  } catch (const docker::EngineError& e) {
    EXPECT_EQ(e.status, 404) << e.what();
  }
}

TEST(Attach, TheDeadlinePassingWhileTheContainerIsSilentIsATimeout) {
  docker::Engine engine;
  Started c(engine, uniqueName("silent"), {"sleep", "60"});
  const std::string& name = c.name();
  auto att = engine.attach(name, 30s);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_THROW(att.drain([](std::string_view) {}, [](std::string_view) {}, t0 + 1s),
               docker::DockerTimeout);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 10s);
}

}  // namespace
}  // namespace tango::test
