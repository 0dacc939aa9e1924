#pragma once
// A service the node depends on (Redis) cannot be reached: the request
// fails with this message (which names the service, never a secret), and
// may succeed later. The HTTP layer answers 503 with it.
#include <stdexcept>

namespace tango {

struct ServiceUnavailable : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace tango
