#pragma once
// Tango's output file: "Autograder [<ctime>]: <message>" header lines, then
// the autodriver's output verbatim. Autolab parses the file's LAST line as the
// score, so nothing is ever written after the job's own output. The file is
// assembled under a temporary name and renamed into place, so a poll never
// sees half of it.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace tango {

std::string autograderLine(const std::string& message);

// Writes `header` (already formatted lines) followed by the content of
// `body` (if any) to `dest` atomically. Returns an error text or "" on success.
std::string writeOutputFile(const std::filesystem::path& dest, const std::string& header,
                            const std::optional<std::filesystem::path>& body);

}  // namespace tango
