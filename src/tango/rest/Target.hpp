#pragma once
// Splits a request target into URL-decoded path segments. Decoding happens
// per segment, after splitting, so "..%2F..%2Fetc" stays ONE segment (with
// '/' in it) that the name checks then reject.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tango {

// "%41b" -> "Ab"; nullopt on a malformed escape. '+' stays '+' (paths, not forms).
std::optional<std::string> urlDecode(std::string_view s);

// "/open/test/lab/" and "/open/test/lab" -> {"open", "test", "lab"}; "/" -> {}.
// The query string is ignored. nullopt when the target is not an origin-form
// path or a segment is badly encoded.
std::optional<std::vector<std::string>> splitTarget(std::string_view target);

// The URL-decoded value of `name` in the target's query string ("?a=1&key=x").
std::optional<std::string> queryParam(std::string_view target, std::string_view name);

}  // namespace tango
