#include "tango/core/BuiltImages.hpp"

#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>

#include "tango/util/Fd.hpp"
#include "tango/util/SafeName.hpp"

namespace tango {

BuiltImages::BuiltImages(std::filesystem::path file, std::vector<std::string> listed)
    : file_(std::move(file)), listed_(std::move(listed)) {}

void BuiltImages::load() {
  if (loaded_) return;
  loaded_ = true;
  std::ifstream in(file_);
  for (std::string line; std::getline(in, line);)
    if (isSafeImageName(line)) built_.insert(line);
}

std::optional<std::string> BuiltImages::refusal(const std::string& name,
                                                const std::vector<std::string>& existing) {
  std::lock_guard lock(mu_);
  load();
  const bool exists = std::find(existing.begin(), existing.end(), name) != existing.end();
  const bool listed = std::find(listed_.begin(), listed_.end(), name) != listed_.end();
  if (!exists || listed || built_.count(name)) return std::nullopt;
  return "Image build failed: an image named " + name +
         " exists and this service did not build it; the operator can list it in BUILD_IMAGES "
         "to let builds replace it";
}

void BuiltImages::record(const std::string& name) {
  std::lock_guard lock(mu_);
  load();
  if (!built_.insert(name).second) return;
  // Whole file to a temp name, then renamed over: a crash leaves the old list.
  const auto temp = file_.string() + ".new";
  {
    Fd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    std::string text;
    for (const auto& b : built_) text += b + "\n";
    if (!fd || !writeAll(fd.get(), text) || ::fsync(fd.get()) != 0) {
      spdlog::warn("cannot record the built image {} in {}", name, file_.string());
      return;
    }
  }
  std::error_code ec;
  std::filesystem::rename(temp, file_, ec);
  if (ec) spdlog::warn("cannot record the built image {}: {}", name, ec.message());
}

}  // namespace tango
