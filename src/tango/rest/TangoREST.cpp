#include "tango/rest/TangoREST.hpp"

#include <algorithm>
#include <boost/json/array.hpp>
#include <boost/json/parse.hpp>
#include <charconv>
#include <system_error>

#include "tango/metrics/Exposition.hpp"
#include "tango/rest/Exchanges.hpp"
#include "tango/rest/TangoJson.hpp"
#include "tango/rest/Target.hpp"
#include "tango/status/StatusPage.hpp"
#include "tango/util/KeyId.hpp"
#include "tango/util/SafeName.hpp"

namespace tango {

using rest::answerLater;
using rest::answerNow;
using rest::answerWhenDone;

namespace {

constexpr std::string_view kHello = "Hello, world! RESTful Tango here!";
constexpr std::string_view kWrongKey = "Key not recognized";
constexpr std::string_view kNotOperator =
    "Key not allowed: this route needs an operator key (OPERATOR_KEYS in the config)";

// An unknown key gets its answer before any body is read, and the
// connection closes: a client without a key costs no more than a header.
std::unique_ptr<HttpExchange> refuse(std::string_view message) {
  HttpResponse r = jsonFailure(message);
  r.close = true;
  return rest::answerNow(std::move(r), 0);
}
constexpr std::string_view kNoCourselab = "Courselab not found";
constexpr std::string_view kBadCourselab = "Invalid courselab name";
constexpr std::string_view kNoOutput = "Output file not found";
constexpr std::string_view kBadImage = "Invalid image name";

// A whole decimal number in [lo, hi]; no sign, spaces or suffix.
std::optional<std::int64_t> parseInt(std::string_view s, std::int64_t lo, std::int64_t hi) {
  if (s.empty() || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    return std::nullopt;
  }
  std::int64_t v = 0;
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < lo || v > hi) return std::nullopt;
  return v;
}

bool isBlank(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
}

// Parses `body` as a JSON object; on failure sets `error` to a client-facing text.
std::optional<boost::json::object> parseObject(const std::string& body, std::string_view what,
                                               std::string& error) {
  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(body, ec);
  if (ec) {
    error = "Malformed JSON in " + std::string(what) + ": " + ec.message();
    return std::nullopt;
  }
  if (!v.is_object()) {
    error = "The " + std::string(what) + " must be a JSON object";
    return std::nullopt;
  }
  return std::move(v.as_object());
}

std::unique_ptr<HttpExchange> methodNotAllowed() {
  HttpResponse r = jsonFailure("Method not allowed", 405);
  r.close = true;  // a HEAD client would not read our body: do not reuse the stream
  return answerNow(std::move(r));
}

}  // namespace

TangoREST::TangoREST(const Config& cfg, JobService& jobs, Courselabs& labs)
    : cfg_(cfg),
      keys_(cfg.keys, cfg.operatorKeysInEffect()),
      operatorRoutesNeedKey_(cfg.operatorRoutesNeedKey),
      maxInputFileSize_(
          static_cast<std::uint64_t>(std::max<std::int64_t>(cfg.maxInputFileSize, 0))),
      maxJsonBodyBytes_(cfg.maxJsonBodyBytes),
      tmpDir_(cfg.dataDir / "tmp"),
      jobs_(jobs),
      labs_(labs) {
  jobs_.watchOutputs([this](const std::string& name) { waits_.ready(name); });
}

TangoREST::~TangoREST() {
  jobs_.watchOutputs({});
  waits_.stop();
}

std::optional<std::string> TangoREST::ownerFilter(std::string_view key) const {
  if (keys_.check(key) == Access::Operator) return std::nullopt;
  return keyId(key);
}

std::unique_ptr<HttpExchange> TangoREST::begin(const HttpHead& head) {
  auto parsed = splitTarget(head.target);
  if (!parsed) return answerNow(jsonFailure("Malformed request URL", 400));
  const std::vector<std::string> s = std::move(*parsed);
  const bool get = head.method == "GET";
  const bool post = head.method == "POST";
  auto is = [&s](std::string_view route, std::size_t n) { return s.size() == n && s[0] == route; };

  if (s.empty()) {
    if (!get) return methodNotAllowed();
    return answerNow(HttpResponse{200, "text/plain", std::string(kHello), false});
  }
  // Every Tango route has the key second; no body is read for a wrong one.
  const bool keyed = is("open", 3) || is("upload", 3) || is("addJob", 3) || is("poll", 4) ||
                     is("getPartialOutput", 3) || is("info", 2) || is("jobs", 3) || is("pool", 2) ||
                     is("pool", 3) || is("prealloc", 4) || is("build", 2) || is("cancel", 3) ||
                     is("cancelQueued", 3);
  if (keyed && !keyOk(s[1])) return refuse(kWrongKey);
  if (is("open", 3)) {
    if (!get) return methodNotAllowed();
    return answerLater([this, s] { return open(s[1], s[2]); }, true);
  }
  if (is("upload", 3)) return post ? upload(s[1], s[2], head) : methodNotAllowed();
  if (is("addJob", 3)) return post ? addJob(s[1], s[2]) : methodNotAllowed();
  if (is("poll", 4)) {
    if (!get) return methodNotAllowed();
    // ?wait=N: answer as soon as the output is there, or after N seconds
    // with the usual not-found answer (clients that do not ask see no change).
    int waitSecs = 0;
    if (auto wait = queryParam(head.target, "wait")) {
      auto n = parseInt(*wait, 0, kMaxPollWaitSecs);
      if (!n)
        return answerNow(jsonFailure("Invalid wait: a whole number of seconds from 0 to " +
                                     std::to_string(kMaxPollWaitSecs)));
      waitSecs = static_cast<int>(*n);
    }
    if (waitSecs > 0)
      return answerWhenDone([this, s, waitSecs](std::function<void(HttpResponse)> done) {
        pollWaiting(s[1], s[2], s[3], waitSecs, std::move(done));
      });
    return answerLater([this, s] { return poll(s[1], s[2], s[3]); }, false);
  }
  if (is("getPartialOutput", 3)) {
    if (!get) return methodNotAllowed();
    return answerLater([this, s] { return partialOutput(s[1], s[2]); }, true);
  }
  if (is("info", 2)) {
    if (!get) return methodNotAllowed();
    // On one node the counters are memory reads: answered on the I/O
    // thread, without a hop to the handler pool and back.
    return answerLater([this] { return info(); }, !jobs_.infoIsQuick());
  }
  if (is("jobs", 3)) {
    if (!get) return methodNotAllowed();
    return answerLater([this, s] { return jobs(s[1], s[2]); }, true);
  }
  if (is("pool", 2) || is("pool", 3)) {
    if (!get) return methodNotAllowed();
    return answerLater([this, s] { return pool(s[1], s.size() == 3 ? &s[2] : nullptr); }, true);
  }
  // Autolab sends prealloc as a GET with a body.
  if (is("prealloc", 4)) return get || post ? prealloc(s[1], s[2], s[3]) : methodNotAllowed();
  if (is("build", 2)) return post ? build(s[1], head) : methodNotAllowed();
  // Not Tango's, in its style: cancel one job, or every queued job of a courselab.
  if (is("cancel", 3)) {
    if (!post) return methodNotAllowed();
    return answerLater([this, s] { return cancel(s[1], s[2]); }, true);
  }
  if (is("cancelQueued", 3)) {
    if (!post) return methodNotAllowed();
    return answerLater([this, s] { return cancelQueued(s[1], s[2]); }, true);
  }
  // Operator routes (not Tango's): the key comes as ?key= or X-Tango-Key, not in the path.
  if (is("metrics", 1) || is("status", 1) || (is("status", 2) && s[1] == "data")) {
    if (!get) return methodNotAllowed();
    return operatorRoute(s, head);
  }
  return answerNow(jsonFailure("Unknown route", 404));
}

std::unique_ptr<HttpExchange> TangoREST::operatorRoute(const std::vector<std::string>& s,
                                                       const HttpHead& head) {
  std::optional<std::string> key;
  if (auto h = head.header("X-Tango-Key")) key = std::string(*h);
  if (!key) key = queryParam(head.target, "key");
  if (operatorRoutesNeedKey_ && (!key || keys_.check(*key) != Access::Operator)) {
    return answerNow(HttpResponse{
        403, "text/plain; charset=utf-8",
        "Key not recognized: add ?key=<one of OPERATOR_KEYS> or the header X-Tango-Key\n", true});
  }
  if (s[0] == "metrics") {
    return answerLater(
        [this] {
          return HttpResponse{200, std::string(metrics::Exposition::kContentType),
                              jobs_.metricsText(), false};
        },
        true);
  }
  if (s.size() == 1) {
    return answerNow(HttpResponse{200, "text/html; charset=utf-8",
                                  std::string(status::statusPageHtml()), false});
  }
  return answerLater([this] { return jsonAnswer(jobs_.statusData()); }, true);
}

HttpResponse TangoREST::open(const std::string& key, const std::string& courselab) {
  if (!keyOk(key)) return jsonFailure(kWrongKey);
  auto dir = labs_.dirFor(key, courselab);
  if (!dir) return jsonFailure(kBadCourselab);
  auto r = labs_.open(*dir);
  if (!r.ok) return jsonFailure(r.error);
  auto body = tangoStatus(0, r.created ? "Created directory" : "Found directory");
  boost::json::object files;
  for (const auto& [name, md5] : r.files) files[toValidUtf8(name)] = md5;
  body["files"] = std::move(files);
  return jsonAnswer(body);
}

std::unique_ptr<HttpExchange> TangoREST::upload(const std::string& key,
                                                const std::string& courselab,
                                                const HttpHead& head) {
  if (!keyOk(key)) return refuse(kWrongKey);
  auto dir = labs_.dirFor(key, courselab);
  if (!dir) return answerNow(jsonFailure(kBadCourselab));
  auto filename = head.header("Filename");
  if (!filename) return answerNow(jsonFailure("Missing Filename header"));
  std::string name(*filename);
  if (!labs_.isUploadableName(name)) return answerNow(jsonFailure("Invalid file name"));
  if (!labs_.exists(*dir)) return answerNow(jsonFailure(kNoCourselab));
  // The disk floor and the key's share of it, before a byte is stored; a
  // body of unknown length may take what is left of the key's share.
  std::uint64_t limit = maxInputFileSize_;
  if (auto refusal = labs_.diskRefusal(key, head.contentLength.value_or(0), limit))
    return refuse(*refusal);
  std::string error;
  auto up = labs_.beginUpload(*dir, name, error);
  if (!up) return answerNow(jsonFailure("Cannot store file: " + error));
  return rest::uploadBody(labs_, std::move(*up), limit);
}

std::unique_ptr<HttpExchange> TangoREST::addJob(const std::string& key,
                                                const std::string& courselab) {
  if (!keyOk(key)) return refuse(kWrongKey);
  auto dir = labs_.dirFor(key, courselab);
  if (!dir) return answerNow(jsonFailure(kBadCourselab));
  if (!labs_.exists(*dir)) return answerNow(jsonFailure(kNoCourselab));
  std::uint64_t unused = 0;
  if (auto refusal = labs_.diskRefusal(key, 0, unused)) return refuse(*refusal);
  return rest::bufferBody(
      maxJsonBodyBytes_, [this, key, courselab, dir = *dir](const std::string& body) {
        std::string error;
        auto job = parseObject(body, "job", error);
        if (!job) return jsonFailure(error);
        AddJobResult r = jobs_.addJob(key, courselab, dir, boost::json::value(std::move(*job)));
        if (!r.ok) return jsonFailure(r.error.empty() ? "Invalid job" : r.error);
        auto answer = tangoStatus(0, "Job added");
        answer["jobId"] = std::to_string(r.jobId);  // a string, as Tango sends it
        return jsonAnswer(answer);
      });
}

HttpResponse TangoREST::poll(const std::string& key, const std::string& courselab,
                             const std::string& outputFile) {
  if (!keyOk(key)) return jsonFailure(kWrongKey);
  auto dir = labs_.dirFor(key, courselab);
  if (!dir) return jsonFailure(kBadCourselab);
  if (!isSafeName(outputFile)) return jsonFailure("Invalid output file name");
  auto found = outputAnswer(*dir, outputFile);
  return found ? std::move(*found) : notYet(key, courselab, outputFile);
}

HttpResponse TangoREST::notYet(const std::string& key, const std::string& courselab,
                               const std::string& outputFile) {
  // Tango's answer; a job still queued adds where it stands (extra fields:
  // Tango clients read statusId and statusMsg only).
  auto body = tangoStatus(-1, kNoOutput);
  if (auto spot = jobs_.queueSpot(keyId(key), courselab, outputFile))
    for (auto& [k, v] : *spot) body[k] = v;
  return jsonAnswer(body);
}

HttpResponse TangoREST::cancel(const std::string& key, const std::string& jobId) {
  auto id = parseInt(jobId, 1, INT64_MAX);
  if (!id) return jsonFailure("Invalid job id: must be a positive integer");
  CancelResult r = jobs_.cancel(*id, ownerFilter(key));
  if (!r.ok) return jsonFailure(r.message);
  auto body = tangoStatus(0, r.message);
  body["jobId"] = *id;
  return jsonAnswer(body);
}

HttpResponse TangoREST::cancelQueued(const std::string& key, const std::string& courselab) {
  if (!labs_.dirFor(key, courselab)) return jsonFailure(kBadCourselab);
  CancelResult r = jobs_.cancelQueued(keyId(key), courselab);
  auto body = tangoStatus(r.ok ? 0 : -1, r.message);
  boost::json::array ids;
  for (auto id : r.ids) ids.push_back(id);
  body["jobIds"] = std::move(ids);
  return jsonAnswer(body);
}

std::optional<HttpResponse> TangoREST::outputAnswer(const std::filesystem::path& dir,
                                                    const std::string& outputFile) {
  Fd file = labs_.openOutput(dir, outputFile);
  if (!file) return std::nullopt;
  return HttpResponse{
      200, "application/octet-stream", {}, false, std::make_shared<Fd>(std::move(file))};
}

void TangoREST::pollWaiting(const std::string& key, const std::string& courselab,
                            const std::string& outputFile, int waitSecs,
                            std::function<void(HttpResponse)> done) {
  // Found, refused (a bad name) or no such courselab: answered now. Only
  // an output not there yet waits.
  auto dir = labs_.dirFor(key, courselab);
  std::error_code ec;
  if (!keyOk(key) || !dir || !isSafeName(outputFile) || !std::filesystem::is_directory(*dir, ec))
    return done(poll(key, courselab, outputFile));
  if (auto found = outputAnswer(*dir, outputFile)) return done(std::move(*found));
  auto look = [this, dir = *dir, outputFile] { return outputAnswer(dir, outputFile); };
  waits_.park(outputFile, std::move(look), notYet(key, courselab, outputFile),
              PollWaits::Clock::now() + std::chrono::seconds(waitSecs), std::move(done));
}

HttpResponse TangoREST::partialOutput(const std::string& key, const std::string& jobId) {
  if (!keyOk(key)) return jsonFailure(kWrongKey);
  auto id = parseInt(jobId, 1, INT64_MAX);
  if (!id) return jsonFailure("Invalid job id: must be a positive integer");
  auto out = jobs_.partialOutput(*id, ownerFilter(key));
  if (!out) return jsonFailure("No partial output: job " + jobId + " is not running");
  auto body = tangoStatus(0, "Partial output obtained");
  body["output"] = toValidUtf8(*out);
  return jsonAnswer(body);
}

HttpResponse TangoREST::info() {
  // The key was checked in begin(): /info is the route clients call most.
  auto body = tangoStatus(0, "Found info successfully");
  body["info"] = jobs_.info();
  return jsonAnswer(body);
}

HttpResponse TangoREST::jobs(const std::string& key, const std::string& dead) {
  if (!keyOk(key)) return jsonFailure(kWrongKey);
  if (dead != "0" && dead != "1") return jsonFailure("Invalid deadjobs value: use 0 or 1");
  if (dead == "1") {
    // The stored elements spliced in as they are: no parse, no re-serialise.
    HttpResponse r;
    r.body = R"({"statusId":0,"statusMsg":"Found list of jobs","jobs":)" +
             jobs_.deadJobsJson(ownerFilter(key)) + "}";
    return r;
  }
  auto body = tangoStatus(0, "Found list of jobs");
  body["jobs"] = jobs_.jobs(false, ownerFilter(key));
  return jsonAnswer(body);
}

HttpResponse TangoREST::pool(const std::string& key, const std::string* image) {
  if (!keyOk(key)) return jsonFailure(kWrongKey);
  std::optional<std::string> wanted;
  if (image) {
    if (!isSafeImageName(*image)) return jsonFailure("Pool not found");
    wanted = *image;
  }
  PoolsResult r = jobs_.pools(wanted);
  if (!r.found) return jsonFailure("Pool not found");
  auto body = tangoStatus(0, image ? "Found pool" : "Found all pools");
  body["pools"] = std::move(r.pools);
  return jsonAnswer(body);
}

std::unique_ptr<HttpExchange> TangoREST::prealloc(const std::string& key, const std::string& image,
                                                  const std::string& num) {
  auto access = keys_.check(key);
  if (access == Access::None) return refuse(kWrongKey);
  if (access != Access::Operator) return refuse(kNotOperator);
  if (!isSafeImageName(image)) return answerNow(jsonFailure(kBadImage));
  auto n = parseInt(num, 0, INT32_MAX);
  if (!n) return answerNow(jsonFailure("Invalid prealloc size"));
  if (*n > cfg_.maxPoolSize)
    return answerNow(jsonFailure("Invalid prealloc size: at most " +
                                 std::to_string(cfg_.maxPoolSize) + " (MAX_POOL_SIZE)"));
  return rest::bufferBody(
      maxJsonBodyBytes_, [this, image, n = static_cast<int>(*n)](const std::string& body) {
        boost::json::object vm;
        if (!isBlank(body)) {
          std::string error;
          auto parsed = parseObject(body, "prealloc body", error);
          if (!parsed) return jsonFailure(error);
          vm = std::move(*parsed);
        }
        SimpleResult r = jobs_.prealloc(image, n, vm);
        if (!r.ok) return jsonFailure(r.error.empty() ? "Preallocate VM failed" : r.error);
        return tangoOk("VMs preallocated");
      });
}

std::unique_ptr<HttpExchange> TangoREST::build(const std::string& key, const HttpHead& head) {
  auto access = keys_.check(key);
  if (access == Access::None) return refuse(kWrongKey);
  if (access != Access::Operator) return refuse(kNotOperator);
  auto image = head.header("imageName");
  if (!image || !isSafeImageName(*image)) return answerNow(jsonFailure(kBadImage));
  std::error_code ec;
  std::filesystem::create_directories(tmpDir_, ec);
  std::string error;
  auto temp = courselab::TempFile::create(tmpDir_, "build-", error);
  if (!temp)
    return answerNow(jsonFailure("Image build failed: cannot store the tarball: " + error));
  return rest::fileBody(
      std::move(*temp), static_cast<std::uint64_t>(cfg_.maxBuildBytes),
      [this, name = std::string(*image)](const std::filesystem::path& tarball) {
        SimpleResult r = jobs_.build(name, tarball);
        if (!r.ok) return jsonFailure(r.error.empty() ? "Image build failed" : r.error);
        return tangoOk("Docker image built");
      },
      /*longRunning=*/true);
}

}  // namespace tango
