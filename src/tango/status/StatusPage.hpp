#pragma once
// The live status page served at /status/: one self-contained HTML document
// (CSS and JavaScript inline, nothing fetched from elsewhere) that polls
// /status/data once a second with the key it was opened with.
#include <string_view>

namespace tango::status {

std::string_view statusPageHtml();

}  // namespace tango::status
