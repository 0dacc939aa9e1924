#pragma once
// Starts the real tangod binary on an ephemeral port with a temporary data
// directory, for tests that drive it over HTTP. The data directory outlives
// a restart (kill -9 + start again) and is removed at the end.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "SpawnLogged.hpp"

namespace tango::test {

// [local] SLOTS of every test service: a VM's keeper uid is its uid + this.
inline constexpr unsigned kTangodSlots = 100;

inline std::string readFile(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class Tangod {
 public:
  // `extraConfig` is appended to the generated TOML file (a HOST, DATA_DIR
  // or SANDBOX_DIR it sets replaces the generated one); an empty
  // `autodriver` leaves AUTODRIVER unset.
  explicit Tangod(const std::string& extraConfig = "",
                  const std::string& autodriver = AUTODRIVER_PATH) {
    std::random_device rd;
    const unsigned tag = rd() % 1000000;
    // Not under /tmp: the sandbox mounts its own /tmp, which would hide the
    // data directory for free and make the isolation tests meaningless.
    dir_ = std::filesystem::path(TEST_TMP_DIR) /
           ("tangod-test-" + std::to_string(::getpid()) + "-" + std::to_string(tag));
    std::filesystem::create_directories(dir_);
    // A uid range of its own, so parallel test processes never share sandbox uids.
    // By pid: two test processes running at once (ctest -j) never share it;
    // above the range the VMMS's own tests use (300000 + ...).
    // Several services in one test process (nodes of a cluster) each get a
    // fifth of the process's range: 100 slots, each with a VM uid and a
    // keeper uid (UID_BASE + SLOTS + slot).
    static std::atomic<unsigned> instances{0};
    const unsigned uidBase =
        1000000 + static_cast<unsigned>(::getpid() % 4000) * 1000 + (instances++ % 5) * 200;
    // A key the test sets itself replaces the generated one.
    auto line = [&](const std::string& key, const std::string& value) {
      const bool own = extraConfig.starts_with(key + " =") ||
                       extraConfig.find("\n" + key + " =") != std::string::npos;
      return own ? std::string() : key + " = " + value + "\n";
    };
    auto quoted = [](const std::filesystem::path& p) { return "\"" + p.string() + "\""; };
    std::ofstream(dir_ / "tango.toml")
        << "PORT = 0\n"
        << line("HOST", "\"127.0.0.1\"") << line("DATA_DIR", quoted(dir_ / "data"))
        << line("SANDBOX_DIR", quoted(dir_ / "sandboxes"))
        << (autodriver.empty() ? std::string() : "AUTODRIVER = \"" + autodriver + "\"\n")
        << line("LOG_LEVEL", "\"debug\"") << extraConfig << "\n"
        << "[local]\nUID_BASE = " << uidBase << "\nSLOTS = " << kTangodSlots << "\n";
    try {
      start();
    } catch (...) {
      std::error_code ec;
      std::filesystem::remove_all(dir_, ec);  // the destructor will not run
      throw;
    }
  }
  ~Tangod() {
    // A clean stop destroys the sandboxes (and their cgroups) it still holds;
    // SIGKILL only if it hangs.
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      for (int i = 0; i < 200 && ::waitpid(pid_, nullptr, WNOHANG) == 0; ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      if (::waitpid(pid_, nullptr, WNOHANG) == 0) stop(SIGKILL);
      pid_ = -1;
    }
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  Tangod(const Tangod&) = delete;
  Tangod& operator=(const Tangod&) = delete;

  void start() {
    const auto log = dir_ / ("tangod-" + std::to_string(starts_++) + ".log");
    logFile_ = log;
    // A test that crashes must not leave services running. (The signal
    // comes when the thread that started the service ends: one started
    // from a helper thread goes with that thread.)
    pid_ = spawnLogged({TANGOD_PATH, "--config", (dir_ / "tango.toml").string()},
                       {.out = log, .dieWithParent = true});
    // Wait for "listening on http://127.0.0.1:<port>", or a manager alone's
    // "running jobs" (no port).
    const std::regex re(R"(listening on http://[^:]+:(\d+))");
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (std::chrono::steady_clock::now() < deadline) {
      std::smatch m;
      std::string text = readFile(log);
      if (std::regex_search(text, m, re)) {
        port_ = std::stoi(m[1]);
        return;
      }
      if (text.find(") running jobs (") != std::string::npos ||
          text.find("tangod manager ") != std::string::npos) {
        port_ = 0;
        return;
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("tangod exited at start-up:\n" + text);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("tangod did not start:\n" + readFile(log));
  }

  // Stops the process with `sig` and waits; returns its wait status.
  int stop(int sig = SIGTERM) {
    if (pid_ <= 0) return 0;
    ::kill(pid_, sig);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
    return status;
  }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path dataDir() const { return dir_ / "data"; }
  // SANDBOX_DIR as the harness sets it, and the local VMs' directories in it.
  std::filesystem::path sandboxDir() const { return dir_ / "sandboxes"; }
  std::vector<std::string> vmDirs() const {
    std::vector<std::string> names;
    std::error_code ec;
    for (const auto& e : std::filesystem::directory_iterator(sandboxDir(), ec))
      if (e.is_directory() && e.path().filename().string().starts_with("local-"))
        names.push_back(e.path().filename().string());
    return names;
  }
  std::string log() const { return readFile(logFile_); }
  // Every start's log, oldest first (a node killed and started again).
  std::string allLogs() const {
    std::string all;
    for (int i = 0; i < starts_; ++i)
      all += readFile(dir_ / ("tangod-" + std::to_string(i) + ".log"));
    return all;
  }

 private:
  std::filesystem::path dir_;
  std::filesystem::path logFile_;
  pid_t pid_ = -1;
  int port_ = 0;
  int starts_ = 0;
};

}  // namespace tango::test
