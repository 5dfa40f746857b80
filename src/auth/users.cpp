// Users file parsing and loading (the format is described in users.hpp and README.md).
#include "auth/users.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "auth/hash.hpp"
#include "common/strings.hpp"

namespace tern::auth {

namespace {
// Largest users file read; far beyond any real one, so a wrong path (a log file) fails clearly.
constexpr off_t kMaxUsersFile = 64 * 1024 * 1024;

bool valid_name(std::string_view name) {
  if (name.empty() || name.size() > 255) return false;
  for (unsigned char c : name)
    if (c < 0x21 || c == 0x7f) return false;  // no controls or spaces: names go into logs
  return true;
}
}  // namespace

Result<Users> parse_users(std::string_view text, const std::string& path) {
  Users users;
  size_t lineno = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    ++lineno;
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = text.substr(pos, nl - pos);
    pos = nl + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto where = [&] { return path + ":" + std::to_string(lineno) + ": "; };
    if (trim(line).empty() || trim(line).front() == '#') continue;
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return Error::perm(where() + "expected name:hash");
    const std::string_view name = line.substr(0, colon);
    if (!valid_name(name)) return Error::perm(where() + "invalid user name");
    std::string_view hash = line.substr(colon + 1);
    hash = hash.substr(0, hash.find(':'));  // passwd-file fields after the hash are ignored
    if (!hash.empty() && hash.front() == '{') {
      const size_t close = hash.find('}');
      if (close == std::string_view::npos) return Error::perm(where() + "unterminated {SCHEME} prefix");
      const std::string scheme = to_upper(hash.substr(1, close - 1));
      // Only the crypt(3) family: {PLAIN}, {SSHA}, {ARGON2ID} ... are not crypt strings.
      if (scheme.size() < 5 || scheme.substr(scheme.size() - 5) != "CRYPT")
        return Error::perm(where() + "unsupported password scheme {" + scheme + "}");
      hash.remove_prefix(close + 1);
    }
    if (auto st = check_hash(hash); !st) return Error::perm(where() + "user " + std::string(name) + ": " + st.error().message);
    if (legacy_hash(hash))
      users.warnings.push_back(where() + "user " + std::string(name) + ": weak legacy hash; replace it (ternctl passwd)");
    if (!users.hashes.emplace(std::string(name), std::string(hash)).second)
      return Error::perm(where() + "duplicate user " + std::string(name));
  }
  return users;
}

Result<Users> load_users(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return Error::temp(path + ": cannot open users file: " + std::strerror(errno));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int e = errno;
    ::close(fd);
    return Error::temp(path + ": cannot stat users file: " + std::strerror(e));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    return Error::perm(path + ": users file is not a regular file");
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    ::close(fd);
    return Error::perm(path + ": users file is group- or world-writable (chmod go-w)");
  }
  if (st.st_size > kMaxUsersFile) {
    ::close(fd);
    return Error::perm(path + ": users file is too large");
  }
  std::string text(size_t(st.st_size), '\0');
  size_t got = 0;
  while (got < text.size()) {
    const ssize_t n = ::read(fd, text.data() + got, text.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int e = errno;
      ::close(fd);
      return Error::temp(path + ": read error: " + std::strerror(e));
    }
    if (n == 0) break;
    got += size_t(n);
  }
  ::close(fd);
  text.resize(got);
  auto users = parse_users(text, path);
  wipe(text);
  if (users && (st.st_mode & S_IROTH))
    users->warnings.push_back(path + ": users file is world-readable; its hashes can be attacked offline (chmod o-r)");
  return users;
}

}  // namespace tern::auth
