#include "tango/cli/Reporter.hpp"

#include <boost/json/serialize.hpp>
#include <ostream>

#include "tango/cli/Commands.hpp"

namespace tango::cli {

namespace json = boost::json;

namespace {

// Indented JSON for people; Boost.JSON only prints compactly.
void pretty(std::ostream& os, const json::value& v, int indent = 0) {
  const std::string pad(static_cast<std::size_t>(indent) * 2, ' ');
  if (v.is_object() && !v.as_object().empty()) {
    os << "{\n";
    bool first = true;
    for (const auto& [k, x] : v.as_object()) {
      if (!first) os << ",\n";
      first = false;
      os << pad << "  " << json::serialize(json::string(k)) << ": ";
      pretty(os, x, indent + 1);
    }
    os << "\n" << pad << "}";
  } else if (v.is_array() && !v.as_array().empty()) {
    os << "[\n";
    bool first = true;
    for (const auto& x : v.as_array()) {
      if (!first) os << ",\n";
      first = false;
      os << pad << "  ";
      pretty(os, x, indent + 1);
    }
    os << "\n" << pad << "]";
  } else {
    os << json::serialize(v);
  }
}

}  // namespace

std::string hintFor(const std::string& msg) {
  if (msg == "Key not recognized") return "check -k: it must be one of the service's KEYS";
  if (msg == "Courselab not found") return "create the courselab first with -o (or check -l)";
  if (msg == "Output file not found")
    return "the job has not finished yet (or check --outputFile and -l)";
  if (msg == "Pool not found") return "no pool for this --image yet: see --pool without --image";
  if (msg == "Invalid image name") return "check --image: see the images in --pool";
  if (msg.rfind("No partial output", 0) == 0)
    return "check --jobid: the job must be running (see -j)";
  return "";
}

int Reporter::jsonAnswer(const std::string& what, const Reply& r) {
  auto obj = r.object();
  if (!obj || !obj->contains("statusId") || !obj->at("statusId").is_int64()) {
    err_ << "tango-cli: " << what << ": the server sent HTTP " << r.status
         << " without a Tango answer: is "
         << "this a Tango service? check --server and --port\n";
    return kRefused;
  }
  const auto status = obj->at("statusId").as_int64();
  const auto* m = obj->if_contains("statusMsg");
  const std::string msg = m && m->is_string() ? std::string(m->as_string()) : "";
  if (json_) {
    out_ << json::serialize(*obj) << "\n";
  } else if (status >= 0) {
    out_ << msg << "\n";
    for (const auto& [k, v] : *obj) {
      if (k == "statusId" || k == "statusMsg") continue;
      out_ << k << ": ";
      pretty(out_, v);
      out_ << "\n";
    }
  }
  if (status < 0) {
    err_ << "tango-cli: " << what << " failed: " << msg;
    if (auto h = hintFor(msg); !h.empty()) err_ << " (" << h << ")";
    err_ << "\n";
    return kRefused;
  }
  return kOk;
}

int Reporter::usage(const std::string& message) {
  err_ << "tango-cli: " << message << " (see --help)\n";
  return kUsage;
}

int Reporter::failure(const std::string& message) {
  err_ << "tango-cli: " << message << "\n";
  return kRefused;
}

}  // namespace tango::cli
