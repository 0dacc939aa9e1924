// The configuration: a TOML file and, after a line "#ENV", environment
// overrides (KEY=VALUE per line), as tangod reads them at start-up. Any bad
// value must end in a ConfigError (a clear message naming the key), never in
// another exception, and the message carries no raw control bytes.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>

#include "Check.hpp"
#include "tango/config/Config.hpp"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  static const fuzz::ScratchDir scratch("config");
  static const fs::path file = scratch.path() / "tango.toml";
  std::string_view in = fuzz::text(data, size);
  std::map<std::string, std::string> env;
  if (const auto at = in.find("#ENV\n"); at != std::string_view::npos) {
    std::string_view rest = in.substr(at + 5);
    in = in.substr(0, at);
    while (!rest.empty()) {
      const auto nl = rest.find('\n');
      const std::string_view line = rest.substr(0, nl);
      rest = nl == std::string_view::npos ? std::string_view{} : rest.substr(nl + 1);
      if (const auto eq = line.find('='); eq != std::string_view::npos)
        env[std::string(line.substr(0, eq))] = std::string(line.substr(eq + 1));
    }
  }
  std::ofstream(file, std::ios::binary | std::ios::trunc) << in;
  try {
    tango::Config cfg = tango::loadConfig(file, env);
    FUZZ_CHECK(cfg.runJobTimeout <= cfg.maxJobTimeout);
    (void)tango::listenSafely(cfg);
  } catch (const tango::ConfigError& e) {
    FUZZ_CHECK(fuzz::noControlBytes(e.what()));
  }
  return 0;
}
