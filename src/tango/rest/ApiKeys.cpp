#include "tango/rest/ApiKeys.hpp"

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <algorithm>

namespace tango {

namespace {

std::array<unsigned char, 32> digestOf(std::string_view s) {
  std::array<unsigned char, 32> d{};
  ::SHA256(reinterpret_cast<const unsigned char*>(s.data()), s.size(), d.data());
  return d;
}

}  // namespace

ApiKeys::ApiKeys(const std::vector<std::string>& keys,
                 const std::vector<std::string>& operatorKeys) {
  for (const auto& k : keys) {
    bool op = std::find(operatorKeys.begin(), operatorKeys.end(), k) != operatorKeys.end();
    entries_.push_back({digestOf(k), op});
  }
}

Access ApiKeys::check(std::string_view key) const {
  const auto d = digestOf(key);
  // Every entry is compared, whichever matches.
  int found = 0, op = 0;
  for (const auto& e : entries_) {
    int same = ::CRYPTO_memcmp(d.data(), e.digest.data(), d.size()) == 0;
    found |= same;
    op |= same & static_cast<int>(e.isOperator);
  }
  if (!found) return Access::None;
  return op ? Access::Operator : Access::Course;
}

}  // namespace tango
