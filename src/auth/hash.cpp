// libxcrypt wrappers: format checks, verification into a local crypt_data, new hashes.
#include "auth/hash.hpp"

#include <crypt.h>
#include <string.h>

#include <memory>

namespace tern::auth {

namespace {
// Formats libxcrypt does not verify but that turn up in users files copied from elsewhere:
// named, so the refusal says what the line holds.
struct KnownForeign {
  std::string_view prefix;
  std::string_view name;
};
constexpr KnownForeign kForeign[] = {
    {"$apr1$", "Apache MD5 ($apr1$, htpasswd's default; use htpasswd -B or ternctl passwd)"},
    {"$argon2", "Argon2 (not supported by libxcrypt)"},
    {"$pbkdf2", "PBKDF2"},
};
}  // namespace

Status check_hash(std::string_view hash) {
  for (const auto& f : kForeign)
    if (hash.substr(0, f.prefix.size()) == f.prefix)
      return Error::perm("unsupported password hash: " + std::string(f.name));
  if (hash.empty()) return Error::perm("empty password hash");
  if (hash.find('\0') != std::string_view::npos) return Error::perm("password hash contains NUL");
  const std::string h(hash);
  switch (crypt_checksalt(h.c_str())) {
    case CRYPT_SALT_OK:
    case CRYPT_SALT_METHOD_LEGACY:
    case CRYPT_SALT_TOO_CHEAP:
      break;
    case CRYPT_SALT_METHOD_DISABLED:
      return Error::perm("password hash method disabled in this libxcrypt");
    default:
      return Error::perm("unsupported or malformed password hash (expected $y$, $7$, $6$, $5$, $2b$ or $2y$)");
  }
  // crypt_checksalt looks at the setting only; a hash too short to hold a checksum (a bare
  // setting such as "$6$salt") would never match any password: refused as a mistake.
  const size_t last = h.rfind('$');
  if (h[0] == '$' && (last == std::string::npos || last + 1 >= h.size()))
    return Error::perm("password hash has no checksum (a salt setting only?)");
  return ok_status();
}

bool legacy_hash(std::string_view hash) {
  // Named here rather than taken from crypt_checksalt: Debian's libxcrypt also calls $5$
  // (SHA-256 crypt, which the issue accepts) legacy. These are the fast, broken ones.
  static constexpr std::string_view kWeak[] = {"$1$", "$3$", "$md5", "$sha1$", "_"};
  for (auto w : kWeak)
    if (hash.substr(0, w.size()) == w) return true;
  return !hash.empty() && hash[0] != '$';  // traditional DES and bigcrypt
}

bool equal_ct(std::string_view a, std::string_view b) noexcept {
  // Every byte of the longer string is looked at, whatever differs first.
  const size_t n = a.size() > b.size() ? a.size() : b.size();
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < n; ++i) {
    const unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    const unsigned char y = i < b.size() ? static_cast<unsigned char>(b[i]) : 0;
    diff |= static_cast<unsigned char>(x ^ y);
  }
  return diff == 0;
}

void wipe(void* p, size_t n) noexcept {
  if (p && n) explicit_bzero(p, n);
}

Result<Match> verify_hash(std::string_view password, const std::string& hash) {
  // crypt_data is 32 KiB: on the heap, as verifier threads may have small stacks. Zeroed
  // before use (libxcrypt's contract for crypt_rn) and wiped after (it held the password).
  auto data = std::make_unique<crypt_data>();
  memset(data.get(), 0, sizeof(crypt_data));
  std::string phrase(password);  // NUL-terminated copy; the SASL layer refuses inner NULs
  const char* out = crypt_rn(phrase.c_str(), hash.c_str(), data.get(), int(sizeof(crypt_data)));
  wipe(phrase);
  // crypt_rn returns NULL, or a string starting with '*', on failure (never a valid hash).
  if (!out || out[0] == '*') {
    wipe(data.get(), sizeof(crypt_data));
    return Error::temp("crypt_rn failed for a stored hash");
  }
  const bool same = equal_ct(out, hash);
  wipe(data.get(), sizeof(crypt_data));
  return same ? Match::Yes : Match::No;
}

Result<std::string> make_hash(std::string_view password, std::string_view prefix) {
  char setting[CRYPT_GENSALT_OUTPUT_SIZE];
  const std::string pre(prefix);
  // count 0: the method's default cost; rbytes NULL: libxcrypt reads the OS's randomness.
  if (!crypt_gensalt_rn(pre.c_str(), 0, nullptr, 0, setting, int(sizeof setting)))
    return Error::temp("crypt_gensalt_rn failed: " + std::string(strerror(errno)));
  auto data = std::make_unique<crypt_data>();
  memset(data.get(), 0, sizeof(crypt_data));
  std::string phrase(password);
  const char* out = crypt_rn(phrase.c_str(), setting, data.get(), int(sizeof(crypt_data)));
  wipe(phrase);
  std::string result = (out && out[0] != '*') ? std::string(out) : std::string();
  wipe(data.get(), sizeof(crypt_data));
  if (result.empty()) return Error::temp("crypt_rn failed to hash");
  return result;
}

}  // namespace tern::auth
