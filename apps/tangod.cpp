// tangod: the Tango service (REST layer + job manager) in one process.
#include <signal.h>
#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>
#include <thread>

#include "tango/config/Config.hpp"
#include "tango/core/ServiceParts.hpp"
#include "tango/core/TangoServer.hpp"
#include "tango/courselab/Courselabs.hpp"
#include "tango/rest/HttpServer.hpp"
#include "tango/rest/TangoREST.hpp"
#include "tango/util/RedactingSink.hpp"

namespace {

std::filesystem::path besideThisBinary(const char* name) {
  std::error_code ec;
  auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::filesystem::path(name) : self.parent_path() / name;
}

void setUpLogging(const tango::Config& cfg) {
  std::vector<spdlog::sink_ptr> sinks{std::make_shared<spdlog::sinks::stderr_color_sink_mt>()};
  if (cfg.logFile)
    sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(cfg.logFile->string()));
  // No key ever reaches a log line (they sit in URLs and courselab paths);
  // the shipped examples are no secret, and the log says when one is in use.
  std::vector<std::string> secrets;
  for (const auto& k : cfg.keys)
    if (!tango::isExampleKey(k)) secrets.push_back(k);
  auto redacting = std::make_shared<tango::RedactingSink>(secrets, std::move(sinks));
  auto logger = std::make_shared<spdlog::logger>("tangod", redacting);
  logger->set_level(spdlog::level::from_str(cfg.logLevel));
  logger->flush_on(spdlog::level::info);
  spdlog::set_default_logger(logger);
}

// Every connection is a descriptor: take what the hard limit allows (often
// 1,024 soft against 524,288 hard), and say so when MAX_CONNECTIONS cannot
// fit in it beside the service's own files.
void raiseDescriptorLimit(const tango::Config& cfg) {
  struct rlimit lim {};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return;
  if (lim.rlim_cur < lim.rlim_max) {
    lim.rlim_cur = lim.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &lim);
    ::getrlimit(RLIMIT_NOFILE, &lim);
  }
  constexpr rlim_t kOwnFiles = 512;  // databases, logs, VMMS and callback sockets
  if (lim.rlim_cur != RLIM_INFINITY &&
      static_cast<rlim_t>(cfg.maxConnections) + kOwnFiles > lim.rlim_cur)
    spdlog::warn(
        "MAX_CONNECTIONS is {} but the process may open only {} files (ulimit -n; LimitNOFILE= "
        "in systemd): lower MAX_CONNECTIONS or raise the limit",
        cfg.maxConnections, lim.rlim_cur);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"tangod: a Tango-compatible autograding job service"};
  std::optional<std::string> configFile, dataDir, autodriver, host;
  std::optional<int> port;
  std::optional<std::string> role, nodeId;
  app.add_option("-c,--config", configFile, "TOML config file (Tango's key names)");
  app.add_option("-p,--port", port, "port to listen on (PORT; 0 = any free port)");
  app.add_option("--host", host, "address to listen on (HOST)");
  app.add_option("-d,--data-dir", dataDir, "state, courselabs, temporary files (DATA_DIR)");
  app.add_option("--autodriver", autodriver, "path of the autodriver binary (AUTODRIVER)");
  app.add_option("--role", role, "api (REST only), manager (runs jobs) or all (ROLE)")
      ->check(CLI::IsMember({"api", "manager", "all"}));
  app.add_option("--node-id", nodeId, "this node's id, stable across restarts (NODE_ID)");
  CLI11_PARSE(app, argc, argv);

  tango::Config cfg;
  try {
    cfg = tango::loadConfig(
        configFile ? std::optional<std::filesystem::path>(*configFile) : std::nullopt,
        tango::currentEnvironment());
  } catch (const std::exception& e) {
    std::cerr << "tangod: invalid configuration: " << e.what() << "\n";
    return 2;
  }
  if (port) cfg.port = *port;
  if (host) cfg.host = *host;
  if (dataDir) cfg.dataDir = *dataDir;
  if (autodriver) cfg.autodriver = *autodriver;
  if (role) cfg.role = *role;
  if (nodeId) {
    if (nodeId->empty() || nodeId->size() > 64 ||
        nodeId->find_first_not_of(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") !=
            std::string::npos) {
      std::cerr << "tangod: --node-id: 1-64 characters [A-Za-z0-9_.-]\n";
      return 2;
    }
    cfg.nodeId = *nodeId;
  }
  if (cfg.autodriver.empty()) cfg.autodriver = besideThisBinary("autodriver");
  cfg.dataDir = std::filesystem::absolute(cfg.dataDir);
  if (!cfg.courselabs.empty()) cfg.courselabs = std::filesystem::absolute(cfg.courselabs);
  cfg.autodriver = std::filesystem::absolute(cfg.autodriver);
  if (!std::filesystem::is_regular_file(cfg.autodriver)) {
    std::cerr << "tangod: AUTODRIVER: no autodriver binary at " << cfg.autodriver << "\n";
    return 2;
  }
  // Whatever the service creates is its own unless it says otherwise (the
  // sandboxes' directories set their modes explicitly), its log file too.
  ::umask(077);
  setUpLogging(cfg);
  raiseDescriptorLimit(cfg);
  if (auto note = tango::listenSafely(cfg); !note.empty()) spdlog::warn("{}", note);

  // Signals are taken by one thread with sigwait, so no other thread is ever
  // interrupted; the mask is inherited by every thread created below.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);
  signal(SIGPIPE, SIG_IGN);

  try {
    tango::TangoServer server(cfg, tango::assembleParts(cfg));
    server.start();
    if (!cfg.runsApi()) {
      // A manager alone (Tango's jobManager.py): no port, runs until a signal.
      std::cout << "tangod manager " << cfg.nodeId << " running jobs (VMMS " << cfg.vmmsName
                << ", data in " << cfg.dataDir.string() << ")\n"
                << std::flush;
      int sig = 0;
      sigwait(&sigs, &sig);
      spdlog::info("signal {}: shutting down", sig);
      server.stop();
      return 0;
    }
    tango::Courselabs labs(cfg);
    tango::TangoREST rest(cfg, server, labs);
    tango::HttpServer http(cfg, rest);
    std::thread signalThread([&] {
      int sig = 0;
      sigwait(&sigs, &sig);
      spdlog::info("signal {}: shutting down", sig);
      http.stop();
    });
    std::cout << "tangod listening on http://" << cfg.host << ":" << http.port() << " (VMMS "
              << cfg.vmmsName << ", role " << cfg.role << ", node " << cfg.nodeId << ", data in "
              << cfg.dataDir.string() << ")\n"
              << "  first job: see README.md, \"A first job\"\n"
              << std::flush;
    http.run();
    // run() also returns on a fatal server error: wake the signal thread.
    pthread_kill(signalThread.native_handle(), SIGTERM);
    signalThread.join();
    server.stop();
  } catch (const tango::ConfigError& e) {
    spdlog::critical("invalid configuration: {}", e.what());
    return 2;
  } catch (const tango::CannotStart& e) {
    // Exit status 2, like a bad config: systemd does not restart into it.
    spdlog::critical("cannot start: {}", e.what());
    return 2;
  } catch (const std::exception& e) {
    spdlog::critical("fatal: {}", e.what());
    return 1;
  }
  return 0;
}
