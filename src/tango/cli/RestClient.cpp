#include "tango/cli/RestClient.hpp"

#include <curl/curl.h>

#include <boost/json/parse.hpp>
#include <cstdio>
#include <memory>

namespace tango::cli {

namespace {

struct CurlGlobal {
  CurlGlobal() { curl_global_init(CURL_GLOBAL_DEFAULT); }
  ~CurlGlobal() { curl_global_cleanup(); }
};

void ensureCurl() { static CurlGlobal global; }

using Easy = std::unique_ptr<CURL, decltype(&curl_easy_cleanup)>;
using Headers = std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)>;
using File = std::unique_ptr<std::FILE, decltype(&std::fclose)>;

size_t append(char* p, size_t size, size_t n, void* out) {
  static_cast<std::string*>(out)->append(p, size * n);
  return size * n;
}

}  // namespace

std::optional<boost::json::object> Reply::object() const {
  boost::system::error_code ec;
  auto v = boost::json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  return std::move(v.as_object());
}

RestClient::RestClient(const std::string& server, int port, bool ssl)
    : base_(std::string(ssl ? "https://" : "http://") + server + ":" + std::to_string(port)) {
  ensureCurl();
}

std::string RestClient::escape(const std::string& segment) {
  ensureCurl();
  Easy c(curl_easy_init(), curl_easy_cleanup);
  if (!c) throw std::runtime_error("curl_easy_init failed");
  std::unique_ptr<char, decltype(&curl_free)> s(
      curl_easy_escape(c.get(), segment.data(), static_cast<int>(segment.size())), curl_free);
  if (!s) throw std::runtime_error("cannot URL-encode " + segment);
  return s.get();
}

Reply RestClient::get(const std::string& path) {
  return perform("GET", path, nullptr, nullptr, {});
}

Reply RestClient::post(const std::string& path, const std::string& body,
                       const std::map<std::string, std::string>& headers) {
  return perform("POST", path, &body, nullptr, headers);
}

Reply RestClient::postFile(const std::string& path, const std::filesystem::path& file,
                           const std::map<std::string, std::string>& headers) {
  return perform("POST", path, nullptr, &file, headers);
}

Reply RestClient::perform(const std::string& method, const std::string& path,
                          const std::string* body, const std::filesystem::path* file,
                          const std::map<std::string, std::string>& headers) {
  Easy c(curl_easy_init(), curl_easy_cleanup);
  if (!c) throw std::runtime_error("curl_easy_init failed");
  const std::string url = base_ + path;
  Reply r;
  curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
  curl_easy_setopt(c.get(), CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c.get(), CURLOPT_CONNECTTIMEOUT, 10L);
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, append);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &r.body);

  // "Expect:" off: tangod answers at once, the 100-continue round trip only adds latency.
  curl_slist* raw = curl_slist_append(nullptr, "Expect:");
  Headers list(raw, curl_slist_free_all);
  for (const auto& [k, v] : headers) {
    raw = curl_slist_append(list.get(), (k + ": " + v).c_str());
    if (!raw) throw std::runtime_error("out of memory");
  }
  curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, list.get());

  File in(nullptr, std::fclose);
  if (file) {
    in.reset(std::fopen(file->c_str(), "rb"));
    if (!in)
      throw std::runtime_error("cannot read " + file->string() +
                               ": check the path and its permissions");
    std::error_code ec;
    auto size = std::filesystem::file_size(*file, ec);
    curl_easy_setopt(c.get(), CURLOPT_POST, 1L);
    curl_easy_setopt(c.get(), CURLOPT_READDATA, in.get());  // default read function: fread
    if (!ec) curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(size));
  } else if (body) {
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, body->data());
    curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
  }
  curl_easy_setopt(c.get(), CURLOPT_CUSTOMREQUEST, method.c_str());

  CURLcode rc = curl_easy_perform(c.get());
  if (rc != CURLE_OK) {
    throw Unreachable("cannot reach " + base_ + " (" + curl_easy_strerror(rc) +
                      "): is the service running? check --server, --port and --ssl");
  }
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &r.status);
  char* ct = nullptr;
  curl_easy_getinfo(c.get(), CURLINFO_CONTENT_TYPE, &ct);
  if (ct) r.contentType = ct;
  return r;
}

}  // namespace tango::cli
