#include "tango/vmms/UsageLine.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/value.hpp>

#include "autodriver/Wire.hpp"
#include "tango/util/Lines.hpp"

namespace tango {
namespace wire = autodriver::wire;

std::optional<ResourceUsage> parseUsageLine(std::string_view text) {
  std::optional<ResourceUsage> result;
  forEachLine(text, [&](std::string_view line) {
    if (!line.starts_with(wire::kUsageTag)) return true;
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(line.substr(wire::kUsageTag.size()), ec);
    if (ec || !v.is_object()) return true;
    const auto& o = v.get_object();
    auto num = [&](const char* key) -> std::int64_t {
      const auto* p = o.if_contains(key);
      if (!p) return 0;
      if (p->is_int64()) return p->get_int64();
      if (p->is_uint64()) return static_cast<std::int64_t>(p->get_uint64());
      if (p->is_double()) return static_cast<std::int64_t>(p->get_double());
      return 0;
    };
    ResourceUsage u;
    namespace k = wire::usage;
    u.wallMs = num(k::kWallMs);
    u.userMs = num(k::kUserMs);
    u.sysMs = num(k::kSysMs);
    u.maxRssKb = num(k::kMaxRssKb);
    u.exitStatus = static_cast<int>(num(k::kExitStatus));
    u.signal = static_cast<int>(num(k::kSignal));
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
    out.append(line.substr(0, 1024 - std::min<std::size_t>(out.size(), 1024)));
    return out.size() < 1024;
  });
  return out;
}

}  // namespace tango
