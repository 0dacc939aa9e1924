#include "tango/config/DockerHosts.hpp"

#include <algorithm>
#include <charconv>
#include <fstream>
#include <set>

#include "tango/config/Config.hpp"
#include "tango/ssh/SshTarget.hpp"

namespace tango {

namespace fs = std::filesystem;

namespace {

// "host", "host:port" or "[v6]:port"; false when malformed.
bool splitHostPort(std::string_view s, std::string& host, int& port) {
  std::string_view portText;
  bool hasPort = false;
  if (s.starts_with("[")) {
    const auto close = s.find(']');
    if (close == std::string_view::npos) return false;
    host = std::string(s.substr(1, close - 1));
    s.remove_prefix(close + 1);
    if (!s.empty()) {
      if (s.front() != ':') return false;
      portText = s.substr(1);
      hasPort = true;
    }
  } else {
    const auto colon = s.find(':');
    host = std::string(s.substr(0, colon));
    if (colon != std::string_view::npos) {
      portText = s.substr(colon + 1);
      hasPort = true;
    }
  }
  if (hasPort) {
    auto [end, ec] = std::from_chars(portText.data(), portText.data() + portText.size(), port);
    if (portText.empty() || ec != std::errc() || end != portText.data() + portText.size() ||
        port < 1 || port > 65535)
      return false;
  }
  return ssh::isSafeAddress(host);
}

// An absolute socket path: no blanks or control characters, no "..", short
// enough for sun_path.
bool safeSocketPath(std::string_view p) {
  if (!p.starts_with("/") || p.size() > 107) return false;
  for (char c : p)
    if (static_cast<unsigned char>(c) < 0x21 || c == 0x7f) return false;
  return p.find("/../") == std::string_view::npos && !p.ends_with("/..");
}

}  // namespace

std::optional<EngineUrl> parseEngineUrl(std::string_view url, std::string& why) {
  EngineUrl e;
  if (url.starts_with("unix://")) {
    e.kind = EngineUrl::Kind::Unix;
    e.path = std::string(url.substr(7));
    if (!safeSocketPath(e.path)) {
      why = "a unix:// engine needs an absolute socket path";
      return std::nullopt;
    }
    return e;
  }
  if (url.starts_with("tcp://")) {
    e.kind = EngineUrl::Kind::Tcp;
    std::string_view rest = url.substr(6);
    if (rest.ends_with("/")) rest.remove_suffix(1);
    e.port = 2376;  // Docker's TLS port
    if (!splitHostPort(rest, e.host, e.port)) {
      why = "a tcp:// engine is tcp://host:port";
      return std::nullopt;
    }
    return e;
  }
  if (url.starts_with("ssh://")) {
    e.kind = EngineUrl::Kind::Ssh;
    std::string_view rest = url.substr(6);
    const auto at = rest.find('@');
    if (at == std::string_view::npos) {
      why = "an ssh:// engine names its user: ssh://user@host";
      return std::nullopt;
    }
    e.user = std::string(rest.substr(0, at));
    rest.remove_prefix(at + 1);
    const auto slash = rest.find('/');
    e.path =
        slash == std::string_view::npos ? "/var/run/docker.sock" : std::string(rest.substr(slash));
    e.port = 22;
    if (!ssh::isSafeUser(e.user) || !splitHostPort(rest.substr(0, slash), e.host, e.port) ||
        !safeSocketPath(e.path)) {
      why = "an ssh:// engine is ssh://user@host[:port][/remote/socket]";
      return std::nullopt;
    }
    return e;
  }
  why = "an engine URL starts with unix://, tcp:// or ssh://";
  return std::nullopt;
}

std::vector<DockerHost> readHostsFile(const fs::path& file, const std::string& user) {
  std::ifstream in(file);
  if (!in) throw ConfigError("DOCKER_HOSTS_FILE: cannot read " + file.string());
  std::vector<DockerHost> hosts;
  std::string line;
  int n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    std::size_t start = 0;
    while (start < line.size() && std::isspace(static_cast<unsigned char>(line[start]))) ++start;
    line.erase(0, start);
    if (line.empty()) continue;
    if (!ssh::isSafeAddress(line))
      throw ConfigError("DOCKER_HOSTS_FILE: " + file.string() + " line " + std::to_string(n) +
                        ": not a host name or address");
    hosts.push_back({"ssh://" + user + "@" + line, 0, {}, {}});
  }
  return hosts;
}

std::vector<DockerHost> resolveDockerHosts(const Config& cfg) {
  std::vector<DockerHost> hosts = cfg.dockerHosts;
  if (!cfg.dockerHostsFile.empty()) {
    auto more = readHostsFile(cfg.dockerHostsFile, cfg.dockerHostUser);
    hosts.insert(hosts.end(), more.begin(), more.end());
  }
  std::set<std::string> seen;
  for (auto& h : hosts) {
    std::string why;
    auto url = parseEngineUrl(h.url, why);
    if (!url) throw ConfigError("DOCKER_HOSTS: " + h.url + ": " + why);
    if (!seen.insert(h.url).second)
      throw ConfigError("DOCKER_HOSTS: " + h.url + " is listed twice");
    if (h.capacity == 0) h.capacity = cfg.dockerEngineCapacity;
    if (url->kind == EngineUrl::Kind::Tcp) {
      if (h.certPath.empty()) h.certPath = cfg.dockerCertPath;
      if (h.certPath.empty())
        throw ConfigError("DOCKER_CERT_PATH: " + h.url +
                          " needs TLS client certificates (ca.pem, cert.pem, key.pem): set "
                          "DOCKER_CERT_PATH or the engine's cert_path; plain TCP gives root on "
                          "the engine's host to anyone who can connect");
    }
    if (url->kind == EngineUrl::Kind::Ssh) {
      if (h.sshKey.empty()) h.sshKey = cfg.dockerSshKey;
      if (h.sshKey.empty())
        throw ConfigError("DOCKER_SSH_KEY: " + h.url +
                          " needs the private key the service logs in with (DOCKER_SSH_KEY or "
                          "the engine's key)");
    }
  }
  const auto names = cfg.vmmsNames();
  if (hosts.empty() && std::find(names.begin(), names.end(), "distDocker") != names.end())
    throw ConfigError(
        "DOCKER_HOSTS: distDocker needs at least one engine (DOCKER_HOSTS or DOCKER_HOSTS_FILE)");
  return hosts;
}

}  // namespace tango
