#include "tango/vmms/AutodriverRun.hpp"

#include <algorithm>
#include <fstream>

#include "tango/util/ReadFile.hpp"
#include "tango/vmms/UsageLine.hpp"

namespace tango {

using namespace std::chrono_literals;

namespace {
constexpr std::size_t kStderrCap = 64 * 1024;
}

std::optional<std::vector<docker::TarEntry>> jobFiles(const std::vector<InputFile>& files,
                                                      std::int64_t maxBytes, std::string& error) {
  std::vector<docker::TarEntry> entries;
  for (const auto& f : files) {
    auto bytes = readFileUpTo(f.localFile, maxBytes);
    if (!bytes) {
      error = "cannot read input file " + f.destFile;
      return std::nullopt;
    }
    entries.push_back({"job/" + f.destFile, docker::TarEntry::Kind::File, std::move(*bytes), 0644});
  }
  return entries;
}

std::string jobStream(const std::vector<std::string>& flags, std::vector<docker::TarEntry> files) {
  std::string args;
  for (const auto& a : flags) args += a + '\0';
  std::vector<docker::TarEntry> entries{
      {"args", docker::TarEntry::Kind::File, std::move(args), 0644}};
  for (auto& e : files) entries.push_back(std::move(e));
  return docker::makeTar(entries);
}

std::chrono::seconds hardTimeoutOf(const RunSpec& spec) {
  if (spec.hardTimeout > 0s) return spec.hardTimeout;
  return std::chrono::seconds(std::max(spec.timeoutSecs, 0)) + 30s;
}

AutodriverFrames framesFor(std::int64_t cap, const std::shared_ptr<LiveHead>& live) {
  return AutodriverFrames(static_cast<std::size_t>(cap),
                          static_cast<std::size_t>(cap + kAutodriverOutputSlack),
                          [live](std::string_view head) { live->append(head); });
}

StepResult writeOutput(const std::filesystem::path& dest, const std::string& out) {
  std::ofstream f(dest, std::ios::binary | std::ios::trunc);
  f.write(out.data(), static_cast<std::streamsize>(out.size()));
  f.close();
  if (!f) return StepResult::failure("cannot write " + dest.string());
  return StepResult::success();
}

void StderrTail::operator()(std::string_view c) {
  if (text.size() < kStderrCap)
    text.append(c.substr(0, std::min(c.size(), kStderrCap - text.size())));
}

RunResult runResultOf(int code, const AutodriverFrames& frames, const std::string& err) {
  RunResult r;
  r.usage = parseUsageLine(err);
  if (code < 0 || code > 3) {
    // 126/127: the autodriver could not be started; 137: killed under it.
    r.error = "the autodriver exited with " + std::to_string(code) +
              (err.empty() ? "" : ": " + stderrExcerpt(err));
  } else if (frames.error()) {
    r.error = *frames.error() + (err.empty() ? "" : "; " + stderrExcerpt(err));
  } else if ((code == 0 || code == 2) && !frames.complete()) {
    // 0 and 2 (a timeout) come with a result; 1 and 3 may not.
    r.error = "the autodriver exited with " + std::to_string(code) + " without its result" +
              (err.empty() ? "" : ": " + stderrExcerpt(err));
  } else {
    r.status = code;
    if (code != 0 && code != 2) r.error = stderrExcerpt(err);
  }
  return r;
}

}  // namespace tango
