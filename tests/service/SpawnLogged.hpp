#pragma once
// Starts a program of the tests (tangod, the CLI, the EC2 double) with its
// stdout and stderr in files. Everything the child needs is made before
// fork: the test process has threads, and a lock one of them held at the
// fork (the allocator's, under ASan too) would hang a child that allocates
// before exec, with nothing in its log.
#include <fcntl.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace tango::test {

struct SpawnLoggedOptions {
  std::filesystem::path out;  // stdout (truncated)
  std::filesystem::path err;  // stderr; empty: with stdout
  // SIGKILL the child when the thread that started it ends.
  bool dieWithParent = false;
  std::vector<std::string> extraEnv;  // "NAME=value", added to ours
};

inline pid_t spawnLogged(const std::vector<std::string>& args, const SpawnLoggedOptions& o) {
  std::vector<std::string> argStore = args;
  std::vector<char*> argv;
  for (auto& a : argStore) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::vector<std::string> envStore(o.extraEnv);
  for (char** e = environ; *e; ++e) envStore.emplace_back(*e);
  std::vector<char*> envp;
  for (auto& e : envStore) envp.push_back(e.data());
  envp.push_back(nullptr);
  const int out = ::open(o.out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  const int err =
      o.err.empty() ? -1 : ::open(o.err.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (out < 0 || (!o.err.empty() && err < 0)) {
    if (out >= 0) ::close(out);
    if (err >= 0) ::close(err);
    throw std::runtime_error("cannot open the log of " + args.at(0));
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (o.dieWithParent) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (::getppid() != parent) ::_exit(127);
    }
    ::dup2(out, 1);
    ::dup2(err >= 0 ? err : out, 2);
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(out);
  if (err >= 0) ::close(err);
  if (pid < 0) throw std::runtime_error("fork failed");
  return pid;
}

}  // namespace tango::test
