#pragma once
// Line-by-line reading of text already in memory (/proc files, cgroup
// counters, /etc/passwd, the autodriver's stderr, the engine's progress
// streams), without copying it.
#include <string_view>

namespace tango {

// Calls fn(line) for every '\n'-separated line of `text` (the '\n' not
// included; a last line without one counts). fn returns false to stop.
template <class Fn>
void forEachLine(std::string_view text, Fn&& fn) {
  std::size_t pos = 0;
  while (pos < text.size()) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    if (!fn(text.substr(pos, nl - pos))) return;
    pos = nl + 1;
  }
}

}  // namespace tango
