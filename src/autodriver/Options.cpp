#include "autodriver/Options.hpp"

#include <cerrno>
#include <cstdlib>
#include <string_view>

namespace tango::autodriver {
namespace {

// Upper bounds keep later arithmetic (seconds -> ms, cap -> buffers) far from
// overflow and reject values that can only be typos.
constexpr std::int64_t kMaxNproc = 4194304;                 // Linux PID_MAX_LIMIT
constexpr std::int64_t kMaxFsize = INT64_MAX;               // any file size
constexpr std::int64_t kMaxTimeout = 366LL * 24 * 60 * 60;  // one year
constexpr std::int64_t kMaxOutputCap = 1LL << 30;           // 1 GiB in memory
constexpr std::int64_t kMaxCpuSecs = kMaxTimeout;
constexpr std::int64_t kMaxMemory = 1LL << 50;  // 1 PiB: any real machine
constexpr std::int64_t kMaxUid = 0xFFFFFFFE;    // (uid_t)-1 means "no change"

std::optional<std::int64_t> parse_number(std::string_view text, std::int64_t max) {
  // strtoll accepts leading blanks and signs; we want digits only.
  if (text.empty() || text.size() > 19) return std::nullopt;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  std::string copy(text);
  char* end = nullptr;
  errno = 0;
  const long long value = std::strtoll(copy.c_str(), &end, 10);
  if (errno != 0 || end != copy.c_str() + copy.size() || value < 0 || value > max) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

const char* usage_text() {
  return "usage: autodriver [-u nproc] [-f fsize_bytes] [-t timeout_secs] [-o output_cap_bytes]\n"
         "                  [-c cpu_secs] [-m memory_bytes] [-M oom_events_file] [-I input_dir]\n"
         "                  [-U user] [-J job_uid] [-P partial_file] [-E cgroup_events_file]...\n"
         "                  [-R] [-S] [-F]\n"
         "                  DIR\n";
}

std::variant<Options, UsageError> parse_options(int argc, const char* const* argv) {
  Options options;
  bool have_dir = false;
  bool flags_done = false;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (flags_done || arg.size() < 2 || arg[0] != '-') {
      if (have_dir) return UsageError{"more than one DIR given: " + std::string(arg)};
      options.dir = arg;
      have_dir = true;
      continue;
    }
    if (arg == "--") {
      flags_done = true;
      continue;
    }
    const char flag = arg[1];
    if (flag == 'R' || flag == 'S' || flag == 'F') {
      if (arg.size() != 2) return UsageError{"unknown option: " + std::string(arg)};
      (flag == 'R'   ? options.report_usage
       : flag == 'S' ? options.stdin_job
                     : options.framed) = true;
      continue;
    }
    if (std::string_view("uftoUJPcmMIE").find(flag) == std::string_view::npos) {
      return UsageError{"unknown option: " + std::string(arg)};
    }
    // The value is either glued to the flag ("-t5") or the next argument.
    std::string_view value;
    if (arg.size() > 2) {
      value = arg.substr(2);
    } else if (i + 1 < argc) {
      value = argv[++i];
    } else {
      return UsageError{"option -" + std::string(1, flag) + " needs a value"};
    }
    if (flag == 'U' || flag == 'P' || flag == 'M' || flag == 'I' || flag == 'E') {
      if (value.empty()) return UsageError{"option -" + std::string(1, flag) + " needs a value"};
      if (flag == 'U') options.user = value;
      if (flag == 'P') options.partial_file = std::string(value);
      if (flag == 'M') options.oom_events = std::string(value);
      if (flag == 'I') options.input_dir = std::string(value);
      if (flag == 'E') options.event_files.emplace_back(value);
      continue;
    }
    const std::int64_t max = flag == 'u'   ? kMaxNproc
                             : flag == 'f' ? kMaxFsize
                             : flag == 't' ? kMaxTimeout
                             : flag == 'c' ? kMaxCpuSecs
                             : flag == 'm' ? kMaxMemory
                             : flag == 'J' ? kMaxUid
                                           : kMaxOutputCap;
    const auto number = parse_number(value, max);
    if (!number) {
      return UsageError{"invalid value for -" + std::string(1, flag) + ": '" + std::string(value) +
                        "' (expected an integer from 0 to " + std::to_string(max) + ")"};
    }
    switch (flag) {
      case 'u':
        options.nproc = *number;
        break;
      case 'f':
        options.fsize = *number;
        break;
      case 't':
        options.timeout_secs = *number;
        break;
      case 'c':
        // 0 means no limit, as with -t.
        if (*number > 0) options.cpu_secs = *number;
        break;
      case 'm':
        if (*number > 0) options.memory_bytes = *number;
        break;
      case 'J':
        if (*number == 0) return UsageError{"refusing to run the job as uid 0 (-J 0)"};
        options.job_uid = *number;
        break;
      default:
        options.output_cap = *number == 0 ? kDefaultOutputCap : *number;
        break;
    }
  }
  if (!have_dir) return UsageError{"missing DIR"};
  if (options.dir.empty()) return UsageError{"DIR is empty"};
  return options;
}

}  // namespace tango::autodriver
