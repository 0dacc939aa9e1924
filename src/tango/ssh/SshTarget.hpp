#pragma once
// Where a machine is and how the service logs in to it.
#include <filesystem>
#include <string>

namespace tango::ssh {

struct Target {
  std::string address;  // host name or IP address
  int port = 22;
  std::string user;               // the account the service logs in as
  std::filesystem::path keyFile;  // its private key (0600, the service's)
  std::string shown() const { return user + "@" + address + ":" + std::to_string(port); }
};

// A user name, host name or address that is safe on an ssh command line and
// in a remote shell: no option-looking leading '-', no shell syntax.
bool isSafeUser(const std::string& s);
bool isSafeAddress(const std::string& s);

}  // namespace tango::ssh
