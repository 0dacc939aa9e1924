#pragma once
// distDocker's engines (DOCKER_HOSTS), as written in the config and as the
// service reaches them. An engine URL is Docker's own form:
//   unix:///var/run/docker.sock
//   tcp://grader2.example.edu:2376        (always TLS with a client certificate)
//   ssh://tango@grader3.example.edu[:22][/var/run/docker.sock]
// The path after an ssh:// host names the remote engine's socket (the
// docker CLI always uses the remote default; we allow another).
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tango {

struct Config;

// One DOCKER_HOSTS entry as configured.
struct DockerHost {
  std::string url;
  int capacity = 0;                // jobs at once; 0 = DOCKER_ENGINE_CAPACITY, else derived
  std::filesystem::path certPath;  // tcp: ca.pem, cert.pem, key.pem (default DOCKER_CERT_PATH)
  std::filesystem::path sshKey;    // ssh: the private key (default DOCKER_SSH_KEY)
};

struct EngineUrl {
  enum class Kind { Unix, Tcp, Ssh };
  Kind kind = Kind::Unix;
  std::string path;  // unix: the socket; ssh: the remote engine's socket
  std::string host;  // tcp, ssh
  int port = 0;
  std::string user;  // ssh
};

// Parses an engine URL; nullopt with `why` set when it is not one we accept.
std::optional<EngineUrl> parseEngineUrl(std::string_view url, std::string& why);

// Tango's distDocker hosts file: one address a line (blank lines and #
// comments skipped), each an SSH host reached as DOCKER_HOST_USER.
std::vector<DockerHost> readHostsFile(const std::filesystem::path& file, const std::string& user);

// Every engine the service drives: DOCKER_HOSTS, then the hosts file, with
// the defaults (DOCKER_CERT_PATH, DOCKER_SSH_KEY, DOCKER_ENGINE_CAPACITY)
// filled in. Throws ConfigError naming the key and the engine.
std::vector<DockerHost> resolveDockerHosts(const Config& cfg);

}  // namespace tango
