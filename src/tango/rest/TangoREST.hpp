#pragma once
// Tango's REST routes (tangoREST.py / server.py) over HttpServer: which
// request goes where, every input check, and the exact answers of the
// contract (docs: /work/shared/tango-compat.md). No Beast here.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tango/config/Config.hpp"
#include "tango/core/JobService.hpp"
#include "tango/courselab/Courselabs.hpp"
#include "tango/rest/ApiKeys.hpp"
#include "tango/rest/Http.hpp"
#include "tango/rest/PollWaits.hpp"

namespace tango {

class TangoREST : public HttpHandler {
 public:
  // All three must outlive this object.
  TangoREST(const Config& cfg, JobService& jobs, Courselabs& labs);
  ~TangoREST() override;
  TangoREST(const TangoREST&) = delete;
  TangoREST& operator=(const TangoREST&) = delete;

  // The longest wait a poll may ask for (`?wait=N`, seconds).
  static constexpr int kMaxPollWaitSecs = 60;

  std::unique_ptr<HttpExchange> begin(const HttpHead& head) override;

 private:
  bool keyOk(std::string_view key) const { return keys_.check(key) != Access::None; }
  // The keyId whose jobs `key` may see: nullopt for an operator (every key's).
  std::optional<std::string> ownerFilter(std::string_view key) const;

  // /metrics, /status/ and /status/data (keyed by query or header).
  std::unique_ptr<HttpExchange> operatorRoute(const std::vector<std::string>& segments,
                                              const HttpHead& head);
  HttpResponse open(const std::string& key, const std::string& courselab);
  std::unique_ptr<HttpExchange> upload(const std::string& key, const std::string& courselab,
                                       const HttpHead& head);
  std::unique_ptr<HttpExchange> addJob(const std::string& key, const std::string& courselab);
  HttpResponse poll(const std::string& key, const std::string& courselab,
                    const std::string& outputFile);
  // Tango's "Output file not found", with a queued job's place in line.
  HttpResponse notYet(const std::string& key, const std::string& courselab,
                      const std::string& outputFile);
  HttpResponse cancel(const std::string& key, const std::string& jobId);
  HttpResponse cancelQueued(const std::string& key, const std::string& courselab);
  // The output file's answer if it is there.
  std::optional<HttpResponse> outputAnswer(const std::filesystem::path& dir,
                                           const std::string& outputFile);
  void pollWaiting(const std::string& key, const std::string& courselab,
                   const std::string& outputFile, int waitSecs,
                   std::function<void(HttpResponse)> done);
  HttpResponse partialOutput(const std::string& key, const std::string& jobId);
  HttpResponse info();
  HttpResponse jobs(const std::string& key, const std::string& dead);
  HttpResponse pool(const std::string& key, const std::string* image);
  std::unique_ptr<HttpExchange> prealloc(const std::string& key, const std::string& image,
                                         const std::string& num);
  std::unique_ptr<HttpExchange> build(const std::string& key, const HttpHead& head);

  const Config& cfg_;
  ApiKeys keys_;
  bool operatorRoutesNeedKey_ = true;
  std::uint64_t maxInputFileSize_;
  std::uint64_t maxJsonBodyBytes_;
  std::filesystem::path tmpDir_;
  JobService& jobs_;
  Courselabs& labs_;
  PollWaits waits_;
};

}  // namespace tango
