#pragma once
// Turns an addJob body (hostile until checked) into a TangoJob, or says
// exactly what is wrong with it. Nothing here touches the filesystem beyond
// checking that input files exist inside the courselab directory.
#include <boost/json/value.hpp>
#include <filesystem>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "tango/config/Config.hpp"
#include "tango/model/Job.hpp"

namespace tango {

struct JobRequestContext {
  const Config& cfg;
  std::string key;
  std::string courselab;
  std::filesystem::path courselabDir;
  // The node's VMMSs in config order (VMMS_NAME first), each with its images.
  std::vector<std::pair<std::string, std::set<std::string>>> vmms;
};

// A valid job (not yet queued, id 0), or the error message.
std::variant<TangoJob, std::string> parseJobRequest(const JobRequestContext& ctx,
                                                    const boost::json::value& body);

}  // namespace tango
