#pragma once
// 64 random bits as 16 hex digits: tokens that tell one instance of a node,
// or one request, from another (not secrets).
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>

namespace tango {

inline std::string randomHex() {
  std::random_device rd;
  std::uniform_int_distribution<std::uint64_t> d;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(d(rd)));
  return buf;
}

}  // namespace tango
