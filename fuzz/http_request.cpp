// The HTTP front: Beast's request parser with the server's settings, the
// head the router gets (BeastHead.hpp), then the router's target decoding.
#include <boost/asio/buffer.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>

#include "Check.hpp"
#include "tango/rest/BeastHead.hpp"
#include "tango/rest/Target.hpp"

namespace http = boost::beast::http;

namespace {

std::string percentEncode(std::string_view s) {
  static const char* hex = "0123456789ABCDEF";
  std::string out;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u) || c == '-' || c == '.' || c == '_' || c == '~') {
      out += c;
    } else {
      out += '%';
      out += hex[u >> 4];
      out += hex[u & 15];
    }
  }
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  std::string_view in = fuzz::text(data, size);
  http::request_parser<http::buffer_body> parser;
  parser.header_limit(16 * 1024);  // HttpServer's Limits::maxHeaderBytes
  parser.body_limit(boost::none);
  boost::beast::error_code ec;
  while (!in.empty() && !parser.is_header_done()) {
    const auto n = parser.put(boost::asio::buffer(in.data(), in.size()), ec);
    if (ec) return 0;  // malformed or incomplete: the server answers 400 or waits
    in.remove_prefix(n);
    if (n == 0) return 0;
  }
  if (!parser.is_header_done()) return 0;

  const tango::HttpHead head = tango::headOf(parser);
  if (head.contentLength) FUZZ_CHECK(head.header("Content-Length").has_value());

  // The body, in the server's fixed-size pieces: never more than announced.
  char chunk[512];
  std::uint64_t bodyBytes = 0;
  while (!in.empty() && !parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof chunk;
    const auto n = parser.put(boost::asio::buffer(in.data(), in.size()), ec);
    if (ec == http::error::need_buffer) ec = {};
    if (ec) break;
    const std::size_t got = sizeof chunk - parser.get().body().size;
    bodyBytes += got;
    in.remove_prefix(n);
    if (n == 0 && got == 0) break;
  }
  if (head.contentLength) FUZZ_CHECK(bodyBytes <= *head.contentLength);

  // What the router sees: decoded segments, each of which survives a round
  // trip through encoding, so no decoding step is lossy or ambiguous.
  if (auto segments = tango::splitTarget(head.target)) {
    for (const auto& s : *segments) {
      auto again = tango::urlDecode(percentEncode(s));
      FUZZ_CHECK(again && *again == s);
    }
  }
  (void)tango::queryParam(head.target, "wait");
  (void)tango::urlDecode(head.target);
  return 0;
}
