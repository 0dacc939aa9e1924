#pragma once
// tango-cli's options: the flags of Tango's tango-cli.py (same names, same
// defaults where they make sense), plus --json and the waiting knobs of
// --runJob. Parsing is separate from running so the flag list lives in one place.
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace tango::cli {

enum class Action {
  None,
  Open,
  Upload,
  AddJob,
  Poll,
  Info,
  Jobs,
  Pool,
  Prealloc,
  Build,
  PartialOutput,
  Cancel,
  RunJob
};

struct Options {
  std::string server = "localhost";
  int port = 3000;
  bool ssl = false;
  std::string key;
  std::string courselab;
  Action action = Action::None;

  // Arguments of the actions (Tango's names in comments where they differ).
  std::string filename;              // --filename: the file to upload or build
  std::vector<std::string> infiles;  // --infiles: JSON objects {"localFile", "destFile"}
  std::string image = "autograding_image";
  std::string outputFile = "result.out";
  std::string jobname = "test_job";
  int maxsize = 0;  // KB, 0 = the server's default
  int timeout = 0;  // seconds, 0 = the server's default
  std::string notifyURL;
  std::string callbackURL;
  bool disableNetwork = false;
  std::string accessKeyId;
  std::string accessKey;
  std::string priority;  // empty: not sent (the server's default, normal)
  int deadJobs = 0;
  int num = 2;
  std::string vmms;  // empty: the server's own VMMS
  int cores = 1;
  int memory = 512;
  std::string imageName;
  std::optional<long long> jobid;
  std::string runJobDir;
  int numJobs = 1;
  int waitSecs = 600;  // --runJob: how long to wait for all outputs

  bool json = false;
};

// Parsed options, or the exit status to return at once (--help: 0, bad flags: 2).
// Messages go to stdout (help) or stderr (errors).
std::variant<Options, int> parseOptions(int argc, char** argv);

}  // namespace tango::cli
