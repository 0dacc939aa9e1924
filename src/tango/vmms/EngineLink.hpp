#pragma once
// The way to one of distDocker's engines. unix:// and tcp:// (TLS) engines
// are reached directly; an ssh:// engine through OpenSSH, as the docker CLI
// does: one master connection (ssh/SshSession.hpp) forwards a local unix
// socket, private to the service, to the engine's socket on that host, so
// every Engine API call and attach is a plain unix-socket call here.
//
// Host keys of ssh:// engines are learnt on first contact and checked on
// every later one (a known-hosts file per engine under DATA_DIR/ssh/engines).
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "tango/config/DockerHosts.hpp"
#include "tango/docker/Endpoint.hpp"
#include "tango/ssh/SshSession.hpp"
#include "tango/util/Spawner.hpp"

namespace tango {

class EngineLink {
 public:
  // `runDir`: a private directory for sockets (0700); `index` names this
  // engine's files in it and under `stateDir`.
  EngineLink(const DockerHost& host, const EngineUrl& url, const std::filesystem::path& runDir,
             const std::filesystem::path& stateDir, std::size_t index, Spawner& spawner);
  ~EngineLink();
  EngineLink(const EngineLink&) = delete;
  EngineLink& operator=(const EngineLink&) = delete;

  // Opens the way unless it is open (an SSH master and its forward). ""
  // when it is, else why not (naming the engine).
  std::string open(std::chrono::steady_clock::time_point deadline);
  // Drops the way (an SSH master): the next open() makes a new one.
  void reset();
  const docker::Endpoint& endpoint() const { return endpoint_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  docker::Endpoint endpoint_;
  std::string remoteSocket_;               // ssh: the engine's socket there
  std::unique_ptr<ssh::Session> session_;  // ssh only
  bool forwarded_ = false;                 // ssh: the forward is in place
};

}  // namespace tango
