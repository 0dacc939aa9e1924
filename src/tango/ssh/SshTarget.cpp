#include "tango/ssh/SshTarget.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

namespace tango::ssh {

namespace {

bool safeChars(const std::string& s, const char* extra) {
  if (s.empty() || s.size() > 253 || s.front() == '-') return false;
  return std::all_of(s.begin(), s.end(), [extra](char c) {
    auto u = static_cast<unsigned char>(c);
    return u < 0x80 && (std::isalnum(u) || std::strchr(extra, c) != nullptr);
  });
}

}  // namespace

bool isSafeUser(const std::string& s) { return safeChars(s, "_-.") && s.size() <= 32; }
bool isSafeAddress(const std::string& s) { return safeChars(s, "-.:_"); }

}  // namespace tango::ssh
