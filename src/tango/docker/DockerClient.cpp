#include "tango/docker/DockerClient.hpp"

#include <curl/curl.h>
#include <spdlog/spdlog.h>

#include <array>
#include <charconv>
#include <cstdio>
#include <memory>

namespace tango::docker {

namespace {

using Easy = std::unique_ptr<CURL, decltype(&curl_easy_cleanup)>;
using Headers = std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)>;
struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

// State shared with curl's callbacks for one transfer.
struct Transfer {
  const Request* req = nullptr;
  Response* resp = nullptr;
  std::string_view upload;  // remaining in-memory body
  std::FILE* uploadFile = nullptr;
  bool stoppedBySink = false;
};

size_t onWrite(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const std::string_view chunk(data, size * n);
  if (t->req->sink) {
    if (!t->req->sink(chunk)) {
      t->stoppedBySink = true;
      return 0;  // makes curl stop with CURLE_WRITE_ERROR
    }
    return chunk.size();
  }
  std::string& body = t->resp->body;
  if (body.size() + chunk.size() > t->req->maxBody) {
    body.append(chunk.substr(0, t->req->maxBody - body.size()));
    t->resp->truncated = true;
    return 0;
  }
  body.append(chunk);
  return chunk.size();
}

size_t onRead(char* buf, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t room = size * n;
  if (t->uploadFile) {
    const size_t got = std::fread(buf, 1, room, t->uploadFile);
    if (got == 0 && std::ferror(t->uploadFile)) return CURL_READFUNC_ABORT;
    return got;
  }
  const size_t k = std::min(room, t->upload.size());
  std::copy_n(t->upload.data(), k, buf);
  t->upload.remove_prefix(k);
  return k;
}

size_t onHeader(char* data, size_t size, size_t n, void* user) {
  auto* resp = static_cast<Response*>(user);
  std::string_view line(data, size * n);
  constexpr std::string_view kName = "api-version:";
  if (line.size() > kName.size()) {
    bool match = true;
    for (size_t i = 0; i < kName.size() && match; ++i)
      match = std::tolower(static_cast<unsigned char>(line[i])) == kName[i];
    if (match) {
      line.remove_prefix(kName.size());
      while (!line.empty() && (line.front() == ' ' || line.front() == '\t')) line.remove_prefix(1);
      while (!line.empty() && (line.back() == '\r' || line.back() == '\n' || line.back() == ' '))
        line.remove_suffix(1);
      resp->apiVersion = std::string(line);
    }
  }
  return size * n;
}

void curlGlobalInit() {
  // curl_global_init is not thread-safe; do it once before any handle exists.
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

}  // namespace

bool versionLess(std::string_view a, std::string_view b) {
  auto next = [](std::string_view& s) {
    int v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    s.remove_prefix(static_cast<size_t>(p - s.data()));
    if (!s.empty() && s.front() == '.') s.remove_prefix(1);
    return ec == std::errc() ? v : 0;
  };
  while (!a.empty() || !b.empty()) {
    const int x = next(a), y = next(b);
    if (x != y) return x < y;
  }
  return false;
}

// Open connections and TLS sessions, shared by every request of one client
// (each request still has its own easy handle: threads never share one).
struct DockerClient::Shared {
  CURLSH* handle = nullptr;
  std::array<std::mutex, CURL_LOCK_DATA_LAST> locks;

  Shared() {
    handle = curl_share_init();
    if (!handle) throw DockerError("curl_share_init failed");
    curl_share_setopt(handle, CURLSHOPT_LOCKFUNC, &Shared::lock);
    curl_share_setopt(handle, CURLSHOPT_UNLOCKFUNC, &Shared::unlock);
    curl_share_setopt(handle, CURLSHOPT_USERDATA, this);
    curl_share_setopt(handle, CURLSHOPT_SHARE, CURL_LOCK_DATA_CONNECT);
    curl_share_setopt(handle, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
  }
  ~Shared() { curl_share_cleanup(handle); }
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;

  static void lock(CURL*, curl_lock_data data, curl_lock_access, void* self) {
    static_cast<Shared*>(self)->locks.at(static_cast<std::size_t>(data)).lock();
  }
  static void unlock(CURL*, curl_lock_data data, void* self) {
    static_cast<Shared*>(self)->locks.at(static_cast<std::size_t>(data)).unlock();
  }
};

DockerClient::DockerClient(Endpoint engine) : engine_(std::move(engine)) {
  curlGlobalInit();
  shared_ = std::make_unique<Shared>();
}

DockerClient::~DockerClient() = default;

std::string DockerClient::base() const {
  if (!engine_.tcp()) return "http://docker";
  // An IPv6 literal goes in brackets in a URL.
  const bool v6 = engine_.host.find(':') != std::string::npos;
  return "https://" + (v6 ? "[" + engine_.host + "]" : engine_.host) + ":" +
         std::to_string(engine_.port);
}

std::string DockerClient::negotiate() {
  std::call_once(negotiated_, [this] {
    Request ping;
    ping.path = "/_ping";
    ping.timeout = std::chrono::seconds(10);
    Response r = perform(ping, base() + "/_ping");
    if (r.status != 200)
      throw DockerError("Docker engine at " + engine_.describe() + " answered /_ping with HTTP " +
                        std::to_string(r.status));
    // Speak the engine's version unless it is newer than what we know: then
    // ours, which it still accepts. An engine without the header is ancient.
    std::string v = r.apiVersion.empty() ? "1.24" : r.apiVersion;
    version_ = versionLess(kMaxApiVersion, v) ? std::string(kMaxApiVersion) : v;
  });
  return version_;
}

void DockerClient::ping(std::chrono::milliseconds timeout) {
  Request ping;
  ping.path = "/_ping";
  ping.timeout = timeout;
  Response r = perform(ping, base() + "/_ping");
  if (r.status != 200)
    throw DockerError("Docker engine at " + engine_.describe() + " answered /_ping with HTTP " +
                      std::to_string(r.status));
}

Response DockerClient::send(const Request& req) {
  const std::string v = negotiate();
  return perform(req, base() + "/v" + v + req.path);
}

Response DockerClient::perform(const Request& req, const std::string& url) {
  Easy c(curl_easy_init(), curl_easy_cleanup);
  if (!c) throw DockerError("curl_easy_init failed");
  Response resp;
  Transfer t{&req, &resp, req.body, nullptr, false};
  File file;
  Headers headers(nullptr, curl_slist_free_all);
  auto addHeader = [&](const std::string& h) {
    curl_slist* next = curl_slist_append(headers.get(), h.c_str());
    if (!next) throw DockerError("out of memory");
    (void)headers.release();
    headers.reset(next);
  };
  CURL* h = c.get();
  if (engine_.tcp()) {
    // Docker's --tlsverify: the engine proves itself against our CA (and the
    // name or address we dialled), we prove ourselves with our certificate.
    curl_easy_setopt(h, CURLOPT_CAINFO, engine_.tlsCaFile.c_str());
    curl_easy_setopt(h, CURLOPT_SSLCERT, engine_.tlsCertFile.c_str());
    curl_easy_setopt(h, CURLOPT_SSLKEY, engine_.tlsKeyFile.c_str());
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
  } else {
    curl_easy_setopt(h, CURLOPT_UNIX_SOCKET_PATH, engine_.socketPath.c_str());
  }
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_SHARE, shared_->handle);
  curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeout.count()));
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, onWrite);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, onHeader);
  curl_easy_setopt(h, CURLOPT_HEADERDATA, &resp);
  const bool hasBody =
      !req.bodyFile.empty() || !req.body.empty() || req.method == "POST" || req.method == "PUT";
  if (hasBody) {
    curl_off_t size = static_cast<curl_off_t>(req.body.size());
    if (!req.bodyFile.empty()) {
      file.reset(std::fopen(req.bodyFile.c_str(), "rb"));
      if (!file) throw DockerError("cannot open " + req.bodyFile.string());
      std::error_code ec;
      size = static_cast<curl_off_t>(std::filesystem::file_size(req.bodyFile, ec));
      if (ec) throw DockerError("cannot size " + req.bodyFile.string());
      t.uploadFile = file.get();
    }
    // UPLOAD sends PUT; CUSTOMREQUEST turns it into the method we need
    // while keeping the streamed body with a known length.
    curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, size);
    curl_easy_setopt(h, CURLOPT_READFUNCTION, onRead);
    curl_easy_setopt(h, CURLOPT_READDATA, &t);
    addHeader("Content-Type: " + req.contentType);
    addHeader("Expect:");  // no 100-continue round trip
  }
  curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, req.method.c_str());
  if (headers) curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers.get());

  const auto started = std::chrono::steady_clock::now();
  const CURLcode rc = curl_easy_perform(h);
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp.status);
  // Where a job's time goes in the engine: LOG_LEVEL = "trace".
  spdlog::trace("engine {} {} -> {} in {} ms", req.method, req.path, resp.status,
                std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::steady_clock::now() - started)
                    .count());
  if (rc == CURLE_WRITE_ERROR && (resp.truncated || t.stoppedBySink)) return resp;
  if (rc != CURLE_OK) {
    const std::string what =
        req.method + " " + req.path + " to the Docker engine at " + engine_.describe() + ": ";
    if (rc == CURLE_OPERATION_TIMEDOUT) throw DockerTimeout(what + "timed out");
    throw DockerError(what + curl_easy_strerror(rc));
  }
  return resp;
}

}  // namespace tango::docker
