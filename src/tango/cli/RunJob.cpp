#include "tango/cli/RunJob.hpp"

#include <unistd.h>

#include <algorithm>
#include <boost/json/serialize.hpp>
#include <thread>
#include <vector>

#include "tango/cli/Commands.hpp"
#include "tango/cli/Progress.hpp"

namespace tango::cli {

namespace json = boost::json;

namespace {

// The longest a poll asks the server to wait for an output; the progress
// bar moves at least this often.
constexpr long long kPollWaitSecs = 10;

struct Submitted {
  long long id = 0;
  std::string name, output;
  std::optional<std::string> result;  // the output file, once polled
};

// 0 when the answer is a Tango success; otherwise prints why and returns 1.
int check(Reporter& rep, const std::string& what, const Reply& r, json::object* answer = nullptr) {
  auto obj = r.object();
  if (!obj || !obj->contains("statusId") || !obj->at("statusId").is_int64()) {
    return rep.failure(what + ": the server sent HTTP " + std::to_string(r.status) +
                       " without a Tango answer");
  }
  if (obj->at("statusId").as_int64() < 0) {
    const auto& m = obj->at("statusMsg");
    std::string msg = m.is_string() ? std::string(m.as_string()) : json::serialize(m);
    auto hint = hintFor(msg);
    return rep.failure(what + " failed: " + msg + (hint.empty() ? "" : " (" + hint + ")"));
  }
  if (answer) *answer = std::move(*obj);
  return kOk;
}

std::string lastLine(const std::string& s) {
  auto end = s.find_last_not_of('\n');
  if (end == std::string::npos) return "";
  auto start = s.rfind('\n', end);
  return s.substr(start == std::string::npos ? 0 : start + 1,
                  end - (start == std::string::npos ? 0 : start + 1) + 1);
}

}  // namespace

int runJobs(const Options& o, RestClient& http, Reporter& rep) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(o.runJobDir)) {
    if (e.is_regular_file()) names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  if (std::find(names.begin(), names.end(), "autograde-Makefile") == names.end()) {
    return rep.usage("--runJob: " + o.runJobDir +
                     " has no file named autograde-Makefile (it becomes the job's Makefile)");
  }
  const std::string lab = RestClient::escape(o.key) + "/" + RestClient::escape(o.courselab) + "/";
  if (int rc = check(rep, "open", http.get("/open/" + lab))) return rc;
  json::array files;
  for (const auto& n : names) {
    auto path = std::filesystem::path(o.runJobDir) / n;
    if (int rc =
            check(rep, "upload " + n, http.postFile("/upload/" + lab, path, {{"Filename", n}})))
      return rc;
    files.push_back(
        json::object{{"localFile", n}, {"destFile", n == "autograde-Makefile" ? "Makefile" : n}});
  }

  std::vector<Submitted> jobs;
  for (int i = 1; i <= o.numJobs; ++i) {
    Options one = o;
    one.jobname = o.jobname + "-" + std::to_string(i);
    one.outputFile = o.outputFile + "-" + std::to_string(i);
    json::object answer;
    if (int rc =
            check(rep, "addJob " + one.jobname,
                  http.post("/addJob/" + lab, json::serialize(jobBody(one, files))), &answer)) {
      return rc;
    }
    const auto& id = answer["jobId"];
    long long jobId =
        id.is_string() ? std::stoll(std::string(id.as_string())) : id.to_number<long long>();
    if (!rep.json()) rep.out() << "submitted job " << jobId << " (" << one.jobname << ")\n";
    jobs.push_back({jobId, one.jobname, one.outputFile, std::nullopt});
  }

  const bool bar = !rep.json() && ::isatty(STDOUT_FILENO);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(o.waitSecs);
  std::size_t pending = jobs.size();
  {
    Progress progress(rep.out(), bar && !rep.json(), static_cast<int>(jobs.size()));
    while (pending > 0 && std::chrono::steady_clock::now() < deadline) {
      // The first unfinished job's poll waits for its output (?wait=N, the
      // server answers as soon as it is there); the others are looked at
      // as they are. A server that does not wait (Python Tango) answers
      // at once, and then this sleeps between rounds as before.
      bool waited = false, quick = false;
      for (auto& j : jobs) {
        if (j.result) continue;
        std::string target = "/poll/" + lab + RestClient::escape(j.output) + "/";
        const auto left = std::chrono::duration_cast<std::chrono::seconds>(
                              deadline - std::chrono::steady_clock::now())
                              .count();
        const long long wait = waited ? 0 : std::clamp<long long>(left, 0, kPollWaitSecs);
        if (wait > 0) target += "?wait=" + std::to_string(wait);
        const auto t0 = std::chrono::steady_clock::now();
        Reply r = http.get(target);
        if (wait > 0) {
          waited = true;
          // "Not found" long before the wait was up: the server does not wait.
          quick =
              r.isJson() && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(wait) / 2;
        }
        if (r.isJson()) continue;  // not finished yet
        j.result = r.body;
        --pending;
        if (!rep.json()) {
          progress.finished("job " + std::to_string(j.id) + " (" + j.name +
                            ") finished: " + j.output + ": " + lastLine(r.body));
        }
      }
      progress.tick();
      if (pending > 0 && (!waited || quick))
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
  }

  if (rep.json()) {
    json::array list;
    for (const auto& j : jobs) {
      json::object e{{"jobId", j.id},
                     {"jobName", j.name},
                     {"outputFile", j.output},
                     {"finished", j.result.has_value()}};
      if (j.result) e["output"] = *j.result;
      list.push_back(std::move(e));
    }
    rep.out() << json::serialize(
                     json::object{{"statusId", pending == 0 ? 0 : -1}, {"jobs", std::move(list)}})
              << "\n";
  } else if (pending == 0) {
    rep.out() << "all " << jobs.size() << " jobs finished\n";
  }
  if (pending > 0) {
    return rep.failure(std::to_string(pending) + " of " + std::to_string(jobs.size()) +
                       " jobs did not finish within --waitSecs " + std::to_string(o.waitSecs) +
                       "s: see -j for their state");
  }
  return kOk;
}

}  // namespace tango::cli
