#include "autodriver/JobRunner.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <optional>

#include "autodriver/Frames.hpp"
#include "autodriver/OsError.hpp"
#include "autodriver/OutputCapture.hpp"
#include "autodriver/ProcessTree.hpp"
#include "autodriver/UniqueFd.hpp"

namespace tango::autodriver {
namespace {

using Clock = std::chrono::steady_clock;

// After make exits and the job is killed, read what is still buffered in
// the pipe for at most this long: a bound, in case a writer survived.
constexpr auto kDrainLimit = std::chrono::milliseconds(100);

// Write end of the SIGCHLD self-pipe, for the signal handler.
volatile sig_atomic_t g_sigchld_fd = -1;

extern "C" void on_sigchld(int) {
  const int saved = errno;
  const char byte = 0;
  [[maybe_unused]] const ssize_t ignored = write(g_sigchld_fd, &byte, 1);
  errno = saved;
}

// Turns SIGCHLD into a readable fd so poll() wakes up the moment make (or a
// reparented orphan) exits, without a race between checking and sleeping.
class SigchldPipe {
 public:
  SigchldPipe() {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) throw_errno("pipe");
    read_.reset(fds[0]);
    write_.reset(fds[1]);
    g_sigchld_fd = write_.get();
    struct sigaction action {};
    action.sa_handler = on_sigchld;
    sigemptyset(&action.sa_mask);
    // NOCLDSTOP: our own SIGSTOPs during the kill must not wake us.
    action.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    if (sigaction(SIGCHLD, &action, &previous_) != 0) throw_errno("sigaction");
  }
  SigchldPipe(const SigchldPipe&) = delete;
  SigchldPipe& operator=(const SigchldPipe&) = delete;
  ~SigchldPipe() {
    sigaction(SIGCHLD, &previous_, nullptr);
    g_sigchld_fd = -1;
  }

  int fd() const { return read_.get(); }
  void clear() const {
    char buf[64];
    while (read(read_.get(), buf, sizeof buf) > 0) {
    }
  }

 private:
  UniqueFd read_;
  UniqueFd write_;
  struct sigaction previous_ {};
};

// Owns the running job: whatever happens in the run loop (even an
// exception), no process of the job outlives it.
class JobGuard {
 public:
  explicit JobGuard(ReapCallback on_reap) : on_reap_(std::move(on_reap)) {}
  JobGuard(const JobGuard&) = delete;
  JobGuard& operator=(const JobGuard&) = delete;
  ~JobGuard() {
    if (armed_) kill_descendants(on_reap_);
  }
  bool kill_all() {
    armed_ = false;
    return kill_descendants(on_reap_);
  }

 private:
  ReapCallback on_reap_;
  bool armed_ = true;
};

// Feeds the capture from the pipe and mirrors the head live: into the
// partial file, and as frames on stdout (-F). A failing mirror is reported
// once and then ignored: it is a convenience for watching a job, not part
// of its result.
//
// Frames are queued and written without blocking, when poll says stdout
// has room: a reader that stops reading must not keep the job from being
// killed at its timeout. The queue holds whole frames, so a short write
// never splits one, and it is bounded by the head (half the cap).
class OutputPump {
 public:
  OutputPump(std::size_t cap, int partial_fd, int frames_fd)
      : capture_(cap), partial_fd_(partial_fd), frames_fd_(frames_fd) {
    if (frames_fd_ < 0) return;
    frames_flags_ = fcntl(frames_fd_, F_GETFL);
    if (frames_flags_ < 0 || fcntl(frames_fd_, F_SETFL, frames_flags_ | O_NONBLOCK) != 0)
      throw_errno("fcntl stdout");
  }
  ~OutputPump() { restore_frames_fd(); }
  OutputPump(const OutputPump&) = delete;
  OutputPump& operator=(const OutputPump&) = delete;

  // One read (not a loop, so a fast writer cannot starve the timeout).
  // Returns false at EOF.
  bool read_once(int fd) {
    const ssize_t n = read(fd, buffer_, sizeof buffer_);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    const std::string_view data(buffer_, static_cast<size_t>(n));
    const std::size_t head = capture_.append(data);
    if (head == 0) return true;
    if (partial_fd_ >= 0 && !write_all(partial_fd_, data.substr(0, head))) {
      std::perror("autodriver: writing partial output file");
      partial_fd_ = -1;
    }
    if (frames_fd_ >= 0) {
      pending_ += frame(kFramePartial, data.substr(0, head));
      write_pending();
    }
    return true;
  }

  // The fd to poll for POLLOUT: stdout while frames wait, else -1.
  int frames_fd_to_poll() const { return pending_.empty() ? -1 : frames_fd_; }

  // Writes what stdout takes now of the queued frames.
  void write_pending() {
    while (frames_fd_ >= 0 && !pending_.empty()) {
      const ssize_t w = write(frames_fd_, pending_.data(), pending_.size());
      if (w < 0 && errno == EINTR) continue;
      if (w < 0 && errno == EAGAIN) return;
      if (w <= 0) {
        std::perror("autodriver: writing partial output frame");
        frames_fd_ = -1;
        pending_.clear();
        return;
      }
      pending_.erase(0, static_cast<size_t>(w));
    }
  }

  // The job is over: stdout blocks again, and the queue goes before the
  // result that follows it.
  void finish() {
    const int fd = frames_fd_;
    restore_frames_fd();
    if (fd >= 0 && !pending_.empty() && !write_all(fd, pending_))
      std::perror("autodriver: writing partial output frame");
    pending_.clear();
  }

  const OutputCapture& capture() const { return capture_; }

 private:
  void restore_frames_fd() {
    if (frames_fd_ >= 0 && frames_flags_ >= 0) fcntl(frames_fd_, F_SETFL, frames_flags_);
    frames_flags_ = -1;
  }

  OutputCapture capture_;
  int partial_fd_;
  int frames_fd_;
  int frames_flags_ = -1;  // stdout's flags before we made it non-blocking
  std::string pending_;    // whole frames not yet written
  char buffer_[65536];
};

int poll_timeout_ms(std::optional<Clock::time_point> deadline) {
  if (!deadline) return -1;
  const auto left = *deadline - Clock::now();
  if (left <= Clock::duration::zero()) return 0;
  // Round up so we never wake just before the deadline and spin.
  return static_cast<int>(std::chrono::ceil<std::chrono::milliseconds>(left).count());
}

std::int64_t to_ms(const struct timeval& tv) {
  return static_cast<std::int64_t>(tv.tv_sec) * 1000 + tv.tv_usec / 1000;
}

}  // namespace

JobResult run_job(const JobSettings& settings) {
  UniqueFd dev_null(open("/dev/null", O_RDONLY | O_CLOEXEC));
  if (!dev_null.valid()) throw_errno("open /dev/null");
  int out_pipe[2];
  if (pipe2(out_pipe, O_CLOEXEC) != 0) throw_errno("pipe");
  UniqueFd out_read(out_pipe[0]);
  UniqueFd out_write(out_pipe[1]);
  // Only our end is non-blocking; the job's writes must block normally.
  if (fcntl(out_read.get(), F_SETFL, O_NONBLOCK) != 0) throw_errno("fcntl");

  SigchldPipe sigchld;  // before fork, so the first SIGCHLD cannot be missed
  SpawnRequest request = settings.spawn;
  request.stdin_fd = dev_null.get();
  request.output_fd = out_write.get();

  JobResult result;
  result.report.timeout_secs = settings.timeout_secs;
  const auto start = Clock::now();
  const pid_t make_pid = spawn_make(request);
  // Without closing our copy of the write end, EOF could never arrive.
  out_write.reset();

  bool make_done = false;
  const ReapCallback on_reap = [&](pid_t pid, int status, const struct rusage&) {
    if (pid != make_pid) return;
    make_done = true;
    record_wait_status(result.report, status);
  };
  JobGuard job(on_reap);
  OutputPump pump(settings.output_cap, settings.partial_fd, settings.frames_fd);

  std::optional<Clock::time_point> deadline;
  if (settings.timeout_secs > 0) deadline = start + std::chrono::seconds(settings.timeout_secs);
  bool pipe_open = true;
  // The job is over when make exits, not at EOF: a daemon it started may
  // hold the pipe open forever.
  while (!make_done) {
    const int wait_ms = poll_timeout_ms(deadline);
    if (wait_ms == 0) {
      result.report.timed_out = true;
      break;
    }
    struct pollfd fds[3] = {{pipe_open ? out_read.get() : -1, POLLIN, 0},
                            {sigchld.fd(), POLLIN, 0},
                            {pump.frames_fd_to_poll(), POLLOUT, 0}};
    if (poll(fds, 3, wait_ms) < 0) {
      if (errno == EINTR) continue;
      throw_errno("poll");
    }
    if (fds[0].revents != 0) pipe_open = pump.read_once(out_read.get());
    if (fds[1].revents != 0) {
      sigchld.clear();
      reap_exited_children(on_reap);
    }
    if (fds[2].revents != 0) pump.write_pending();
  }

  result.all_killed = job.kill_all();
  const auto end = Clock::now();

  // Everything the job wrote before it died is still in the pipe.
  const auto drain_until = Clock::now() + kDrainLimit;
  while (pipe_open) {
    const int wait_ms = poll_timeout_ms(drain_until);
    if (wait_ms == 0) break;
    struct pollfd fd {
      out_read.get(), POLLIN, 0
    };
    const int ready = poll(&fd, 1, wait_ms);
    if (ready < 0 && errno != EINTR) throw_errno("poll");
    if (ready > 0) pipe_open = pump.read_once(out_read.get());
  }
  pump.finish();

  struct rusage usage {};
  getrusage(RUSAGE_CHILDREN, &usage);
  JobReport& report = result.report;
  report.wall_ms = std::chrono::duration_cast<std::chrono::milliseconds>(end - start).count();
  report.user_ms = to_ms(usage.ru_utime);
  report.sys_ms = to_ms(usage.ru_stime);
  report.max_rss_kb = usage.ru_maxrss;
  report.output_bytes = pump.capture().total();
  result.output = pump.capture().render();
  return result;
}

}  // namespace tango::autodriver
