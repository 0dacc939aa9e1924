#pragma once
// Starts tests/ec2/ec2_double.py, the project's stand-in for the EC2 Query
// API (it checks SigV4 signatures and backs instances with containers of
// tango-test-ssh; Debian's awscli proves it speaks EC2, Ec2AwsCliTest), on
// loopback, and stops it (it removes its containers) at the end.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>

#include "../service/HttpClient.hpp"
#include "../service/Tangod.hpp"

namespace tango::test {

class Ec2Double {
 public:
  static constexpr const char* kAmi = "ami-0123456789abcdef0";
  static constexpr const char* kKeyName = "tango-test";
  // The second account's keys (a job that brings its own).
  static constexpr const char* kAccessKey2 = "AKIDOTHERACCOUNT0002";
  static constexpr const char* kSecret2 = "other-account-secret-zzzzzzzzzzzzzzzzzzzz";

  Ec2Double(const std::filesystem::path& dir, const std::string& accessKey,
            const std::string& secret, const std::filesystem::path& publicKey)
      : dir_(dir) {
    std::filesystem::create_directories(dir_);
    const auto portFile = dir_ / "ec2.port";
    std::filesystem::remove(portFile);
    log_ = dir_ / "ec2-double.log";
    const std::string script = std::string(SOURCE_DIR) + "/tests/ec2/ec2_double.py";
    const std::string image = std::string(kAmi) + "=tango-test-ssh=tango-test-ssh";
    const std::string init = std::string(SOURCE_DIR) + "/tests/ssh/instance-init.sh";
    const std::string keyPair = std::string(kKeyName) + "=" + publicKey.string();
    const std::string label = "t" + std::to_string(::getpid());
    pid_ = spawnLogged({"/usr/bin/python3", script,      "--port-file",     portFile.string(),
                        "--access-key",     accessKey,   "--secret",        secret,
                        "--access-key2",    kAccessKey2, "--secret2",       kSecret2,
                        "--image",          image,       "--init-script",   init,
                        "--key-pair",       keyPair,     "--login-user",    "tango",
                        "--label-value",    label,       "--running-delay", "0.3"},
                       {.out = log_});
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (std::filesystem::exists(portFile)) {
        port_ = std::stoi(readFile(portFile));
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    throw std::runtime_error("the EC2 double did not start:\n" + readFile(log_));
  }
  ~Ec2Double() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);  // it removes its containers
      ::waitpid(pid_, nullptr, 0);
    }
  }
  Ec2Double(const Ec2Double&) = delete;
  Ec2Double& operator=(const Ec2Double&) = delete;

  int port() const { return port_; }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string log() const { return readFile(log_); }

  boost::json::object stats() { return HttpClient(port_).get("/_control/stats").json(); }
  void control(const std::string& json) { HttpClient(port_).post("/_control", json); }
  // Calls of `action` so far.
  std::int64_t calls(const std::string& action) {
    auto s = stats();
    auto& c = s["calls"].as_object();
    return c.contains(action) ? c[action].as_int64() : 0;
  }
  // Instances (by id) not terminated, as the double sees them.
  std::vector<std::string> liveInstances() {
    std::vector<std::string> out;
    auto all = stats();
    for (auto& [id, i] : all["instances"].as_object()) {
      const auto state = std::string(i.as_object().at("state").as_string());
      if (state != "terminated" && state != "shutting-down") out.emplace_back(id);
    }
    return out;
  }

 private:
  std::filesystem::path dir_, log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

}  // namespace tango::test
