#pragma once
// The Docker Engine API operations the service uses, typed: containers,
// exec, the archive endpoints, images. Every call goes through DockerClient
// (the unix socket); nothing here runs the docker CLI.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tango/docker/Attach.hpp"
#include "tango/docker/DockerClient.hpp"

namespace tango::docker {

// The engine answered with an HTTP error; `message` is its explanation.
struct EngineError : DockerError {
  EngineError(long status, const std::string& what) : DockerError(what), status(status) {}
  long status;
};

struct ContainerSpec {
  std::string name;
  std::string image;
  std::map<std::string, std::string> labels;
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::int64_t nanoCpus = 0;     // 0 = no limit
  std::int64_t memoryBytes = 0;  // 0 = no limit; swap is capped to the same
  std::int64_t pidsLimit = 0;    // 0 = no limit
  // Mount point -> tmpfs options ("size=16m,mode=1777"): writable places
  // whose size is bounded, unlike the container's layer on the host disk.
  std::map<std::string, std::string> tmpfs;
  std::int64_t shmBytes = 0;        // size of /dev/shm; 0 = the engine's default
  std::vector<std::string> capAdd;  // after dropping ALL
  bool networkNone = false;  // NetworkMode "none": loopback only until a network is connected
  bool init = true;          // a tiny init as PID 1 reaps the job's orphans
  // Stdin stays open for one attach (OpenStdin, StdinOnce): whatever the
  // first client writes reaches the command, then it reads end of file.
  bool openStdin = false;
  bool readonlyRootfs = false;
  std::vector<std::string> env;  // "NAME=value", over the image's
};

struct ImageInfo {
  std::string id;  // "sha256:..."
  std::map<std::string, std::string> labels;
};

struct ContainerState {
  std::string status;  // "created", "running", "exited", "dead", ...
  bool running = false;
  bool oomKilled = false;
  int exitCode = 0;
  std::string imageId;  // "sha256:..." of the image it was created from
  std::vector<std::string> networks;
};

struct ContainerInfo {
  std::string id;
  std::string name;  // without the leading "/"
  std::map<std::string, std::string> labels;
};

class Engine {
 public:
  using Sink = std::function<void(std::string_view)>;
  explicit Engine(std::string socketPath = "/var/run/docker.sock");
  explicit Engine(Endpoint engine);
  const Endpoint& endpoint() const { return client_.endpoint(); }

  std::string apiVersion() { return client_.negotiate(); }

  // GET /info: whether the engine can limit a container's processes.
  bool supportsPidsLimit();
  struct SystemInfo {
    int cpus = 0;
    std::int64_t memoryBytes = 0;
    bool pidsLimit = false;
  };
  SystemInfo systemInfo(std::chrono::milliseconds timeout);
  // GET /_ping: throws DockerError unless the engine answers in time.
  void ping(std::chrono::milliseconds timeout);

  void createContainer(const ContainerSpec& spec, std::chrono::milliseconds timeout);
  void startContainer(const std::string& name, std::chrono::milliseconds timeout);
  // The container's stdin/stdout/stderr (see Attach.hpp).
  Attachment attach(const std::string& name, std::chrono::milliseconds timeout);
  // POST /containers/{name}/wait?condition=not-running: its exit code once
  // it has stopped.
  int waitContainer(const std::string& name, std::chrono::milliseconds timeout);
  void killContainer(const std::string& name);
  // Force-removes with its anonymous volumes; true when it is gone (also when
  // it never existed).
  bool removeContainer(const std::string& name);
  std::optional<ContainerState> inspectContainer(const std::string& name);
  // Changes a container's memory (and swap, to the same) and pids limits;
  // 0 leaves one as it is.
  void updateContainer(const std::string& name, std::int64_t memoryBytes, std::int64_t pidsLimit);
  void connectNetwork(const std::string& network, const std::string& container);
  void disconnectNetwork(const std::string& network, const std::string& container);
  // All containers (running or not) carrying label `key=value`.
  std::vector<ContainerInfo> listByLabel(const std::string& key, const std::string& value);

  // Extracts the tar stream `tar` at `path` inside the container.
  void putArchive(const std::string& name, const std::string& path, const std::string& tar,
                  std::chrono::milliseconds timeout);
  // The tar stream of `path` in the container, at most `maxBytes` of it
  // (then cut); nullopt when the path does not exist.
  std::optional<std::string> getArchive(const std::string& name, const std::string& path,
                                        std::size_t maxBytes, std::chrono::milliseconds timeout);

  // Every "repo:tag" of every image.
  std::vector<std::string> imageTags();
  std::optional<std::string> imageLabel(const std::string& image, const std::string& key);
  // GET /images/{name}/json; nullopt when there is no such image.
  std::optional<ImageInfo> inspectImage(const std::string& image);
  // POST /images/load with a `docker save` tarball; returns the loaded
  // reference ("name:tag" or "sha256:...").
  std::string loadImage(const std::filesystem::path& tarball, std::chrono::milliseconds timeout);
  // POST /images/create?fromSrc=- with a tar of a root filesystem; `changes`
  // are Dockerfile instructions (LABEL, ENV, CMD) applied to the new image.
  void importImage(const std::filesystem::path& rootTar, const std::string& repo,
                   const std::string& tag, const std::vector<std::string>& changes,
                   std::chrono::milliseconds timeout);
  void tagImage(const std::string& source, const std::string& repo, const std::string& tag);
  // Without `force`, an image a container still uses is refused (HTTP 409).
  void removeImage(const std::string& name, bool force = true);
  // GET /images/{name}/get into `dest` (a `docker save` tarball).
  void saveImage(const std::string& name, const std::filesystem::path& dest);
  // POST /commit: a new image `repo:latest` from the container's filesystem.
  void commit(const std::string& container, const std::string& repo);

 private:
  Response call(Request req, std::initializer_list<long> okStatus);

  DockerClient client_;
};

// Percent-encodes a query value.
std::string urlEncode(std::string_view s);

}  // namespace tango::docker
