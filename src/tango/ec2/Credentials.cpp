#include "tango/ec2/Credentials.hpp"

#include <fstream>

namespace tango::ec2 {

namespace {

std::string trim(std::string s) {
  const char* ws = " \t\r\n";
  s.erase(0, s.find_first_not_of(ws));
  s.erase(s.find_last_not_of(ws) + 1);
  return s;
}

std::string get(const std::map<std::string, std::string>& m, const std::string& k) {
  auto it = m.find(k);
  return it == m.end() ? "" : it->second;
}

}  // namespace

std::map<std::string, std::map<std::string, std::string>> readIni(const std::filesystem::path& p) {
  std::map<std::string, std::map<std::string, std::string>> out;
  std::ifstream in(p);
  std::string line, section;
  while (std::getline(in, line)) {
    line = trim(line);
    if (line.empty() || line[0] == '#' || line[0] == ';') continue;
    if (line.front() == '[' && line.back() == ']') {
      section = trim(line.substr(1, line.size() - 2));
      continue;
    }
    auto eq = line.find_first_of("=:");
    if (eq == std::string::npos) continue;
    out[section][trim(line.substr(0, eq))] = trim(line.substr(eq + 1));
  }
  return out;
}

std::optional<Credentials> findCredentials(const std::map<std::string, std::string>& env,
                                           const std::filesystem::path& home) {
  if (auto id = get(env, "AWS_ACCESS_KEY_ID"), secret = get(env, "AWS_SECRET_ACCESS_KEY");
      !id.empty() && !secret.empty())
    return Credentials{id, secret, get(env, "AWS_SESSION_TOKEN"), "the environment"};
  const auto boto = home / ".boto";
  auto b = readIni(boto)["Credentials"];
  if (!get(b, "aws_access_key_id").empty() && !get(b, "aws_secret_access_key").empty())
    return Credentials{get(b, "aws_access_key_id"), get(b, "aws_secret_access_key"), "",
                       boto.string()};
  std::string profile = get(env, "AWS_PROFILE");
  if (profile.empty()) profile = "default";
  std::filesystem::path file = get(env, "AWS_SHARED_CREDENTIALS_FILE");
  if (file.empty()) file = home / ".aws" / "credentials";
  auto a = readIni(file)[profile];
  if (!get(a, "aws_access_key_id").empty() && !get(a, "aws_secret_access_key").empty())
    return Credentials{get(a, "aws_access_key_id"), get(a, "aws_secret_access_key"),
                       get(a, "aws_session_token"), file.string() + " [" + profile + "]"};
  return std::nullopt;
}

}  // namespace tango::ec2
