// Password hashes through libxcrypt: which hash formats tern accepts, verification in
// constant time, and new yescrypt hashes. The only includer of <crypt.h>.
#pragma once

#include <string>
#include <string_view>

#include "common/result.hpp"

namespace tern::auth {

// Whether libxcrypt can verify `hash` (a full crypt(3) string such as "$y$j9T$salt$sum").
// Unit{} when it can; a Perm error saying why not ("$apr1$ (Apache MD5) is not supported").
[[nodiscard]] Status check_hash(std::string_view hash);

// True for a weak legacy method (DES, MD5-crypt, SHA-1 crypt, NTHASH): accepted, warned about.
[[nodiscard]] bool legacy_hash(std::string_view hash);

// Hashes `password` with the settings (method, cost, salt) of `hash` and compares the result
// with `hash` in constant time. Temp error if libxcrypt fails (out of memory, bad setting).
// Blocking and slow by design (yescrypt): never call on the loop.
enum class Match { Yes, No };
[[nodiscard]] Result<Match> verify_hash(std::string_view password, const std::string& hash);

// A new yescrypt hash of `password` with libxcrypt's default cost and a random salt.
[[nodiscard]] Result<std::string> make_hash(std::string_view password, std::string_view prefix = "$y$");

// Constant-time equality of two byte strings: the time depends on the lengths only.
[[nodiscard]] bool equal_ct(std::string_view a, std::string_view b) noexcept;

// Overwrites memory that held a password (not optimised away).
void wipe(void* p, size_t n) noexcept;
inline void wipe(std::string& s) noexcept { wipe(s.data(), s.size()); }

}  // namespace tern::auth
