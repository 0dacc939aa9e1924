#pragma once
// A machine of the test's own on this host, for "the job reaches the outside"
// checks: a network namespace joined to the host by a veth pair in
// 10.213.N.0/30 (the host's side .1, the test host's .2), where socat answers
// "TESTHOST" on port 7777. No traffic leaves the machine. Removed with the
// object, and the name carries the test's pid so a crashed run's leftover is
// recognisable (tango-th-<pid>).
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace tango::test {

class TestHost {
 public:
  TestHost() {
    const std::string pid = std::to_string(::getpid());
    ns_ = "tango-th-" + pid;
    veth_ = "tth" + pid;
    for (int n = static_cast<int>(::getpid() % 200) + 20, tries = 0; tries < 30; ++n, ++tries) {
      const std::string net = "10.213." + std::to_string(n % 250 + 1);
      // A /30 another test (or anything) already uses is skipped.
      if (sh("ip -4 -o addr show to " + net + ".0/30 | grep -q .") == 0) continue;
      address_ = net + ".2";
      if (sh("set -e; ip netns add " + ns_ + "; ip link add " + veth_ +
             " type veth peer name eth0 netns " + ns_ + "; ip addr add " + net + ".1/30 dev " +
             veth_ + "; ip link set " + veth_ + " up; ip -n " + ns_ + " addr add " + address_ +
             "/30 dev eth0; ip -n " + ns_ + " link set eth0 up; ip -n " + ns_ +
             " link set lo up; ip -n " + ns_ + " route add default via " + net + ".1") != 0)
        break;
      if (sh("ip netns exec " + ns_ + " setsid socat TCP-LISTEN:7777,bind=" + address_ +
             ",fork,reuseaddr 'EXEC:/bin/echo TESTHOST' </dev/null >/dev/null 2>&1 &") != 0)
        break;
      for (int i = 0; i < 100; ++i) {
        if (sh("ip netns exec " + ns_ + " ss -Hltn 'sport = :7777' | grep -q .") == 0) return;
        ::usleep(50 * 1000);
      }
      break;
    }
    remove();
    throw std::runtime_error("could not make the test host (ip netns, veth, socat)");
  }
  ~TestHost() { remove(); }
  TestHost(const TestHost&) = delete;
  TestHost& operator=(const TestHost&) = delete;

  const std::string& address() const { return address_; }
  int port() const { return 7777; }

 private:
  static int sh(const std::string& cmd) { return std::system(cmd.c_str()); }
  void remove() {
    sh("ip netns pids " + ns_ + " 2>/dev/null | xargs -r kill -9; ip netns del " + ns_ +
       " 2>/dev/null; ip link del " + veth_ + " 2>/dev/null; true");
  }

  std::string ns_, veth_, address_;
};

}  // namespace tango::test
