#pragma once
// The labels localDocker puts on its containers: a restart finds its own
// (prefix) and knows which VM each one was (id, image).
namespace tango {

inline constexpr const char* kPrefixLabel = "tango.prefix";
inline constexpr const char* kIdLabel = "tango.vmId";
inline constexpr const char* kImageLabel = "tango.image";
// The node (NODE_ID) that made it: on an engine several nodes share, each
// cleans up only its own containers, and a dead node's.
inline constexpr const char* kNodeLabel = "tango.node";

}  // namespace tango
