// The users file (auth.users_file): "name:crypt-hash" per line, its parser and loader. Pure
// parsing apart from load_users(), which reads the file and checks its mode.
#pragma once

#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/result.hpp"

namespace tern::auth {

struct Users {
  std::unordered_map<std::string, std::string> hashes;  // name → crypt(3) hash
  std::vector<std::string> warnings;  // "PATH:LINE: ..." worth a log line, not an error
};

// Line format (a passwd-file subset, like Dovecot's):
//   name ":" ["{" SCHEME "}"] hash [":" further fields, ignored]
// '#' starts a comment line; blank lines are skipped; a CRLF line end is accepted. SCHEME, when
// present, must name a crypt(3) scheme (CRYPT, SHA512-CRYPT, BLF-CRYPT, ...). Errors read
// "PATH:LINE: what is wrong" and never quote the hash.
[[nodiscard]] Result<Users> parse_users(std::string_view text, const std::string& path);

// Reads and parses the file. The file is refused (Perm) when anyone may write it (a world-
// or group-writable users file lets others add themselves); world-readable gives a warning
// (the hashes could be attacked offline). An unreadable file is a Temp error.
[[nodiscard]] Result<Users> load_users(const std::string& path);

}  // namespace tern::auth
