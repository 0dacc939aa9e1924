#include "tango/core/OutputFile.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "autodriver/Wire.hpp"
#include "tango/model/Job.hpp"
#include "tango/util/Durable.hpp"

namespace tango {

namespace {
struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

bool writeAll(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

// "Received job <name>:<id>" from the header's first line: the same for
// every run of one job, whatever its time stamp.
std::string jobLine(std::string_view text) {
  text = text.substr(0, text.find('\n'));
  const auto at = text.find("]: ");
  return at == std::string_view::npos ? std::string() : std::string(text.substr(at + 3));
}
}  // namespace

std::string autograderLine(const std::string& message) {
  return "Autograder [" + ctimeString(nowSeconds()) + "]: " + message + "\n";
}

PreparedOutput prepareOutputFile(const std::filesystem::path& dest, const std::string& header,
                                 const std::optional<std::filesystem::path>& body) {
  // The temporary lives in the destination directory so rename() is atomic;
  // its leading dot and random suffix keep it out of the way of client names.
  std::string tmpl = (dest.parent_path() / ("." + dest.filename().string() + ".XXXXXX")).string();
  Fd out(::mkostemp(tmpl.data(), O_CLOEXEC));
  if (out.fd < 0)
    return {dest, {}, "cannot create output file: " + std::string(std::strerror(errno))};
  auto fail = [&](const std::string& why) {
    ::unlink(tmpl.c_str());
    return PreparedOutput(dest, {}, why);
  };
  ::fchmod(out.fd, 0600);  // students' results: the service's alone
  if (!writeAll(out.fd, header.data(), header.size())) return fail("cannot write output file");
  if (body) {
    Fd in(::open(body->c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (in.fd < 0) return fail("cannot read job output: " + std::string(std::strerror(errno)));
    char buf[65536];
    for (;;) {
      ssize_t r = ::read(in.fd, buf, sizeof buf);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return fail("cannot read job output");
      if (r == 0) break;
      if (!writeAll(out.fd, buf, static_cast<std::size_t>(r)))
        return fail("cannot write output file");
    }
  }
  // On disk before it is published: a published output is what the job's
  // record and its callback stand on.
  if (auto err = syncFd(out.fd, "cannot write output file"); !err.empty()) return fail(err);
  return {dest, tmpl, "", jobLine(header)};
}

PreparedOutput::PreparedOutput(PreparedOutput&& o) noexcept
    : dest_(std::move(o.dest_)),
      tmp_(std::move(o.tmp_)),
      error_(std::move(o.error_)),
      ours_(std::move(o.ours_)) {
  o.tmp_.clear();
}

PreparedOutput::~PreparedOutput() {
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
}

std::string PreparedOutput::keepCopy(const std::filesystem::path& at) const {
  if (!error_.empty()) return error_;
  if (tmp_.empty()) return "output file already published";
  ::unlink(at.c_str());
  if (::link(tmp_.c_str(), at.c_str()) != 0)
    return "cannot keep a copy of the output for the callback: " +
           std::string(std::strerror(errno));
  return "";
}

std::filesystem::path callbackCopyPath(const std::filesystem::path& dest, std::int64_t jobId) {
  return dest.parent_path() / (".callback-" + std::to_string(jobId));
}

std::string PreparedOutput::publish() {
  if (!error_.empty()) return error_;
  if (tmp_.empty()) return "output file already published";
  // link() never replaces: a file already there is looked at first.
  if (::link(tmp_.c_str(), dest_.c_str()) == 0) {
    ::unlink(tmp_.c_str());
    tmp_.clear();
    return syncDir(dest_.parent_path());
  }
  if (errno == EEXIST) {
    // Another run of this very job (a node that lost its lease, a run before
    // a crash) published first: its output stands, so a stale node never
    // replaces the output of the node that holds the job now. Another
    // job's file of the same name (a regrade) is replaced, as in Tango.
    Fd in(::open(dest_.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    char buf[4096];
    const ssize_t n = in.fd < 0 ? -1 : ::read(in.fd, buf, sizeof buf);
    const std::string theirs =
        n > 0 ? jobLine(std::string_view(buf, static_cast<std::size_t>(n))) : std::string();
    if (!theirs.empty() && theirs == ours_) return "";  // the destructor removes ours
  }
  if (::rename(tmp_.c_str(), dest_.c_str()) != 0) {
    std::string why = "cannot move output file into place: " + std::string(std::strerror(errno));
    return why;  // the destructor removes the temporary
  }
  tmp_.clear();
  return syncDir(dest_.parent_path());
}

std::optional<PublishedOutcome> publishedOutcome(const std::filesystem::path& dest,
                                                 const std::string& name, std::int64_t id) {
  Fd in(::open(dest.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (in.fd < 0) return std::nullopt;
  char buf[8192];
  const ssize_t n = ::read(in.fd, buf, sizeof buf);
  if (n <= 0) return std::nullopt;
  const std::string_view text(buf, static_cast<std::size_t>(n));
  if (jobLine(text) != "Received job " + name + ":" + std::to_string(id)) return std::nullopt;
  // The second header line is the run's message (Worker.cpp, runMessage).
  PublishedOutcome p{JobOutcome::InternalError, jobLine(text.substr(text.find('\n') + 1))};
  if (p.message.starts_with("Error: Job timed out")) {
    p.outcome = JobOutcome::Timeout;
  } else if (p.message.starts_with("Error: Job cancelled")) {
    p.outcome = JobOutcome::Cancelled;
  } else if (p.message == "Success: Autodriver returned normally") {
    // make's status: the autodriver's first line, after the header's "---".
    const auto body = text.find("\n---\n");
    const std::string_view first =
        body == std::string_view::npos
            ? std::string_view()
            : text.substr(body + 5, text.find('\n', body + 5) - body - 5);
    if (first.starts_with(autodriver::wire::kExitedLine))
      p.outcome = first.substr(autodriver::wire::kExitedLine.size()) == "0"
                      ? JobOutcome::Success
                      : JobOutcome::MakeFailed;
  }
  return p;
}

std::string writeOutputFile(const std::filesystem::path& dest, const std::string& header,
                            const std::optional<std::filesystem::path>& body) {
  return prepareOutputFile(dest, header, body).publish();
}

}  // namespace tango
