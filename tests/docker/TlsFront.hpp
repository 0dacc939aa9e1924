#pragma once
// Docker's TCP + TLS scheme (--tlsverify) without a second engine: socat on
// a loopback port terminates TLS with a TestCerts server certificate,
// demands a client certificate signed by the test CA, and forwards each
// connection to the real engine's unix socket.
#include <filesystem>
#include <optional>
#include <stdexcept>
#include <string>

#include "../redis/TestCerts.hpp"
#include "../service/Listener.hpp"
#include "tango/docker/Endpoint.hpp"
#include "tango/util/Process.hpp"
#include "tango/util/Socket.hpp"

namespace tango::test {

class TlsFront {
 public:
  // `serverCert` names a TestCerts certificate ("server" is for 127.0.0.1).
  explicit TlsFront(const TestCerts& certs, const std::string& serverCert = "server",
                    const std::string& engineSocket = "/var/run/docker.sock")
      : certs_(certs) {
    if (!std::filesystem::exists(kSocat))
      throw std::runtime_error(std::string(kSocat) +
                               " is missing: apt-get install socat (scripts/install-deps.sh)");
    // The port we found free may be taken before socat binds it: try again.
    std::string why;
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = Listener().port();
      why = start(serverCert, engineSocket);
      if (why.empty()) return;
    }
    throw std::runtime_error("socat did not start: " + why);
  }

  int port() const { return port_; }

  // The engine as a client reaches it, with `clientCert` ("" for none).
  docker::Endpoint endpoint(const std::string& clientCert = "client",
                            const std::string& caCert = "ca") const {
    docker::Endpoint e;
    e.host = "127.0.0.1";
    e.port = port_;
    e.tlsCaFile = certs_.path(caCert + ".crt");
    if (!clientCert.empty()) {
      e.tlsCertFile = certs_.path(clientCert + ".crt");
      e.tlsKeyFile = certs_.path(clientCert + ".key");
    }
    return e;
  }

 private:
  static constexpr const char* kSocat = "/usr/bin/socat";

  // "" once socat accepts connections, else why not.
  std::string start(const std::string& serverCert, const std::string& engineSocket) {
    const std::string listen =
        "OPENSSL-LISTEN:" + std::to_string(port_) +
        ",bind=127.0.0.1,reuseaddr,fork,cert=" + certs_.path(serverCert + ".crt") +
        ",key=" + certs_.path(serverCert + ".key") + ",cafile=" + certs_.path("ca.crt") +
        ",verify=1";
    SpawnOptions o;
    // -t: after our close_notify ends one direction, socat would close the
    // other (the container's output) half a second later by default.
    o.argv = {kSocat, "-t", "60", listen, "UNIX-CONNECT:" + engineSocket};
    socat_.emplace(Process::spawn(o));
    const auto deadline = SteadyClock::now() + std::chrono::seconds(10);
    while (SteadyClock::now() < deadline) {
      if (socat_->waitExit(SteadyClock::now() + std::chrono::milliseconds(20))) {
        std::string err;
        socat_->communicate([](std::string_view) {}, [&](std::string_view c) { err.append(c); },
                            deadline);
        socat_.reset();
        return err;
      }
      if (connectTcp("127.0.0.1", port_, deadline).fd) return "";
    }
    socat_.reset();
    return "no listener on port " + std::to_string(port_) + " within 10 s";
  }

  const TestCerts& certs_;
  int port_ = 0;
  std::optional<Process> socat_;
};

}  // namespace tango::test
