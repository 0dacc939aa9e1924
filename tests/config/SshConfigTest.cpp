// The SSH backends' settings: [[SSH_MACHINES]] (tashiSSH), Tango's EC2 keys
// and ours (checked by ec2::settingsFrom), [[EC2_INSTANCE_TYPES]]. Every bad
// value stops start-up with a message naming the key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>

#include "tango/config/Config.hpp"
#include "tango/ec2/Credentials.hpp"
#include "tango/ec2/Ec2Client.hpp"
#include "tango/ec2/Ec2Settings.hpp"

namespace fs = std::filesystem;
using tango::Config;
using tango::ConfigError;

namespace {

struct Scratch {
  Scratch() {
    std::string t = (fs::temp_directory_path() / "tango-sshcfg-XXXXXX").string();
    if (!mkdtemp(t.data())) throw std::runtime_error("mkdtemp");
    dir = t;
  }
  ~Scratch() {
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  fs::path write(const std::string& name, const std::string& text) {
    fs::create_directories((dir / name).parent_path());
    std::ofstream(dir / name) << text;
    return dir / name;
  }
  fs::path dir;
};

Config fromToml(const std::string& text) {
  Scratch s;
  return tango::loadConfig(s.write("tango.toml", text), {});
}

std::string errorOf(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "(no error)";
}

const std::string kMachine =
    "[[SSH_MACHINES]]\naddress = \"10.0.0.5\"\nuser = \"tango\"\nkey = \"/etc/tango/k\"\n";

TEST(SshConfig, MachinesWithTheirDefaults) {
  auto c = fromToml("VMMS_NAME = \"ssh\"\n" + kMachine +
                    "[[SSH_MACHINES]]\nname = \"lab2\"\naddress = \"lab2.example.edu\"\nport = "
                    "2222\nkey = \"/k2\"\ngrading_users = [\"g1\", \"g2\"]\nimages = [\"a\", "
                    "\"b\"]\n");
  EXPECT_EQ(c.vmmsName, "tashiSSH") << "ssh is tashiSSH's other name";
  ASSERT_EQ(c.sshMachines.size(), 2u);
  EXPECT_EQ(c.sshMachines[0].name, "10.0.0.5");
  EXPECT_EQ(c.sshMachines[0].port, 22);
  EXPECT_EQ(c.sshMachines[0].gradingUsers, std::vector<std::string>{"autograde"});
  EXPECT_EQ(c.sshMachines[0].images, std::vector<std::string>{"autograding_image"});
  EXPECT_EQ(c.sshMachines[1].name, "lab2");
  EXPECT_EQ(c.sshMachines[1].user, "root");
  EXPECT_EQ(c.sshMachines[1].port, 2222);
  EXPECT_EQ(c.sshMachines[1].gradingUsers, (std::vector<std::string>{"g1", "g2"}));
}

TEST(SshConfig, BadMachinesNameTheKey) {
  struct Case {
    std::string toml, key;
  };
  const std::vector<Case> cases{
      {"VMMS_NAME = \"tashiSSH\"\n", "SSH_MACHINES"},
      {"[[SSH_MACHINES]]\naddress = \"-oProxyCommand=x\"\nkey = \"/k\"\n",
       "SSH_MACHINES[0].address"},
      {"[[SSH_MACHINES]]\naddress = \"h; rm -rf /\"\nkey = \"/k\"\n", "SSH_MACHINES[0].address"},
      {"[[SSH_MACHINES]]\naddress = \"h\"\nuser = \"a b\"\nkey = \"/k\"\n", "SSH_MACHINES[0].user"},
      {"[[SSH_MACHINES]]\naddress = \"h\"\nkey = \"relative\"\n", "SSH_MACHINES[0].key"},
      {"[[SSH_MACHINES]]\naddress = \"h\"\n", "SSH_MACHINES[0].key"},
      {"[[SSH_MACHINES]]\nkey = \"/k\"\n", "SSH_MACHINES[0].address"},
      {"[[SSH_MACHINES]]\naddress = \"h\"\nkey = \"/k\"\nport = 70000\n", "SSH_MACHINES[0].port"},
      {"[[SSH_MACHINES]]\naddress = \"h\"\nkey = \"/k\"\ngrading_users = [\"root\"]\n",
       "SSH_MACHINES[0].grading_users"},
      {"[[SSH_MACHINES]]\naddress = \"h\"\nkey = \"/k\"\nsudo = true\n", "SSH_MACHINES[0].sudo"},
      {kMachine + kMachine, "SSH_MACHINES[1].name"},
      {"SSH_MACHINES = 3\n", "SSH_MACHINES"},
      {"[[SSH_MACHINES]]\naddress = \"h\"\nkey = \"/k\"\ngrading_users = [\"a\", \"a\"]\n",
       "SSH_MACHINES[0].grading_users"},
      {"[[SSH_MACHINES]]\naddress = \"h\"\nkey = \"/k\"\nuser = \"g\"\ngrading_users = [\"g\"]\n",
       "SSH_MACHINES[0].grading_users"},
  };
  for (const auto& c : cases) {
    const std::string msg = errorOf([&] { fromToml(c.toml); });
    EXPECT_EQ(msg.rfind(c.key, 0), 0u) << c.toml << " -> " << msg;
  }
}

Config ec2Config(const std::string& more) {
  return fromToml(
      "VMMS_NAME = \"ec2SSH\"\nEC2_REGION = \"us-east-1\"\nDEFAULT_AMI = \"ami-0abc\"\n"
      "DEFAULT_INST_TYPE = \"t3.small\"\nSECURITY_KEY_NAME = \"tango\"\nSECURITY_KEY_PATH = "
      "\"/etc/tango/k.pem\"\nINSTANCE_RUNNING = 16\nTANGO_RESERVATION_ID = \"r-1\"\n" +
      more);
}

TEST(SshConfig, Ec2SettingsAndTheirChecks) {
  auto s = tango::ec2::settingsFrom(ec2Config(
      "EC2_ADDRESS = \"private\"\n[[EC2_INSTANCE_TYPES]]\ntype = \"c5.xlarge\"\ncores = 4\n"
      "memory = 8192\n[[EC2_INSTANCE_TYPES]]\ntype = \"t3.medium\"\ncores = 2\nmemory = 4096\n"));
  EXPECT_EQ(s.user, "ubuntu");
  EXPECT_TRUE(s.privateAddress);
  EXPECT_EQ(tango::ec2::instanceTypeFor(s, std::nullopt, std::nullopt), "t3.small");
  EXPECT_EQ(tango::ec2::instanceTypeFor(s, 2, std::nullopt), "t3.medium");
  EXPECT_EQ(tango::ec2::instanceTypeFor(s, 1, 6000), "c5.xlarge");
  EXPECT_EQ(tango::ec2::instanceTypeFor(s, 64, std::nullopt), "t3.small") << "none fits";

  // Each value as the file or the environment would give it.
  const std::vector<std::pair<std::string, std::string>> cases{
      {"EC2_ADDRESS", "both"},
      {"EC2_USER_NAME", "-l root"},
      {"EC2_ENDPOINT", "ftp://x"},
      {"EC2_SSH_CIDR", "everyone"},
      {"DEFAULT_INST_TYPE", "t3 small; x"},
      {"SECURITY_KEY_PATH", "relative.pem"},
      {"EC2_REGION", "us-east-1; x"},
      {"DEFAULT_SECURITY_GROUP", "a$(b)"},
  };
  for (const auto& [key, value] : cases) {
    Config c = ec2Config("");
    c.ec2[key] = value;
    const std::string msg = errorOf([&] { tango::ec2::settingsFrom(c); });
    EXPECT_EQ(msg.rfind(key + ":", 0), 0u) << key << " = " << value << " -> " << msg;
  }
  // Required keys.
  Config bare = fromToml("VMMS_NAME = \"ec2SSH\"\n");
  EXPECT_EQ(errorOf([&] { tango::ec2::settingsFrom(bare); }).rfind("EC2_REGION", 0), 0u);
  EXPECT_EQ(errorOf([&] {
              fromToml("[[EC2_INSTANCE_TYPES]]\ntype = \"x\"\ncores = 2\n");
            }).rfind("EC2_INSTANCE_TYPES[0]", 0),
            0u);
}

TEST(SshConfig, CredentialsFromTheEnvironmentBotoOrAwsCredentials) {
  Scratch s;
  using tango::ec2::findCredentials;
  EXPECT_FALSE(findCredentials({}, s.dir));
  s.write(".aws/credentials",
          "[default]\naws_access_key_id = AKD\naws_secret_access_key = SD\n[other]\n"
          "aws_access_key_id = AKO\naws_secret_access_key = SO\naws_session_token = T\n");
  EXPECT_EQ(findCredentials({}, s.dir)->accessKeyId, "AKD");
  auto other = findCredentials({{"AWS_PROFILE", "other"}}, s.dir);
  EXPECT_EQ(other->secretAccessKey, "SO");
  EXPECT_EQ(other->sessionToken, "T");
  s.write(".boto", "[Credentials]\naws_access_key_id = AKB\naws_secret_access_key = SB\n");
  auto boto = findCredentials({}, s.dir);
  EXPECT_EQ(boto->accessKeyId, "AKB") << "~/.boto before ~/.aws/credentials, as in Tango";
  EXPECT_NE(boto->source.find(".boto"), std::string::npos);
  auto env =
      findCredentials({{"AWS_ACCESS_KEY_ID", "AKE"}, {"AWS_SECRET_ACCESS_KEY", "SE"}}, s.dir);
  EXPECT_EQ(env->accessKeyId, "AKE");
  EXPECT_EQ(env->source.find("SE"), std::string::npos) << "the source never holds a secret";
  // Half a pair is no pair.
  EXPECT_EQ(findCredentials({{"AWS_ACCESS_KEY_ID", "AKE"}}, s.dir)->accessKeyId, "AKB");
}

TEST(SshConfig, TheEndpointFollowsTheAwsSdksConvention) {
  using tango::ec2::endpointFor;
  EXPECT_EQ(endpointFor("", "eu-west-1", {}), "https://ec2.eu-west-1.amazonaws.com");
  EXPECT_EQ(endpointFor("http://cfg", "eu-west-1", {}), "http://cfg");
  EXPECT_EQ(endpointFor("http://cfg", "r", {{"AWS_ENDPOINT_URL", "http://all"}}), "http://all");
  EXPECT_EQ(
      endpointFor("http://cfg", "r",
                  {{"AWS_ENDPOINT_URL", "http://all"}, {"AWS_ENDPOINT_URL_EC2", "http://ec2"}}),
      "http://ec2");
}

}  // namespace
