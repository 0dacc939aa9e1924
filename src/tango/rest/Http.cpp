#include "tango/rest/Http.hpp"

#include <strings.h>

#include <boost/json/object.hpp>
#include <boost/json/serialize.hpp>

namespace tango {

std::optional<std::string_view> HttpHead::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (n.size() == name.size() && ::strncasecmp(n.data(), name.data(), n.size()) == 0) return v;
  }
  return std::nullopt;
}

HttpResponse jsonFailure(std::string_view message, int status) {
  boost::json::object o;
  o["statusId"] = -1;
  o["statusMsg"] = message;
  HttpResponse r;
  r.status = status;
  r.body = boost::json::serialize(o);
  return r;
}

}  // namespace tango
