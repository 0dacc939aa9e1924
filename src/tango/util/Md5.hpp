#pragma once
// MD5 as Tango and Autolab use it: to tell whether an uploaded file changed.
// Incremental so uploads are hashed while they stream to disk. OpenSSL stays
// out of this header (forward declaration) to keep includers light.
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

struct evp_md_ctx_st;

namespace tango {

class Md5 {
 public:
  Md5();
  ~Md5();
  Md5(Md5&&) noexcept;
  Md5& operator=(Md5&&) noexcept;
  Md5(const Md5&) = delete;
  Md5& operator=(const Md5&) = delete;

  void update(const void* data, std::size_t size);
  void update(std::string_view data) { update(data.data(), data.size()); }
  // Lower-case hex digest. Finishes the hash: call once.
  std::string hexDigest();

 private:
  struct Free {
    void operator()(evp_md_ctx_st* ctx) const noexcept;
  };
  std::unique_ptr<evp_md_ctx_st, Free> ctx_;
};

std::string md5Hex(std::string_view data);

// MD5 of everything `fd` holds, read with pread from offset 0 (the file
// position is left alone). nullopt on a read error.
std::optional<std::string> md5OfFd(int fd);

}  // namespace tango
