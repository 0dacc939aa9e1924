#pragma once
// --runJob DIR --numJobs N: what Tango's tango-cli.py does (open, upload every
// file of DIR, submit N jobs named <jobname>-<i> writing <outputFile>-<i>),
// and then what it does not: wait for the outputs and fail when one is missing.
#include <boost/json/array.hpp>
#include <boost/json/object.hpp>

#include "tango/cli/Options.hpp"
#include "tango/cli/Reporter.hpp"
#include "tango/cli/RestClient.hpp"

namespace tango::cli {

// The addJob body for `o` (Tango's field names).
boost::json::object jobBody(const Options& o, boost::json::array files);

int runJobs(const Options& o, RestClient& http, Reporter& rep);

}  // namespace tango::cli
