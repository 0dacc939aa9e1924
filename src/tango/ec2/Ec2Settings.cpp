#include "tango/ec2/Ec2Settings.hpp"

#include <algorithm>
#include <cctype>
#include <cstring>

#include "tango/ssh/SshTarget.hpp"

namespace tango::ec2 {

namespace {

std::string get(const Config& c, const std::string& k) {
  auto it = c.ec2.find(k);
  return it == c.ec2.end() ? "" : it->second;
}

[[noreturn]] void bad(const std::string& key, const std::string& what, const std::string& got) {
  throw ConfigError(key + ": must be " + what +
                    (got.empty() ? " (it is not set)" : ", got \"" + got + "\""));
}

bool plain(const std::string& s, const char* extra) {
  return !s.empty() && s.size() <= 255 && std::all_of(s.begin(), s.end(), [extra](char ch) {
    auto u = static_cast<unsigned char>(ch);
    return u < 0x80 && (std::isalnum(u) || std::strchr(extra, ch));
  });
}

}  // namespace

Settings settingsFrom(const Config& c) {
  Settings s;
  s.region = get(c, "EC2_REGION");
  if (!plain(s.region, "-")) bad("EC2_REGION", "an AWS region such as us-east-1", s.region);
  s.endpoint = get(c, "EC2_ENDPOINT");
  if (!s.endpoint.empty() && !s.endpoint.starts_with("https://") &&
      !s.endpoint.starts_with("http://"))
    bad("EC2_ENDPOINT", "an http(s):// URL", s.endpoint);
  s.user = get(c, "EC2_USER_NAME");
  if (s.user.empty()) s.user = "ubuntu";
  if (!ssh::isSafeUser(s.user)) bad("EC2_USER_NAME", "a user name", s.user);
  s.defaultAmi = get(c, "DEFAULT_AMI");
  if (!plain(s.defaultAmi, "-_.()/ "))
    bad("DEFAULT_AMI", "an AMI id (ami-...) or name", s.defaultAmi);
  s.defaultType = get(c, "DEFAULT_INST_TYPE");
  if (!plain(s.defaultType, ".-"))
    bad("DEFAULT_INST_TYPE", "an instance type such as t3.small", s.defaultType);
  s.securityGroup = get(c, "DEFAULT_SECURITY_GROUP");
  if (!s.securityGroup.empty() && !plain(s.securityGroup, "-_. "))
    bad("DEFAULT_SECURITY_GROUP", "a security group name or id", s.securityGroup);
  s.sshCidr = get(c, "EC2_SSH_CIDR");
  if (!s.sshCidr.empty() && (!plain(s.sshCidr, "./:") || s.sshCidr.find('/') == std::string::npos))
    bad("EC2_SSH_CIDR", "an address range such as 203.0.113.7/32", s.sshCidr);
  s.keyPath = get(c, "SECURITY_KEY_PATH");
  if (s.keyPath.empty() || !s.keyPath.is_absolute())
    bad("SECURITY_KEY_PATH", "the absolute path of the key pair's private key", s.keyPath.string());
  s.keyName = get(c, "SECURITY_KEY_NAME");
  if (!plain(s.keyName, "-_. ")) bad("SECURITY_KEY_NAME", "the key pair's name in EC2", s.keyName);
  s.dynamicKeyPath = get(c, "DYNAMIC_SECURITY_KEY_PATH");
  if (!s.dynamicKeyPath.empty() && !s.dynamicKeyPath.is_absolute())
    bad("DYNAMIC_SECURITY_KEY_PATH", "an absolute directory path", s.dynamicKeyPath.string());
  const std::string address = get(c, "EC2_ADDRESS");
  if (!address.empty() && address != "public" && address != "private")
    bad("EC2_ADDRESS", "\"public\" (Tango's choice) or \"private\" (inside a VPC)", address);
  s.privateAddress = address == "private";
  s.types = c.ec2InstanceTypes;
  std::sort(s.types.begin(), s.types.end(), [](const auto& a, const auto& b) {
    return std::pair(a.cores, a.memory) < std::pair(b.cores, b.memory);
  });
  return s;
}

std::string instanceTypeFor(const Settings& s, std::optional<int> cores,
                            std::optional<int> memory) {
  if (!cores && !memory) return s.defaultType;
  for (const auto& t : s.types)
    if (t.cores >= cores.value_or(0) && t.memory >= memory.value_or(0)) return t.type;
  return s.defaultType;
}

}  // namespace tango::ec2
