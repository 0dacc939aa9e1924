// The autodriver's command line (NUL-separated arguments): parsed strictly,
// every accepted number in range (a job uid neither 0 nor -1), exactly one DIR.
#include <string>
#include <vector>

#include "Check.hpp"
#include "autodriver/Options.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  std::string_view in = fuzz::text(data, size);
  std::vector<std::string> args{"autodriver"};
  while (!in.empty() && args.size() < 64) {
    const auto nul = in.find('\0');
    args.emplace_back(in.substr(0, nul));
    in = nul == std::string_view::npos ? std::string_view{} : in.substr(nul + 1);
  }
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  auto result = tango::autodriver::parse_options(static_cast<int>(args.size()), argv.data());
  if (auto* error = std::get_if<tango::autodriver::UsageError>(&result)) {
    FUZZ_CHECK(!error->message.empty());
    return 0;
  }
  const auto& o = std::get<tango::autodriver::Options>(result);
  FUZZ_CHECK(!o.dir.empty());
  FUZZ_CHECK(o.timeout_secs >= 0);
  FUZZ_CHECK(o.output_cap > 0);
  for (const auto* n : {&o.nproc, &o.fsize, &o.cpu_secs, &o.memory_bytes})
    if (*n) FUZZ_CHECK(**n >= 0);
  // A job uid is never root and never (uid_t)-1, "no change" to setuid.
  if (o.job_uid) FUZZ_CHECK(*o.job_uid > 0 && *o.job_uid < 0xFFFFFFFFLL);
  return 0;
}
