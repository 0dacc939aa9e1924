#pragma once

#include <sys/resource.h>
#include <sys/types.h>

#include <functional>
#include <vector>

namespace tango::autodriver {

// Called for every child the autodriver reaps, so the run loop can notice
// when the make process itself is collected.
using ReapCallback = std::function<void(pid_t pid, int status, const struct rusage& usage)>;

// Reaps every child that has already exited (waitpid(-1, WNOHANG) loop).
// Orphans reparent to us (we are a subreaper), so this also collects them.
void reap_exited_children(const ReapCallback& on_reap);

// Every process whose parent chain leads to `ancestor`, found by reading
// /proc/<pid>/stat. Includes zombies (their parents may still be alive).
std::vector<pid_t> find_descendants(pid_t ancestor);

// Kills the whole job: repeatedly finds our descendants, SIGSTOPs all of them
// (so none can fork while we work) and then SIGKILLs them, reaping in
// between, until none are left. Setsid escapers and double-forked daemons
// are included because they reparent to us. Returns false if the tree did
// not empty within a bounded number of rounds (e.g. processes stuck in
// uninterruptible sleep). Never signals anything outside our own subtree.
bool kill_descendants(const ReapCallback& on_reap);

}  // namespace tango::autodriver
