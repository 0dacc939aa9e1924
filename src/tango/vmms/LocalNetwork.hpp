#pragma once
// The network of a `local` job that asks for one ("disable_network": false).
//
// The sandbox always has a network namespace of its own (bwrap
// --unshare-net): the host's loopback services and abstract unix sockets
// belong to the host's namespace and are out of reach. With the network on,
// slirp4netns (Debian's user-mode TCP/IP stack) connects that namespace to
// the outside: the job's packets become connections that slirp4netns opens
// from the host, as any client of the host would, and 10.0.2.2, slirp's
// alias for the host's loopback, refuses (--disable-host-loopback). Nothing
// outside can connect in.
//
// The order of a run: bwrap reports its child's pid on --info-fd and waits
// on --block-fd before anything of the job runs; slirp4netns joins that
// child's network namespace, brings tap0 up and writes to its ready fd; only
// then is the sandbox let go. Closing the exit fd ends slirp4netns.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "tango/util/Fd.hpp"
#include "tango/util/Process.hpp"

namespace tango {

// slirp4netns's path, or empty when it is not installed.
std::filesystem::path findSlirp4netns();

// /etc/resolv.conf for a sandbox with the network on: slirp4netns's DNS
// forwarder (10.0.2.3), which asks the host's own resolvers.
inline constexpr const char* kSandboxResolvConf = "nameserver 10.0.2.3\n";

class SandboxNetwork {
 public:
  // Makes the pipes; throws std::system_error.
  SandboxNetwork();
  ~SandboxNetwork() { stop(); }
  SandboxNetwork(const SandboxNetwork&) = delete;
  SandboxNetwork& operator=(const SandboxNetwork&) = delete;

  // bwrap's flags for this network, and the fds bwrap must inherit.
  std::vector<std::string> bwrapArgs() const;
  std::vector<int> childFds() const;

  // Once bwrap runs: starts slirp4netns in its child's network namespace and
  // lets the sandbox go on when tap0 is up. Empty on success; else what
  // failed, and the caller kills the sandbox (it never got past the block).
  std::string connect(const std::filesystem::path& slirp4netns, SteadyClock::time_point deadline);

  // Ends slirp4netns (idempotent): the job is over.
  void stop();

 private:
  Fd infoRead_, infoWrite_;    // bwrap -> us: {"child-pid": N}
  Fd blockRead_, blockWrite_;  // us -> bwrap: go on
  Fd exitRead_, exitWrite_;    // us -> slirp4netns: closed when the job ends
  std::optional<Process> slirp_;
};

}  // namespace tango
