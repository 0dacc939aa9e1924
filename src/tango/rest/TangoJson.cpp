#include "tango/rest/TangoJson.hpp"

#include <boost/json/serialize.hpp>

namespace tango {

boost::json::object tangoStatus(int statusId, std::string_view statusMsg) {
  boost::json::object o;
  o["statusId"] = statusId;
  o["statusMsg"] = statusMsg;
  return o;
}

HttpResponse jsonAnswer(const boost::json::object& body) {
  HttpResponse r;
  r.body = boost::json::serialize(body);
  return r;
}

HttpResponse tangoOk(std::string_view statusMsg) { return jsonAnswer(tangoStatus(0, statusMsg)); }

namespace {

// Length of the valid UTF-8 sequence starting at s[i], or 0 when invalid.
std::size_t validSequence(std::string_view s, std::size_t i) {
  auto at = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
  unsigned char c = at(i);
  if (c < 0x80) return 1;
  std::size_t len = 0;
  unsigned char lo = 0x80, hi = 0xBF;
  if (c >= 0xC2 && c <= 0xDF) {
    len = 2;
  } else if (c >= 0xE0 && c <= 0xEF) {
    len = 3;
    if (c == 0xE0) lo = 0xA0;  // no overlong forms
    if (c == 0xED) hi = 0x9F;  // no surrogates
  } else if (c >= 0xF0 && c <= 0xF4) {
    len = 4;
    if (c == 0xF0) lo = 0x90;
    if (c == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
  } else {
    return 0;
  }
  if (i + len > s.size()) return 0;
  if (at(i + 1) < lo || at(i + 1) > hi) return 0;
  for (std::size_t k = 2; k < len; ++k) {
    if (at(i + k) < 0x80 || at(i + k) > 0xBF) return 0;
  }
  return len;
}

}  // namespace

std::string toValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size();) {
    std::size_t n = validSequence(s, i);
    if (n == 0) {
      out.append("\xEF\xBF\xBD");
      i += 1;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

}  // namespace tango
