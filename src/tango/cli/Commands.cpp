#include "tango/cli/Commands.hpp"

#include <boost/json/parse.hpp>
#include <boost/json/serialize.hpp>
#include <ostream>

#include "tango/cli/Reporter.hpp"
#include "tango/cli/RestClient.hpp"
#include "tango/cli/RunJob.hpp"

namespace tango::cli {

namespace json = boost::json;

namespace {

std::string lab(const Options& o) {
  return RestClient::escape(o.key) + "/" + RestClient::escape(o.courselab) + "/";
}

// --infiles: each argument one JSON object, as tango-cli.py takes them.
std::optional<json::array> parseInfiles(const std::vector<std::string>& args, std::string& error) {
  json::array files;
  for (const auto& a : args) {
    boost::system::error_code ec;
    auto v = json::parse(a, ec);
    if (ec || !v.is_object() || !v.as_object().contains("localFile") ||
        !v.as_object().contains("destFile")) {
      error = "--infiles: '" + a +
              "' is not a JSON object like {\"localFile\": \"x\", \"destFile\": \"y\"}";
      return std::nullopt;
    }
    files.push_back(std::move(v));
  }
  return files;
}

int poll(const Options& o, RestClient& http, Reporter& rep) {
  Reply r = http.get("/poll/" + lab(o) + RestClient::escape(o.outputFile) + "/");
  if (r.isJson()) {
    int rc = rep.jsonAnswer("poll", r);
    return rc == kOk ? kRefused : rc;  // a JSON answer to poll is never the output
  }
  if (rep.json()) {
    rep.out() << json::serialize(json::object{
                     {"statusId", 0}, {"outputFile", o.outputFile}, {"output", r.body}})
              << "\n";
  } else {
    rep.out() << r.body;
  }
  return kOk;
}

int dispatch(const Options& o, RestClient& http, Reporter& rep) {
  const std::string key = RestClient::escape(o.key);
  switch (o.action) {
    case Action::Open:
      return rep.jsonAnswer("open", http.get("/open/" + lab(o)));
    case Action::Upload: {
      if (o.filename.empty()) return rep.usage("-u needs --filename FILE");
      auto name = std::filesystem::path(o.filename).filename().string();
      return rep.jsonAnswer("upload",
                            http.postFile("/upload/" + lab(o), o.filename, {{"Filename", name}}));
    }
    case Action::AddJob: {
      if (o.infiles.empty())
        return rep.usage("-a needs --infiles (one must have \"destFile\": \"Makefile\")");
      std::string error;
      auto files = parseInfiles(o.infiles, error);
      if (!files) return rep.usage(error);
      return rep.jsonAnswer(
          "addJob", http.post("/addJob/" + lab(o), json::serialize(jobBody(o, std::move(*files)))));
    }
    case Action::Poll:
      return poll(o, http, rep);
    case Action::Info:
      return rep.jsonAnswer("info", http.get("/info/" + key + "/"));
    case Action::Jobs:
      return rep.jsonAnswer("jobs",
                            http.get("/jobs/" + key + "/" + std::to_string(o.deadJobs) + "/"));
    case Action::Pool:
      return rep.jsonAnswer("pool",
                            http.get("/pool/" + key + "/" +
                                     (o.image.empty() ? "" : RestClient::escape(o.image) + "/")));
    case Action::Prealloc: {
      json::object body{{"cores", o.cores}, {"memory", o.memory}};
      if (!o.vmms.empty()) body["vmms"] = o.vmms;
      return rep.jsonAnswer("prealloc",
                            http.post("/prealloc/" + key + "/" + RestClient::escape(o.image) + "/" +
                                          std::to_string(o.num) + "/",
                                      json::serialize(body)));
    }
    case Action::Build:
      if (o.filename.empty())
        return rep.usage("--build needs --filename IMAGE.tar (from docker save)");
      if (o.imageName.empty()) return rep.usage("--build needs --imageName NAME");
      return rep.jsonAnswer(
          "build", http.postFile("/build/" + key + "/", o.filename, {{"imageName", o.imageName}}));
    case Action::PartialOutput:
      if (!o.jobid) return rep.usage("--getPartialOutput needs --jobid ID");
      return rep.jsonAnswer("getPartialOutput", http.get("/getPartialOutput/" + key + "/" +
                                                         std::to_string(*o.jobid) + "/"));
    case Action::Cancel:
      if (o.jobid)
        return rep.jsonAnswer(
            "cancel", http.post("/cancel/" + key + "/" + std::to_string(*o.jobid) + "/", ""));
      if (o.courselab.empty())
        return rep.usage("--cancel needs --jobid ID, or -l COURSELAB for all its queued jobs");
      return rep.jsonAnswer("cancelQueued", http.post("/cancelQueued/" + lab(o), ""));
    case Action::RunJob:
      return runJobs(o, http, rep);
    case Action::None:
      break;
  }
  return rep.usage("no action given");
}

bool needsCourselab(Action a) {
  return a == Action::Open || a == Action::Upload || a == Action::AddJob || a == Action::Poll ||
         a == Action::RunJob;
}

}  // namespace

json::object jobBody(const Options& o, json::array files) {
  json::object job{{"image", o.image},
                   {"files", std::move(files)},
                   {"timeout", o.timeout},
                   {"max_kb", o.maxsize},
                   {"output_file", o.outputFile},
                   {"jobName", o.jobname},
                   {"disable_network", o.disableNetwork},
                   {"accessKeyId", o.accessKeyId},
                   {"accessKey", o.accessKey}};
  if (!o.notifyURL.empty()) job["notifyURL"] = o.notifyURL;
  if (!o.callbackURL.empty()) job["callback_url"] = o.callbackURL;
  if (!o.priority.empty()) job["priority"] = o.priority;
  return job;
}

int runAction(const Options& o, std::ostream& out, std::ostream& err) {
  Reporter rep(o.json, out, err);
  if (o.key.empty()) return rep.usage("missing -k KEY (the service's API key)");
  if (needsCourselab(o.action) && o.courselab.empty()) return rep.usage("missing -l COURSELAB");
  try {
    RestClient http(o.server, o.port, o.ssl);
    return dispatch(o, http, rep);
  } catch (const Unreachable& e) {
    err << "tango-cli: " << e.what() << "\n";
    return kUnreachable;
  } catch (const std::exception& e) {
    err << "tango-cli: " << e.what() << "\n";
    return kRefused;
  }
}

}  // namespace tango::cli
