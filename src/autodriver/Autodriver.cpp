#include "autodriver/Autodriver.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "autodriver/FileTree.hpp"
#include "autodriver/Frames.hpp"
#include "autodriver/GradingUser.hpp"
#include "autodriver/JobRunner.hpp"
#include "autodriver/Options.hpp"
#include "autodriver/OsError.hpp"
#include "autodriver/StdinJob.hpp"
#include "autodriver/UniqueFd.hpp"
#include "autodriver/Wire.hpp"

namespace tango::autodriver {
namespace {

constexpr const char* kDefaultPath = "/usr/local/bin:/usr/bin:/bin";

void diag(const std::string& message) { std::fprintf(stderr, "autodriver: %s\n", message.c_str()); }

// If we were started with 0/1/2 closed, the pipes we create would take
// those numbers and get clobbered by the child's dup2 calls.
void ensure_standard_fds() {
  for (int fd = 0; fd <= 2; ++fd) {
    if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) {
      if (open("/dev/null", O_RDWR) != fd) throw_errno("reopen standard fd");
    }
  }
}

void set_env(const char* name, const std::string& value) {
  if (setenv(name, value.c_str(), 1) != 0) throw_errno(std::string("setenv ") + name);
}

// Root mode: the job directory lives in the grading user's home while the job
// runs and is deleted afterwards, also when something fails in between.
class JobDirectory {
 public:
  explicit JobDirectory(std::string path) : path_(std::move(path)) {}
  JobDirectory(const JobDirectory&) = delete;
  JobDirectory& operator=(const JobDirectory&) = delete;
  ~JobDirectory() {
    if (!path_.empty()) remove();
  }
  const std::string& path() const { return path_; }
  // Returns false (after a diagnostic) if the directory could not be removed.
  bool remove() {
    const std::string path = std::exchange(path_, std::string());
    try {
      remove_tree(path);
      return true;
    } catch (const std::exception& e) {
      diag(std::string("cleanup failed: ") + e.what());
      return false;
    }
  }

 private:
  std::string path_;
};

// The "KEY N" counter of a cgroup file, 0 if unreadable: the messages it
// feeds are a courtesy, the limit itself is the cgroup's.
std::int64_t read_counter(const std::string& path, std::string_view key) {
  UniqueFd fd(open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd.valid()) return 0;
  char buf[4096];
  const ssize_t n = read(fd.get(), buf, sizeof buf - 1);
  if (n <= 0) return 0;
  const std::string_view text(buf, static_cast<size_t>(n));
  for (std::size_t pos = 0; pos < text.size();) {
    std::size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    const std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (line.size() > key.size() && line.starts_with(key) && line[key.size()] == ' ')
      return std::strtoll(std::string(line.substr(key.size() + 1)).c_str(), nullptr, 10);
  }
  return 0;
}

std::int64_t read_oom_kills(const std::optional<std::string>& path) {
  return path ? read_counter(*path, "oom_kill") : 0;
}

// The -E counters, summed over the files (only one of each kind exists).
struct Counters {
  std::int64_t oom_kills = 0, pids_max = 0;
};
Counters read_counters(const std::vector<std::string>& files) {
  Counters c;
  for (const auto& f : files) {
    // memory.events has a "max" line too (the limit was reached, not a
    // kill): "max" counts only in a pids file.
    const std::string_view base = std::string_view(f).substr(f.rfind('/') + 1);
    if (base.starts_with("pids"))
      c.pids_max += read_counter(f, "max");
    else
      c.oom_kills += read_counter(f, "oom_kill");
  }
  return c;
}

// Copies every entry of `from` into the existing directory `to` (links as
// links, never followed; see copy_tree).
void copy_inputs(const std::string& from, const std::string& to) {
  std::vector<std::string> names;
  {
    std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir(from.c_str()), closedir);
    if (!dir) throw_errno("opendir " + from);
    while (const dirent* e = readdir(dir.get())) {
      const std::string_view n = e->d_name;
      if (n != "." && n != "..") names.emplace_back(n);
    }
  }
  for (const auto& n : names) copy_tree(from + "/" + n, to + "/" + n);
}

int run(const Options& options) {
  ensure_standard_fds();
  // A closed stdout must give us EPIPE, not kill us with the job running.
  signal(SIGPIPE, SIG_IGN);

  struct stat st {};
  if (lstat(options.dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    diag(options.dir + " is not a directory");
    return kExitUsage;
  }

  // Opened before any chdir, so a relative path means what the caller meant.
  UniqueFd partial;
  if (options.partial_file) {
    partial.reset(open(options.partial_file->c_str(),
                       O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0644));
    if (!partial.valid()) throw_errno("open " + *options.partial_file);
  }

  // Daemons that double-fork reparent to us instead of init, so we can
  // find and kill them, and reap them.
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) throw_errno("prctl(PR_SET_CHILD_SUBREAPER)");
  if (getenv("PATH") == nullptr) set_env("PATH", kDefaultPath);

  JobSettings settings;
  settings.spawn.nproc = options.nproc;
  settings.spawn.fsize = options.fsize;
  settings.spawn.cpu = options.cpu_secs;
  // Without a cgroup to enforce it, the address-space limit is the fallback:
  // coarser (it counts mappings, not memory), but it holds everywhere.
  if (options.memory_bytes && !options.oom_events) settings.spawn.as = options.memory_bytes;
  if (options.input_dir) copy_inputs(*options.input_dir, options.dir);
  const std::int64_t oom_before = read_oom_kills(options.oom_events);
  const Counters counters_before = read_counters(options.event_files);
  settings.timeout_secs = options.timeout_secs;
  settings.output_cap = static_cast<std::size_t>(options.output_cap);
  settings.partial_fd = partial.get();
  if (options.framed) settings.frames_fd = STDOUT_FILENO;

  std::optional<JobDirectory> job_dir;
  if (options.job_uid) {
    // The local VMMS: DIR is the job's home (a tmpfs of the sandbox, gone
    // with it), filled above as uid 0 of the sandbox's user namespace.
    if (geteuid() != 0) {
      diag("-J needs the autodriver to start as uid 0 (of its user namespace)");
      return kExitUsage;
    }
    const auto uid = static_cast<uid_t>(*options.job_uid);
    chown_tree(options.dir, uid, static_cast<gid_t>(uid));
    if (chdir(options.dir.c_str()) != 0) throw_errno("chdir " + options.dir);
    settings.spawn.uid = uid;
    settings.spawn.gid = static_cast<gid_t>(uid);
  } else if (geteuid() == 0) {
    const auto user = lookup_grading_user(options.user);
    if (!user) {
      diag("grading user '" + options.user + "' not found in /etc/passwd");
      return kExitOsError;
    }
    if (user->uid == 0) {
      diag("refusing to run the job as root (grading user '" + options.user + "')");
      return kExitOsError;
    }
    // A container's home is a fresh tmpfs, made root's by the engine: the
    // grading user gets it, as it would own its home anywhere else. Only a
    // real directory under /home/ (never a link, never a system path).
    struct stat home_st {};
    if (options.stdin_job && user->home.starts_with("/home/") &&
        user->home.find("/..") == std::string::npos && lstat(user->home.c_str(), &home_st) == 0 &&
        S_ISDIR(home_st.st_mode) && lchown(user->home.c_str(), user->uid, user->gid) != 0)
      throw_errno("chown " + user->home);
    job_dir.emplace(install_job_dir(*user, options.dir));
    if (chdir(job_dir->path().c_str()) != 0) throw_errno("chdir " + job_dir->path());
    set_env("HOME", user->home);
    set_env("USER", user->name);
    set_env("LOGNAME", user->name);
    settings.spawn.uid = user->uid;
    settings.spawn.gid = user->gid;
  } else if (chdir(options.dir.c_str()) != 0) {
    throw_errno("chdir " + options.dir);
  }

  JobResult result = run_job(settings);
  if (!options.event_files.empty()) {
    const Counters after = read_counters(options.event_files);
    result.report.cgroup_counted = true;
    result.report.oom_kills = after.oom_kills - counters_before.oom_kills;
    result.report.pids_max = after.pids_max - counters_before.pids_max;
  }

  bool damaged = !result.all_killed;
  if (!result.all_killed) diag("some job processes could not be killed");
  if (job_dir) {
    if (chdir("/") != 0) throw_errno("chdir /");
    if (!job_dir->remove()) damaged = true;
  }

  std::string header = status_line(result.report);
  if (read_oom_kills(options.oom_events) > oom_before) {
    // After the status line, so Autolab still finds the score (if any) last.
    const std::int64_t mb = options.memory_bytes.value_or(0) / (1024 * 1024);
    header += std::string(wire::kOomLine) + std::to_string(mb) + " MB)\n";
  }
  const bool written = options.framed
                           ? write_frame(STDOUT_FILENO, kFrameOutput, header + result.output)
                           : write_all(STDOUT_FILENO, header + result.output);
  if (!written) throw_errno("write output");
  if (options.report_usage) write_all(STDERR_FILENO, usage_line(result.report));
  if (damaged) return kExitOsError;
  return result.report.timed_out ? kExitTimeout : kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  auto parsed = parse_options(argc, argv);
  if (const auto* error = std::get_if<UsageError>(&parsed)) {
    diag(error->message);
    std::fputs(usage_text(), stderr);
    return kExitUsage;
  }
  try {
    if (std::get<Options>(parsed).stdin_job) {
      // The job's files land in DIR; its flags join ours, parsed as strictly.
      auto got = read_stdin_job(STDIN_FILENO, std::get<Options>(parsed).dir);
      if (const auto* error = std::get_if<StdinJobError>(&got)) {
        diag(error->message);
        return kExitUsage;
      }
      std::vector<const char*> all(argv, argv + argc);
      for (const auto& a : std::get<std::vector<std::string>>(got)) all.push_back(a.c_str());
      parsed = parse_options(static_cast<int>(all.size()), all.data());
      if (const auto* error = std::get_if<UsageError>(&parsed)) {
        diag(error->message);
        return kExitUsage;
      }
      // The stream is spent; the job must not read what is left of it.
      const int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
      if (null < 0 || dup2(null, STDIN_FILENO) < 0) throw_errno("stdin from /dev/null");
      if (null != STDIN_FILENO) close(null);
    }
    return run(std::get<Options>(parsed));
  } catch (const std::exception& e) {
    diag(e.what());
    return kExitOsError;
  }
}

}  // namespace tango::autodriver
