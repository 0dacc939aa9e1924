// End-to-end tests of the static autodriver binary with real processes.
// Most run it as uid 65534 ("nobody"), which is how the local sandbox runs
// it; the root-mode tests give it a private /etc/passwd through a mount
// namespace so that no system file is modified.
#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

constexpr uid_t kNobody = 65534;
constexpr const char* kExited0 = "Autodriver: Job exited with status 0\n";

struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
  double seconds = 0;
};

struct RunMode {
  bool as_nobody = true;                  // else stay root (root mode)
  std::optional<fs::path> passwd_file;    // bind-mounted over /etc/passwd
  std::optional<std::string> stdin_data;  // else stdin is the test's
  // Called with all of stdout so far, after each read of it.
  std::function<void(const std::string&)> on_stdout;
  // Stdout is not read before this much time has passed (a stalled reader).
  std::chrono::milliseconds stdout_delay{0};
};

// The binary under test, copied where "nobody" can reach it: the build tree
// may lie below a directory only root can search (a clone in /root).
const std::string& autodriver_binary() {
  struct Copy {
    fs::path dir;
    std::string path;
    Copy() {
      // TEST_TMP_DIR is searchable by everyone (tests/CMakeLists.txt).
      fs::create_directories(TEST_TMP_DIR);
      std::string pattern = std::string(TEST_TMP_DIR) + "/autodriver-bin-XXXXXX";
      if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
      dir = pattern;
      fs::permissions(dir, fs::perms(0755));
      path = (dir / "autodriver").string();
      fs::copy_file(AUTODRIVER_PATH, path);
      fs::permissions(path, fs::perms(0755));
    }
    ~Copy() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  };
  static const Copy copy;
  return copy.path;
}

// Forks, prepares credentials/namespace, execs the autodriver and collects
// stdout/stderr separately. Only plain system calls between fork and exec.
RunResult run_autodriver(const std::vector<std::string>& args, const RunMode& mode = {}) {
  std::vector<std::string> storage{autodriver_binary()};
  storage.insert(storage.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& s : storage) argv.push_back(s.data());
  argv.push_back(nullptr);
  const std::string passwd = mode.passwd_file ? mode.passwd_file->string() : "";
  const bool drop = mode.as_nobody && geteuid() == 0;

  int out[2], err[2], in[2] = {-1, -1};
  EXPECT_EQ(pipe2(out, O_CLOEXEC), 0);
  EXPECT_EQ(pipe2(err, O_CLOEXEC), 0);
  if (mode.stdin_data) {
    EXPECT_EQ(pipe2(in, O_CLOEXEC), 0);
  }
  const auto start = Clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    dup2(out[1], 1);
    dup2(err[1], 2);
    if (in[0] >= 0) dup2(in[0], 0);
    if (!passwd.empty()) {
      if (unshare(CLONE_NEWNS) != 0 ||
          mount("none", "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
          mount(passwd.c_str(), "/etc/passwd", nullptr, MS_BIND, nullptr) != 0) {
        _exit(120);
      }
    }
    if (drop && (setgroups(0, nullptr) != 0 || setgid(kNobody) != 0 || setuid(kNobody) != 0)) {
      _exit(121);
    }
    execv(argv[0], argv.data());
    _exit(122);
  }
  close(out[1]);
  close(err[1]);
  if (mode.stdin_data) {
    // Small streams only: they fit in the pipe, so this cannot block.
    close(in[0]);
    EXPECT_EQ(write(in[1], mode.stdin_data->data(), mode.stdin_data->size()),
              static_cast<ssize_t>(mode.stdin_data->size()));
    close(in[1]);
  }
  RunResult result;
  const int fds_of[2] = {out[0], err[0]};
  bool open[2] = {true, true};
  std::string* sinks[2] = {&result.out, &result.err};
  const auto give_up = start + std::chrono::seconds(60);
  while ((open[0] || open[1]) && Clock::now() < give_up) {
    // A stalled reader: stdout is left alone until its delay has passed.
    const bool paused = Clock::now() < start + mode.stdout_delay;
    struct pollfd fds[2] = {{open[0] && !paused ? fds_of[0] : -1, POLLIN, 0},
                            {open[1] ? fds_of[1] : -1, POLLIN, 0}};
    if (poll(fds, 2, paused ? 50 : 1000) <= 0) continue;
    for (int i = 0; i < 2; ++i) {
      if (fds[i].revents == 0) continue;
      char buf[65536];
      const ssize_t n = read(fds_of[i], buf, sizeof buf);
      if (n > 0) {
        sinks[i]->append(buf, static_cast<size_t>(n));
        if (i == 0 && mode.on_stdout) mode.on_stdout(result.out);
      } else {
        close(fds_of[i]);
        open[i] = false;
      }
    }
  }
  if (open[0] || open[1]) {
    ADD_FAILURE() << "autodriver did not finish within 60 s";
    kill(pid, SIGKILL);
    for (int i = 0; i < 2; ++i) {
      if (open[i]) close(fds_of[i]);
    }
  }
  int status = 0;
  waitpid(pid, &status, 0);
  result.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  EXPECT_NE(result.exit_code, 120) << "could not set up the mount namespace";
  EXPECT_NE(result.exit_code, 121) << "could not become nobody";
  EXPECT_NE(result.exit_code, 122) << "could not exec " << autodriver_binary();
  return result;
}

// A tar stream (pax) of `entries`, written with libarchive: the job stream
// of -S. A `link` makes a symlink entry pointing there.
struct TarItem {
  std::string name;
  std::string data;
  std::optional<std::string> link;
};
std::string make_tar(const std::vector<TarItem>& items) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  archive_write_open(
      a, &out, nullptr,
      [](archive*, void* o, const void* buf, size_t n) -> la_ssize_t {
        static_cast<std::string*>(o)->append(static_cast<const char*>(buf), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  for (const auto& item : items) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, item.name.c_str());
    if (item.link) {
      archive_entry_set_filetype(e, AE_IFLNK);
      archive_entry_set_symlink(e, item.link->c_str());
      archive_entry_set_perm(e, 0777);
    } else {
      archive_entry_set_filetype(e, AE_IFREG);
      archive_entry_set_perm(e, 0644);
      archive_entry_set_size(e, static_cast<la_int64_t>(item.data.size()));
    }
    archive_write_header(a, e);
    if (!item.link) archive_write_data(a, item.data.data(), item.data.size());
    archive_entry_free(e);
  }
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

// The args entry of a job stream: each flag ended by a NUL byte.
std::string nul_separated(const std::vector<std::string>& flags) {
  std::string out;
  for (const auto& f : flags) out += f + '\0';
  return out;
}

// pids of running processes whose command line contains `marker`.
std::vector<pid_t> processes_with(const std::string& marker) {
  std::vector<pid_t> found;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    std::ifstream in(entry.path() / "cmdline");
    const std::string cmdline(std::istreambuf_iterator<char>(in), {});
    if (cmdline.find(marker) != std::string::npos) found.push_back(std::stoi(name));
  }
  return found;
}

// Asserts nothing with `marker` survived, and cleans up if something did so
// that a failing test does not leave processes behind.
void expect_no_survivors(const std::string& marker) {
  const auto survivors = processes_with(marker);
  EXPECT_TRUE(survivors.empty()) << survivors.size() << " processes survived";
  for (pid_t pid : survivors) kill(pid, SIGKILL);
}

// A sleep duration whose text is unique to this test run: it serves as a
// marker in /proc/<pid>/cmdline.
std::string unique_marker() {
  static int counter = 0;
  return std::to_string(1000 + ++counter) + "." + std::to_string(getpid());
}

// Checks that `text` is exactly one TANGO_USAGE line whose JSON object has
// the expected keys in order with number/boolean values; returns them.
std::optional<std::map<std::string, std::string>> parse_usage_line(const std::string& text) {
  const std::string prefix = "TANGO_USAGE {";
  if (text.rfind(prefix, 0) != 0 || text.size() < prefix.size() + 2 ||
      text.substr(text.size() - 2) != "}\n") {
    return std::nullopt;
  }
  std::string body = text.substr(prefix.size(), text.size() - prefix.size() - 2);
  std::map<std::string, std::string> values;
  for (const char* key : {"wall_ms", "user_ms", "sys_ms", "max_rss_kb", "exit_status", "signal",
                          "timed_out", "output_bytes"}) {
    const std::string expected = std::string("\"") + key + "\":";
    if (body.rfind(expected, 0) != 0) return std::nullopt;
    body.erase(0, expected.size());
    const auto comma = body.find(',');
    const std::string value = body.substr(0, comma);
    const bool is_bool = value == "true" || value == "false";
    const bool is_number =
        !value.empty() && value.find_first_not_of("0123456789") == std::string::npos;
    if (!(key == std::string("timed_out") ? is_bool : is_number)) return std::nullopt;
    values[key] = value;
    const bool last = key == std::string("output_bytes");
    if (last != (comma == std::string::npos)) return std::nullopt;
    body.erase(0, last ? body.size() : comma + 1);
  }
  return values;
}

class AutodriverBinary : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/autodriver-test-XXXXXX";
    ASSERT_NE(mkdtemp(pattern), nullptr);
    base_ = pattern;
    fs::permissions(base_, fs::perms(0755));
    job_ = base_ / "job";
    fs::create_directory(job_);
  }
  void TearDown() override {
    if (!base_.empty()) fs::remove_all(base_);
  }

  void write_file(const fs::path& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
  }
  void write_makefile(const std::string& recipe_lines) {
    write_file(job_ / "Makefile", "all:\n" + recipe_lines);
  }
  // In sandbox mode the job directory belongs to the job's uid.
  void give_to_nobody() {
    if (geteuid() != 0) return;
    ASSERT_EQ(lchown(base_.c_str(), kNobody, kNobody), 0);
    for (const auto& entry : fs::recursive_directory_iterator(job_)) {
      ASSERT_EQ(lchown(entry.path().c_str(), kNobody, kNobody), 0);
    }
    ASSERT_EQ(lchown(job_.c_str(), kNobody, kNobody), 0);
  }
  RunResult run_job(std::vector<std::string> flags) {
    give_to_nobody();
    flags.push_back(job_.string());
    return run_autodriver(flags);
  }

  fs::path base_;
  fs::path job_;
};

TEST_F(AutodriverBinary, HelloWorld) {
  write_makefile("\t@echo hello\n");
  const RunResult r = run_job({});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, std::string(kExited0) + "hello\n");
  EXPECT_EQ(r.err, "");
}

TEST_F(AutodriverBinary, StdoutAndStderrAreInterleavedInOrder) {
  write_makefile("\t@echo one; echo two >&2; echo three\n");
  const RunResult r = run_job({});
  EXPECT_EQ(r.out, std::string(kExited0) + "one\ntwo\nthree\n");
}

TEST_F(AutodriverBinary, SandboxModeRunsInPlace) {
  write_makefile("\t@pwd; id -u; touch made_by_job\n");
  const RunResult r = run_job({});
  const std::string uid = std::to_string(geteuid() == 0 ? kNobody : geteuid());
  EXPECT_EQ(r.out, std::string(kExited0) + job_.string() + "\n" + uid + "\n");
  EXPECT_TRUE(fs::exists(job_ / "made_by_job"));  // nothing moved or deleted
}

TEST_F(AutodriverBinary, FailingRecipeGivesMakesStatus) {
  write_makefile("\t@false\n");
  const RunResult r = run_job({});
  EXPECT_EQ(r.exit_code, 0);  // the autodriver itself worked
  EXPECT_EQ(r.out.rfind("Autodriver: Job exited with status 2\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("Error 1"), std::string::npos) << r.out;
}

TEST_F(AutodriverBinary, MissingMakefileIsAMakeError) {
  const RunResult r = run_job({});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("Autodriver: Job exited with status 2\n", 0), 0u) << r.out;
}

TEST_F(AutodriverBinary, Timeout) {
  write_makefile("\t@echo before; sleep 30\n");
  const RunResult r = run_job({"-t", "1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.out, "Autodriver: Job timed out after 1 seconds\nbefore\n");
  EXPECT_LT(r.seconds, 8);  // at the timeout, not the 30 s sleep (slack for a loaded machine)
  EXPECT_GE(r.seconds, 0.9);
}

TEST_F(AutodriverBinary, TimeoutKillsProcessesIgnoringSigterm) {
  const std::string marker = unique_marker();
  write_makefile("\t@trap '' TERM; sleep " + marker + "\n");
  const RunResult r = run_job({"-t", "1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_LT(r.seconds, 8);  // killed, not waited for
  expect_no_survivors(marker);
}

TEST_F(AutodriverBinary, DoubleForkedDaemonsAreKilledAndNotWaitedFor) {
  const std::string daemon = unique_marker();
  const std::string ignorer = unique_marker();
  // Both keep the output pipe open; neither may delay the end of the job.
  write_makefile("\t@setsid sh -c 'sleep " + daemon + " &'\n" + "\t@sh -c 'trap \"\" TERM; sleep " +
                 ignorer + "' &\n" + "\t@echo done\n");
  const RunResult r = run_job({});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, std::string(kExited0) + "done\n");
  EXPECT_LT(r.seconds, 5);
  expect_no_survivors(daemon);
  expect_no_survivors(ignorer);
}

TEST_F(AutodriverBinary, ForkBombUnderNprocLimitFinishes) {
  const std::string marker = unique_marker();
  write_makefile("\t@: " + marker + "; b() { b | b & }; b; sleep 2\n");
  const RunResult r = run_job({"-u", "30", "-t", "10"});
  EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 2) << r.exit_code << r.err;
  EXPECT_LT(r.seconds, 15);
  expect_no_survivors(marker);
}

TEST_F(AutodriverBinary, OutputOverCapIsElided) {
  write_makefile("\t@seq 1 1000\n");
  const RunResult r = run_job({"-o", "100"});
  std::string full;
  for (int i = 1; i <= 1000; ++i) full += std::to_string(i) + "\n";
  EXPECT_EQ(r.out, std::string(kExited0) + full.substr(0, 50) + "\n...[excess bytes elided]...\n" +
                       full.substr(full.size() - 50));
}

TEST_F(AutodriverBinary, OutputExactlyAtCapIsKept) {
  write_makefile("\t@seq 1 10\n");  // 21 bytes
  const RunResult r = run_job({"-o", "21"});
  EXPECT_EQ(r.out, std::string(kExited0) + "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n");
}

TEST_F(AutodriverBinary, RawBytesPassThrough) {
  write_makefile("\t@printf 'a\\000b\\377c'\n");
  const RunResult r = run_job({});
  EXPECT_EQ(r.out, std::string(kExited0) + std::string("a\0b\xff"
                                                       "c",
                                                       5));
}

TEST_F(AutodriverBinary, JobRunsAtTheLowestCpuPriorityAndCannotRaiseIt) {
  // So that a job's many processes cannot starve the autodriver of the CPU it
  // needs to end the job at its timeout.
  // GNU nice runs the command even when it may not change the niceness.
  write_makefile("\t@nice; nice -n -5 nice 2>/dev/null\n");
  const RunResult r = run_job({});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, std::string(kExited0) + "19\n19\n");
}

TEST_F(AutodriverBinary, FileSizeLimit) {
  write_makefile("\t@head -c 100000 /dev/zero > big\n");
  const RunResult r = run_job({"-f", "1000"});
  EXPECT_EQ(r.out.rfind("Autodriver: Job exited with status 2\n", 0), 0u) << r.out;
  EXPECT_LE(fs::file_size(job_ / "big"), 1000u);
}

TEST_F(AutodriverBinary, CpuTimeLimitKillsABusyLoop) {
  write_makefile("\t@echo spin; while :; do :; done\n");
  const RunResult r = run_job({"-c", "1", "-t", "20"});
  EXPECT_EQ(r.exit_code, 0);
  // SIGXCPU at the soft limit: make reports the recipe's death.
  EXPECT_EQ(r.out.rfind("Autodriver: Job exited with status 2\nspin\n", 0), 0u) << r.out;
  EXPECT_LT(r.seconds, 19);  // before the 20 s timeout; 1 CPU-second on a busy machine takes longer
}

TEST_F(AutodriverBinary, MemoryLimitWithoutCgroupIsAnAddressSpaceLimit) {
  write_makefile("\t@tail /dev/zero\n");
  const RunResult r = run_job({"-m", "33554432", "-t", "20"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.rfind("Autodriver: Job exited with status 2\n", 0), 0u) << r.out;
  EXPECT_NE(r.out.find("memory"), std::string::npos) << r.out;  // tail: memory exhausted
}

TEST_F(AutodriverBinary, OomCounterGrowthGivesTheOutOfMemoryLine) {
  // A stand-in for the cgroup file, bumped by the job itself.
  const fs::path events = base_ / "oom_events";
  write_file(events, "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n");
  write_makefile("\t@printf 'oom_kill_disable 0\\nunder_oom 0\\noom_kill 1\\n' > " +
                 events.string() + "; echo ran\n");
  if (geteuid() == 0) {
    ASSERT_EQ(lchown(events.c_str(), kNobody, kNobody), 0);
  }
  const RunResult r = run_job({"-m", "67108864", "-M", events.string()});
  EXPECT_EQ(r.out,
            std::string(kExited0) + "Autodriver: Job killed: out of memory (limit 64 MB)\nran\n");
}

TEST_F(AutodriverBinary, InputDirIsCopiedIntoTheJobDirectory) {
  const fs::path in = base_ / "in";
  fs::create_directory(in);
  write_file(in / "Makefile", "all:\n\t@cat data.txt; ls\n");
  write_file(in / "data.txt", "from input\n");
  fs::create_symlink("/etc/shadow", in / "link");
  if (geteuid() == 0) {
    for (const auto& p : {in, in / "Makefile", in / "data.txt", in / "link"}) {
      ASSERT_EQ(lchown(p.c_str(), kNobody, kNobody), 0);
    }
  }
  const RunResult r = run_job({"-I", in.string()});
  EXPECT_EQ(r.out, std::string(kExited0) + "from input\nMakefile\ndata.txt\nlink\n");
  EXPECT_TRUE(fs::is_symlink(job_ / "link"));  // copied as a link, never followed
}

TEST_F(AutodriverBinary, PartialFileGetsTheHeadWhileRunning) {
  const fs::path partial = base_ / "partial";
  // The job itself reads the partial file back: that it sees the head
  // proves the file is written while the job runs, not at the end.
  // It waits (bounded) for the head to appear rather than a fixed time.
  write_makefile("\t@echo 0123456789abcdefghij; for i in $$(seq 100); do [ -s " + partial.string() +
                 " ] && break; sleep 0.1; done; cat " + partial.string() + "\n");
  write_file(partial, "");
  if (geteuid() == 0) {
    ASSERT_EQ(lchown(partial.c_str(), kNobody, kNobody), 0);
  }
  const RunResult r = run_job({"-o", "24", "-P", partial.string()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            std::string(kExited0) + "0123456789ab\n...[excess bytes elided]...\n" + "0123456789ab");
  std::ifstream in(partial, std::ios::binary);
  EXPECT_EQ(std::string(std::istreambuf_iterator<char>(in), {}), "0123456789ab");
}

TEST_F(AutodriverBinary, FramedStdoutCarriesTheHeadLiveThenTheResult) {
  // The job waits for a file the test makes only once the head's frame is
  // on stdout: it ends in time only if that frame came while it ran.
  const fs::path go = base_ / "go";
  write_makefile("\t@echo 0123456789abcdefghij; while [ ! -e " + go.string() +
                 " ]; do sleep 0.05; done; echo after\n");
  give_to_nobody();
  RunMode mode;
  mode.on_stdout = [&](const std::string& out) {
    if (out == "P 12\n0123456789ab") write_file(go, "");
  };
  const RunResult r = run_autodriver({"-F", "-t", "10", "-o", "24", job_.string()}, mode);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const std::string result =
      std::string(kExited0) + "0123456789ab\n...[excess bytes elided]...\nfghij\nafter\n";
  EXPECT_EQ(r.out, "P 12\n0123456789ab" + ("O " + std::to_string(result.size()) + "\n") + result);
}

TEST_F(AutodriverBinary, AStalledStdoutReaderDoesNotDelayTheTimeout) {
  // 400 kB of head is far more than the stdout pipe holds; the test reads
  // none of it for 10 s. The job must still be killed at its 2 s timeout,
  // and every frame must arrive whole once the reader comes back.
  write_makefile("\t@head -c 400000 /dev/zero | tr '\\0' a; sleep 30\n");
  give_to_nobody();
  RunMode mode;
  mode.stdout_delay = std::chrono::seconds(10);
  const RunResult r = run_autodriver({"-F", "-R", "-t", "2", "-o", "1000000", job_.string()}, mode);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  const auto usage = parse_usage_line(r.err);
  ASSERT_TRUE(usage) << r.err;
  EXPECT_LT(std::stoll(usage->at("wall_ms")), 8000);  // not held until the reader came back
  // Unframe: the P bytes, then the result.
  std::string partial, result;
  std::string_view rest = r.out;
  while (!rest.empty()) {
    const auto nl = rest.find('\n');
    ASSERT_NE(nl, std::string_view::npos) << "a frame without a header";
    const char kind = rest[0];
    const std::size_t n = std::stoull(std::string(rest.substr(2, nl - 2)));
    ASSERT_LE(nl + 1 + n, rest.size()) << "a frame cut short";
    (kind == 'P' ? partial : result).append(rest.substr(nl + 1, n));
    rest.remove_prefix(nl + 1 + n);
  }
  // Compared whole, reported by size: 400 kB do not belong in a log.
  EXPECT_TRUE(partial == std::string(400000, 'a')) << partial.size() << " partial bytes";
  const std::string expected =
      "Autodriver: Job timed out after 2 seconds\n" + std::string(400000, 'a');
  EXPECT_TRUE(result == expected) << result.size() << " result bytes: " << result.substr(0, 60);
}

TEST_F(AutodriverBinary, MakeKilledBySignalReportsLikeAShell) {
  write_makefile("\t@kill -9 $$PPID\n");
  const RunResult r = run_job({});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out, "Autodriver: Job exited with status 137\n");
}

TEST_F(AutodriverBinary, EndlessOutputIsBoundedAndTimesOut) {
  write_makefile("\t@yes\n");
  const RunResult r = run_job({"-t", "1", "-o", "1000", "-R"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_LT(r.seconds, 8);
  std::string half;
  for (int i = 0; i < 250; ++i) half += "y\n";
  EXPECT_EQ(r.out, "Autodriver: Job timed out after 1 seconds\n" + half +
                       "\n...[excess bytes elided]...\n" + half);
  const auto usage = parse_usage_line(r.err);
  ASSERT_TRUE(usage) << r.err;
  EXPECT_GT(std::stoull(usage->at("output_bytes")), 100000u);
}

TEST_F(AutodriverBinary, UsageReportGoesToStderrAsJson) {
  write_makefile("\t@i=0; while [ $$i -lt 100000 ]; do i=$$((i+1)); done; echo $$i; exit 3\n");
  const RunResult r = run_job({"-R"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out.find("TANGO_USAGE"), std::string::npos);
  const auto usage = parse_usage_line(r.err);
  ASSERT_TRUE(usage) << r.err;
  const auto& u = *usage;
  EXPECT_GT(std::stoll(u.at("user_ms")) + std::stoll(u.at("sys_ms")), 0) << "no CPU time";
  EXPECT_GT(std::stoll(u.at("max_rss_kb")), 0);
  EXPECT_EQ(u.at("exit_status"), "2");  // make reports the recipe's failure as 2
  EXPECT_EQ(u.at("signal"), "0");
  EXPECT_EQ(u.at("timed_out"), "false");
  const std::size_t header = std::strlen("Autodriver: Job exited with status 2\n");
  EXPECT_EQ(std::stoull(u.at("output_bytes")), r.out.size() - header);
}

TEST_F(AutodriverBinary, UsageReportOnTimeout) {
  write_makefile("\t@sleep 30\n");
  const RunResult r = run_job({"-R", "-t", "1"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("\"exit_status\":137,\"signal\":9,\"timed_out\":true"), std::string::npos)
      << r.err;
}

TEST_F(AutodriverBinary, StdinJobBringsItsFilesAndFlags) {
  const fs::path dir = base_ / "streamed";  // -S creates it
  if (geteuid() == 0) {
    ASSERT_EQ(lchown(base_.c_str(), kNobody, kNobody), 0);
  }
  const std::string tar = make_tar({
      {"args", nul_separated({"-t", "5", "-o", "100000"}), {}},
      {"job/Makefile", "all:\n\t@cat data.txt; ls; sleep 30\n", {}},
      {"job/data.txt", "from stdin\n", {}},
  });
  RunMode mode;
  mode.stdin_data = tar;
  const RunResult r = run_autodriver({"-S", "-R", dir.string()}, mode);
  // The timeout came with the stream: -t 5 ended the sleep.
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.out.find("from stdin\nMakefile\ndata.txt\n"), std::string::npos) << r.out;
  EXPECT_LT(r.seconds, 20);
  EXPECT_NE(r.err.find("TANGO_USAGE"), std::string::npos) << r.err;
  EXPECT_EQ(fs::status(dir).permissions() & fs::perms::all, fs::perms::owner_all);
}

TEST_F(AutodriverBinary, StdinJobRefusesEntriesThatAreNotPlainFiles) {
  if (geteuid() == 0) {
    ASSERT_EQ(lchown(base_.c_str(), kNobody, kNobody), 0);
  }
  const std::vector<std::vector<TarItem>> cases = {
      {{"job/../escaped", "x", {}}},
      {{"job/sub/file", "x", {}}},
      {{"job/link", "", std::string("/etc/passwd")}},
      {{"elsewhere", "x", {}}},
      {{"job/Makefile", "a", {}}, {"job/Makefile", "b", {}}},
      {{"args", "-S", {}}},  // not NUL-terminated
      {{"args", nul_separated({"-x"}), {}}},
  };
  int n = 0;
  for (const auto& items : cases) {
    const fs::path dir = base_ / ("d" + std::to_string(n++));
    RunMode mode;
    mode.stdin_data = make_tar(items);
    const RunResult r = run_autodriver({"-S", dir.string()}, mode);
    EXPECT_NE(r.exit_code, 0) << items[0].name << ": " << r.out;
    EXPECT_EQ(r.out, "") << items[0].name;
    EXPECT_EQ(r.err.rfind("autodriver: ", 0), 0u) << r.err;
  }
  EXPECT_FALSE(fs::exists(base_ / "escaped"));
  // Not a tar at all.
  RunMode garbage;
  garbage.stdin_data = "this is not a tar stream";
  const RunResult r = run_autodriver({"-S", (base_ / "g").string()}, garbage);
  EXPECT_EQ(r.exit_code, 1) << r.err;
}

TEST_F(AutodriverBinary, StdinJobTakesAnEmptyDirectoryOfItsOwnAndNoOther) {
  // The local VMMS's warm sandbox hands over its job directory made (a tmpfs).
  const fs::path empty = base_ / "empty", full = base_ / "full", foreign = base_ / "foreign";
  for (const auto& d : {empty, full, foreign}) fs::create_directory(d);
  write_file(full / "stale", "x");
  if (geteuid() == 0) {
    for (const auto& p : {base_, empty, full, full / "stale"})
      ASSERT_EQ(lchown(p.c_str(), kNobody, kNobody), 0);
  }
  RunMode mode;
  mode.stdin_data =
      make_tar({{"args", nul_separated({}), {}}, {"job/Makefile", "all:\n\t@ls -A\n", {}}});
  const RunResult r = run_autodriver({"-S", empty.string()}, mode);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, std::string(kExited0) + "Makefile\n");
  std::vector<fs::path> refusedDirs{full};
  if (geteuid() == 0) refusedDirs.push_back(foreign);  // root's, not the autodriver's
  for (const auto& d : refusedDirs) {
    const RunResult refused = run_autodriver({"-S", d.string()}, mode);
    EXPECT_NE(refused.exit_code, 0) << d;
    EXPECT_EQ(refused.out, "") << d;
    EXPECT_NE(refused.err.find("is not an empty directory of ours"), std::string::npos)
        << refused.err;
  }
  EXPECT_TRUE(fs::exists(full / "stale"));
}

TEST_F(AutodriverBinary, StdinJobWithoutItsFlagsIsNoJob) {
  if (geteuid() == 0) {
    ASSERT_EQ(lchown(base_.c_str(), kNobody, kNobody), 0);
  }
  // The service went away before the job: stdin ends with nothing, or a
  // stream without `args` arrives. Neither runs anything.
  for (const std::string& data :
       {std::string(), make_tar({{"job/Makefile", "all:\n\t@echo ran\n", {}}})}) {
    RunMode mode;
    mode.stdin_data = data;
    const fs::path dir = base_ / ("n" + std::to_string(data.size()));
    const RunResult r = run_autodriver({"-S", dir.string()}, mode);
    EXPECT_NE(r.exit_code, 0) << r.err;
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind("autodriver: ", 0), 0u) << r.err;
  }
}

TEST_F(AutodriverBinary, CgroupCounterGrowthIsInTheUsageReport) {
  // Stand-ins for memory.events and pids.events, bumped by the job itself.
  const fs::path mem = base_ / "memory.events", pids = base_ / "pids.events";
  write_file(mem, "low 0\nhigh 0\nmax 0\noom 0\noom_kill 2\n");
  write_file(pids, "max 5\n");
  if (geteuid() == 0) {
    ASSERT_EQ(lchown(mem.c_str(), kNobody, kNobody), 0);
    ASSERT_EQ(lchown(pids.c_str(), kNobody, kNobody), 0);
  }
  // memory.events' own "max" (the limit was reached) is not a pids event.
  write_makefile("\t@printf 'max 50\\noom_kill 3\\n' > " + mem.string() + "; printf 'max 9\\n' > " +
                 pids.string() + "\n");
  const RunResult r =
      run_job({"-R", "-E", mem.string(), "-E", pids.string(), "-E", (base_ / "none").string()});
  EXPECT_EQ(r.out, kExited0);
  EXPECT_NE(r.err.find("\"output_bytes\":0,\"oom_kills\":1,\"pids_max\":4}"), std::string::npos)
      << r.err;
}

TEST_F(AutodriverBinary, UsageErrors) {
  write_file(base_ / "plain_file", "x");
  const std::vector<std::vector<std::string>> cases = {
      {},
      {"-x", job_.string()},
      {"-t", "abc", job_.string()},
      {"-t", "-1", job_.string()},
      {"-o", "12x", job_.string()},
      {job_.string(), "-u"},
      {(base_ / "does_not_exist").string()},
      {(base_ / "plain_file").string()},
  };
  for (const auto& args : cases) {
    const RunResult r = run_autodriver(args);
    EXPECT_EQ(r.exit_code, 1) << ::testing::PrintToString(args);
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err.rfind("autodriver: ", 0), 0u) << r.err;
  }
}

// ---- root mode ----------------------------------------------------------

class AutodriverRootMode : public AutodriverBinary {
 protected:
  void SetUp() override {
    if (geteuid() != 0) GTEST_SKIP() << "root mode needs root";
    AutodriverBinary::SetUp();
    home_ = base_ / "home";
    fs::create_directory(home_);
    passwd_ = base_ / "passwd";
    write_file(passwd_, "root:x:0:0:root:/root:/bin/sh\ngrader:x:65534:65534::" + home_.string() +
                            ":/bin/sh\n");
  }
  RunResult run_as_root(std::vector<std::string> flags, const fs::path& dir) {
    flags.push_back(dir.string());
    return run_autodriver(flags, RunMode{false, passwd_});
  }

  fs::path home_;
  fs::path passwd_;
};

TEST_F(AutodriverRootMode, UnknownUserIsAnOsError) {
  write_makefile("\t@echo never\n");
  const RunResult r = run_autodriver({"-U", "no_such_user_xyz", job_.string()}, {false, {}});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("autodriver: grading user 'no_such_user_xyz' not found"), std::string::npos)
      << r.err;
  EXPECT_TRUE(fs::exists(job_ / "Makefile"));
}

TEST_F(AutodriverRootMode, MissingHomeIsAnOsError) {
  // Debian's nobody has home /nonexistent: the move cannot succeed.
  write_makefile("\t@echo never\n");
  const RunResult r = run_autodriver({"-U", "nobody", job_.string()}, {false, {}});
  EXPECT_EQ(r.exit_code, 3);
  EXPECT_EQ(r.err.rfind("autodriver: ", 0), 0u) << r.err;
  EXPECT_TRUE(fs::exists(job_ / "Makefile"));
}

TEST_F(AutodriverRootMode, MovesChownsDropsAndCleansUp) {
  write_file(base_ / "outside", "precious");
  fs::create_symlink(base_ / "outside", job_ / "link");
  write_makefile(
      "\t@id -u; id -g; id -G; pwd; stat -c %u link; echo $$HOME\n"
      "\t@ln -s " +
      base_.string() + " escape; mkdir -p d/e; chmod 0 d\n");
  const RunResult r = run_as_root({"-U", "grader"}, job_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, std::string(kExited0) + "65534\n65534\n65534\n" + (home_ / "job").string() +
                       "\n65534\n" + home_.string() + "\n");
  EXPECT_FALSE(fs::exists(job_));    // moved away...
  EXPECT_TRUE(fs::is_empty(home_));  // ...and deleted after the job
  struct stat st {};
  ASSERT_EQ(stat((base_ / "outside").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 0u);          // chown did not follow the link
  EXPECT_TRUE(fs::exists(passwd_));  // cleanup did not follow `escape`
}

TEST_F(AutodriverRootMode, NumericUidAndLeftoverFromEarlierJob) {
  fs::create_directories(home_ / "job/stale");
  write_makefile("\t@ls\n");
  const RunResult r = run_as_root({"-U", "65534"}, job_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, std::string(kExited0) + "Makefile\n");
  EXPECT_TRUE(fs::is_empty(home_));
}

// -J (the local VMMS): the job runs as that uid in DIR itself, handed to
// it whatever /etc/passwd says, with no capability left; DIR stays.
TEST_F(AutodriverRootMode, JobUidRunsInPlaceWithNoCapabilities) {
  write_file(job_ / "input", "x");
  write_makefile(
      "\t@id -u; id -g; id -G; pwd; stat -c %u . input\n"
      "\t@grep -E '^Cap(Inh|Prm|Eff|Amb)' /proc/self/status\n");
  const RunResult r = run_as_root({"-J", "54321"}, job_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, std::string(kExited0) + "54321\n54321\n54321\n" + job_.string() +
                       "\n54321\n54321\nCapInh:\t0000000000000000\nCapPrm:\t0000000000000000\n"
                       "CapEff:\t0000000000000000\nCapAmb:\t0000000000000000\n");
  EXPECT_TRUE(fs::exists(job_ / "input"));
}

TEST_F(AutodriverBinary, JobUidNeedsRoot) {
  write_makefile("\t@echo never\n");
  const RunResult r = run_autodriver({"-J", "54321", job_.string()});  // as nobody
  EXPECT_EQ(r.exit_code, 1) << r.err;                                  // a usage error
  EXPECT_NE(r.err.find("-J needs the autodriver to start as uid 0"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
}

TEST_F(AutodriverRootMode, CopiesAcrossFilesystems) {
  const fs::path shm_job = fs::path("/dev/shm") / (base_.filename().string() + "-job");
  struct stat tmp_st {
  }, shm_st{};
  if (stat("/dev/shm", &shm_st) != 0 || stat(base_.c_str(), &tmp_st) != 0 ||
      tmp_st.st_dev == shm_st.st_dev) {
    GTEST_SKIP() << "/dev/shm is not a separate filesystem here";
  }
  fs::create_directory(shm_job);
  write_file(shm_job / "Makefile", "all:\n\t@cat data; pwd\n");
  write_file(shm_job / "data", "payload\n");
  const RunResult r = run_as_root({"-U", "grader"}, shm_job);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out,
            std::string(kExited0) + "payload\n" + (home_ / shm_job.filename()).string() + "\n");
  EXPECT_FALSE(fs::exists(shm_job));
  EXPECT_TRUE(fs::is_empty(home_));
  fs::remove_all(shm_job);
}

TEST_F(AutodriverRootMode, JobKilledAndCleanedAfterTimeout) {
  const std::string marker = unique_marker();
  write_makefile("\t@setsid sh -c 'sleep " + marker + " &'; yes > big_file & sleep 30\n");
  const RunResult r = run_as_root({"-U", "grader", "-t", "1", "-f", "1000000"}, job_);
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.out, "Autodriver: Job timed out after 1 seconds\n");
  expect_no_survivors(marker);
  EXPECT_TRUE(fs::is_empty(home_));
}

}  // namespace
