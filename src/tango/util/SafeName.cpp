#include "tango/util/SafeName.hpp"

#include <algorithm>
#include <cctype>

namespace tango {

bool isSafeName(std::string_view name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  return std::none_of(name.begin(), name.end(), [](char c) {
    auto u = static_cast<unsigned char>(c);
    return c == '/' || u < 0x20 || u == 0x7f;
  });
}

bool isSafeImageName(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  if (name.find("..") != std::string_view::npos) return false;
  auto ok = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == ':' || c == '/' || c == '-';
  };
  if (!std::isalnum(static_cast<unsigned char>(name.front()))) return false;
  return std::all_of(name.begin(), name.end(), ok);
}

std::optional<std::filesystem::path> courselabDir(const std::filesystem::path& courselabs,
                                                  std::string_view key,
                                                  std::string_view courselab) {
  if (!isSafeName(key) || !isSafeName(courselab)) return std::nullopt;
  std::string dir;
  dir.reserve(key.size() + 1 + courselab.size());
  dir.append(key).append("-").append(courselab);
  if (!isSafeName(dir)) return std::nullopt;
  return courselabs / dir;
}

}  // namespace tango
