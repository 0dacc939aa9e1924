#pragma once
// Real machines to SSH into, for the SSH backends' tests: containers of the
// tango-test-ssh image (./dev test builds it with tango-image, as the EC2
// guide builds an AMI: OpenSSH server, sudo, make, the autodriver at
// /usr/bin/autodriver, an `autograde` user) on this machine's own Docker
// bridge, each running tests/ssh/instance-init.sh as PID 1. The test's own
// key pair logs in as `tango`, which has passwordless sudo.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace tango::test {

// Runs a shell command line; its stdout, and its exit status in `status`.
inline std::string shell(const std::string& cmd, int* status = nullptr) {
  std::string out;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int st = ::pclose(p);
  if (status) *status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

inline const char* kSshImage = "tango-test-ssh";

class SshMachines {
 public:
  struct Machine {
    std::string container;
    std::string address;  // on the Docker bridge
  };

  // `dir` holds the key pair (made here).
  explicit SshMachines(const std::filesystem::path& dir) : dir_(dir) {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);  // an earlier test's key pair
    std::filesystem::create_directories(dir_);
    int st = 0;
    shell("ssh-keygen -q -t ed25519 -N '' -f " + key().string() + " 2>&1", &st);
    if (st != 0) throw std::runtime_error("ssh-keygen failed");
    label_ = "tango.test.ssh=" + std::to_string(::getpid());
  }
  ~SshMachines() {
    shell("docker ps -aq --filter label=" + label_ + " | xargs -r docker rm -f >/dev/null 2>&1");
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::filesystem::path key() const { return dir_ / "id_ed25519"; }
  std::string publicKey() const {
    std::ifstream in(dir_ / "id_ed25519.pub");
    std::string line;
    std::getline(in, line);
    return line;
  }
  static bool imagePresent() {
    int st = 0;
    shell(std::string("docker image inspect ") + kSshImage + " >/dev/null 2>&1", &st);
    return st == 0;
  }

  // Starts one machine; `env` adds variables of instance-init.sh.
  Machine start(const std::string& env = "") {
    const std::string init = std::string(SOURCE_DIR) + "/tests/ssh/instance-init.sh";
    int st = 0;
    std::string id = shell("docker run -d --label " + label_ + " -e LOGIN_USER=tango" +
                               " -e AUTHORIZED_KEY='" + publicKey() + "' " + env + " -v " + init +
                               ":/tango-init.sh:ro " + kSshImage + " /bin/sh /tango-init.sh",
                           &st);
    if (st != 0 || id.empty()) throw std::runtime_error("docker run failed: " + id);
    Machine m{id.substr(0, 12), shell("docker inspect -f '{{.NetworkSettings.IPAddress}}' " + id)};
    machines_.push_back(m);
    return m;
  }
  // Blocks until sshd on `m` logs the test's key in (or fails the test).
  void waitSsh(const Machine& m) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (runOn(m, "true") == 0) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    ADD_FAILURE() << "sshd on " << m.address << " did not answer";
  }
  // Runs a shell script on `m` as root (through sudo) over a plain ssh; its
  // exit status. The script goes on stdin, so nothing in it is expanded here.
  int runOn(const Machine& m, const std::string& script, std::string* out = nullptr) {
    int st = 0;
    std::string o = shell(
        "ssh -F /dev/null -o BatchMode=yes -o StrictHostKeyChecking=no "
        "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=3 "
        "-i " +
            key().string() + " tango@" + m.address + " sudo -n sh -s 2>&1 <<'TANGO_TEST_EOF'\n" +
            script + "\nTANGO_TEST_EOF",
        &st);
    if (out) *out = o;
    return st;
  }
  void stop(const Machine& m) { shell("docker stop -t 0 " + m.container + " >/dev/null 2>&1"); }
  void startAgain(const Machine& m) { shell("docker start " + m.container + " >/dev/null 2>&1"); }
  void pause(const Machine& m) { shell("docker pause " + m.container + " >/dev/null 2>&1"); }
  void unpause(const Machine& m) { shell("docker unpause " + m.container + " >/dev/null 2>&1"); }

  // A [[SSH_MACHINES]] entry for `m`.
  std::string configEntry(const Machine& m, const std::string& name,
                          const std::string& extra = "") const {
    return "[[SSH_MACHINES]]\nname = \"" + name + "\"\naddress = \"" + m.address +
           "\"\nuser = \"tango\"\nkey = \"" + key().string() + "\"\n" + extra + "\n";
  }

 private:
  std::filesystem::path dir_;
  std::string label_;
  std::vector<Machine> machines_;
};

}  // namespace tango::test
