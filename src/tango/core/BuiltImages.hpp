#pragma once
// Which images the build route may replace. Tango lets any key retag any
// image on the engine; here a build may make a new name, or replace an
// image this service built before (recorded in DATA_DIR/built-images, so a
// restart remembers) or one the operator lists in BUILD_IMAGES. The images
// the operator put on the engine for jobs stay as they are.
#include <filesystem>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

namespace tango {

class BuiltImages {
 public:
  BuiltImages(std::filesystem::path file, std::vector<std::string> listed);

  // Why `name` may not be built now that the engine has `existing` (nullopt: it may).
  std::optional<std::string> refusal(const std::string& name,
                                     const std::vector<std::string>& existing);
  // A build of `name` succeeded: later builds may replace it.
  void record(const std::string& name);

 private:
  void load();

  std::filesystem::path file_;
  std::vector<std::string> listed_;
  std::mutex mu_;
  bool loaded_ = false;
  std::set<std::string> built_;
};

}  // namespace tango
