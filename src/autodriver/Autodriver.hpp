#pragma once

namespace tango::autodriver {

// Exit codes of the autodriver, part of Tango's contract.
inline constexpr int kExitOk = 0;       // the job ran; make's status is in the output
inline constexpr int kExitUsage = 1;    // bad command line
inline constexpr int kExitTimeout = 2;  // the job hit the -t limit
inline constexpr int kExitOsError = 3;  // setup/cleanup failed: the VM is damaged

// The whole program: parse arguments, prepare the job directory, run make,
// print the status line and the output. Returns the process exit code.
int main(int argc, char** argv);

}  // namespace tango::autodriver
