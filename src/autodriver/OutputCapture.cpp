#include "autodriver/OutputCapture.hpp"

#include <algorithm>
#include <cstring>

namespace tango::autodriver {

OutputCapture::OutputCapture(std::size_t cap)
    : cap_(cap), head_cap_(cap / 2), tail_cap_(cap - cap / 2) {}

std::size_t OutputCapture::append(std::string_view data) {
  total_ += data.size();
  const std::size_t to_head = std::min(data.size(), head_cap_ - head_.size());
  head_.append(data.substr(0, to_head));
  data.remove_prefix(to_head);
  if (data.empty() || tail_cap_ == 0) return to_head;

  // Fill the ring until it is full; only then start overwriting.
  const std::size_t to_fill = std::min(data.size(), tail_cap_ - tail_.size());
  tail_.append(data.substr(0, to_fill));
  data.remove_prefix(to_fill);
  if (data.empty()) return to_head;

  // Only the newest tail_cap_ bytes of this chunk can survive.
  if (data.size() > tail_cap_) data.remove_prefix(data.size() - tail_cap_);
  const std::size_t first = std::min(data.size(), tail_cap_ - tail_start_);
  std::memcpy(tail_.data() + tail_start_, data.data(), first);
  std::memcpy(tail_.data(), data.data() + first, data.size() - first);
  tail_start_ = (tail_start_ + data.size()) % tail_cap_;
  return to_head;
}

std::string OutputCapture::render() const {
  std::string out;
  out.reserve(head_.size() + kElisionMarker.size() + tail_.size());
  out += head_;
  if (elided()) out += kElisionMarker;
  // Oldest tail byte first; tail_start_ stays 0 until the ring wrapped.
  out.append(tail_, tail_start_, std::string::npos);
  out.append(tail_, 0, tail_start_);
  return out;
}

}  // namespace tango::autodriver
