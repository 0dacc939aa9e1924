#pragma once
// A client of the EC2 Query API: each call a POST of a form body to the
// region's endpoint, signed with Signature Version 4 by libcurl, its XML
// answer read with libxml2.
//
// Why POST: Debian 12's libcurl 7.88 does not sort a GET request's query
// string before signing it, so AWS would refuse such a signature; a form
// body is signed as a whole (the AWS SDKs send the Query API this way too).
//
// Throttling (RequestLimitExceeded), capacity (InsufficientInstanceCapacity)
// and server errors are retried with exponential backoff until the call's
// deadline; every other error is thrown at once as an Ec2Error with AWS's
// code, for a clear job or start-up error.
#include <atomic>
#include <chrono>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tango/ec2/Credentials.hpp"

namespace tango::ec2 {

using Clock = std::chrono::steady_clock;
using Params = std::vector<std::pair<std::string, std::string>>;

struct Ec2Error : std::runtime_error {
  Ec2Error(std::string code, const std::string& message, int httpStatus)
      : std::runtime_error(code + ": " + message), code(std::move(code)), httpStatus(httpStatus) {}
  std::string code;  // AWS's (AuthFailure, InvalidAMIID.NotFound...), or "Network"
  int httpStatus;
  bool retryable() const;
};

struct Instance {
  std::string id;
  std::string state;  // pending, running, shutting-down, terminated, stopping, stopped
  std::string publicIp, privateIp;
  std::string imageId;
  std::map<std::string, std::string> tags;
};

struct Image {
  std::string id, name, nameTag;  // nameTag: its Name tag, if any
};

struct KeyPair {
  std::string name;
  std::string privateKey;  // OpenSSH or PEM text
};

class Client {
 public:
  // `endpoint`: "https://ec2.<region>.amazonaws.com" or a compatible one.
  Client(std::string endpoint, std::string region, Credentials creds);

  // One action with its parameters; the answer's XML. Throws Ec2Error.
  std::string call(const std::string& action, const Params& params, Clock::time_point deadline);

  // `clientToken` makes the call idempotent (EC2 answers a repeat with the
  // instance the first launched): a retry after a lost answer launches none.
  std::vector<Instance> runInstance(const std::string& ami, const std::string& type,
                                    const std::string& keyName,
                                    const std::vector<std::string>& securityGroups,
                                    const std::map<std::string, std::string>& tags,
                                    const std::string& clientToken, Clock::time_point deadline);
  // Filters: name -> values (tag:Name, instance-state-name...).
  std::vector<Instance> describeInstances(
      const std::map<std::string, std::vector<std::string>>& filters,
      const std::vector<std::string>& ids, Clock::time_point deadline);
  void terminateInstances(const std::vector<std::string>& ids, Clock::time_point deadline);
  // An AMI by id (ami-...), else by its Name tag, else by its name.
  std::optional<std::string> findImage(const std::string& nameOrId, Clock::time_point deadline);
  // The account's own AMIs (Owner self).
  std::vector<Image> ownImages(Clock::time_point deadline);
  KeyPair createKeyPair(const std::string& name, Clock::time_point deadline);
  void deleteKeyPair(const std::string& name, Clock::time_point deadline);
  // The id of group `name`; made when missing, open to SSH (22/tcp) from
  // `sshCidr` only.
  std::string ensureSecurityGroup(const std::string& name, const std::string& sshCidr,
                                  Clock::time_point deadline);

  // Calls made so far (each try counts), for the benchmark and tests.
  long calls() const { return calls_.load(); }
  const std::string& accessKeyId() const { return creds_.accessKeyId; }

 private:
  std::string once(const std::string& action, const std::string& body, long& httpStatus);

  std::string endpoint_;
  std::string region_;
  Credentials creds_;
  std::atomic<long> calls_{0};
};

// AWS_ENDPOINT_URL_EC2, else AWS_ENDPOINT_URL, else the region's own.
std::string endpointFor(const std::string& configured, const std::string& region,
                        const std::map<std::string, std::string>& env);

}  // namespace tango::ec2
