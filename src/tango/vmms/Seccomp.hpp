#pragma once
// The `local` sandbox's seccomp filter: calls a grading job never needs,
// with Docker's default profile as the reference, fail with EPERM. The
// filter is a classic BPF program made once with libseccomp and handed to
// bubblewrap (--seccomp FD), which loads it last, just before it runs the
// autodriver: bwrap's own setup (namespaces, mounts) is not filtered, and
// everything the autodriver and the job do is. Denied calls return EPERM,
// never kill: a job probing them, or a runtime that tries one and falls
// back, keeps running.
//
// Denied: bpf, perf_event_open, kexec_load, kexec_file_load, keyctl,
// add_key, request_key, userfaultfd, mount, umount2, pivot_root, fsopen,
// fsmount, fsconfig, fspick, move_mount, open_tree, swapon, swapoff, reboot,
// init_module, finit_module, delete_module, iopl, ioperm, acct, quotactl,
// settimeofday, clock_settime, clock_adjtime, adjtimex, syslog,
// lookup_dcookie, open_by_handle_at, setns, io_uring_setup, io_uring_enter,
// io_uring_register, process_vm_readv, process_vm_writev, ptrace with
// PTRACE_ATTACH or PTRACE_SEIZE (a debugger's own child, PTRACE_TRACEME,
// still works), and unshare or clone asking for a new user namespace.
// On x86-64 the filter covers the i386 and x32 entry points too.
#include <string>
#include <vector>

#include "tango/util/Fd.hpp"

namespace tango {

// The names of the denied calls (for tests and the README).
const std::vector<std::string>& deniedSyscalls();

// A fresh fd (a sealed memfd at offset 0) holding the filter for bwrap's
// --seccomp. Invalid on failure, with `error` saying why.
Fd seccompFilterFd(std::string& error);

}  // namespace tango
