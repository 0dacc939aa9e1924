#pragma once
// How tango-cli shows an answer of the service: the server's JSON as is with
// --json (scripts parse it), a short readable form otherwise; and the exit
// status that goes with it.
#include <iosfwd>
#include <string>

#include "tango/cli/RestClient.hpp"

namespace tango::cli {

class Reporter {
 public:
  Reporter(bool json, std::ostream& out, std::ostream& err) : json_(json), out_(out), err_(err) {}

  // A JSON answer of `what` (e.g. "open"): printed; 0 when statusId >= 0, else 1
  // with the server's message and a hint on stderr.
  int jsonAnswer(const std::string& what, const Reply& r);
  // A usage error: message on stderr, exit status 2.
  int usage(const std::string& message);
  int failure(const std::string& message);

  bool json() const { return json_; }
  std::ostream& out() { return out_; }
  std::ostream& err() { return err_; }

 private:
  bool json_;
  std::ostream& out_;
  std::ostream& err_;
};

// What to do about a failure message of the service.
std::string hintFor(const std::string& statusMsg);

}  // namespace tango::cli
