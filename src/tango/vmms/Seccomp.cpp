#include "tango/vmms/Seccomp.hpp"

#include <fcntl.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <mutex>

namespace tango {

namespace {

const std::vector<std::string> kDenied = {
    "bpf",
    "perf_event_open",
    "kexec_load",
    "kexec_file_load",
    "keyctl",
    "add_key",
    "request_key",
    "userfaultfd",
    "mount",
    "umount2",
    "pivot_root",
    "fsopen",
    "fsmount",
    "fsconfig",
    "fspick",
    "move_mount",
    "open_tree",
    "swapon",
    "swapoff",
    "reboot",
    "init_module",
    "finit_module",
    "delete_module",
    "iopl",
    "ioperm",
    "acct",
    "quotactl",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "syslog",
    "lookup_dcookie",
    "open_by_handle_at",
    "setns",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "process_vm_readv",
    "process_vm_writev",
};

struct CtxDeleter {
  void operator()(scmp_filter_ctx ctx) const { seccomp_release(ctx); }
};
using Ctx = std::unique_ptr<void, CtxDeleter>;

std::string failed(const char* what, int rc) {
  return std::string(what) + ": " + std::strerror(-rc);
}

// The program's bytes, or an error. Made once: it never changes.
std::string buildProgram(std::string& program) {
  Ctx ctx(seccomp_init(SCMP_ACT_ALLOW));
  if (!ctx) return "seccomp_init failed";
  // A 32-bit or x32 binary must meet the same rules, not a gap (nor the
  // default bad-arch action, which kills).
  if (seccomp_arch_native() == SCMP_ARCH_X86_64) {
    for (auto arch : {SCMP_ARCH_X86, SCMP_ARCH_X32}) {
      int rc = seccomp_arch_add(ctx.get(), arch);
      if (rc != 0 && rc != -EEXIST) return failed("seccomp_arch_add", rc);
    }
  }
  const auto deny = SCMP_ACT_ERRNO(EPERM);
  for (const auto& name : kDenied) {
    const int nr = seccomp_syscall_resolve_name(name.c_str());
    if (nr == __NR_SCMP_ERROR) continue;  // unknown to this libseccomp: nothing to deny
    // Calls that an architecture lacks (iopl on x32) are skipped by libseccomp.
    if (int rc = seccomp_rule_add(ctx.get(), deny, nr, 0); rc != 0 && rc != -EDOM)
      return failed(("seccomp_rule_add " + name).c_str(), rc);
  }
  for (long request : {static_cast<long>(PTRACE_ATTACH), static_cast<long>(PTRACE_SEIZE)}) {
    if (int rc = seccomp_rule_add(ctx.get(), deny, SCMP_SYS(ptrace), 1,
                                  SCMP_A0(SCMP_CMP_EQ, static_cast<scmp_datum_t>(request)));
        rc != 0)
      return failed("seccomp_rule_add ptrace", rc);
  }
  // The sandbox's user namespace allows no nested one already
  // (user.max_user_namespaces = 0 in it, LocalUserns.hpp); this says EPERM
  // at the call. clone3 passes its flags in memory seccomp cannot read: it
  // stays for threads, and a new user namespace through it meets that limit.
  for (int nr : {SCMP_SYS(unshare), SCMP_SYS(clone)}) {
    if (int rc = seccomp_rule_add(ctx.get(), deny, nr, 1,
                                  SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_NEWUSER, CLONE_NEWUSER));
        rc != 0)
      return failed("seccomp_rule_add unshare/clone", rc);
  }
  int mem = ::memfd_create("tango-seccomp", MFD_CLOEXEC);
  if (mem < 0) return std::string("memfd_create: ") + std::strerror(errno);
  Fd owner(mem);
  if (int rc = seccomp_export_bpf(ctx.get(), mem); rc != 0) return failed("seccomp_export_bpf", rc);
  const off_t size = ::lseek(mem, 0, SEEK_END);
  if (size <= 0) return "seccomp_export_bpf wrote nothing";
  program.resize(static_cast<std::size_t>(size));
  if (::pread(mem, program.data(), program.size(), 0) != size) return "reading the filter back";
  return {};
}

}  // namespace

const std::vector<std::string>& deniedSyscalls() { return kDenied; }

Fd seccompFilterFd(std::string& error) {
  static std::once_flag once;
  static std::string program;
  static std::string buildError;
  std::call_once(once, [] { buildError = buildProgram(program); });
  if (!buildError.empty()) {
    error = "building the seccomp filter: " + buildError;
    return {};
  }
  Fd fd(::memfd_create("tango-seccomp", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!fd || !writeAll(fd.get(), program) || ::lseek(fd.get(), 0, SEEK_SET) != 0) {
    error = std::string("seccomp filter memfd: ") + std::strerror(errno);
    return {};
  }
  // Nothing may change the program between here and bwrap reading it.
  ::fcntl(fd.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
  return fd;
}

}  // namespace tango
