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
  std::vector<std::string> argv{TANGO_CLI_PATH};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = spawnLogged(argv, {.out = outPath, .err = errPath});
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
