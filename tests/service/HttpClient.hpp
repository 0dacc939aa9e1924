#pragma once
// A small blocking HTTP client (libcurl) for tests that drive tangod.
#include <curl/curl.h>

#include <boost/json.hpp>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>

namespace tango::test {

struct HttpResponse {
  long status = 0;
  std::string contentType;
  std::string body;
  boost::json::object json() const { return boost::json::parse(body).as_object(); }
};

class HttpClient {
 public:
  explicit HttpClient(int port) : base_("http://127.0.0.1:" + std::to_string(port)) {}

  HttpResponse get(const std::string& path, const std::string& body = "") {
    return request("GET", path, body, {});
  }
  HttpResponse post(const std::string& path, const std::string& body,
                    const std::map<std::string, std::string>& headers = {}) {
    return request("POST", path, body, headers);
  }

  HttpResponse request(const std::string& method, const std::string& path, const std::string& body,
                       const std::map<std::string, std::string>& headers) {
    std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> c(curl_easy_init(), curl_easy_cleanup);
    HttpResponse r;
    std::string url = base_ + path;
    curl_easy_setopt(c.get(), CURLOPT_URL, url.c_str());
    curl_easy_setopt(c.get(), CURLOPT_CUSTOMREQUEST, method.c_str());
    curl_easy_setopt(c.get(), CURLOPT_PATH_AS_IS, 1L);  // keep "..%2F" as sent
    curl_easy_setopt(c.get(), CURLOPT_TIMEOUT, 60L);
    if (!body.empty() || method == "POST") {
      curl_easy_setopt(c.get(), CURLOPT_POSTFIELDS, body.data());
      curl_easy_setopt(c.get(), CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
    }
    struct curl_slist* hdrs = nullptr;
    hdrs = curl_slist_append(hdrs, "Expect:");
    for (auto& [k, v] : headers) hdrs = curl_slist_append(hdrs, (k + ": " + v).c_str());
    std::unique_ptr<curl_slist, decltype(&curl_slist_free_all)> hguard(hdrs, curl_slist_free_all);
    curl_easy_setopt(c.get(), CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* ud) {
      static_cast<std::string*>(ud)->append(p, s * n);
      return s * n;
    });
    curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &r.body);
    CURLcode rc = curl_easy_perform(c.get());
    if (rc != CURLE_OK) throw std::runtime_error(std::string("http: ") + curl_easy_strerror(rc) + " " + url);
    curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &r.status);
    char* ct = nullptr;
    curl_easy_getinfo(c.get(), CURLINFO_CONTENT_TYPE, &ct);
    if (ct) r.contentType = ct;
    return r;
  }

 private:
  std::string base_;
};

}  // namespace tango::test
