#include "tango/vmms/EngineLink.hpp"

namespace tango {

namespace fs = std::filesystem;

EngineLink::EngineLink(const DockerHost& host, const EngineUrl& url, const fs::path& runDir,
                       const fs::path& stateDir, std::size_t index, Spawner& spawner)
    : name_(host.url) {
  endpoint_.label = host.url;
  const std::string tag = "e" + std::to_string(index);
  switch (url.kind) {
    case EngineUrl::Kind::Unix:
      endpoint_.socketPath = url.path;
      break;
    case EngineUrl::Kind::Tcp:
      endpoint_.host = url.host;
      endpoint_.port = url.port;
      endpoint_.tlsCaFile = (host.certPath / "ca.pem").string();
      endpoint_.tlsCertFile = (host.certPath / "cert.pem").string();
      endpoint_.tlsKeyFile = (host.certPath / "key.pem").string();
      break;
    case EngineUrl::Kind::Ssh:
      endpoint_.socketPath = (runDir / (tag + ".sock")).string();
      remoteSocket_ = url.path;
      session_ = std::make_unique<ssh::Session>(
          ssh::Target{url.host, url.port, url.user, host.sshKey},
          stateDir / (tag + "-" + url.host + ".known_hosts"), runDir / (tag + ".ctl"), spawner);
      break;
  }
}

EngineLink::~EngineLink() {
  if (session_) session_->close();
  if (!remoteSocket_.empty()) {
    std::error_code ec;
    fs::remove(endpoint_.socketPath, ec);
  }
}

std::string EngineLink::open(std::chrono::steady_clock::time_point deadline) {
  if (!session_) return "";
  if (!session_->isUp()) forwarded_ = false;
  if (forwarded_ && fs::exists(endpoint_.socketPath)) return "";
  if (auto err = session_->connect(deadline); !err.empty()) return name_ + ": " + err;
  if (auto err = session_->forwardSocket(endpoint_.socketPath, remoteSocket_, deadline);
      !err.empty()) {
    session_->close();
    return name_ + ": " + err;
  }
  forwarded_ = true;
  return "";
}

void EngineLink::reset() {
  if (!session_) return;
  session_->close();
  forwarded_ = false;
}

}  // namespace tango
