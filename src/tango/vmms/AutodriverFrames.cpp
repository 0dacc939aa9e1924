#include "tango/vmms/AutodriverFrames.hpp"

#include <algorithm>
#include <charconv>

#include "autodriver/Wire.hpp"

namespace tango {
namespace wire = autodriver::wire;

namespace {
// "O " and 20 digits are more than any frame may hold.
constexpr std::size_t kMaxHeader = 24;

// The header as it may appear in a job's trace: ASCII, nothing else.
std::string printable(std::string s) {
  for (char& c : s)
    if (c < ' ' || c > '~') c = '?';
  return s;
}
}  // namespace

AutodriverFrames::AutodriverFrames(std::size_t partialCap, std::size_t outputCap, Sink partial)
    : partialCap_(partialCap),
      partialLeft_(partialCap),
      outputCap_(outputCap),
      partial_(std::move(partial)) {}

void AutodriverFrames::fail(std::string why) {
  state_ = State::Failed;
  error_ = "the autodriver's output stream is malformed: " + std::move(why);
  output_.clear();
}

// header_ holds a whole header line, without its newline.
void AutodriverFrames::startFrame() {
  const std::string_view h = header_;
  std::size_t n = 0;
  const char* end = h.data() + h.size();
  bool parsed = h.size() >= 3 && h[1] == ' ' && h[2] >= '0' && h[2] <= '9';
  if (parsed) {
    const auto [ptr, ec] = std::from_chars(h.data() + 2, end, n);
    parsed = ec == std::errc() && ptr == end;
  }
  const char kind = h.empty() ? '\0' : h[0];
  if (!parsed || (kind != wire::kFramePartial && kind != wire::kFrameOutput))
    return fail("bad frame header '" + printable(header_) + "'");
  if (kind == wire::kFrameOutput && n > outputCap_)
    return fail("a result of " + std::to_string(n) + " bytes (at most " +
                std::to_string(outputCap_) + ")");
  if (kind == wire::kFramePartial && n > partialLeft_)
    return fail("partial output beyond its cap of " + std::to_string(partialCap_) + " bytes");
  header_.clear();
  left_ = n;
  state_ = kind == wire::kFramePartial ? State::Partial : State::Output;
  // Reserved up to what a normal result holds; beyond, it grows as it comes.
  if (state_ == State::Output) output_.reserve(std::min<std::size_t>(n, 1 << 20));
  if (n == 0 && state_ == State::Output) state_ = State::Done;
  if (n == 0 && state_ == State::Partial) state_ = State::Header;
}

void AutodriverFrames::feed(std::string_view chunk) {
  while (!chunk.empty()) {
    switch (state_) {
      case State::Failed:
        return;
      case State::Done:
        return fail("bytes after the result");
      case State::Header: {
        const auto nl = chunk.find('\n');
        const auto take = nl == std::string_view::npos ? chunk.size() : nl;
        if (header_.size() + take > kMaxHeader)
          return fail("a frame header longer than " + std::to_string(kMaxHeader) + " bytes");
        header_.append(chunk.substr(0, take));
        chunk.remove_prefix(nl == std::string_view::npos ? take : take + 1);
        if (nl != std::string_view::npos) startFrame();
        break;
      }
      case State::Partial:
      case State::Output: {
        const std::string_view part = chunk.substr(0, std::min(chunk.size(), left_));
        chunk.remove_prefix(part.size());
        left_ -= part.size();
        if (state_ == State::Output) {
          output_.append(part);
          if (left_ == 0) state_ = State::Done;
        } else {
          partialLeft_ -= part.size();  // the header was checked against it
          if (!part.empty() && partial_) partial_(part);
          if (left_ == 0) state_ = State::Header;
        }
        break;
      }
    }
  }
}

}  // namespace tango
