// addJob's body: any JSON a client may send, checked by parseJobRequest
// against a courselab with a few uploads, a symlink and a directory in it.
#include <boost/json/parse.hpp>
#include <filesystem>
#include <fstream>

#include "Check.hpp"
#include "tango/core/JobRequest.hpp"
#include "tango/util/SafeName.hpp"

namespace fs = std::filesystem;

namespace {

struct Lab {
  tango::Config cfg;
  fuzz::ScratchDir scratch{"add-job"};
  fs::path dir = scratch.path() / "test-lab";
  Lab() {
    fs::create_directories(dir / "output");
    fs::create_directories(dir / "subdir");
    for (const char* f : {"Makefile", "handin.c", "autograde.tar", "a b"})
      std::ofstream(dir / f) << "x\n";
    fs::create_symlink("/etc/passwd", dir / "link");
  }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  static const Lab lab;
  boost::system::error_code ec;
  const boost::json::value body = boost::json::parse(fuzz::text(data, size), ec);
  if (ec) return 0;  // TangoREST answers "not JSON" before parseJobRequest
  const tango::JobRequestContext ctx{
      lab.cfg,
      "test",
      "lab",
      lab.dir,
      {{"localDocker", {"autograding_image", "rhel"}}, {"local", {"default"}}}};
  auto result = tango::parseJobRequest(ctx, body);
  if (auto* error = std::get_if<std::string>(&result)) {
    FUZZ_CHECK(!error->empty());
    return 0;
  }
  // An accepted job: every name plain, every input a regular file in the
  // lab, its limits within what the operator allows.
  const auto& job = std::get<tango::TangoJob>(result);
  FUZZ_CHECK(!job.input.empty() && job.input.size() <= 1000);
  bool makefile = false;
  for (const auto& f : job.input) {
    FUZZ_CHECK(tango::isSafeName(f.destFile));
    FUZZ_CHECK(fs::path(f.localFile).parent_path() == lab.dir);
    FUZZ_CHECK(fs::is_regular_file(fs::symlink_status(f.localFile)));
    makefile = makefile || f.destFile == "Makefile";
  }
  FUZZ_CHECK(makefile);
  FUZZ_CHECK(fs::path(job.outputFile).parent_path() == lab.dir / "output");
  FUZZ_CHECK(job.timeout >= 1 && job.timeout <= lab.cfg.maxJobTimeout);
  FUZZ_CHECK(job.maxOutputFileSize > 0 && job.maxOutputFileSize <= lab.cfg.maxOutputFileSize);
  FUZZ_CHECK(job.vm.vmms == "localDocker" || job.vm.vmms == "local");
  FUZZ_CHECK(!job.name.empty() && fuzz::noControlBytes(job.name));
  if (job.limits.memoryMb) FUZZ_CHECK(*job.limits.memoryMb >= 16);
  if (job.limits.procs) FUZZ_CHECK(*job.limits.procs >= 1);
  return 0;
}
