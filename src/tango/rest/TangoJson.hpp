#pragma once
// Tango's JSON answers: {"statusId": 0|-1, "statusMsg": "...", ...extra}.
#include <boost/json/object.hpp>
#include <string>
#include <string_view>

#include "tango/rest/Http.hpp"

namespace tango {

boost::json::object tangoStatus(int statusId, std::string_view statusMsg);
// HTTP 200, application/json.
HttpResponse jsonAnswer(const boost::json::object& body);
HttpResponse tangoOk(std::string_view statusMsg);

// Job output is whatever a student's program printed; JSON strings must be
// UTF-8, so invalid sequences become U+FFFD.
std::string toValidUtf8(std::string_view s);

}  // namespace tango
