// The autodriver's stderr as the service reads it: the TANGO_USAGE report
// (clamped into what each number can mean) and the excerpt kept in traces.
#include "Check.hpp"
#include "autodriver/Wire.hpp"
#include "tango/vmms/UsageLine.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  const std::string_view in = fuzz::text(data, size);
  if (auto u = tango::parseUsageLine(in)) {
    constexpr std::int64_t kMax = std::int64_t{1} << 53;
    for (auto n :
         {u->wallMs, u->userMs, u->sysMs, u->maxRssKb, u->outputBytes, u->oomKills, u->pidsMax})
      FUZZ_CHECK(n >= 0 && n <= kMax);
    FUZZ_CHECK(u->exitStatus >= 0 && u->exitStatus <= 255);
    FUZZ_CHECK(u->signal >= 0 && u->signal <= 255);
  }
  const std::string excerpt = tango::stderrExcerpt(in);
  FUZZ_CHECK(excerpt.size() <= 1024);
  FUZZ_CHECK(excerpt.find('\n') == std::string::npos);
  FUZZ_CHECK(!excerpt.starts_with(tango::autodriver::wire::kUsageTag));
  return 0;
}
