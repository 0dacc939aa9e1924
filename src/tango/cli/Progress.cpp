#include "tango/cli/Progress.hpp"

namespace tango::cli {

Progress::Progress(std::ostream& out, bool bar, int total) : out_(out), bar_(bar), total_(total) {
  if (bar_) draw();
}

Progress::~Progress() {
  if (bar_) out_ << "\n" << std::flush;  // leave the last bar on screen
}

void Progress::finished(const std::string& line) {
  ++done_;
  if (bar_) {
    draw();
  } else {
    out_ << line << "\n" << std::flush;
  }
}

void Progress::tick() {
  if (bar_) draw();
}

void Progress::draw() {
  constexpr int kWidth = 40;
  const int filled = total_ > 0 ? done_ * kWidth / total_ : kWidth;
  const auto secs =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - start_);
  out_ << "\r[" << std::string(static_cast<std::size_t>(filled), '#')
       << std::string(static_cast<std::size_t>(kWidth - filled), ' ') << "] " << done_ << "/"
       << total_ << " jobs finished, " << secs.count() << "s" << std::flush;
}

}  // namespace tango::cli
