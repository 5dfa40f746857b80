// Small helpers shared by tls/ files: OpenSSL's error queue as text.
#pragma once

#include <string>

namespace tern::tls {

// Drains OpenSSL's (per-thread) error queue into one line: "reason; reason".
std::string openssl_error();

}  // namespace tern::tls
