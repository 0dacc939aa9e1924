// localDocker: what the containers of an image need before a job (the
// autodriver, a grading user), learnt once per image id.
#include <spdlog/spdlog.h>

#include <charconv>

#include "tango/util/Lines.hpp"
#include "tango/util/ReadFile.hpp"
#include "tango/util/Sha256.hpp"
#include "tango/vmms/DockerLabels.hpp"
#include "tango/vmms/DockerVmms.hpp"

namespace tango {

namespace fs = std::filesystem;
using docker::TarEntry;

namespace {

bool hasUser(std::string_view passwd, std::string_view user) {
  const std::string prefix = std::string(user) + ":";
  bool found = false;
  forEachLine(passwd, [&](std::string_view line) { return !(found = line.starts_with(prefix)); });
  return found;
}

// The home (field 6) of `user` in passwd(5) text.
std::optional<std::string> homeOf(std::string_view passwd, std::string_view user) {
  const std::string prefix = std::string(user) + ":";
  std::optional<std::string> home;
  forEachLine(passwd, [&](std::string_view line) {
    if (!line.starts_with(prefix)) return true;
    for (int field = 0; field < 5; ++field) {
      const auto colon = line.find(':');
      if (colon == std::string_view::npos) return false;
      line.remove_prefix(colon + 1);
    }
    home = std::string(line.substr(0, line.find(':')));
    return false;
  });
  return home;
}

// The first uid/gid from 61000 up that no line of `file` uses (field 3).
unsigned freeId(std::string_view file) {
  std::set<unsigned> used;
  forEachLine(file, [&](std::string_view line) {
    std::size_t a = line.find(':'), b = a == std::string_view::npos ? a : line.find(':', a + 1);
    if (b == std::string_view::npos) return true;
    std::string_view num = line.substr(b + 1, line.find(':', b + 1) - b - 1);
    unsigned v = 0;
    if (std::from_chars(num.data(), num.data() + num.size(), v).ec == std::errc()) used.insert(v);
    return true;
  });
  unsigned id = 61000;
  while (used.count(id)) ++id;
  return id;
}

}  // namespace

const std::string* DockerVmms::autodriverBytes() {
  std::lock_guard lock(mu_);
  if (cfg_.autodriver.empty()) return nullptr;
  if (!autodriver_) {
    auto bytes = readFileUpTo(cfg_.autodriver, 256LL * 1024 * 1024);
    if (!bytes) return nullptr;
    autodriver_ = std::move(*bytes);
    autodriverSha_ = sha256Hex(*autodriver_);
  }
  return &*autodriver_;
}

const std::string& DockerVmms::autodriverSha() {
  autodriverBytes();
  std::lock_guard lock(mu_);
  static const std::string none;
  return autodriverSha_ ? *autodriverSha_ : none;
}

std::optional<DockerVmms::ImageFacts> DockerVmms::imageFacts(const std::string& image,
                                                             std::string& error,
                                                             std::chrono::milliseconds timeout) {
  auto info = engine_.inspectImage(image);
  if (!info) {
    error = "no image " + image + " in the Docker engine";
    return std::nullopt;
  }
  {
    std::lock_guard lock(mu_);
    if (auto it = facts_.find(info->id); it != facts_.end()) return it->second;
  }
  if (!autodriverBytes()) {
    error = "autodriver not readable at '" + cfg_.autodriver.string() + "'";
    return std::nullopt;
  }
  // An image that ships the very autodriver we would copy in runs it where
  // it is; the label says which one it ships.
  auto label = info->labels.find(kAutodriverLabel);
  const bool ships = label != info->labels.end() && label->second == autodriverSha();
  ImageFacts facts = learnImage(info->id, image, ships, timeout);
  std::lock_guard lock(mu_);
  facts_[info->id] = facts;
  return facts;
}

DockerVmms::ImageFacts DockerVmms::learnImage(const std::string& imageId, const std::string& image,
                                              bool shipsAutodriver,
                                              std::chrono::milliseconds timeout) {
  auto entries = std::make_shared<std::vector<TarEntry>>();
  ImageFacts facts{shipsAutodriver ? kImageAutodriver : kAutodriver, entries, kGradingHome};
  if (!shipsAutodriver) {
    // Root-owned and not writable by the job: it cannot swap the autodriver.
    entries->push_back({"opt", TarEntry::Kind::Dir, "", 0755});
    entries->push_back({"opt/tango", TarEntry::Kind::Dir, "", 0755});
    entries->push_back({"opt/tango/autodriver", TarEntry::Kind::File, *autodriverBytes(), 0755});
  }
  // Images without a grading user (any image with make) get one, so the
  // autodriver can drop privileges; Tango's images already have it. The
  // image's files are read from a probe container, created and removed
  // (named as VM 0 of the image, so a crash leaves nothing a restart keeps).
  std::lock_guard probeLock(probeMu_);
  TangoMachine probeVm;
  probeVm.id = 0;
  probeVm.name = image;
  docker::ContainerSpec spec;
  spec.name = containerName(probeVm);
  spec.image = imageId;
  spec.labels = {{kPrefixLabel, cfg_.prefix}, {kIdLabel, "0"}, {kImageLabel, image}};
  spec.entrypoint = {"/nonexistent"};  // never started
  spec.networkNone = true;
  engine_.removeContainer(spec.name);
  engine_.createContainer(spec, timeout);
  struct Remove {
    docker::Engine& e;
    const std::string& name;
    ~Remove() {
      try {
        e.removeContainer(name);
      } catch (const docker::DockerError& err) {
        spdlog::warn("cannot remove probe container {}: {}", name, err.what());
      }
    }
  } remove{engine_, spec.name};
  auto passwdTar = engine_.getArchive(spec.name, "/etc/passwd", 4 << 20, timeout);
  std::string passwd = passwdTar ? docker::firstFileOfTar(*passwdTar, 4 << 20).value_or("") : "";
  // Written back with a user added, a passwd we could not read would lose root.
  if (passwd.empty()) throw docker::DockerError("image " + image + " has no readable /etc/passwd");
  if (auto home = homeOf(passwd, "autograde")) {
    // Its home becomes the job's tmpfs, and the autodriver hands it to the
    // user: only a plain directory under /home/.
    if (!home->starts_with("/home/") || home->find("/.") != std::string::npos ||
        home->find("//") != std::string::npos || home->size() > 200)
      throw docker::DockerError("the autograde user of image " + image + " has its home at '" +
                                *home + "'; localDocker needs it under /home/");
    while (home->size() > 6 && home->back() == '/') home->pop_back();
    facts.home = *home;
  } else {
    auto groupTar = engine_.getArchive(spec.name, "/etc/group", 4 << 20, timeout);
    std::string group = groupTar ? docker::firstFileOfTar(*groupTar, 4 << 20).value_or("") : "";
    const unsigned id = std::max(freeId(passwd), freeId(group));
    if (!passwd.empty() && passwd.back() != '\n') passwd += '\n';
    passwd += "autograde:x:" + std::to_string(id) + ":" + std::to_string(id) +
              ":Tango grading user:/home/autograde:/bin/sh\n";
    if (!hasUser(group, "autograde")) {
      if (!group.empty() && group.back() != '\n') group += '\n';
      group += "autograde:x:" + std::to_string(id) + ":\n";
    }
    entries->push_back({"etc/passwd", TarEntry::Kind::File, passwd, 0644});
    entries->push_back({"etc/group", TarEntry::Kind::File, group, 0644});
    entries->push_back({"home", TarEntry::Kind::Dir, "", 0755});
    entries->push_back({"home/autograde", TarEntry::Kind::Dir, "", 0755, id, id});
  }
  return facts;
}

}  // namespace tango
