// distDocker placement at a scale this machine cannot host (see
// docs/benchmarks.md, "Several Docker hosts"): the real core (TangoServer,
// JobManager, Workers, Preallocator, the SQLite queue) and the real
// DistDockerVmms, over modelled engines whose calls answer after a fixed
// delay instead of running containers.
//
//   placement_sim [ENGINES=100] [CAPACITY=8] [JOBS=4000] [RUN_MS=1000]
//
// Reports: jobs per second against the modelled ceiling (every slot busy
// all the time), placement decisions per second, and the process's CPU per
// job (user + system: the manager's whole cost, the queue's SQLite writes
// included). Then the placement call alone: initializeVM + destroyVM on
// engines that answer at once, one thread, as decisions per second.
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <boost/json/parse.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "tango/core/LocalJobQueue.hpp"
#include "tango/core/ServiceParts.hpp"
#include "tango/core/TangoServer.hpp"
#include "tango/store/SqliteJobStore.hpp"
#include "tango/util/SafeName.hpp"
#include "tango/vmms/DistDockerVmms.hpp"

namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Modelled Engine API delays: a container create+start, a job, a remove.
struct Model {
  std::chrono::milliseconds create{150}, run{1000}, remove{30}, call{2};
};

std::atomic<long> placements{0};

// localDocker's calls on one modelled engine: each sleeps its delay.
class ModelledDocker final : public tango::Vmms {
 public:
  explicit ModelledDocker(Model m) : m_(m) {}
  std::string name() const override { return "localDocker"; }
  tango::StepResult initializeVM(const tango::TangoMachine&, std::chrono::seconds) override {
    ++placements;
    std::this_thread::sleep_for(m_.create);
    return {};
  }
  tango::StepResult waitVM(const tango::TangoMachine&, std::chrono::seconds) override {
    std::this_thread::sleep_for(m_.call);
    return {};
  }
  tango::StepResult copyIn(const tango::TangoMachine&, const std::vector<tango::InputFile>&,
                           std::chrono::seconds) override {
    std::this_thread::sleep_for(m_.call);
    return {};
  }
  tango::RunResult runJob(const tango::TangoMachine&, const tango::RunSpec&) override {
    std::this_thread::sleep_for(m_.run);
    tango::RunResult r;
    r.status = 0;
    return r;
  }
  tango::StepResult copyOut(const tango::TangoMachine&, const fs::path& dest,
                            std::chrono::seconds) override {
    std::ofstream(dest) << "Autodriver: Job exited with status 0\nhi\n";
    return {};
  }
  tango::StepResult destroyVM(const tango::TangoMachine&) override {
    std::this_thread::sleep_for(m_.remove);
    return {};
  }
  tango::StepResult safeDestroyVM(const tango::TangoMachine& vm) override { return destroyVM(vm); }
  std::vector<tango::TangoMachine> getVMs() override { return {}; }
  std::vector<std::string> getImages() override { return {"img"}; }
  std::optional<std::string> getPartialOutput(const tango::TangoMachine&) override {
    return std::nullopt;
  }

 private:
  Model m_;
};

class ModelledEngine final : public tango::EngineDriver {
 public:
  explicit ModelledEngine(Model m) : docker_(m) {}
  tango::Vmms& vmms() override { return docker_; }
  std::string probe() override { return {}; }
  tango::docker::Engine::SystemInfo systemInfo() override { return {8, 32LL << 30, true}; }

 private:
  ModelledDocker docker_;
};

std::vector<tango::DistEngine> engines(int n, int capacity, Model m) {
  std::vector<tango::DistEngine> out;
  for (int i = 0; i < n; ++i)
    out.push_back({"modelled-" + std::to_string(i), capacity, std::make_unique<ModelledEngine>(m)});
  return out;
}

double cpuSeconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int arg(int argc, char** argv, int i, int dflt) { return argc > i ? std::atoi(argv[i]) : dflt; }

}  // namespace

int main(int argc, char** argv) {
  const int nEngines = arg(argc, argv, 1, 100), capacity = arg(argc, argv, 2, 8),
            jobs = arg(argc, argv, 3, 4000);
  Model m;
  m.run = std::chrono::milliseconds(arg(argc, argv, 4, 1000));
  const fs::path dir =
      fs::temp_directory_path() / ("tango-placement-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  tango::Config cfg;
  cfg.dataDir = dir / "data";
  cfg.keys = {"k"};
  cfg.vmmsName = "distDocker";
  cfg.nodeId = "sim";
  cfg.poolSize = 0;  // every job's container made for it: a placement per job
  cfg.logLevel = "warn";
  fs::create_directories(cfg.dataDir / "tmp");
  fs::create_directories(cfg.courselabsDir());

  tango::ServiceParts parts;
  auto queue = std::make_unique<tango::LocalJobQueue>(
      std::make_unique<tango::SqliteJobStore>(cfg.stateFile(), tango::labDirFinder(cfg)), 5000ms);
  tango::JobQueue* q = queue.get();
  parts.queue = std::move(queue);
  parts.vmms.add(std::make_unique<tango::DistDockerVmms>(cfg, engines(nEngines, capacity, m)));
  parts.cluster = std::make_unique<tango::SingleNode>(cfg.nodeId);
  auto server = std::make_unique<tango::TangoServer>(cfg, std::move(parts));
  server->start();
  const fs::path lab = *tango::courselabDir(cfg.courselabsDir(), "k", "lab");
  fs::create_directories(lab / "output");
  std::ofstream(lab / "Makefile") << "all:\n\techo hi\n";

  const double cpu0 = cpuSeconds();
  const auto t0 = Clock::now();
  for (int i = 0; i < jobs; ++i) {
    auto body = boost::json::parse(
        R"({"image": "img", "jobName": "j", "timeout": 60, "output_file": "o)" + std::to_string(i) +
        R"(", "files": [{"localFile": "Makefile", "destFile": "Makefile"}]})");
    if (!server->addJob("k", "lab", lab, body).ok) {
      std::fprintf(stderr, "addJob failed\n");
      return 1;
    }
  }
  const double submitS = std::chrono::duration<double>(Clock::now() - t0).count();
  while (q->countFinished() < jobs) std::this_thread::sleep_for(20ms);
  const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
  const double cpu = cpuSeconds() - cpu0;
  server.reset();
  spdlog::set_level(spdlog::level::warn);  // the service set its own on start

  const double perJob =
      static_cast<double>((m.create + 2 * m.call + m.run + m.remove).count()) / 1e3;
  const double ceiling = nEngines * capacity / perJob;
  std::printf(
      "engines %d x capacity %d, %d jobs, modelled job %.3f s (create %lld ms, run %lld ms, "
      "remove %lld ms)\n",
      nEngines, capacity, jobs, perJob, static_cast<long long>(m.create.count()),
      static_cast<long long>(m.run.count()), static_cast<long long>(m.remove.count()));
  std::printf("submitted in %.2f s; all finished in %.2f s: %.1f jobs/s (ceiling %.1f: %.2f)\n",
              submitS, wall, jobs / wall, ceiling, jobs / wall / ceiling);
  std::printf("placements %ld, %.1f/s; CPU %.3f s in all, %.0f us per job\n", placements.load(),
              static_cast<double>(placements.load()) / wall, cpu, cpu / jobs * 1e6);

  // The placement call alone, engines that answer at once.
  Model instant{0ms, 0ms, 0ms, 0ms};
  tango::DistDockerVmms alone(cfg, engines(nEngines, capacity, instant));
  (void)alone.preflight();
  const int n = 200000;
  const double c0 = cpuSeconds();
  const auto s0 = Clock::now();
  for (int i = 0; i < n; ++i) {
    tango::TangoMachine vm;
    vm.id = i + 1;
    vm.name = vm.image = "img";
    (void)alone.initializeVM(vm, 10s);
    (void)alone.destroyVM(vm);
  }
  const double s = std::chrono::duration<double>(Clock::now() - s0).count();
  std::printf(
      "placement alone: %d initializeVM+destroyVM in %.2f s: %.0f decisions/s, %.2f us "
      "CPU each\n",
      n, s, n / s, (cpuSeconds() - c0) / n * 1e6);
  fs::remove_all(dir);
  return 0;
}
