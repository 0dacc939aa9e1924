#include "tango/cli/Options.hpp"

#include <CLI/CLI.hpp>
#include <iostream>
#include <utility>

namespace tango::cli {

namespace {

struct ActionFlag {
  const char* names;
  Action action;
  const char* help;
};

// One table so the "exactly one action" check and --help agree.
constexpr ActionFlag kActions[] = {
    {"-o,--open", Action::Open, "create the courselab directory (needs -k, -l)"},
    {"-u,--upload", Action::Upload, "upload --filename into the courselab (needs -k, -l)"},
    {"-a,--addJob", Action::AddJob,
     "submit a job: --infiles, --image, --outputFile, --jobname, --maxsize, --timeout, "
     "--notifyURL, --disableNetwork, --accessKeyId, --accessKey, --priority (needs -k, -l)"},
    {"-p,--poll", Action::Poll,
     "print the output file --outputFile of a finished job (needs -k, -l)"},
    {"-i,--info", Action::Info, "print the service's counters (needs -k)"},
    {"-j,--jobs", Action::Jobs, "list live jobs, or finished ones with --deadJobs 1 (needs -k)"},
    {"--pool", Action::Pool,
     "show the VM pools, or only --image's when given explicitly (needs -k)"},
    {"--prealloc", Action::Prealloc,
     "keep --num VMs of --image warm (--vmms, --cores, --memory; needs -k)"},
    {"--build", Action::Build, "load the image tarball --filename as --imageName (needs -k)"},
    {"--getPartialOutput", Action::PartialOutput,
     "print the output so far of running job --jobid (needs -k)"},
    {"--cancel", Action::Cancel,
     "cancel job --jobid, or every queued job of -l COURSELAB (needs -k)"},
};

}  // namespace

std::variant<Options, int> parseOptions(int argc, char** argv) {
  Options o;
  CLI::App app{
      "tango-cli: talk to a Tango service (tangod or Tango) from the command line.\n"
      "Same flags as Tango's tango-cli.py. Give exactly one action. Exit status: 0 success, "
      "1 the server refused (statusId < 0, job failed), 2 bad flags, 3 server unreachable."};
  app.get_formatter()->column_width(34);

  app.add_option("-s,--server", o.server, "host name or address of the service")
      ->capture_default_str();
  app.add_option("-P,--port", o.port, "port of the service")
      ->capture_default_str()
      ->check(CLI::Range(1, 65535));
  app.add_flag("-S,--ssl", o.ssl, "use https");
  app.add_option("-k,--key", o.key, "API key (one of the service's KEYS)");
  app.add_option("-l,--courselab", o.courselab, "courselab name");

  std::vector<std::pair<CLI::Option*, Action>> flags;
  for (const auto& a : kActions)
    flags.emplace_back(app.add_flag(a.names, a.help)->group("Actions"), a.action);
  auto* runJob =
      app.add_option("--runJob", o.runJobDir,
                     "upload every file of DIR (autograde-Makefile becomes the Makefile), "
                     "submit --numJobs jobs and wait for their outputs (needs -k, -l)")
          ->group("Actions")
          ->check(CLI::ExistingDirectory);

  app.add_option("--filename", o.filename, "file to upload (-u) or image tarball (--build)")
      ->check(CLI::ExistingFile);
  app.add_option(
      "--infiles", o.infiles,
      "input files of -a, each a JSON object: '{\"localFile\": \"x\", \"destFile\": \"y\"}'");
  auto* image =
      app.add_option("--image", o.image, "image of the job / pool")->capture_default_str();
  app.add_option("--outputFile", o.outputFile, "output file name of the job")
      ->capture_default_str();
  app.add_option("--jobname", o.jobname, "name of the job")->capture_default_str();
  app.add_option("--maxsize", o.maxsize, "output cap in KB (0: the server's default)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--timeout", o.timeout, "job timeout in seconds (0: the server's default)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_option("--notifyURL", o.notifyURL,
                 "URL the service POSTs the output to when the job ends");
  app.add_option("--callbackURL", o.callbackURL, "same as --notifyURL, sent as callback_url");
  app.add_flag("--disableNetwork", o.disableNetwork, "run the job without network");
  app.add_option("--accessKeyId", o.accessKeyId, "EC2 access key id of the requester");
  app.add_option("--accessKey", o.accessKey, "EC2 secret access key of the requester");
  app.add_option("--priority", o.priority, "-a: low, normal or high (at most the key's bound)")
      ->check(CLI::IsMember({"low", "normal", "high"}));
  app.add_option("--deadJobs", o.deadJobs, "-j: 0 live jobs, 1 finished jobs")
      ->capture_default_str()
      ->check(CLI::IsMember({0, 1}));
  app.add_option("--num", o.num, "--prealloc: pool size")
      ->capture_default_str()
      ->check(CLI::Range(0, 1000));
  app.add_option("--vmms", o.vmms, "--prealloc: VMMS name (default: the server's)");
  app.add_option("--cores", o.cores, "--prealloc: cores per VM")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--memory", o.memory, "--prealloc: memory per VM in MB")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--imageName", o.imageName, "--build: name to tag the image with");
  app.add_option("--jobid", o.jobid, "--getPartialOutput, --cancel: job id")
      ->check(CLI::PositiveNumber);
  app.add_option("--numJobs", o.numJobs, "--runJob: how many jobs to submit")
      ->capture_default_str()
      ->check(CLI::Range(1, 100000));
  app.add_option("--waitSecs", o.waitSecs, "--runJob: give up waiting for outputs after this long")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_flag("--json", o.json, "machine-readable output: one JSON document on stdout");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }

  int chosen = 0;
  for (auto& [opt, action] : flags) {
    if (opt->count() > 0) {
      o.action = action;
      ++chosen;
    }
  }
  if (runJob->count() > 0) {
    o.action = Action::RunJob;
    ++chosen;
  }
  if (chosen != 1) {
    std::cerr << "tango-cli: " << (chosen == 0 ? "no action given" : "more than one action given")
              << ": use exactly one of -o, -u, -a, -p, -i, -j, --pool, --prealloc, --build, "
                 "--getPartialOutput, --cancel, --runJob DIR (see --help)\n";
    return 2;
  }
  // Tango's --pool lists every pool unless an image is asked for.
  if (o.action == Action::Pool && image->count() == 0) o.image.clear();
  return o;
}

}  // namespace tango::cli
