#pragma once
// Where a Docker engine listens, as the HTTP layer (DockerClient) and the
// attach connection (Attachment) reach it: a unix socket, or TCP with TLS
// client certificates (Docker's --tlsverify scheme). An engine reached over
// SSH is a unix socket here: the local end of an OpenSSH forward
// (vmms/SshForward.hpp).
#include <string>

namespace tango::docker {

struct Endpoint {
  std::string socketPath = "/var/run/docker.sock";  // unix; unused when `host` is set
  // TCP: always TLS with a client certificate; Docker's plain-TCP mode gives
  // root on the engine's host to anyone who can connect, so it is refused.
  std::string host;
  int port = 0;
  std::string tlsCaFile, tlsCertFile, tlsKeyFile;  // ca.pem, cert.pem, key.pem
  // How messages name the engine (its DOCKER_HOSTS entry); the address when empty.
  std::string label;

  bool tcp() const { return !host.empty(); }
  std::string describe() const {
    if (!label.empty()) return label;
    return tcp() ? "tcp://" + host + ":" + std::to_string(port) : "unix://" + socketPath;
  }
  static Endpoint unix(std::string path) {
    Endpoint e;
    e.socketPath = std::move(path);
    return e;
  }
};

}  // namespace tango::docker
