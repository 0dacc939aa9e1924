// The autodriver's -S stream (StdinJob.hpp): a tar from outside the VM. It
// either is refused or yields plain files directly in the job directory:
// nothing outside it, no links, no nested names, no mode above 0755.
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "Check.hpp"
#include "autodriver/StdinJob.hpp"

namespace fs = std::filesystem;

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  static const fuzz::ScratchDir scratch("stdin-job");
  const fs::path& base = scratch.path();
  const fs::path dir = base / "job";
  fs::remove_all(dir);

  const int fd = ::memfd_create("job-stream", MFD_CLOEXEC);
  FUZZ_CHECK(fd >= 0);
  FUZZ_CHECK(::write(fd, data, size) == static_cast<ssize_t>(size));
  FUZZ_CHECK(::lseek(fd, 0, SEEK_SET) == 0);
  try {
    auto result = tango::autodriver::read_stdin_job(fd, dir.string());
    if (auto* error = std::get_if<tango::autodriver::StdinJobError>(&result))
      FUZZ_CHECK(!error->message.empty());
  } catch (const std::system_error&) {
    // An OS failure (a file the tar names twice, say): refused as well.
  }
  ::close(fd);

  for (const auto& e : fs::directory_iterator(base)) FUZZ_CHECK(e.path() == dir);
  if (fs::exists(dir)) {
    for (const auto& e : fs::directory_iterator(dir)) {
      struct stat st {};
      FUZZ_CHECK(::lstat(e.path().c_str(), &st) == 0);
      FUZZ_CHECK(S_ISREG(st.st_mode));
      FUZZ_CHECK((st.st_mode & 07777 & ~0755) == 0);
    }
  }
  fs::remove_all(dir);
  return 0;
}
