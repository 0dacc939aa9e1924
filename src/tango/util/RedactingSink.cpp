#include "tango/util/RedactingSink.hpp"

#include <algorithm>

namespace tango {

RedactingSink::RedactingSink(std::vector<std::string> secrets, std::vector<spdlog::sink_ptr> to)
    : secrets_(std::move(secrets)), to_(std::move(to)) {
  std::erase_if(secrets_, [](const std::string& s) { return s.empty(); });
  std::sort(secrets_.begin(), secrets_.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
}

std::string RedactingSink::redact(std::string text) const {
  static constexpr std::string_view kShown = "<key>";
  for (const auto& s : secrets_) {
    for (auto at = text.find(s); at != std::string::npos; at = text.find(s, at + kShown.size()))
      text.replace(at, s.size(), kShown);
  }
  return text;
}

void RedactingSink::sink_it_(const spdlog::details::log_msg& msg) {
  const std::string text = redact(std::string(msg.payload.data(), msg.payload.size()));
  spdlog::details::log_msg copy = msg;
  copy.payload = text;
  for (auto& sink : to_)
    if (sink->should_log(copy.level)) sink->log(copy);
}

void RedactingSink::flush_() {
  for (auto& sink : to_) sink->flush();
}

}  // namespace tango
