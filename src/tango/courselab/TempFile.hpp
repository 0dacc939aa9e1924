#pragma once
// A file being received (upload, image tarball): created with mkostemp next
// to where it will end up, removed on destruction unless release()d after a
// successful rename. A client that disconnects mid-upload leaves nothing.
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "tango/util/Fd.hpp"

namespace tango::courselab {

class TempFile {
 public:
  // `dir`/<prefix>XXXXXX, mode 0600. nullopt (and `error`) on failure.
  static std::optional<TempFile> create(const std::filesystem::path& dir, std::string_view prefix,
                                        std::string& error);
  ~TempFile();
  TempFile(TempFile&&) noexcept;
  TempFile& operator=(TempFile&&) noexcept;
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;

  int fd() const { return fd_.get(); }
  const std::filesystem::path& path() const { return path_; }
  std::uint64_t size() const { return size_; }
  // Appends all of `data`; false on a write error (disk full...).
  bool write(std::string_view data);
  // The file now belongs to someone else (renamed): do not remove it.
  void release() { path_.clear(); }

 private:
  TempFile(Fd fd, std::filesystem::path path) : fd_(std::move(fd)), path_(std::move(path)) {}
  void removeFile() noexcept;

  Fd fd_;
  std::filesystem::path path_;
  std::uint64_t size_ = 0;
};

}  // namespace tango::courselab
