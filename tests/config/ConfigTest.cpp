// loadConfig: defaults, the TOML file, environment overrides, and that every
// invalid setting is rejected with a message naming the key.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include "ConfigFiles.hpp"
#include "tango/config/Config.hpp"

namespace fs = std::filesystem;
using tango::Config;
using tango::ConfigError;
using tango::listenSafely;
using tango::loadConfig;
using tango::test::errorOf;
using tango::test::fromToml;
using tango::test::TempToml;

namespace {

bool startsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

}  // namespace

TEST(Config, DefaultsWithoutFileOrEnvironment) {
  Config c = loadConfig(std::nullopt, {});
  Config d;
  EXPECT_EQ(c.port, 3000);
  EXPECT_EQ(c.keys, std::vector<std::string>{"test"});
  EXPECT_EQ(c.host, d.host);
  EXPECT_EQ(c.outputFolder, "output");
  EXPECT_EQ(c.prefix, "local");
  EXPECT_EQ(c.vmmsName, "local");
  EXPECT_EQ(c.jobRetries, 2);
  EXPECT_EQ(c.maxOutputFileSize, 1000 * 1024);
  EXPECT_EQ(c.vmUlimitFileSize, 100LL * 1024 * 1024);
  EXPECT_EQ(c.vmUlimitUserProc, 100);
  EXPECT_EQ(c.runJobTimeout, d.runJobTimeout);
  EXPECT_EQ(c.logLevel, "info");
  EXPECT_FALSE(c.logFile);
  EXPECT_FALSE(c.dockerCoresLimit);
  EXPECT_FALSE(c.useRedis);
  EXPECT_TRUE(c.courselabs.empty());
  EXPECT_EQ(c.courselabsDir(), fs::path("data") / "courselabs");
  EXPECT_TRUE(c.local.images.empty());
  EXPECT_TRUE(c.ec2.empty());
}

TEST(Config, FullFile) {
  Config c = fromToml(R"(
PORT = 8600
KEYS = ["k1", "k2"]
COURSELABS = "/srv/labs"
OUTPUT_FOLDER = "out"
PREFIX = "prod"
VMMS_NAME = "localDocker"
REUSE_VMS = true
POOL_SIZE = 7
JOB_RETRIES = 3
MAX_OUTPUT_FILE_SIZE = 2048
MAX_INPUT_FILE_SIZE = 4096
VM_ULIMIT_FILE_SIZE = 8192
VM_ULIMIT_USER_PROC = 50
INITIALIZEVM_TIMEOUT = 11
WAITVM_TIMEOUT = 12
COPYIN_TIMEOUT = 13
RUNJOB_TIMEOUT = 14
COPYOUT_TIMEOUT = 15
DOCKER_CORES_LIMIT = 2
DOCKER_MEMORY_LIMIT = 512
USE_REDIS = true
REDIS_HOSTNAME = "redis.local"
REDIS_PORT = 6380
REDIS_PASSWORD = "pw"
HOST = "127.0.0.1"
DATA_DIR = "/var/lib/tango"
AUTODRIVER = "/opt/tango/autodriver"
LOG_LEVEL = "debug"
LOG_FILE = "/var/log/tango.log"
MAX_CONCURRENT_JOBS = 9
MAX_JOB_TIMEOUT = 600
CALLBACK_RETRIES = 4
CALLBACK_BACKOFF_SECS = 0.5
CALLBACK_TIMEOUT = 20
MAX_HEADER_BYTES = 32768
MAX_JSON_BODY_BYTES = 65536
DEAD_JOBS_LISTED = 50
EC2_REGION = "us-east-1"
EC2_USER_NAME = "ubuntu"
DEFAULT_AMI = "ami-123"
DEFAULT_INST_TYPE = "t2.micro"
DEFAULT_SECURITY_GROUP = "sg"
SECURITY_KEY_PATH = "/k.pem"
SECURITY_KEY_NAME = "k"
DYNAMIC_SECURITY_KEY_PATH = "/dyn"

[local]
UID_BASE = 300000
SLOTS = 64
WARM_SANDBOXES = false

[local.images]
autograding_image = "/srv/roots/default"
"python:3.11" = "/srv/roots/py"
)");
  EXPECT_EQ(c.port, 8600);
  EXPECT_EQ(c.keys, (std::vector<std::string>{"k1", "k2"}));
  EXPECT_EQ(c.courselabs, fs::path("/srv/labs"));
  EXPECT_EQ(c.courselabsDir(), fs::path("/srv/labs"));
  EXPECT_EQ(c.outputFolder, "out");
  EXPECT_EQ(c.prefix, "prod");
  EXPECT_EQ(c.vmmsName, "localDocker");
  EXPECT_TRUE(c.reuseVms);
  EXPECT_EQ(c.poolSize, 7);
  EXPECT_EQ(c.jobRetries, 3);
  EXPECT_EQ(c.maxOutputFileSize, 2048);
  EXPECT_EQ(c.maxInputFileSize, 4096);
  EXPECT_EQ(c.vmUlimitFileSize, 8192);
  EXPECT_EQ(c.vmUlimitUserProc, 50);
  EXPECT_EQ(c.initializeVmTimeout, 11);
  EXPECT_EQ(c.waitVmTimeout, 12);
  EXPECT_EQ(c.copyInTimeout, 13);
  EXPECT_EQ(c.runJobTimeout, 14);
  EXPECT_EQ(c.copyOutTimeout, 15);
  EXPECT_EQ(c.dockerCoresLimit, 2);
  EXPECT_EQ(c.dockerMemoryLimit, 512);
  EXPECT_TRUE(c.useRedis);
  EXPECT_EQ(c.redisHostname, "redis.local");
  EXPECT_EQ(c.redisPort, 6380);
  EXPECT_EQ(c.host, "127.0.0.1");
  EXPECT_EQ(c.dataDir, fs::path("/var/lib/tango"));
  EXPECT_EQ(c.autodriver, fs::path("/opt/tango/autodriver"));
  EXPECT_EQ(c.logLevel, "debug");
  EXPECT_EQ(c.logFile, fs::path("/var/log/tango.log"));
  EXPECT_EQ(c.maxConcurrentJobs, 9);
  EXPECT_EQ(c.maxJobTimeout, 600);
  EXPECT_EQ(c.callbackRetries, 4);
  EXPECT_DOUBLE_EQ(c.callbackBackoffSecs, 0.5);
  EXPECT_EQ(c.callbackTimeoutSecs, 20);
  EXPECT_EQ(c.maxHeaderBytes, 32768u);
  EXPECT_EQ(c.maxJsonBodyBytes, 65536u);
  EXPECT_EQ(c.deadJobsListed, 50);
  EXPECT_EQ(c.ec2.size(), 8u);
  EXPECT_EQ(c.ec2.at("EC2_REGION"), "us-east-1");
  EXPECT_EQ(c.ec2.at("DYNAMIC_SECURITY_KEY_PATH"), "/dyn");
  EXPECT_EQ(c.local.uidBase, 300000u);
  EXPECT_EQ(c.local.slots, 64u);
  EXPECT_FALSE(c.local.warmSandboxes);
  ASSERT_EQ(c.local.images.size(), 2u);
  EXPECT_EQ(c.local.images.at("autograding_image"), fs::path("/srv/roots/default"));
  EXPECT_EQ(c.local.images.at("python:3.11"), fs::path("/srv/roots/py"));
}

TEST(Config, SeveralNodesKeys) {
  Config c = fromToml(
      "USE_REDIS = true\nREDIS_HOSTNAME = \"10.0.0.5\"\nREDIS_PASSWORD = \"pw\"\n"
      "REDIS_TLS = true\nREDIS_TLS_CA_FILE = \"/ca.crt\"\nROLE = \"manager\"\n"
      "NODE_ID = \"grader-2\"\nLEASE_SECS = 9\nMORE_VMMS = [\"localDocker\", \"ssh\"]\n");
  EXPECT_EQ(c.role, "manager");
  EXPECT_FALSE(c.runsApi());
  EXPECT_TRUE(c.runsManager());
  EXPECT_EQ(c.nodeId, "grader-2");
  EXPECT_EQ(c.leaseSecs, 9);
  EXPECT_TRUE(c.redisTls);
  EXPECT_EQ(c.redisPrefix, "tango:local:");
  EXPECT_EQ(c.vmmsNames(), (std::vector<std::string>{"local", "localDocker", "tashiSSH"}));
  // Defaults: all roles, the host name as node id.
  Config d = fromToml("");
  EXPECT_EQ(d.role, "all");
  EXPECT_FALSE(d.nodeId.empty());
  // A Redis beyond loopback without a password is refused; on loopback it is not.
  EXPECT_NE(errorOf([] {
              fromToml("USE_REDIS = true\nREDIS_HOSTNAME = \"redis.lan\"\n");
            }).find("REDIS_PASSWORD"),
            std::string::npos);
  EXPECT_NO_THROW(fromToml("USE_REDIS = true\nREDIS_HOSTNAME = \"127.0.0.1\"\n"));
  EXPECT_NE(errorOf([] { fromToml("ROLE = \"worker\"\n"); }).find("ROLE"), std::string::npos);
  EXPECT_NE(errorOf([] { fromToml("NODE_ID = \"a/b\"\n"); }).find("NODE_ID"), std::string::npos);
  EXPECT_NE(errorOf([] { fromToml("MORE_VMMS = [\"vmware\"]\n"); }).find("MORE_VMMS"),
            std::string::npos);
  EXPECT_NE(errorOf([] { fromToml("LEASE_SECS = 0\n"); }).find("LEASE_SECS"), std::string::npos);
}

TEST(Config, IntegerBackoffInFileIsAccepted) {
  EXPECT_DOUBLE_EQ(fromToml("CALLBACK_BACKOFF_SECS = 3\n").callbackBackoffSecs, 3.0);
}

struct EnvCase {
  std::string key;
  std::string value;
  std::function<bool(const Config&)> check;
};

TEST(Config, EachEnvironmentOverride) {
  const std::vector<EnvCase> cases = {
      {"PORT", "8080", [](const Config& c) { return c.port == 8080; }},
      {"KEYS", "a, b,c",
       [](const Config& c) {
         return c.keys == std::vector<std::string>{"a", "b", "c"};
       }},
      {"COURSELABS", "/x/labs", [](const Config& c) { return c.courselabs == "/x/labs"; }},
      {"OUTPUT_FOLDER", "outs", [](const Config& c) { return c.outputFolder == "outs"; }},
      {"PREFIX", "p1", [](const Config& c) { return c.prefix == "p1"; }},
      {"VMMS_NAME", "localDocker", [](const Config& c) { return c.vmmsName == "localDocker"; }},
      {"REUSE_VMS", "True", [](const Config& c) { return c.reuseVms; }},
      {"POOL_SIZE", "0", [](const Config& c) { return c.poolSize == 0; }},
      {"POOL_SPARES", "8", [](const Config& c) { return c.poolSpares == 8; }},
      {"JOB_RETRIES", "5", [](const Config& c) { return c.jobRetries == 5; }},
      {"MAX_OUTPUT_FILE_SIZE", "123", [](const Config& c) { return c.maxOutputFileSize == 123; }},
      {"MAX_INPUT_FILE_SIZE", "456", [](const Config& c) { return c.maxInputFileSize == 456; }},
      {"VM_ULIMIT_FILE_SIZE", "789", [](const Config& c) { return c.vmUlimitFileSize == 789; }},
      {"VM_ULIMIT_USER_PROC", "33", [](const Config& c) { return c.vmUlimitUserProc == 33; }},
      {"INITIALIZEVM_TIMEOUT", "21", [](const Config& c) { return c.initializeVmTimeout == 21; }},
      {"WAITVM_TIMEOUT", "22", [](const Config& c) { return c.waitVmTimeout == 22; }},
      {"COPYIN_TIMEOUT", "23", [](const Config& c) { return c.copyInTimeout == 23; }},
      {"RUNJOB_TIMEOUT", "24", [](const Config& c) { return c.runJobTimeout == 24; }},
      {"COPYOUT_TIMEOUT", "25", [](const Config& c) { return c.copyOutTimeout == 25; }},
      {"DOCKER_CORES_LIMIT", "3", [](const Config& c) { return c.dockerCoresLimit == 3; }},
      {"DOCKER_MEMORY_LIMIT", "1024", [](const Config& c) { return c.dockerMemoryLimit == 1024; }},
      {"DOCKER_CORES_LIMIT", "None", [](const Config& c) { return !c.dockerCoresLimit; }},
      {"USE_REDIS", "yes", [](const Config& c) { return c.useRedis; }},
      {"REDIS_HOSTNAME", "r1", [](const Config& c) { return c.redisHostname == "r1"; }},
      {"REDIS_PORT", "7000", [](const Config& c) { return c.redisPort == 7000; }},
      {"HOST", "::1", [](const Config& c) { return c.host == "::1"; }},
      {"DATA_DIR", "/d", [](const Config& c) { return c.dataDir == "/d"; }},
      {"AUTODRIVER", "/bin/ad", [](const Config& c) { return c.autodriver == "/bin/ad"; }},
      {"LOG_LEVEL", "WARN", [](const Config& c) { return c.logLevel == "warn"; }},
      {"LOG_FILE", "/l.log", [](const Config& c) { return c.logFile == fs::path("/l.log"); }},
      {"MAX_CONCURRENT_JOBS", "12", [](const Config& c) { return c.maxConcurrentJobs == 12; }},
      {"MAX_JOB_TIMEOUT", "7200", [](const Config& c) { return c.maxJobTimeout == 7200; }},
      {"MAX_JOB_PROCS", "300", [](const Config& c) { return c.maxJobProcs == 300; }},
      {"MAX_JOB_FILE_SIZE", "5000000", [](const Config& c) { return c.maxJobFileSize == 5000000; }},
      {"MAX_JOB_MEMORY", "2048", [](const Config& c) { return c.maxJobMemory == 2048; }},
      {"MAX_JOB_DISK", "256", [](const Config& c) { return c.maxJobDisk == 256; }},
      {"MAX_JOB_CPU_TIME", "60", [](const Config& c) { return c.maxJobCpuTime == 60; }},
      {"CALLBACK_RETRIES", "0", [](const Config& c) { return c.callbackRetries == 0; }},
      {"CALLBACK_BACKOFF_SECS", "2.5",
       [](const Config& c) { return c.callbackBackoffSecs == 2.5; }},
      {"CALLBACK_TIMEOUT", "3", [](const Config& c) { return c.callbackTimeoutSecs == 3; }},
      {"MAX_HEADER_BYTES", "4096", [](const Config& c) { return c.maxHeaderBytes == 4096; }},
      {"MAX_JSON_BODY_BYTES", "999", [](const Config& c) { return c.maxJsonBodyBytes == 999; }},
      {"DEAD_JOBS_LISTED", "10", [](const Config& c) { return c.deadJobsListed == 10; }},
      {"EC2_REGION", "eu-west-1",
       [](const Config& c) { return c.ec2.at("EC2_REGION") == "eu-west-1"; }},
      {"SECURITY_KEY_NAME", "kn",
       [](const Config& c) { return c.ec2.at("SECURITY_KEY_NAME") == "kn"; }},
  };
  for (const EnvCase& tc : cases) {
    SCOPED_TRACE(tc.key + "=" + tc.value);
    Config c = loadConfig(std::nullopt, {{tc.key, tc.value}});
    EXPECT_TRUE(tc.check(c));
  }
}

TEST(Config, EnvironmentOverridesFile) {
  Config c =
      fromToml("PORT = 1000\nUSE_REDIS = true\n", {{"PORT", "2000"}, {"USE_REDIS", "False"}});
  EXPECT_EQ(c.port, 2000);
  EXPECT_FALSE(c.useRedis);
}

TEST(Config, BooleanSpellings) {
  for (const char* t : {"true", "TRUE", "True", "1", "yes", "Yes", " true "})
    EXPECT_TRUE(loadConfig(std::nullopt, {{"REUSE_VMS", t}}).reuseVms) << t;
  for (const char* f : {"false", "False", "0", "no", "NO"})
    EXPECT_FALSE(loadConfig(std::nullopt, {{"REUSE_VMS", "1"}, {"USE_REDIS", f}}).useRedis) << f;
}

TEST(Config, EmptyEnvironmentVariableCountsAsUnset) {
  Config c = fromToml("PORT = 1234\n", {{"PORT", ""}, {"RESTFUL_KEY", ""}});
  EXPECT_EQ(c.port, 1234);
  EXPECT_EQ(c.keys, std::vector<std::string>{"test"});
}

TEST(Config, RestfulKeyReplacesKeys) {
  Config c = fromToml("KEYS = [\"a\", \"b\"]\n", {{"KEYS", "c,d"}, {"RESTFUL_KEY", "secret"}});
  EXPECT_EQ(c.keys, std::vector<std::string>{"secret"});
  // A comma in RESTFUL_KEY is part of the single key, not a separator.
  EXPECT_EQ(loadConfig(std::nullopt, {{"RESTFUL_KEY", "x,y"}}).keys,
            std::vector<std::string>{"x,y"});
}

struct BadCase {
  std::string key;
  std::string value;
};

TEST(Config, InvalidEnvironmentValuesNameTheKey) {
  const std::vector<BadCase> cases = {
      {"PORT", "abc"},
      {"PORT", "65536"},
      {"PORT", "-1"},
      {"PORT", "80x"},
      {"REDIS_PORT", "0"},
      {"INITIALIZEVM_TIMEOUT", "0"},
      {"WAITVM_TIMEOUT", "-5"},
      {"COPYIN_TIMEOUT", "86401"},
      {"RUNJOB_TIMEOUT", "0"},
      {"COPYOUT_TIMEOUT", "1.5"},
      {"MAX_JOB_TIMEOUT", "100000"},
      {"MAX_JOB_PROCS", "0"},
      {"MAX_JOB_MEMORY", "8"},
      {"MAX_JOB_DISK", "-1"},
      {"MAX_JOB_CPU_TIME", "0"},
      {"CALLBACK_TIMEOUT", "0"},
      {"JOB_RETRIES", "101"},
      {"JOB_RETRIES", "-1"},
      {"POOL_SIZE", "1001"},
      {"POOL_SIZE", "-1"},
      {"POOL_SPARES", "-1"},
      {"POOL_SPARES", "1001"},
      {"MAX_OUTPUT_FILE_SIZE", "0"},
      {"MAX_OUTPUT_FILE_SIZE", "1073741825"},  // over the autodriver's 1 GiB
      {"MAX_INPUT_FILE_SIZE", "-10"},
      {"VM_ULIMIT_FILE_SIZE", "99999999999999999999"},
      {"VM_ULIMIT_USER_PROC", "0"},
      {"MAX_HEADER_BYTES", "0"},
      {"MAX_JSON_BODY_BYTES", "0"},
      {"DOCKER_CORES_LIMIT", "0"},
      {"DOCKER_MEMORY_LIMIT", "lots"},
      {"VMMS_NAME", "docker"},
      {"VMMS_NAME", "localdocker"},
      {"LOG_LEVEL", "verbose"},
      {"REUSE_VMS", "maybe"},
      {"USE_REDIS", "2"},
      {"CALLBACK_BACKOFF_SECS", "0"},
      {"CALLBACK_BACKOFF_SECS", "nan"},
      {"CALLBACK_RETRIES", "1000"},
      {"KEYS", "a,,b"},
      {"KEYS", "a/b"},
      {"KEYS", ".."},
      {"RESTFUL_KEY", "../etc"},
      {"RESTFUL_KEY", "a\nb"},
      {"OUTPUT_FOLDER", "../out"},
      {"PREFIX", "bad prefix"},
      {"PREFIX", "-x"},
  };
  for (const BadCase& tc : cases) {
    SCOPED_TRACE(tc.key + "=" + tc.value);
    std::string msg = errorOf([&] { loadConfig(std::nullopt, {{tc.key, tc.value}}); });
    EXPECT_TRUE(startsWith(msg, tc.key + ": ")) << msg;
  }
}

TEST(Config, MessageShowsExpectationAndValue) {
  std::string msg = errorOf([] { loadConfig(std::nullopt, {{"PORT", "abc"}}); });
  EXPECT_EQ(msg, R"(PORT: must be an integer 0..65535, got "abc")");
  // Control characters in the echoed value are escaped, not printed raw.
  msg = errorOf([] { loadConfig(std::nullopt, {{"KEYS", "a\nb"}}); });
  EXPECT_NE(msg.find("\\x0a"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

// Found by fuzz/config_toml (fuzz/regressions/config_toml): a quoted key
// may hold any byte, and "unknown configuration key" quoted it raw, so a
// config file could send escape sequences to the operator's terminal.
TEST(Config, ControlBytesInKeysAreEscaped) {
  const std::string msg = errorOf([] { fromToml("\"\\u001b[2J\" = 1\n"); });
  EXPECT_NE(msg.find("\\x1b[2J: unknown configuration key"), std::string::npos) << msg;
  EXPECT_EQ(msg.find('\x1b'), std::string::npos) << msg;
}

TEST(Config, InvalidFileValuesNameTheKey) {
  const std::vector<BadCase> cases = {
      {"PORT", "\"abc\""},
      {"PORT", "70000"},
      {"PORT", "3000.0"},
      {"KEYS", "\"test\""},
      {"KEYS", "[]"},
      {"KEYS", "[1, 2]"},
      {"KEYS", "[\"ok\", \"a/b\"]"},
      {"REUSE_VMS", "\"yes\""},
      {"REUSE_VMS", "1"},
      {"RUNJOB_TIMEOUT", "0"},
      {"VMMS_NAME", "1"},
      {"VMMS_NAME", "\"kubernetes\""},
      {"LOG_LEVEL", "\"loud\""},
      {"MAX_OUTPUT_FILE_SIZE", "-1"},
      {"HOST", "\"\""},
      {"DATA_DIR", "\"\""},
      {"REDIS_HOSTNAME", "\"\""},
      {"COURSELABS", "5"},
      {"EC2_REGION", "[1]"},
      {"CALLBACK_BACKOFF_SECS", "\"1\""},
      {"DOCKER_CORES_LIMIT", "-2"},
  };
  for (const BadCase& tc : cases) {
    SCOPED_TRACE(tc.key + " = " + tc.value);
    std::string msg = errorOf([&] { fromToml(tc.key + " = " + tc.value + "\n"); });
    EXPECT_TRUE(startsWith(msg, tc.key + ": ")) << msg;
  }
}

TEST(Config, RunJobTimeoutMustNotExceedMaxJobTimeout) {
  std::string msg = errorOf([] { fromToml("RUNJOB_TIMEOUT = 100\nMAX_JOB_TIMEOUT = 50\n"); });
  EXPECT_TRUE(startsWith(msg, "RUNJOB_TIMEOUT: ")) << msg;
}

TEST(Config, UnknownKeyIsRejected) {
  std::string msg = errorOf([] { fromToml("PORT = 1\nPOLL_SIZE = 3\n"); });
  EXPECT_TRUE(startsWith(msg, "POLL_SIZE: ")) << msg;
  EXPECT_NE(msg.find("unknown"), std::string::npos) << msg;
  // Keys are case-sensitive, and the message points at the right spelling.
  msg = errorOf([] { fromToml("port = 1\n"); });
  EXPECT_TRUE(startsWith(msg, "port: ")) << msg;
  EXPECT_NE(msg.find("PORT"), std::string::npos) << msg;
  // A Tango key inside the wrong table is as wrong as a typo.
  msg = errorOf([] { fromToml("[service]\nPORT = 1\n"); });
  EXPECT_TRUE(startsWith(msg, "service: ")) << msg;
}

TEST(Config, LocalTableIsValidated) {
  std::string msg = errorOf([] { fromToml("[local]\nUID_BASE = 0\n"); });
  EXPECT_TRUE(startsWith(msg, "local.UID_BASE: ")) << msg;
  msg = errorOf([] { fromToml("[local]\nSLOTS = \"many\"\n"); });
  EXPECT_TRUE(startsWith(msg, "local.SLOTS: ")) << msg;
  msg = errorOf([] { fromToml("[local]\nWARM_SANDBOXES = 1\n"); });
  EXPECT_TRUE(startsWith(msg, "local.WARM_SANDBOXES: ")) << msg;
  EXPECT_TRUE(Config().local.warmSandboxes);
  msg = errorOf([] { fromToml("[local]\nSLOT = 3\n"); });
  EXPECT_TRUE(startsWith(msg, "local.SLOT: ")) << msg;
  msg = errorOf([] { fromToml("[local.images]\nimg = \"relative/root\"\n"); });
  EXPECT_TRUE(startsWith(msg, "local.images.img: ")) << msg;
  msg = errorOf([] { fromToml("[local.images]\n\"../x\" = \"/r\"\n"); });
  EXPECT_TRUE(startsWith(msg, "local.images.../x: ")) << msg;
  msg = errorOf([] { fromToml("local = 3\n"); });
  EXPECT_TRUE(startsWith(msg, "local: ")) << msg;
  msg = errorOf([] { fromToml("[local]\nUID_BASE = 2147000000\nSLOTS = 1000000\n"); });
  EXPECT_TRUE(startsWith(msg, "local.UID_BASE: ")) << msg;
  // The keepers' range (UID_BASE + SLOTS ...) must fit too.
  msg = errorOf([] { fromToml("[local]\nUID_BASE = 2146000000\nSLOTS = 1000000\n"); });
  EXPECT_TRUE(startsWith(msg, "local.UID_BASE: ")) << msg;
  EXPECT_NO_THROW(fromToml("[local]\nUID_BASE = 2145000000\nSLOTS = 1000000\n"));
}

TEST(Config, MalformedTomlNamesFileAndLine) {
  TempToml f("PORT = 3000\nKEYS = [\"a\"\nPREFIX = \"x\"\n");
  std::string msg = errorOf([&] { loadConfig(f.path(), {}); });
  ASSERT_FALSE(msg.empty());
  EXPECT_TRUE(startsWith(msg, f.path().string() + ":")) << msg;
  // The error is on line 2 or 3 depending on where the parser notices it.
  EXPECT_TRUE(msg.find(":2:") != std::string::npos || msg.find(":3:") != std::string::npos) << msg;
}

TEST(Config, MissingFileIsAnError) {
  std::string msg = errorOf([] { loadConfig(fs::path("/nonexistent/dir/tango.toml"), {}); });
  EXPECT_TRUE(startsWith(msg, "/nonexistent/dir/tango.toml:")) << msg;
}

TEST(Config, CurrentEnvironmentReadsProcessEnvironment) {
  ASSERT_EQ(setenv("TANGO_CONFIG_TEST_VAR", "a=b", 1), 0);
  auto env = tango::currentEnvironment();
  unsetenv("TANGO_CONFIG_TEST_VAR");
  ASSERT_TRUE(env.count("TANGO_CONFIG_TEST_VAR"));
  EXPECT_EQ(env.at("TANGO_CONFIG_TEST_VAR"), "a=b");
}

namespace {

TEST(Config, WarmImagesFromTheFileAndTheEnvironment) {
  EXPECT_TRUE(loadConfig(std::nullopt, {}).warmImages.empty()) << "pools are made on demand";
  EXPECT_EQ(fromToml("WARM_IMAGES = [\"autograding_image\", \"java:17\"]\n").warmImages,
            (std::vector<std::string>{"autograding_image", "java:17"}));
  EXPECT_EQ(fromToml("", {{"WARM_IMAGES", " a , b "}}).warmImages,
            (std::vector<std::string>{"a", "b"}));
  EXPECT_TRUE(fromToml("WARM_IMAGES = []\n").warmImages.empty());
  for (const char* bad :
       {"WARM_IMAGES = [\"../x\"]\n", "WARM_IMAGES = \"one\"\n", "WARM_IMAGES = [1]\n"}) {
    std::string msg = errorOf([&] { fromToml(bad); });
    EXPECT_TRUE(startsWith(msg, "WARM_IMAGES: must be a list of image names")) << bad << msg;
  }
}

TEST(Config, SandboxDirDefaultsOutsideTheDataDirOnePerDataDir) {
  Config a, b;
  a.dataDir = "/srv/tango-a";
  b.dataDir = "/srv/tango-b";
  EXPECT_TRUE(a.vmsDir().string().starts_with("/var/lib/tango-sandboxes/")) << a.vmsDir();
  EXPECT_NE(a.vmsDir(), b.vmsDir());
  EXPECT_EQ(a.vmsDir(), Config(a).vmsDir()) << "the same DATA_DIR, the same place";
  EXPECT_EQ(fromToml("SANDBOX_DIR = \"/srv/sandboxes\"\n").vmsDir(), "/srv/sandboxes");
}

TEST(Config, AnExampleKeyKeepsTheServiceOnLoopback) {
  for (const char* key : {"test", "change-me"}) {
    Config c = fromToml("HOST = \"0.0.0.0\"\n", {{"RESTFUL_KEY", key}});
    const std::string note = listenSafely(c);
    EXPECT_EQ(c.host, "127.0.0.1") << key;
    EXPECT_NE(note.find("is a shipped example"), std::string::npos) << note;
  }
  // Already loopback: unchanged, still said.
  Config local = fromToml("HOST = \"127.0.0.2\"\n");
  EXPECT_NE(listenSafely(local), "");
  EXPECT_EQ(local.host, "127.0.0.2");
  // An example key beside a real one still narrows it.
  Config both = fromToml("HOST = \"::\"\nKEYS = [\"real-secret\", \"test\"]\n");
  EXPECT_NE(listenSafely(both), "");
  EXPECT_EQ(both.host, "127.0.0.1");
  // Only the operator's keys: HOST as configured, nothing said.
  Config real = fromToml("HOST = \"0.0.0.0\"\nKEYS = [\"real-secret\"]\n");
  EXPECT_EQ(listenSafely(real), "");
  EXPECT_EQ(real.host, "0.0.0.0");
}

}  // namespace

namespace {

TEST(Config, OneKeyIsTheOperatorKeyUntilOperatorKeysSaysOtherwise) {
  // Tango's single RESTFUL_KEY keeps every route, as in Tango.
  Config single = fromToml("", {{"RESTFUL_KEY", "only-secret"}});
  EXPECT_EQ(single.operatorKeysInEffect(), std::vector<std::string>{"only-secret"});
  // Several course keys and no OPERATOR_KEYS: nobody is an operator.
  Config courses = fromToml("KEYS = [\"course-a\", \"course-b\"]\n");
  EXPECT_TRUE(courses.operatorKeysInEffect().empty());
  Config ops = fromToml("KEYS = [\"course-a\", \"ops\"]\nOPERATOR_KEYS = [\"ops\"]\n");
  EXPECT_EQ(ops.operatorKeysInEffect(), std::vector<std::string>{"ops"});
  // An empty OPERATOR_KEYS takes the operator routes away even from a lone key.
  Config none = fromToml("KEYS = [\"only\"]\nOPERATOR_KEYS = []\n");
  EXPECT_TRUE(none.operatorKeysInEffect().empty());
}

TEST(Config, KeysWhoseCourselabDirectoriesCouldMeetAreRefusedWithoutShowingThem) {
  // Key "a" with lab "b-c" and key "a-b" with lab "c" would share "a-b-c".
  auto msg = errorOf([] { fromToml("KEYS = [\"secret-a\", \"secret-a-b\"]\n"); });
  EXPECT_TRUE(startsWith(msg, "KEYS: key #2 starts with key #1")) << msg;
  EXPECT_EQ(msg.find("secret"), std::string::npos) << msg;
  msg = errorOf([] { fromToml("KEYS = [\"x-y\", \"x\"]\n"); });
  EXPECT_TRUE(startsWith(msg, "KEYS: key #1 starts with key #2")) << msg;
  // Sharing a prefix without the dash is fine.
  EXPECT_EQ(errorOf([] { fromToml("KEYS = [\"ab\", \"abc\", \"a_b\"]\n"); }), "");
  msg = errorOf([] { fromToml("KEYS = [\"k1\"]\nOPERATOR_KEYS = [\"k1\", \"hidden-ops\"]\n"); });
  EXPECT_EQ(msg, "OPERATOR_KEYS: entry #2 is not one of KEYS");
}

TEST(Config, LimitsHaveDefaultsAndAreRead) {
  Config d = loadConfig(std::nullopt, {});
  EXPECT_EQ(d.maxLiveJobsPerKey, 10000);
  EXPECT_EQ(d.maxKeyDisk, 100LL << 30);
  EXPECT_EQ(d.maxJobInputFiles, 1000);
  EXPECT_EQ(d.maxJobInputBytes, 1LL << 30);
  EXPECT_EQ(d.maxPoolSize, 64);
  EXPECT_EQ(d.maxPoolCores, 64);
  EXPECT_EQ(d.maxBuildBytes, 2LL << 30);
  EXPECT_EQ(d.minFreeDisk, 256LL << 20);
  EXPECT_EQ(d.maxConnections, 8192);
  EXPECT_EQ(d.maxConnectionsPerClient, 1024);
  EXPECT_EQ(d.httpHeaderTimeoutSecs, 10);
  EXPECT_EQ(d.httpRequestTimeoutSecs, 300);
  // The defaults deny link-local and the clouds' metadata addresses.
  for (const char* r : {"169.254.0.0/16", "100.100.100.200/32", "fe80::/10", "fd00:ec2::254/128"})
    EXPECT_NE(std::find(d.callbackDeny.begin(), d.callbackDeny.end(), r), d.callbackDeny.end())
        << r;
  EXPECT_TRUE(d.callbackAllow.empty());

  Config c = fromToml(R"(
MAX_LIVE_JOBS_PER_KEY = 5
MAX_KEY_DISK = 1000000
MAX_JOB_INPUT_FILES = 3
MAX_JOB_INPUT_BYTES = 4096
MAX_POOL_SIZE = 8
MAX_POOL_CORES = 2
MAX_BUILD_BYTES = 1048576
BUILD_IMAGES = ["course_image"]
MIN_FREE_DISK = 0
MAX_CONNECTIONS = 100
MAX_CONNECTIONS_PER_CLIENT = 10
HTTP_HEADER_TIMEOUT = 2
HTTP_REQUEST_TIMEOUT = 30
CALLBACK_DENY = ["127.0.0.0/8"]
CALLBACK_ALLOW = ["10.0.0.5/32", "fd12::/16"]
)");
  EXPECT_EQ(c.maxLiveJobsPerKey, 5);
  EXPECT_EQ(c.maxKeyDisk, 1000000);
  EXPECT_EQ(c.maxJobInputFiles, 3);
  EXPECT_EQ(c.maxJobInputBytes, 4096);
  EXPECT_EQ(c.maxPoolSize, 8);
  EXPECT_EQ(c.maxPoolCores, 2);
  EXPECT_EQ(c.maxBuildBytes, 1048576);
  EXPECT_EQ(c.buildImages, std::vector<std::string>{"course_image"});
  EXPECT_EQ(c.minFreeDisk, 0);
  EXPECT_EQ(c.maxConnections, 100);
  EXPECT_EQ(c.maxConnectionsPerClient, 10);
  EXPECT_EQ(c.httpHeaderTimeoutSecs, 2);
  EXPECT_EQ(c.httpRequestTimeoutSecs, 30);
  EXPECT_EQ(c.callbackDeny, std::vector<std::string>{"127.0.0.0/8"});
  EXPECT_EQ(c.callbackAllow, (std::vector<std::string>{"10.0.0.5/32", "fd12::/16"}));

  for (const char* bad :
       {"MAX_LIVE_JOBS_PER_KEY = 0", "MAX_POOL_SIZE = -1", "MAX_CONNECTIONS_PER_CLIENT = 0",
        "CALLBACK_DENY = [\"metadata\"]", "CALLBACK_ALLOW = [\"10.0.0.0/33\"]",
        "MAX_JOB_INPUT_FILES = \"many\"", "BUILD_IMAGES = [\"../x\"]"}) {
    const std::string key = std::string(bad).substr(0, std::string(bad).find(' '));
    auto msg = errorOf([&] { fromToml(std::string(bad) + "\n"); });
    EXPECT_TRUE(startsWith(msg, key + ":")) << bad << " -> " << msg;
  }
  auto msg = errorOf([] { fromToml("HTTP_HEADER_TIMEOUT = 60\nHTTP_REQUEST_TIMEOUT = 30\n"); });
  EXPECT_TRUE(startsWith(msg, "HTTP_HEADER_TIMEOUT: must not exceed")) << msg;
}

}  // namespace

namespace tango::test {
namespace {

// Deadline night: MAX_PRIORITY, [[KEY_POLICY]] and [COURSELAB_WEIGHTS].
// A key is never shown in a message: entries are named by position.
TEST(Config, SharesAndPriorities) {
  auto c = fromToml(
      "KEYS = [\"k1\", \"k2\"]\nMAX_PRIORITY = \"low\"\n"
      "[[KEY_POLICY]]\nkey = \"k2\"\nweight = 3\nmax_priority = \"high\"\n"
      "[COURSELAB_WEIGHTS]\n\"15213-f26\" = 2.5\nother = 1\n");
  EXPECT_EQ(c.maxPriority, "low");
  ASSERT_EQ(c.keyPolicies.size(), 1u);
  EXPECT_EQ(c.keyPolicies[0].key, "k2");
  EXPECT_EQ(c.keyPolicies[0].weight, 3);
  EXPECT_EQ(c.keyPolicies[0].maxPriority, "high");
  EXPECT_EQ(c.courselabWeights.at("15213-f26"), 2.5);
  EXPECT_EQ(Config{}.maxPriority, "normal");
  EXPECT_EQ(fromToml("", {{"MAX_PRIORITY", "high"}}).maxPriority, "high");

  auto msg = errorOf([] { fromToml("KEYS = [\"k1\"]\n[[KEY_POLICY]]\nkey = \"secret-x\"\n"); });
  EXPECT_EQ(msg, "KEY_POLICY[0].key: not one of KEYS");
  msg = errorOf([] {
    fromToml("KEYS = [\"k1\"]\n[[KEY_POLICY]]\nkey = \"k1\"\n[[KEY_POLICY]]\nkey = \"k1\"\n");
  });
  EXPECT_EQ(msg, "KEY_POLICY[1].key: a key has two entries");
  msg = errorOf([] { fromToml("KEYS = [\"k1\"]\n[[KEY_POLICY]]\nkey = \"k1\"\nweight = 0\n"); });
  EXPECT_TRUE(startsWith(msg, "KEY_POLICY[0].weight: must be a number > 0")) << msg;
  msg = errorOf([] {
    fromToml("KEYS = [\"k1\"]\n[[KEY_POLICY]]\nkey = \"k1\"\nmax_priority = \"urgent\"\n");
  });
  EXPECT_TRUE(startsWith(msg, "KEY_POLICY[0].max_priority: must be one of low, normal, high"))
      << msg;
  msg = errorOf([] { fromToml("KEYS = [\"k1\"]\n[[KEY_POLICY]]\nweight = 2\n"); });
  EXPECT_EQ(msg, "KEY_POLICY[0].key: missing");
  msg = errorOf([] { fromToml("[COURSELAB_WEIGHTS]\nlab = -1\n"); });
  EXPECT_TRUE(startsWith(msg, "COURSELAB_WEIGHTS.lab: must be a number > 0")) << msg;
  msg = errorOf([] { fromToml("MAX_PRIORITY = \"top\"\n"); });
  EXPECT_TRUE(startsWith(msg, "MAX_PRIORITY: must be one of low, normal, high")) << msg;
}

}  // namespace
}  // namespace tango::test
