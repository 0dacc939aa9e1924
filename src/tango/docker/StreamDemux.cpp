#include "tango/docker/StreamDemux.hpp"

#include <algorithm>

namespace tango::docker {

void StreamDemux::feed(std::string_view bytes) {
  while (!bytes.empty()) {
    if (remaining_ == 0) {
      const std::size_t k = std::min(bytes.size(), sizeof header_ - headerHave_);
      std::copy_n(bytes.data(), k, header_ + headerHave_);
      headerHave_ += k;
      bytes.remove_prefix(k);
      if (headerHave_ < sizeof header_) return;
      headerHave_ = 0;
      stream_ = header_[0];
      remaining_ = (std::uint32_t{header_[4]} << 24) | (std::uint32_t{header_[5]} << 16) |
                   (std::uint32_t{header_[6]} << 8) | std::uint32_t{header_[7]};
      continue;
    }
    const std::size_t k = std::min<std::size_t>(bytes.size(), remaining_);
    const std::string_view payload = bytes.substr(0, k);
    // Anything not stderr counts as stdout, as the Docker CLI does.
    if (stream_ == 2) {
      if (err_) err_(payload);
    } else if (out_) {
      out_(payload);
    }
    remaining_ -= static_cast<std::uint32_t>(k);
    bytes.remove_prefix(k);
  }
}

}  // namespace tango::docker
