#include "tango/courselab/TempFile.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

namespace tango::courselab {

std::optional<TempFile> TempFile::create(const std::filesystem::path& dir, std::string_view prefix,
                                         std::string& error) {
  std::string pattern = (dir / prefix).string() + "XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  int fd = ::mkostemp(buf.data(), O_CLOEXEC);
  if (fd < 0) {
    error = std::strerror(errno);
    return std::nullopt;
  }
  return TempFile(Fd(fd), std::filesystem::path(buf.data()));
}

TempFile::~TempFile() { removeFile(); }

TempFile::TempFile(TempFile&& o) noexcept
    : fd_(std::move(o.fd_)), path_(std::move(o.path_)), size_(o.size_) {
  o.path_.clear();
}

TempFile& TempFile::operator=(TempFile&& o) noexcept {
  if (this != &o) {
    removeFile();
    fd_ = std::move(o.fd_);
    path_ = std::move(o.path_);
    size_ = o.size_;
    o.path_.clear();
  }
  return *this;
}

void TempFile::removeFile() noexcept {
  if (!path_.empty()) ::unlink(path_.c_str());
  path_.clear();
}

bool TempFile::write(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd_.get(), data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    data.remove_prefix(static_cast<std::size_t>(n));
    size_ += static_cast<std::uint64_t>(n);
  }
  return true;
}

}  // namespace tango::courselab
