#pragma once
// Splits the multiplexed stream of a non-TTY exec or logs attach into stdout
// and stderr. Each frame is an 8-byte header (stream type, 3 zero bytes, a
// big-endian 32-bit length) then that many payload bytes; frames arrive split
// across reads at arbitrary points, so the parser keeps its state between feeds.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace tango::docker {

class StreamDemux {
 public:
  using Sink = std::function<void(std::string_view)>;
  StreamDemux(Sink out, Sink err) : out_(std::move(out)), err_(std::move(err)) {}

  // Feeds the next bytes of the stream.
  void feed(std::string_view bytes);
  // True when the stream ended in the middle of a frame.
  bool partial() const { return headerHave_ != 0 || remaining_ != 0; }

 private:
  Sink out_, err_;
  unsigned char header_[8]{};
  std::size_t headerHave_ = 0;
  std::uint32_t remaining_ = 0;  // payload bytes left in the current frame
  unsigned char stream_ = 0;     // 0 stdin, 1 stdout, 2 stderr
};

}  // namespace tango::docker
