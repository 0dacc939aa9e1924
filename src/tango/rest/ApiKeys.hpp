#pragma once
// The configured API keys and what each may do. A key from a request is
// compared in constant time against every configured key (SHA-256 of both,
// then CRYPTO_memcmp, never stopping at the first match), so the time an
// answer takes says nothing about how much of a key was right.
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tango {

enum class Access {
  None,      // not a configured key
  Course,    // sees and changes only what it submitted
  Operator,  // OPERATOR_KEYS: every key's jobs, pools, images, /metrics, /status/
};

class ApiKeys {
 public:
  ApiKeys(const std::vector<std::string>& keys, const std::vector<std::string>& operatorKeys);
  Access check(std::string_view key) const;

 private:
  using Digest = std::array<unsigned char, 32>;
  struct Entry {
    Digest digest;
    bool isOperator;
  };
  std::vector<Entry> entries_;
};

}  // namespace tango
