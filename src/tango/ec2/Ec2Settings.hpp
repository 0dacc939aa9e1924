#pragma once
// The ec2SSH VMMS's settings, checked once at start-up from Config's text
// values (Tango's EC2 key names), each error naming its key.
#include <filesystem>
#include <string>
#include <vector>

#include "tango/config/Config.hpp"

namespace tango::ec2 {

struct Settings {
  std::string region;         // EC2_REGION
  std::string endpoint;       // EC2_ENDPOINT (the environment's AWS_ENDPOINT_URL* win)
  std::string user;           // EC2_USER_NAME: who the service logs in as
  std::string defaultAmi;     // DEFAULT_AMI: an id or a Name
  std::string defaultType;    // DEFAULT_INST_TYPE
  std::string securityGroup;  // DEFAULT_SECURITY_GROUP (name or sg- id); empty = the VPC's default
  std::string sshCidr;        // EC2_SSH_CIDR: made groups admit SSH from here only
  std::filesystem::path keyPath;         // SECURITY_KEY_PATH
  std::string keyName;                   // SECURITY_KEY_NAME
  std::filesystem::path dynamicKeyPath;  // DYNAMIC_SECURITY_KEY_PATH
  bool privateAddress = false;           // EC2_ADDRESS = "private"
  std::vector<Ec2InstanceType> types;    // EC2_INSTANCE_TYPES, smallest first
};

// Throws ConfigError naming the key.
Settings settingsFrom(const Config& cfg);

// The instance type for a pool asking for `cores` and `memory` (MB).
std::string instanceTypeFor(const Settings& s, std::optional<int> cores, std::optional<int> memory);

}  // namespace tango::ec2
