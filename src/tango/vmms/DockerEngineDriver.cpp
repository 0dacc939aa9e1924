// The real distDocker engine: a DockerVmms over an EngineLink.
#include <spdlog/spdlog.h>

#include "tango/config/DockerHosts.hpp"
#include "tango/ssh/SshSession.hpp"
#include "tango/util/Spawner.hpp"
#include "tango/vmms/DockerVmms.hpp"
#include "tango/vmms/EngineDriver.hpp"
#include "tango/vmms/EngineLink.hpp"

namespace tango {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// A ping that takes longer than this is a failed one: an engine that slow
// would time out the jobs' own calls too.
constexpr auto kPingTimeout = 3s;

// What the engines built from one config share: the thread that spawns
// their SSH masters (which die with it, ssh/SshSession.hpp) and the
// directory of their sockets.
struct Shared {
  Spawner spawner;
  fs::path runDir;
  ~Shared() {
    std::error_code ec;
    fs::remove_all(runDir, ec);
  }
};

class DockerEngineDriver final : public EngineDriver {
 public:
  DockerEngineDriver(const Config& cfg, const DockerHost& host, const EngineUrl& url,
                     const fs::path& stateDir, std::size_t index, std::shared_ptr<Shared> shared)
      : shared_(std::move(shared)),
        link_(host, url, shared_->runDir, stateDir, index, shared_->spawner),
        docker_(cfg, link_.endpoint()) {}

  Vmms& vmms() override { return docker_; }
  std::string probe() override {
    if (auto err = link_.open(Clock::now() + 15s); !err.empty()) return err;
    try {
      docker_.engine().ping(kPingTimeout);
    } catch (const std::exception& x) {
      link_.reset();  // an SSH forward to a dead engine: made again next time
      return x.what();
    }
    return {};
  }
  docker::Engine::SystemInfo systemInfo() override { return docker_.engine().systemInfo(10s); }
  void abandonRuns() override { docker_.abandonRuns(); }

 private:
  std::shared_ptr<Shared> shared_;  // outlives the link (declared first)
  EngineLink link_;
  DockerVmms docker_;
};

}  // namespace

std::vector<DistEngine> dockerEngines(const Config& cfg) {
  const auto hosts = resolveDockerHosts(cfg);
  const fs::path data = fs::absolute(cfg.dataDir);
  auto shared = std::make_shared<Shared>();
  shared->runDir = ssh::controlDir("distDocker:" + data.string());
  std::vector<DistEngine> engines;
  for (std::size_t i = 0; i < hosts.size(); ++i) {
    std::string why;
    const auto url = parseEngineUrl(hosts[i].url, why);  // checked by resolveDockerHosts
    if (!url) throw ConfigError("DOCKER_HOSTS: " + hosts[i].url + ": " + why);
    engines.push_back({hosts[i].url, hosts[i].capacity,
                       std::make_unique<DockerEngineDriver>(cfg, hosts[i], *url,
                                                            data / "ssh" / "engines", i, shared)});
  }
  return engines;
}

}  // namespace tango
