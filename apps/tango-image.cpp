// tango-image: makes Debian-based autograding images without a registry.
//
//   tango-image build NAME [--packages p,q] [--no-defaults] [--dir DIR]
//                          [--suite bookworm] [--mirror URL] [--autodriver PATH]
//                          [--if-changed] [--socket PATH]
//   tango-image push NAME --to ENGINE-URL [--cert-path DIR] [--ssh-key KEY]
//                         [--if-changed] [--socket PATH]
//
// mmdebstrap builds a root from Debian's packages (make, gcc, g++, python3 by
// default, plus --packages) with the users autolab and autograde and the
// project's autodriver at /usr/bin/autodriver, then the root is imported into
// the engine as NAME:latest through the Engine API. With --dir the root stays
// in DIR, so the `local` VMMS can use the same image ([local] images). The
// image carries labels with its package list and the SHA-256 of its
// autodriver (localDocker runs that autodriver in place, with a read-only
// root, when it is the service's own): --if-changed skips the build when an
// image of that name, list and autodriver exists (what CI uses to cache it).
//
// push copies NAME:latest from the local engine to another one (a distDocker
// engine: unix://, tcp:// with TLS, ssh://), as `docker save | docker load`
// would, without a registry; --if-changed skips it when the engine holds
// the same image already.
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "tango/config/DockerHosts.hpp"
#include "tango/docker/Engine.hpp"
#include "tango/docker/Tar.hpp"
#include "tango/ssh/SshSession.hpp"
#include "tango/util/Sha256.hpp"
#include "tango/util/Spawner.hpp"
#include "tango/vmms/EngineLink.hpp"

namespace fs = std::filesystem;

namespace {

int run(const std::vector<std::string>& argv) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  const pid_t pid = ::fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    ::execvp(args[0], args.data());
    std::perror(args[0]);
    _exit(127);
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Removes a temporary directory when the build ends, however it ends.
struct TempDir {
  fs::path path;
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

struct PushOptions {
  std::string name, to, certPath, sshKey, socket;
  bool ifChanged = false;
};

// NAME:latest from the local engine into the engine at `o.to`.
int push(const PushOptions& o) {
  std::string why;
  auto url = tango::parseEngineUrl(o.to, why);
  if (!url) {
    std::cerr << "tango-image: --to " << o.to << ": " << why << "\n";
    return 2;
  }
  tango::DockerHost host{o.to, 0, o.certPath, o.sshKey};
  if (url->kind == tango::EngineUrl::Kind::Tcp && o.certPath.empty()) {
    std::cerr << "tango-image: " << o.to << " needs --cert-path (ca.pem, cert.pem, key.pem)\n";
    return 2;
  }
  if (url->kind == tango::EngineUrl::Kind::Ssh && o.sshKey.empty()) {
    std::cerr << "tango-image: " << o.to << " needs --ssh-key\n";
    return 2;
  }
  TempDir tmp{fs::temp_directory_path() / ("tango-image-push-" + std::to_string(::getpid()))};
  fs::create_directories(tmp.path);
  fs::permissions(tmp.path, fs::perms::owner_all, fs::perm_options::replace);
  tango::Spawner spawner;
  tango::EngineLink link(host, *url, tmp.path, tmp.path, 0, spawner);
  if (auto err = link.open(std::chrono::steady_clock::now() + std::chrono::seconds(30));
      !err.empty()) {
    std::cerr << "tango-image: " << err << "\n";
    return 1;
  }
  tango::docker::Engine source(o.socket);
  tango::docker::Engine target(link.endpoint());
  const std::string ref = o.name + ":latest";
  auto mine = source.inspectImage(ref);
  if (!mine) {
    std::cerr << "tango-image: no image " << ref << " in the engine at " << o.socket << "\n";
    return 1;
  }
  if (auto theirs = target.inspectImage(ref); o.ifChanged && theirs && theirs->id == mine->id) {
    std::cout << "tango-image: " << o.to << " holds " << ref << " already\n";
    return 0;
  }
  const fs::path tarball = tmp.path / "image.tar";
  source.saveImage(ref, tarball);
  const std::string loaded = target.loadImage(tarball, std::chrono::minutes(20));
  target.tagImage(loaded, o.name, "latest");
  std::cout << "tango-image: " << ref << " pushed to " << o.to << "\n";
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Builds autograding images for the localDocker (and local) VMMS"};
  app.require_subcommand(1);
  auto* build = app.add_subcommand("build", "build NAME from Debian packages");
  std::string name, packages, dir, suite = "bookworm", mirror, socket = "/var/run/docker.sock";
  std::string autodriver;
  bool noDefaults = false, ifChanged = false;
  build->add_option("NAME", name, "image name (tagged NAME:latest)")->required();
  build->add_option("--packages", packages, "extra Debian packages, comma-separated");
  build->add_flag("--no-defaults", noDefaults, "do not add make, gcc, g++, python3");
  build->add_option("--dir", dir, "build the root in DIR and keep it (for the local VMMS)");
  build->add_option("--suite", suite, "Debian suite");
  build->add_option("--mirror", mirror, "Debian mirror (default: mmdebstrap's, i.e. apt's)");
  build->add_option("--autodriver", autodriver,
                    "autodriver to install at /usr/bin/autodriver (default: next to this program)");
  build->add_flag("--if-changed", ifChanged,
                  "skip when NAME exists with the same package list and autodriver");
  build->add_option("--socket", socket, "Docker engine socket");
  auto* pushCmd = app.add_subcommand("push", "copy NAME:latest to another Docker engine");
  PushOptions po;
  pushCmd->add_option("NAME", po.name, "image name (NAME:latest is copied)")->required();
  pushCmd->add_option("--to", po.to, "engine URL: unix:///path, tcp://host:port, ssh://user@host")
      ->required();
  pushCmd->add_option("--cert-path", po.certPath, "tcp://: directory of ca.pem, cert.pem, key.pem");
  pushCmd->add_option("--ssh-key", po.sshKey, "ssh://: the private key to log in with");
  pushCmd->add_flag("--if-changed", po.ifChanged, "skip when the engine holds the same image");
  pushCmd->add_option("--socket", po.socket, "the local Docker engine's socket")
      ->default_val("/var/run/docker.sock");
  CLI11_PARSE(app, argc, argv);
  if (pushCmd->parsed()) {
    try {
      return push(po);
    } catch (const std::exception& e) {
      std::cerr << "tango-image: " << e.what() << "\n";
      return 1;
    }
  }

  std::set<std::string> pkgs;
  if (!noDefaults) pkgs = {"make", "gcc", "g++", "python3"};
  pkgs.insert("passwd");  // useradd, for the users below
  std::stringstream ss(packages);
  for (std::string p; std::getline(ss, p, ',');)
    if (!p.empty()) pkgs.insert(p);
  std::string list;
  for (const auto& p : pkgs) list += (list.empty() ? "" : ",") + p;
  const std::string key = suite + ":" + list;

  if (autodriver.empty()) {
    std::error_code ec;
    fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec && fs::exists(self.parent_path() / "autodriver"))
      autodriver = self.parent_path() / "autodriver";
  }

  try {
    // The label lets localDocker run this autodriver where it is (and keep
    // the root read-only) instead of copying its own in.
    std::string autodriverSha;
    if (!autodriver.empty()) {
      std::ifstream in(autodriver, std::ios::binary);
      std::ostringstream bytes;
      bytes << in.rdbuf();
      if (!in) {
        std::cerr << "tango-image: cannot read " << autodriver << "\n";
        return 1;
      }
      autodriverSha = tango::sha256Hex(bytes.str());
    }
    tango::docker::Engine engine(socket);
    auto info = engine.inspectImage(name + ":latest");
    if (ifChanged) {
      auto label = [&](const std::string& k) -> std::string {
        if (!info) return "-";
        auto it = info->labels.find(k);
        return it == info->labels.end() ? "-" : it->second;
      };
      if (info && label("tango.packages") == key &&
          label("tango.autodriver.sha256") == (autodriverSha.empty() ? "-" : autodriverSha)) {
        std::cout << "tango-image: " << name << " is up to date (" << key << ")\n";
        return 0;
      }
    }
    TempDir tmp{fs::temp_directory_path() / ("tango-image-" + std::to_string(::getpid()))};
    fs::create_directories(tmp.path);
    const fs::path tarball = tmp.path / "root.tar";
    // mmdebstrap writes a tar itself unless the root must stay in a directory.
    const fs::path target = dir.empty() ? tarball : fs::path(dir);
    std::vector<std::string> cmd = {
        "mmdebstrap", "--variant=minbase", "--include=" + list,
        // Documentation and translations only make the image slower to move.
        "--dpkgopt=path-exclude=/usr/share/doc/*", "--dpkgopt=path-exclude=/usr/share/man/*",
        "--dpkgopt=path-exclude=/usr/share/locale/*", "--dpkgopt=path-exclude=/usr/share/info/*",
        "--customize-hook=chroot \"$1\" useradd -m -s /bin/bash autolab",
        "--customize-hook=chroot \"$1\" useradd -m -s /bin/bash autograde"};
    if (!autodriver.empty()) cmd.push_back("--customize-hook=copy-in " + autodriver + " /usr/bin");
    cmd.push_back(suite);
    cmd.push_back(target.string());
    if (!mirror.empty()) cmd.push_back(mirror);
    std::cout << "tango-image: building " << name << " (" << key << ")\n" << std::flush;
    if (int rc = run(cmd); rc != 0) {
      std::cerr << "tango-image: mmdebstrap failed with status " << rc << "\n";
      return 1;
    }
    if (!dir.empty()) tango::docker::tarDirectory(dir, tarball);
    std::vector<std::string> changes = {"LABEL tango.packages=\"" + key + "\"",
                                        "CMD [\"/bin/bash\"]"};
    if (!autodriverSha.empty())
      changes.push_back("LABEL tango.autodriver.sha256=\"" + autodriverSha + "\"");
    engine.importImage(tarball, name, "latest", changes, std::chrono::minutes(20));
    // The image this one replaces would stay behind untagged: remove it,
    // unless a container still uses it.
    if (auto now = engine.inspectImage(name + ":latest"); info && now && now->id != info->id) {
      try {
        engine.removeImage(info->id, /*force=*/false);
      } catch (const tango::docker::DockerError& e) {
        std::cout << "tango-image: the previous " << name << " stays: " << e.what() << "\n";
      }
    }
    std::cout << "tango-image: " << name << ":latest imported\n";
  } catch (const std::exception& e) {
    std::cerr << "tango-image: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
