// The autodriver's framed stdout as the service reads it (AutodriverFrames),
// in chunks of sizes the input chooses; and a round trip through the
// autodriver's own encoder (Frames.hpp).
#include <string>

#include "Check.hpp"
#include "autodriver/Frames.hpp"
#include "autodriver/Wire.hpp"
#include "tango/vmms/AutodriverFrames.hpp"

namespace wire = tango::autodriver::wire;

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, std::size_t size) {
  if (size < 2) return 0;
  constexpr std::size_t kPartialCap = 256, kOutputCap = 1024;
  const std::size_t step = 1 + data[0] % 64;
  const bool roundTrip = data[1] & 1;
  const std::string_view in = fuzz::text(data + 2, size - 2);

  std::string partial;
  tango::AutodriverFrames reader(kPartialCap, kOutputCap,
                                 [&](std::string_view p) { partial.append(p); });
  if (roundTrip) {
    // The input's halves as the partial output and the result.
    const auto half = in.substr(0, std::min(in.size() / 2, kPartialCap));
    const auto result = in.substr(half.size(), kOutputCap);
    const std::string stream = tango::autodriver::frame(wire::kFramePartial, half) +
                               tango::autodriver::frame(wire::kFrameOutput, result);
    for (std::size_t at = 0; at < stream.size(); at += step)
      reader.feed(std::string_view(stream).substr(at, step));
    FUZZ_CHECK(reader.complete() && !reader.error());
    FUZZ_CHECK(partial == half);
    FUZZ_CHECK(reader.takeOutput() == result);
    return 0;
  }
  for (std::size_t at = 0; at < in.size(); at += step) reader.feed(in.substr(at, step));
  FUZZ_CHECK(partial.size() <= kPartialCap);
  FUZZ_CHECK(!(reader.complete() && reader.error()));
  if (reader.error()) FUZZ_CHECK(fuzz::noControlBytes(*reader.error()));
  const std::string out = reader.takeOutput();
  FUZZ_CHECK(out.size() <= kOutputCap);
  return 0;
}
