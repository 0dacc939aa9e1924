#pragma once
// tango-cli's HTTP side (libcurl): one request at a time against Tango's
// routes. Transport failures throw Unreachable with a message that says what
// to check; HTTP answers, whatever their status, are returned.
#include <boost/json/object.hpp>
#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>

namespace tango::cli {

struct Unreachable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct Reply {
  long status = 0;
  std::string contentType;
  std::string body;
  bool isJson() const { return contentType.rfind("application/json", 0) == 0; }
  // The body as a JSON object; nullopt when it is not one.
  std::optional<boost::json::object> object() const;
};

class RestClient {
 public:
  RestClient(const std::string& server, int port, bool ssl);

  Reply get(const std::string& path);
  Reply post(const std::string& path, const std::string& body,
             const std::map<std::string, std::string>& headers = {});
  // POSTs the file's bytes as the body, streamed (image tarballs can be large).
  Reply postFile(const std::string& path, const std::filesystem::path& file,
                 const std::map<std::string, std::string>& headers);

  // Percent-encodes one path segment (courselab and output names may hold anything).
  static std::string escape(const std::string& segment);
  const std::string& base() const { return base_; }

 private:
  Reply perform(const std::string& method, const std::string& path, const std::string* body,
                const std::filesystem::path* file,
                const std::map<std::string, std::string>& headers);

  std::string base_;
};

}  // namespace tango::cli
