#include "tango/callback/CallbackSender.hpp"

#include <curl/curl.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <memory>
#include <mutex>
#include <system_error>

#include "tango/util/SafeName.hpp"

namespace tango {
namespace {

// A notifyURL's query often carries the receiver's secret (Autolab's does):
// logs show the rest.
std::string withoutQuery(const std::string& url) {
  auto q = url.find_first_of("?#");
  return q == std::string::npos ? url : url.substr(0, q) + "?...";
}

// curl_global_init is not thread-safe and must run before any other curl
// call; the first CallbackSender or URL check does it, once per process.
void ensureCurlInitialized() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw std::runtime_error("curl_global_init failed");
  });
}

struct EasyDeleter {
  void operator()(CURL* h) const { curl_easy_cleanup(h); }
};
struct MimeDeleter {
  void operator()(curl_mime* m) const { curl_mime_free(m); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
struct UrlDeleter {
  void operator()(CURLU* u) const { curl_url_cleanup(u); }
};
struct CurlFree {
  void operator()(char* p) const { curl_free(p); }
};

constexpr std::size_t kMaxUrlBytes = 2048;

bool startsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  return std::equal(prefix.begin(), prefix.end(), s.begin(), [](char a, char b) {
    return std::tolower(static_cast<unsigned char>(a)) ==
           std::tolower(static_cast<unsigned char>(b));
  });
}

std::unique_ptr<char, CurlFree> urlPart(CURLU* u, CURLUPart part) {
  char* out = nullptr;
  if (curl_url_get(u, part, &out, 0) != CURLUE_OK) return nullptr;
  return std::unique_ptr<char, CurlFree>(out);
}

// The response body is of no interest; reading it keeps the connection sane.
size_t discardBody(char*, size_t size, size_t nmemb, void*) { return size * nmemb; }

// Lets stop() abort a transfer in progress instead of waiting out its timeout.
int abortIfStopping(void* flag, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  return static_cast<const std::atomic<bool>*>(flag)->load() ? 1 : 0;
}

}  // namespace

bool isValidCallbackUrl(std::string_view url) {
  if (url.empty() || url.size() > kMaxUrlBytes) return false;
  // Spaces and control characters would be ambiguous in logs and headers;
  // clients percent-encode them.
  if (std::any_of(url.begin(), url.end(), [](char c) {
        auto u = static_cast<unsigned char>(c);
        return u <= 0x20 || u == 0x7f;
      }))
    return false;
  // Checked on the raw text too so curl's normalisation cannot turn
  // something odd ("http:/x") into an acceptable URL.
  if (!startsWithNoCase(url, "http://") && !startsWithNoCase(url, "https://")) return false;
  // curl reads "http:///x" as host "x"; we insist on a host right after "//".
  std::string_view authority = url.substr(url.find("://") + 3);
  authority = authority.substr(0, authority.find_first_of("/?#"));
  if (auto at = authority.rfind('@'); at != std::string_view::npos) authority.remove_prefix(at + 1);
  if (authority.empty() || authority.front() == ':') return false;
  ensureCurlInitialized();
  std::unique_ptr<CURLU, UrlDeleter> u(curl_url());
  if (!u) return false;
  const std::string text(url);
  if (curl_url_set(u.get(), CURLUPART_URL, text.c_str(), 0) != CURLUE_OK) return false;
  auto scheme = urlPart(u.get(), CURLUPART_SCHEME);
  auto host = urlPart(u.get(), CURLUPART_HOST);
  if (!scheme || !host || *host.get() == '\0') return false;
  const std::string_view s(scheme.get());
  return s == "http" || s == "https";
}

CallbackSender::CallbackSender(int maxAttempts, double initialBackoffSecs, int timeoutSecs,
                               OnDone onDone)
    : CallbackSender(maxAttempts, initialBackoffSecs, timeoutSecs, std::move(onDone), Options{}) {}

CallbackSender::CallbackSender(int maxAttempts, double initialBackoffSecs, int timeoutSecs,
                               OnDone onDone, Options options)
    : maxAttempts_(std::max(1, maxAttempts)),
      initialBackoffSecs_(std::max(0.0, initialBackoffSecs)),
      timeoutSecs_(std::max(1, timeoutSecs)),
      onDone_(std::move(onDone)),
      options_(options) {
  ensureCurlInitialized();
  try {
    for (int i = 0; i < std::max(1, options_.workers); ++i)
      threads_.emplace_back([this] { run(); });
  } catch (...) {
    stop();
    throw;
  }
}

CallbackSender::~CallbackSender() { stop(); }

void CallbackSender::enqueue(Delivery delivery) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    queue_.push(Pending{std::move(delivery), 0, Clock::now(), nextSeq_++});
  }
  wake_.notify_one();
}

void CallbackSender::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
    abort_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_)
    if (t.joinable()) t.join();
  threads_.clear();
}

void CallbackSender::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    if (queue_.empty()) {
      wake_.wait(lock);
      continue;
    }
    if (const auto due = queue_.top().due; due > Clock::now()) {
      // Woken early by enqueue/stop or a sooner retry; the loop re-checks.
      wake_.wait_until(lock, due);
      continue;
    }
    Pending p = queue_.top();
    queue_.pop();
    lock.unlock();

    bool ours = true;
    try {
      ours = !p.delivery.stillOurs || p.delivery.stillOurs();
    } catch (const std::exception& e) {
      // Cannot tell (the store is away): send; a duplicate beats a loss.
      spdlog::debug("callback for job {}: {}", p.delivery.jobId, e.what());
    }
    if (!ours) {
      spdlog::info("callback for job {} is another node's now; not sent here", p.delivery.jobId);
      lock.lock();
      continue;
    }
    Outcome out = attempt(p.delivery);
    ++p.attempts;
    if (out.delivered) {
      spdlog::debug("callback for job {} delivered (attempt {})", p.delivery.jobId, p.attempts);
      finish(p.delivery, true, "");
    } else if (abort_) {
      // Aborted by stop(): the delivery stays pending in the caller's store.
    } else if (out.permanent || p.attempts >= maxAttempts_) {
      spdlog::warn("callback for job {} to {} failed after {} attempt(s): {}", p.delivery.jobId,
                   withoutQuery(p.delivery.url), p.attempts, out.why);
      finish(p.delivery, false, fmt::format("failed after {} attempt(s): {}", p.attempts, out.why));
    } else {
      const double secs =
          std::min(initialBackoffSecs_ * std::pow(2.0, p.attempts - 1), options_.maxBackoffSecs);
      spdlog::info("callback for job {} failed ({}); retrying in {:.3g}s", p.delivery.jobId,
                   out.why, secs);
      lock.lock();
      p.due = Clock::now() +
              std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(secs));
      p.seq = nextSeq_++;
      queue_.push(std::move(p));
      lock.unlock();
      // Another thread may be sleeping until a later due time.
      wake_.notify_one();
    }
    lock.lock();
  }
}

void CallbackSender::finish(const Delivery& d, bool delivered, const std::string& detail) const {
  if (d.removeWhenDone) {
    std::error_code ec;
    std::filesystem::remove(d.outputFile, ec);
  }
  if (!onDone_) return;
  // A throwing callback must not take the sender thread (and the process) down.
  try {
    onDone_(d.jobId, delivered, detail);
  } catch (const std::exception& e) {
    spdlog::error("callback completion handler for job {} threw: {}", d.jobId, e.what());
  } catch (...) {
    spdlog::error("callback completion handler for job {} threw", d.jobId);
  }
}

namespace {

// What the policy check at connect time saw, for the error message.
struct Gatekeeper {
  const AddressPolicy* policy;
  std::string refused;  // the last address refused
};

// curl asks this for every connection it makes, the redirects' too, with
// the address DNS gave: the one place a name cannot be switched under it.
curl_socket_t openCheckedSocket(void* clientp, curlsocktype purpose, struct curl_sockaddr* a) {
  auto* g = static_cast<Gatekeeper*>(clientp);
  if (purpose == CURLSOCKTYPE_IPCXN) {
    auto peer = PeerAddress::of(&a->addr);
    if (!peer || !g->policy->allows(*peer)) {
      g->refused = peer ? peer->str() : "a non-IP address";
      return CURL_SOCKET_BAD;
    }
  }
  return ::socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

}  // namespace

CallbackSender::Outcome CallbackSender::attempt(const Delivery& d) const {
  if (!isValidCallbackUrl(d.url)) return {false, true, "invalid callback URL"};
  // The name goes into a header: a CR/LF in it would inject headers.
  if (!isSafeName(d.fileName)) return {false, true, "invalid output file name"};
  std::error_code ec;
  if (!std::filesystem::is_regular_file(d.outputFile, ec))
    // The file's name only: its path holds the API key (<key>-<courselab>).
    return {false, true, fmt::format("output file {} not found", d.fileName)};

  // Declared before the easy handle so they outlive it (the handle points at them).
  char error[CURL_ERROR_SIZE] = {};
  std::unique_ptr<curl_mime, MimeDeleter> mime;
  std::unique_ptr<curl_slist, SlistDeleter> headers;
  std::unique_ptr<CURL, EasyDeleter> h(curl_easy_init());
  if (!h) return {false, false, "curl_easy_init failed"};

  mime.reset(curl_mime_init(h.get()));
  if (!mime) return {false, false, "curl_mime_init failed"};
  curl_mimepart* part = curl_mime_addpart(mime.get());
  const std::string path = d.outputFile.string();
  if (!part || curl_mime_name(part, "file") != CURLE_OK ||
      curl_mime_filedata(part, path.c_str()) != CURLE_OK ||
      curl_mime_filename(part, d.fileName.c_str()) != CURLE_OK ||
      curl_mime_type(part, "application/octet-stream") != CURLE_OK)
    return {false, false, "cannot build multipart body"};

  const std::string filenameHeader = "Filename: " + d.fileName;
  for (const char* line : {filenameHeader.c_str(),
                           // No "Expect: 100-continue" round trip: receivers
                           // that ignore it would cost us a one-second stall.
                           "Expect:"}) {
    curl_slist* next = curl_slist_append(headers.get(), line);
    if (!next) return {false, false, "out of memory"};
    (void)headers.release();
    headers.reset(next);
  }

  const long timeout = timeoutSecs_;
  const long connectTimeout = std::max(1, std::min(options_.connectTimeoutSecs, timeoutSecs_));
  CURL* c = h.get();
  curl_easy_setopt(c, CURLOPT_URL, d.url.c_str());
  curl_easy_setopt(c, CURLOPT_MIMEPOST, mime.get());
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
  // Only web URLs, also after redirects (no file://, gopher://, ...).
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  // Keep POSTing after 301/302/303 rather than silently turning into a GET
  // whose 2xx would pass for a delivery.
  curl_easy_setopt(c, CURLOPT_POSTREDIR, static_cast<long>(CURL_REDIR_POST_ALL));
  curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, connectTimeout);
  // Several sender threads: curl must not use signals for DNS timeouts.
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_USERAGENT, "tango-cpp-callback/1");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discardBody);
  curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, abortIfStopping);
  curl_easy_setopt(c, CURLOPT_XFERINFODATA, const_cast<std::atomic<bool>*>(&abort_));
  if (!options_.verifyTls) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }

  // Every connection goes where the policy says, to the address connected
  // (not a proxy's from the environment).
  Gatekeeper gate{&options_.policy, {}};
  curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, openCheckedSocket);
  curl_easy_setopt(c, CURLOPT_OPENSOCKETDATA, &gate);
  curl_easy_setopt(c, CURLOPT_PROXY, "");

  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  const CURLcode rc = curl_easy_perform(c);
  if (rc != CURLE_OK && !gate.refused.empty())
    return {false, true,
            fmt::format("the callback address {} is not allowed (CALLBACK_DENY / CALLBACK_ALLOW)",
                        gate.refused)};
  if (rc != CURLE_OK)
    return {false, false, error[0] ? std::string(error) : std::string(curl_easy_strerror(rc))};
  long status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
  if (status < 200 || status > 299) return {false, false, fmt::format("HTTP {}", status)};
  return {true, false, ""};
}

}  // namespace tango
