#pragma once

#include <cerrno>
#include <string>
#include <system_error>

namespace tango::autodriver {

// Setup and cleanup failures are reported as exceptions carrying errno; the
// run loop turns any of them into exit code 3 ("the VM is damaged").
[[noreturn]] inline void throw_errno(const std::string& what, int err = errno) {
  throw std::system_error(err, std::generic_category(), what);
}

}  // namespace tango::autodriver
