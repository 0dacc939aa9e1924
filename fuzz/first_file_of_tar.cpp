// The service's tar reader (docker/Tar.hpp): the engine's archive of a
// container's output file, read back up to a cap.
#include "Check.hpp"
#include "tango/docker/Tar.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  constexpr std::size_t kCap = 4096;
  if (auto file = tango::docker::firstFileOfTar(fuzz::text(data, size), kCap))
    FUZZ_CHECK(file->size() <= kCap);
  return 0;
}
