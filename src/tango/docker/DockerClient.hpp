#pragma once
// HTTP requests to a Docker engine (libcurl): over its unix socket, or over
// TCP with TLS client certificates (Endpoint.hpp). Requests share a cache
// of open connections (and TLS sessions), so a job's calls do not each pay
// a connect and a handshake. Knows the
// wire protocol only: version negotiation, bodies in and out, status codes.
// The typed engine operations live in Engine.hpp. Thread-safe: every request
// uses its own curl handle, so worker threads never share one.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>

#include "tango/docker/Endpoint.hpp"

namespace tango::docker {

// The engine could not be reached or did not answer in time (not an HTTP error).
struct DockerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};
// The request's timeout passed (a run that must be killed, for instance).
struct DockerTimeout : DockerError {
  using DockerError::DockerError;
};

struct Response {
  long status = 0;
  std::string body;
  std::string apiVersion;  // the Api-Version header, when present
  bool truncated = false;  // the body was cut at the caller's limit
};

struct Request {
  std::string method = "GET";
  std::string path;  // e.g. "/containers/json?all=1", without the version prefix
  std::string body;
  std::string contentType = "application/json";
  // Sent instead of `body` when set (image tarballs: never read whole into memory).
  std::filesystem::path bodyFile;
  std::chrono::milliseconds timeout{std::chrono::seconds(60)};
  std::size_t maxBody = 64 * 1024 * 1024;  // longer bodies are cut (truncated = true)
  // When set, the body goes here chunk by chunk instead of into Response::body;
  // returning false stops the transfer.
  std::function<bool(std::string_view)> sink;
};

class DockerClient {
 public:
  // The newest API version we speak; older engines are talked to in theirs.
  static constexpr std::string_view kMaxApiVersion = "1.43";

  explicit DockerClient(std::string socketPath = "/var/run/docker.sock")
      : DockerClient(Endpoint::unix(std::move(socketPath))) {}
  explicit DockerClient(Endpoint engine);
  ~DockerClient();
  DockerClient(const DockerClient&) = delete;
  DockerClient& operator=(const DockerClient&) = delete;

  // Sends `req` under /v<negotiated>/. Throws DockerError when the engine cannot
  // be reached or the timeout passes; HTTP errors come back as the status.
  Response send(const Request& req);
  // GET /_ping; the version the engine answered with. Throws DockerError.
  std::string negotiate();
  // GET /_ping, unversioned; throws DockerError unless it answers 200 in time.
  void ping(std::chrono::milliseconds timeout);

  const Endpoint& endpoint() const { return engine_; }

 private:
  Response perform(const Request& req, const std::string& url);

  // The URL prefix: "http://docker" over the socket, "https://host:port" over TCP.
  std::string base() const;

  Endpoint engine_;
  struct Shared;  // libcurl's share handle and its locks
  std::unique_ptr<Shared> shared_;
  std::once_flag negotiated_;
  std::string version_;  // written once under negotiated_
};

// "1.41" < "1.43": numeric comparison of dotted versions.
bool versionLess(std::string_view a, std::string_view b);

}  // namespace tango::docker
