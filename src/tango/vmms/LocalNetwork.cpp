#include "tango/vmms/LocalNetwork.hpp"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <csignal>
#include <system_error>

namespace tango {
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

// Reads from `fd` until `done(text)` holds, EOF, or the deadline. False
// unless `done` held.
template <class Done>
bool readUntil(int fd, std::string& text, SteadyClock::time_point deadline, Done done) {
  while (!done(text)) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - SteadyClock::now());
    if (left <= 0ms) return false;
    pollfd p{fd, POLLIN, 0};
    const int r = ::poll(&p, 1, static_cast<int>(left.count()));
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    char buf[256];
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    if (text.size() < 4096) text.append(buf, static_cast<std::size_t>(n));
  }
  return true;
}

// bwrap's info: {\n    "child-pid": 1234\n}
std::optional<pid_t> childPid(const std::string& info) {
  const auto key = info.find("\"child-pid\"");
  if (key == std::string::npos) return std::nullopt;
  auto at = info.find_first_of("0123456789", key);
  if (at == std::string::npos) return std::nullopt;
  pid_t pid = 0;
  const auto [end, ec] = std::from_chars(info.data() + at, info.data() + info.size(), pid);
  if (ec != std::errc() || pid <= 1 || end == info.data() + info.size()) return std::nullopt;
  return pid;
}

}  // namespace

fs::path findSlirp4netns() {
  for (const char* p : {"/usr/bin/slirp4netns", "/usr/local/bin/slirp4netns", "/bin/slirp4netns"})
    if (::access(p, X_OK) == 0) return p;
  return {};
}

SandboxNetwork::SandboxNetwork() {
  makePipe(infoRead_, infoWrite_);
  makePipe(blockRead_, blockWrite_);
  makePipe(exitRead_, exitWrite_);
}

std::vector<std::string> SandboxNetwork::bwrapArgs() const {
  return {"--info-fd", std::to_string(infoWrite_.get()), "--block-fd",
          std::to_string(blockRead_.get())};
}

std::vector<int> SandboxNetwork::childFds() const { return {infoWrite_.get(), blockRead_.get()}; }

std::string SandboxNetwork::connect(const fs::path& slirp4netns, SteadyClock::time_point deadline) {
  // bwrap holds its ends now; ours would keep the pipes from ever ending.
  infoWrite_.reset();
  blockRead_.reset();
  if (slirp4netns.empty())
    return "the job asked for the network, and slirp4netns, which gives a sandbox its network, "
           "is not installed (apt-get install slirp4netns)";
  std::string info;
  if (!readUntil(infoRead_.get(), info, deadline,
                 [](const std::string& t) { return t.find('}') != std::string::npos; }))
    return "the sandbox did not report its process (bwrap --info-fd)";
  const auto pid = childPid(info);
  if (!pid) return "the sandbox reported no process id (bwrap --info-fd)";

  Fd readyRead, readyWrite;
  makePipe(readyRead, readyWrite);
  SpawnOptions opts;
  // As root, which joins the namespace without joining bwrap's user
  // namespace (whose owner cannot open /dev/net/tun on hosts where it is
  // root's alone); --enable-sandbox then leaves it an empty root and no
  // capability beyond binding low ports, --enable-seccomp a syscall filter.
  opts.argv = {slirp4netns.string(),
               "--configure",
               "--mtu=65520",
               "--disable-host-loopback",
               "--enable-sandbox",
               "--enable-seccomp",
               "--ready-fd=" + std::to_string(readyWrite.get()),
               "--exit-fd=" + std::to_string(exitRead_.get()),
               "--netns-type=path",
               "/proc/" + std::to_string(*pid) + "/ns/net",
               "tap0"};
  opts.env = {"PATH=/usr/bin:/bin"};
  opts.inheritFds = {readyWrite.get(), exitRead_.get()};
  opts.discardOutput = true;
  try {
    slirp_.emplace(Process::spawn(opts));
  } catch (const std::system_error& e) {
    return std::string("cannot start slirp4netns: ") + e.what();
  }
  readyWrite.reset();
  exitRead_.reset();
  std::string ready;
  if (!readUntil(readyRead.get(), ready, deadline, [](const std::string& t) { return !t.empty(); }))
    return "slirp4netns could not set up the job's network (is /dev/net/tun there?)";
  if (::write(blockWrite_.get(), "1", 1) != 1) return "the sandbox ended before its network was up";
  blockWrite_.reset();
  return {};
}

void SandboxNetwork::stop() {
  exitWrite_.reset();  // slirp4netns's exit fd reads EOF: it ends
  if (!slirp_) return;
  if (!slirp_->waitExit(SteadyClock::now() + 2s)) slirp_->signal(SIGKILL);
  slirp_->reap();
  slirp_.reset();
}

}  // namespace tango
