#include "tango/vmms/UsageLine.hpp"

#include <algorithm>
#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "autodriver/Wire.hpp"
#include "tango/util/Lines.hpp"

namespace tango {
namespace wire = autodriver::wire;

namespace {
constexpr std::int64_t kMaxCount = std::int64_t{1} << 53;  // exact in a double, in JSON
constexpr std::size_t kExcerptBytes = 1024;
}  // namespace

std::optional<ResourceUsage> parseUsageLine(std::string_view text) {
  std::optional<ResourceUsage> result;
  forEachLine(text, [&](std::string_view line) {
    if (!line.starts_with(wire::kUsageTag)) return true;
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(line.substr(wire::kUsageTag.size()), ec);
    if (ec || !v.is_object()) return true;
    const auto& o = v.get_object();
    // The line comes from inside the job's VM: every number is clamped into
    // what it can mean (a count of at most 2^53, a status of 0-255) before
    // it is converted, since a cast of 1e300 or 2^64-1 is undefined.
    auto num = [&](const char* key, std::int64_t max = kMaxCount) -> std::int64_t {
      const auto* p = o.if_contains(key);
      double d = 0;
      if (!p) return 0;
      if (p->is_int64()) return std::clamp<std::int64_t>(p->get_int64(), 0, max);
      if (p->is_uint64())
        return static_cast<std::int64_t>(std::min<std::uint64_t>(p->get_uint64(), max));
      if (p->is_double()) d = p->get_double();
      if (!(d > 0)) return 0;  // also NaN
      return d >= static_cast<double>(max) ? max : static_cast<std::int64_t>(d);
    };
    ResourceUsage u;
    namespace k = wire::usage;
    u.wallMs = num(k::kWallMs);
    u.userMs = num(k::kUserMs);
    u.sysMs = num(k::kSysMs);
    u.maxRssKb = num(k::kMaxRssKb);
    u.exitStatus = static_cast<int>(num(k::kExitStatus, 255));
    u.signal = static_cast<int>(num(k::kSignal, 255));
    const auto* t = o.if_contains(k::kTimedOut);
    u.timedOut = t && t->is_bool() && t->get_bool();
    u.outputBytes = num(k::kOutputBytes);
    u.oomKills = num(k::kOomKills);
    u.pidsMax = num(k::kPidsMax);
    result = u;  // the last report wins
    return true;
  });
  return result;
}

std::string stderrExcerpt(std::string_view text) {
  std::string out;
  forEachLine(text, [&](std::string_view line) {
    if (line.empty() || line.starts_with(wire::kUsageTag)) return true;
    if (!out.empty()) out += "; ";
    out.append(line.substr(0, kExcerptBytes - std::min(out.size(), kExcerptBytes)));
    return out.size() < kExcerptBytes;
  });
  if (out.size() > kExcerptBytes) out.resize(kExcerptBytes);  // a separator at the edge
  return out;
}

}  // namespace tango
