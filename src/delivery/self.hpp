// Who "I" am for the backup-MX self rule: the hostname, the listening addresses (a wildcard
// listener stands for every interface address of its family) and configured external ones.
#pragma once

#include "config/config.hpp"
#include "dns/mx.hpp"

namespace tern::delivery {

dns::Self make_self(const config::Config& cfg);

}  // namespace tern::delivery
