// DOCKER_HOSTS and its neighbours (distDocker): engine URLs in Docker's
// forms, per-engine settings, Tango's hosts file, and what is refused.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>

#include "ConfigFiles.hpp"
#include "tango/config/Config.hpp"

namespace tango {
namespace {

using test::errorOf;
using test::fromToml;
using TempFile = test::TempToml;

TEST(DockerHosts, UrlsOfEveryKind) {
  std::string why;
  auto u = parseEngineUrl("unix:///var/run/docker.sock", why);
  ASSERT_TRUE(u);
  EXPECT_EQ(u->path, "/var/run/docker.sock");
  auto t = parseEngineUrl("tcp://grader2.example.edu:2376", why);
  ASSERT_TRUE(t);
  EXPECT_EQ(t->host, "grader2.example.edu");
  EXPECT_EQ(t->port, 2376);
  EXPECT_EQ(parseEngineUrl("tcp://10.0.0.2", why)->port, 2376);
  EXPECT_EQ(parseEngineUrl("tcp://[::1]:2400", why)->host, "::1");
  auto s = parseEngineUrl("ssh://tango@grader3:2222/run/docker.sock", why);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->user, "tango");
  EXPECT_EQ(s->host, "grader3");
  EXPECT_EQ(s->port, 2222);
  EXPECT_EQ(s->path, "/run/docker.sock");
  EXPECT_EQ(parseEngineUrl("ssh://tango@grader3", why)->path, "/var/run/docker.sock");
  for (const char* bad : {"http://x:2375", "tcp://x:0", "tcp://x:99999", "tcp://-oProxyCommand=x:1",
                          "ssh://grader3", "ssh://-oProxyCommand=touch@x", "ssh://u@x:22/../etc",
                          "unix://relative.sock", "unix:///a b", "tcp://x;rm:1", ""}) {
    why.clear();
    EXPECT_FALSE(parseEngineUrl(bad, why)) << bad;
    EXPECT_FALSE(why.empty()) << bad;
  }
}

TEST(DockerHosts, ConfigStringsTablesAndDefaults) {
  Config c = fromToml(R"(
VMMS_NAME = "distDocker"
DOCKER_CERT_PATH = "/etc/tango/certs"
DOCKER_SSH_KEY = "/etc/tango/id_ed25519"
DOCKER_ENGINE_CAPACITY = 6
DOCKER_PING_SECS = 3
DOCKER_HOSTS = [
  "unix:///var/run/docker.sock",
  { url = "tcp://10.0.0.2:2376", capacity = 8, cert_path = "/etc/tango/g2" },
  "ssh://tango@grader3",
]
)");
  auto hosts = resolveDockerHosts(c);
  ASSERT_EQ(hosts.size(), 3u);
  EXPECT_EQ(hosts[0].capacity, 6);
  EXPECT_EQ(hosts[1].capacity, 8);
  EXPECT_EQ(hosts[1].certPath, "/etc/tango/g2");
  EXPECT_EQ(hosts[2].sshKey, "/etc/tango/id_ed25519");
  EXPECT_EQ(c.dockerPingSecs, 3);
  // The environment: URLs separated by commas.
  Config e = fromToml("VMMS_NAME = \"distDocker\"\n",
                      {{"DOCKER_HOSTS", "unix:///a.sock, unix:///b.sock"}});
  ASSERT_EQ(e.dockerHosts.size(), 2u);
  EXPECT_EQ(e.dockerHosts[1].url, "unix:///b.sock");
}

TEST(DockerHosts, TangosHostsFileMeansSshHosts) {
  TempFile hosts("# graders\ngrader1.example.edu\n\n  10.0.0.7  # spare\n", "hosts");
  Config c = fromToml("VMMS_NAME = \"distDocker\"\nDOCKER_HOSTS_FILE = \"" + hosts.path().string() +
                      "\"\nDOCKER_HOST_USER = \"tango\"\nDOCKER_SSH_KEY = \"/k\"\n");
  auto all = resolveDockerHosts(c);
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].url, "ssh://tango@grader1.example.edu");
  EXPECT_EQ(all[1].url, "ssh://tango@10.0.0.7");
  EXPECT_EQ(all[1].sshKey, "/k");
  TempFile bad("grader1;reboot\n", "badhosts");
  EXPECT_NE(errorOf([&] {
              fromToml("VMMS_NAME = \"distDocker\"\nDOCKER_HOSTS_FILE = \"" + bad.path().string() +
                       "\"\nDOCKER_SSH_KEY = \"/k\"\n");
            }).find("DOCKER_HOSTS_FILE"),
            std::string::npos);
}

TEST(DockerHosts, WhatIsRefusedNamesTheKey) {
  // No engine at all.
  EXPECT_NE(errorOf([] { fromToml("VMMS_NAME = \"distDocker\"\n"); }).find("DOCKER_HOSTS"),
            std::string::npos);
  // Plain TCP (no certificates): root on the engine's host for anyone.
  EXPECT_NE(errorOf([] {
              fromToml("VMMS_NAME = \"distDocker\"\nDOCKER_HOSTS = [\"tcp://10.0.0.2:2375\"]\n");
            }).find("DOCKER_CERT_PATH"),
            std::string::npos);
  // SSH without a key.
  EXPECT_NE(errorOf([] {
              fromToml("VMMS_NAME = \"distDocker\"\nDOCKER_HOSTS = [\"ssh://u@h\"]\n");
            }).find("DOCKER_SSH_KEY"),
            std::string::npos);
  EXPECT_NE(errorOf([] {
              fromToml("DOCKER_HOSTS = [\"unix:///a.sock\", \"unix:///a.sock\"]\n");
            }).find("twice"),
            std::string::npos);
  EXPECT_NE(errorOf([] {
              fromToml("DOCKER_HOSTS = [{ url = \"unix:///a\", capacity = 0 }]\n");
            }).find("DOCKER_HOSTS[0].capacity"),
            std::string::npos);
  EXPECT_NE(errorOf([] {
              fromToml("DOCKER_HOSTS = [{ url = \"unix:///a\", colour = 1 }]\n");
            }).find("DOCKER_HOSTS[0].colour"),
            std::string::npos);
  EXPECT_NE(errorOf([] { fromToml("DOCKER_HOSTS = [\"docker.sock\"]\n"); }).find("DOCKER_HOSTS[0]"),
            std::string::npos);
  EXPECT_NE(errorOf([] { fromToml("DOCKER_CERT_PATH = \"certs\"\n"); }).find("absolute"),
            std::string::npos);
}

}  // namespace
}  // namespace tango
