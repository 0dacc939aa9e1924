// Load generator for tangod benchmarks (see docs/benchmarks.md). Drives a
// running tangod over HTTP with keep-alive connections (libcurl), like Autolab.
//
//   tango_bench PORT latency N           N trivial jobs one after another:
//                                        addJob answer -> output pollable (ms)
//   tango_bench PORT throughput N        N trivial jobs submitted at once, wait
//                                        for all outputs: jobs per second
//   tango_bench PORT blocker             one job that sleeps 600 s (holds a pool of 1)
//   tango_bench PORT submit N            N trivial jobs, no waiting (fills the queue)
//   tango_bench PORT api N               N x (addJob, GET /jobs/<key>/1/) latency (ms)
// With TANGO_BENCH_NETWORK=1 the jobs ask for the network.
#include <curl/curl.h>

#include <algorithm>
#include <boost/json.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
namespace json = boost::json;

class Http {
 public:
  explicit Http(int port)
      : base_("http://127.0.0.1:" + std::to_string(port)),
        h_(curl_easy_init(), curl_easy_cleanup) {}
  // Returns the body; `isJson` tells whether it came as application/json.
  std::string request(const std::string& path, const std::string* body = nullptr,
                      const std::string& header = "", bool* isJson = nullptr) {
    std::string out;
    CURL* c = h_.get();
    curl_easy_reset(c);
    std::string url = base_ + path;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    struct curl_slist* hdrs = curl_slist_append(nullptr, "Expect:");
    if (!header.empty()) hdrs = curl_slist_append(hdrs, header.c_str());
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    if (body) {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data());
      curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, static_cast<long>(body->size()));
    }
    curl_easy_setopt(
        c, CURLOPT_WRITEFUNCTION, +[](char* p, size_t s, size_t n, void* ud) {
          static_cast<std::string*>(ud)->append(p, s * n);
          return s * n;
        });
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &out);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(hdrs);
    if (rc != CURLE_OK) throw std::runtime_error(curl_easy_strerror(rc));
    if (isJson) {
      char* ct = nullptr;
      curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
      *isJson = ct && std::string(ct) == "application/json";
    }
    return out;
  }

 private:
  std::string base_;
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> h_;
};

const std::string kLab = "bench";

void setUp(Http& http, const std::string& makefile) {
  http.request("/open/test/" + kLab + "/");
  http.request("/upload/test/" + kLab + "/", &makefile, "Filename: autograde-Makefile");
}

std::string jobBody(const std::string& out, int timeout = 20) {
  json::object j{{"image", "autograding_image"},
                 {"files", json::array{json::object{{"localFile", "autograde-Makefile"},
                                                    {"destFile", "Makefile"}}}},
                 {"output_file", out},
                 {"jobName", out},
                 {"timeout", timeout}};
  // TANGO_BENCH_NETWORK=1: jobs that ask for the network (bench/network.sh).
  if (const char* net = std::getenv("TANGO_BENCH_NETWORK"); net && std::string(net) == "1")
    j["disable_network"] = false;
  return json::serialize(j);
}

void addJob(Http& http, const std::string& out, int timeout = 20) {
  std::string body = jobBody(out, timeout);
  auto r = json::parse(http.request("/addJob/test/" + kLab + "/", &body)).as_object();
  if (r["statusId"].as_int64() != 0)
    throw std::runtime_error("addJob failed: " + json::serialize(r));
}

// TANGO_BENCH_WAIT=1: each poll waits for the output (?wait=30, as
// tango-cli --runJob does) instead of asking again every 0.5 ms.
bool waitPolls() {
  const char* w = std::getenv("TANGO_BENCH_WAIT");
  return w && std::string(w) == "1";
}

bool pollable(Http& http, const std::string& out) {
  bool isJson = true;
  http.request("/poll/test/" + kLab + "/" + out + "/" + (waitPolls() ? "?wait=30" : ""), nullptr,
               "", &isJson);
  return !isJson;
}

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

void printStats(const char* what, std::vector<double> v) {
  std::sort(v.begin(), v.end());
  auto pct = [&](double p) {
    return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
  };
  std::printf("%s: n=%zu median=%.2f ms p99=%.2f ms min=%.2f ms max=%.2f ms\n", what, v.size(),
              pct(0.5), pct(0.99), v.front(), v.back());
}

const std::string kTrivial = "all:\n\t@echo hello\n";

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: tango_bench PORT latency|throughput|blocker|submit|api [N]\n");
    return 1;
  }
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const int port = std::stoi(argv[1]);
  const std::string mode = argv[2];
  const int n = argc > 3 ? std::stoi(argv[3]) : 1;
  const std::string tag =
      std::to_string(std::chrono::system_clock::now().time_since_epoch().count());
  Http http(port);
  try {
    if (mode == "latency") {
      setUp(http, kTrivial);
      std::vector<double> lat;
      for (int i = 0; i < n; ++i) {
        std::string out = "lat-" + tag + "-" + std::to_string(i);
        addJob(http, out);
        auto t0 = Clock::now();
        while (!pollable(http, out)) std::this_thread::sleep_for(std::chrono::microseconds(500));
        lat.push_back(ms(Clock::now() - t0));
      }
      printStats("addJob->pollable", lat);
    } else if (mode == "throughput") {
      setUp(http, kTrivial);
      auto t0 = Clock::now();
      for (int i = 0; i < n; ++i) addJob(http, "tp-" + tag + "-" + std::to_string(i));
      auto submitted = Clock::now();
      for (int i = 0; i < n; ++i)
        while (!pollable(http, "tp-" + tag + "-" + std::to_string(i)))
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
      double secs = ms(Clock::now() - t0) / 1000;
      std::printf("throughput: %d jobs in %.2f s (submitting took %.2f s) = %.1f jobs/s\n", n, secs,
                  ms(submitted - t0) / 1000, n / secs);
    } else if (mode == "blocker") {
      setUp(http, "all:\n\t@sleep 600\n");
      addJob(http, "blocker-" + tag, 700);
    } else if (mode == "submit") {
      setUp(http, kTrivial);
      for (int i = 0; i < n; ++i) addJob(http, "q-" + tag + "-" + std::to_string(i));
    } else if (mode == "api") {
      setUp(http, kTrivial);
      std::vector<double> add, list;
      for (int i = 0; i < n; ++i) {
        auto t0 = Clock::now();
        addJob(http, "api-" + tag + "-" + std::to_string(i));
        add.push_back(ms(Clock::now() - t0));
        t0 = Clock::now();
        http.request("/jobs/test/1/");
        list.push_back(ms(Clock::now() - t0));
      }
      printStats("addJob", add);
      printStats("jobs/1", list);
    } else {
      std::fprintf(stderr, "unknown mode %s\n", mode.c_str());
      return 1;
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tango_bench: %s\n", e.what());
    return 1;
  }
  curl_global_cleanup();
  return 0;
}
