// Running as root only as long as it takes: ternd started as root with `user:` drops to
// that user and its groups, keeping CAP_NET_BIND_SERVICE alone (a SIGHUP can still add a
// listener below 1024). Started as root without `user:`, it refuses unless told otherwise.
#pragma once

#include <string>
#include <vector>

#include "common/result.hpp"

namespace tern::service {

// Becomes `user` (name from the passwd database: its uid, primary gid and supplementary
// groups). A no-op when already running as that user. Errors say what failed.
Status drop_privileges(const std::string& user);

// Which of `paths` `user` cannot open for reading (each "path: reason"). Run as root, a
// child process takes that user's identity and tries each file, so directory permissions,
// groups and ACLs all count; run as that user, the files are tried directly. An error when
// neither is possible (another unprivileged user) or the user does not exist.
Result<std::vector<std::string>> unreadable_by(const std::string& user, const std::vector<std::string>& paths);

}  // namespace tern::service
