#pragma once
// AWS credentials, found where Tango and the AWS tools look: the standard
// environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN),
// then ~/.boto as Tango's EC2 guide writes it ([Credentials]
// aws_access_key_id / aws_secret_access_key), then ~/.aws/credentials
// ([default], or AWS_PROFILE's section). The secret never leaves this
// struct except into a request's signature.
#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace tango::ec2 {

struct Credentials {
  std::string accessKeyId;
  std::string secretAccessKey;
  std::string sessionToken;  // optional
  std::string source;        // where they came from, for the log (never the values)
};

// nullopt when none of the places has a complete pair. `home` is the
// service user's home directory.
std::optional<Credentials> findCredentials(const std::map<std::string, std::string>& env,
                                           const std::filesystem::path& home);

// The [section] key = value pairs of an INI file (~/.boto, ~/.aws/credentials).
std::map<std::string, std::map<std::string, std::string>> readIni(const std::filesystem::path& p);

}  // namespace tango::ec2
