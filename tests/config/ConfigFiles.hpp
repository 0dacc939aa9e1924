#pragma once
// The config tests' shared steps: a TOML file in a private temporary
// directory, loadConfig on it, and the message of a ConfigError.
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <stdexcept>
#include <string>

#include "tango/config/Config.hpp"

namespace tango::test {

// A file in a private temporary directory, removed with the object.
class TempToml {
 public:
  explicit TempToml(const std::string& text, const std::string& name = "tango.toml") {
    std::string templ = (std::filesystem::temp_directory_path() / "tango-config-XXXXXX").string();
    if (!mkdtemp(templ.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = templ;
    path_ = dir_ / name;
    std::ofstream(path_) << text;
  }
  ~TempToml() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path dir_;
  std::filesystem::path path_;
};

inline Config fromToml(const std::string& text,
                       const std::map<std::string, std::string>& env = {}) {
  TempToml f(text);
  return loadConfig(f.path(), env);
}

// The message of the ConfigError thrown by fn, or "" when nothing is thrown.
inline std::string errorOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

}  // namespace tango::test
