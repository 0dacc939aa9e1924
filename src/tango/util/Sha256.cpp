#include "tango/util/Sha256.hpp"

#include <openssl/evp.h>

#include <stdexcept>

namespace tango {

namespace {

std::string digestHex(std::string_view data, const EVP_MD* md, const char* name) {
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_Digest(data.data(), data.size(), out, &len, md, nullptr) != 1)
    throw std::runtime_error(std::string(name) + " failed");
  static const char* hex = "0123456789abcdef";
  std::string text;
  for (unsigned int i = 0; i < len; ++i) {
    text += hex[out[i] >> 4];
    text += hex[out[i] & 15];
  }
  return text;
}

}  // namespace

std::string sha256Hex(std::string_view data) { return digestHex(data, EVP_sha256(), "SHA-256"); }
std::string sha1Hex(std::string_view data) { return digestHex(data, EVP_sha1(), "SHA-1"); }

}  // namespace tango
