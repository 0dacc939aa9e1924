#pragma once
// A whole host file into memory, when it is no bigger than `max` bytes (its
// size is checked before anything is read). nullopt when it cannot be read
// or is too big.
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <string>

namespace tango {

inline std::optional<std::string> readFileUpTo(const std::filesystem::path& p, std::int64_t max) {
  std::error_code ec;
  const auto size = std::filesystem::file_size(p, ec);
  if (ec || static_cast<std::int64_t>(size) > max) return std::nullopt;
  std::ifstream in(p, std::ios::binary);
  if (!in) return std::nullopt;
  std::string s;
  s.reserve(size);
  s.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  if (in.bad() || static_cast<std::int64_t>(s.size()) > max) return std::nullopt;
  return s;
}

}  // namespace tango
