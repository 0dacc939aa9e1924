#pragma once
// Runs the real tango-cli binary with arguments and collects its exit status,
// stdout and stderr (through files: pipes could fill up and deadlock).
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "../service/Tangod.hpp"

namespace tango::test {

struct CliResult {
  int exit = -1;
  std::string out, err;
};

inline std::ostream& operator<<(std::ostream& os, const CliResult& r) {
  return os << "exit " << r.exit << "\nstdout: " << r.out << "\nstderr: " << r.err;
}

inline CliResult runCli(const std::vector<std::string>& args) {
  static int n = 0;
  auto dir = std::filesystem::path(TEST_TMP_DIR) / ("cli-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  auto outPath = dir / ("out-" + std::to_string(n));
  auto errPath = dir / ("err-" + std::to_string(n++));
  pid_t pid = ::fork();
  if (pid == 0) {
    int o = ::open(outPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = ::open(errPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (o < 0 || e < 0) _exit(127);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<char*> argv{const_cast<char*>(TANGO_CLI_PATH)};
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execv(TANGO_CLI_PATH, argv.data());
    _exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  CliResult r;
  r.exit = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = readFile(outPath);
  r.err = readFile(errPath);
  std::filesystem::remove(outPath);
  std::filesystem::remove(errPath);
  return r;
}

}  // namespace tango::test
