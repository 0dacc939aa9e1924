#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace tango::autodriver {

// Marker placed between the head and the tail when output was dropped; the
// exact text is what Tango's autodriver always printed.
inline constexpr std::string_view kElisionMarker = "\n...[excess bytes elided]...\n";

// Keeps a job's output with memory bounded by the cap while it is produced:
// the first cap/2 bytes (head) and the last cap - cap/2 bytes (a ring buffer),
// plus the total count. Head + tail together hold exactly `cap` bytes, so
// output of at most `cap` bytes is always kept whole. Bytes are opaque.
class OutputCapture {
 public:
  explicit OutputCapture(std::size_t cap);

  // Adds bytes; returns how many leading bytes of `data` went to the head
  // (the part that is final and may be shown as partial output right away).
  std::size_t append(std::string_view data);

  std::uint64_t total() const { return total_; }
  bool elided() const { return total_ > cap_; }

  // All of the output if it fit, else head + kElisionMarker + tail.
  std::string render() const;

 private:
  std::size_t cap_;
  std::size_t head_cap_;
  std::size_t tail_cap_;
  std::string head_;
  // Grows up to tail_cap_, then wraps: tail_start_ is the oldest byte.
  std::string tail_;
  std::size_t tail_start_ = 0;
  std::uint64_t total_ = 0;
};

}  // namespace tango::autodriver
