#pragma once
// The one place a request header parsed by Beast becomes an HttpHead: used
// by HttpServer and by the HTTP fuzz target (fuzz/http_request.cpp), so the
// fuzzer exercises exactly what the server hands to the router.
#include <boost/beast/http/parser.hpp>

#include "tango/rest/Http.hpp"

namespace tango {

// The parser's header must be complete (is_header_done()).
template <class Body>
HttpHead headOf(const boost::beast::http::request_parser<Body>& parser) {
  const auto& req = parser.get();
  HttpHead head;
  head.method = std::string(req.method_string());
  head.target = std::string(req.target());
  for (const auto& f : req) head.headers.emplace_back(f.name_string(), f.value());
  if (auto len = parser.content_length()) head.contentLength = *len;
  return head;
}

}  // namespace tango
