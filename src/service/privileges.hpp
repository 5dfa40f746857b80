// Running as root only as long as it takes: ternd started as root with `user:` drops to
// that user and its groups, keeping CAP_NET_BIND_SERVICE alone (a SIGHUP can still add a
// listener below 1024). Started as root without `user:`, it refuses unless told otherwise.
#pragma once

#include <string>

#include "common/result.hpp"

namespace tern::service {

// Becomes `user` (name from the passwd database: its uid, primary gid and supplementary
// groups). A no-op when already running as that user. Errors say what failed.
Status drop_privileges(const std::string& user);

}  // namespace tern::service
