#pragma once
// Runs Prometheus' own parser and linter (`promtool check metrics`, Debian
// package `prometheus`, installed by scripts/install-deps.sh) on a text.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace tango::test {

struct PromtoolResult {
  bool ok = false;
  std::string output;
};

inline PromtoolResult promtoolCheck(const std::string& text) {
  const char* tool = "/usr/bin/promtool";
  if (!std::filesystem::exists(tool)) {
    return {false,
            "promtool not found: install the Debian package prometheus (scripts/install-deps.sh)"};
  }
  auto dir = std::filesystem::path(TEST_TMP_DIR);
  std::filesystem::create_directories(dir);
  auto in = dir / ("metrics-" + std::to_string(::getpid()) + ".txt");
  auto out = dir / ("promtool-" + std::to_string(::getpid()) + ".txt");
  std::ofstream(in, std::ios::binary) << text;
  const std::string cmd =
      std::string(tool) + " check metrics < '" + in.string() + "' > '" + out.string() + "' 2>&1";
  int status = std::system(cmd.c_str());
  std::ifstream o(out);
  std::stringstream ss;
  ss << o.rdbuf();
  std::filesystem::remove(in);
  std::filesystem::remove(out);
  return {status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, ss.str()};
}

}  // namespace tango::test
