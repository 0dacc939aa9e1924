#pragma once
// A log sink that hides the API keys before any other sink sees a line.
// Keys sit in URL paths and courselab directory names (<key>-<lab>), so a
// message may carry one from anywhere in the service; this is the one place
// that makes sure none reaches a terminal, the journal or a log file.
#include <spdlog/sinks/base_sink.h>

#include <mutex>
#include <string>
#include <vector>

namespace tango {

class RedactingSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  RedactingSink(std::vector<std::string> secrets, std::vector<spdlog::sink_ptr> to);
  // `text` with every secret replaced by "<key>" (longest first, so a key
  // that contains another is hidden whole).
  std::string redact(std::string text) const;

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override;
  void flush_() override;

 private:
  std::vector<std::string> secrets_;
  std::vector<spdlog::sink_ptr> to_;
};

}  // namespace tango
