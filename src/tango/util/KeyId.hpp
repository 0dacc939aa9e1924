#pragma once
// What the service keeps of an API key in its state: a fingerprint that
// names the key (which key submitted a job) without being it. The database
// and its backups then hold no key a reader could use.
#include <string>
#include <string_view>

namespace tango {

// "sha256:" and the first 16 hex digits of the key's SHA-256.
std::string keyId(std::string_view key);

}  // namespace tango
