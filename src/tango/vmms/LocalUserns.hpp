#pragma once
// The user namespace of one `local` run: two host uids, so that the job
// cannot touch the autodriver that watches it.
//
// bwrap alone (--unshare-user, unprivileged) maps a single uid, which the
// autodriver and the job would then share: the job could signal the
// autodriver, or open its /proc/PID/fd and write a forged usage line. So the
// service makes the namespace itself and bwrap joins it (--userns):
//   ns uid 0    = host uid KEEPER: bwrap and the autodriver, which holds
//                 CAP_SETUID, CAP_SETGID, CAP_CHOWN and CAP_KILL in it only;
//   ns uid JOB  = host uid JOB (the VM's uid, the same number inside and
//                 out): make and everything it starts, with no capability.
// The autodriver's drop from uid 0 to JOB clears every capability (the
// kernel's rule for leaving uid 0), and JOB cannot signal, ptrace or open
// the /proc entries of KEEPER's processes.
//
// Only root may write a map of two ranges, and only a process of the
// owner's uid (KEEPER) may join the namespace unprivileged, so a helper made
// by fork drops to KEEPER and unshares it; root writes the maps; the helper
// (uid 0 of its new namespace) sets user.max_user_namespaces there to 0, so
// nothing in the sandbox can make a nested user namespace, through clone3
// either, whose flags seccomp cannot read. The namespace lives as long as
// the returned fd.
#include <sys/types.h>

#include <string>

#include "tango/util/Fd.hpp"

namespace tango {

// An fd of the new user namespace (for bwrap's --userns), or an invalid
// Fd with `error` saying what failed.
Fd makeSandboxUserns(uid_t keeper, uid_t job, std::string& error);

}  // namespace tango
