// Users-file verification with change detection and the dummy hash for unknown users.
#include "auth/verifier.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <random>

#include "auth/hash.hpp"

namespace tern::auth {

Result<std::shared_ptr<const Users>> Verifier::current() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0)
    return Error::temp(path_ + ": cannot stat users file: " + std::strerror(errno));
  const FileId id{uint64_t(st.st_dev), uint64_t(st.st_ino), uint64_t(st.st_size),
                  int64_t(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec,
                  int64_t(st.st_ctim.tv_sec) * 1000000000 + st.st_ctim.tv_nsec};
  std::lock_guard lock(mu_);
  if (users_ && id == id_) return users_;
  // Changed (or first use): read it again. A broken file fails every attempt (Temp) rather
  // than leaving the previous version in force: a user just removed must not keep access.
  auto loaded = load_users(path_);
  if (!loaded) {
    users_.reset();
    return Error::temp(loaded.error().message);
  }
  users_ = std::make_shared<const Users>(std::move(loaded.value()));
  id_ = id;
  return users_;
}

Result<Verdict> Verifier::verify(const std::string& user, const std::string& password) {
  std::call_once(dummy_once_, [this] {
    std::random_device rd;
    std::string junk;
    for (int i = 0; i < 4; ++i) junk += std::to_string(rd());
    auto h = make_hash(junk);
    dummy_ = h ? h.value() : std::string();
  });
  auto users = current();
  if (!users) return users.error();
  const auto& map = users.value()->hashes;
  const auto it = map.find(user);
  if (it == map.end()) {
    // Same work as for a known user, result ignored: the reply time does not tell which
    // names exist.
    if (!dummy_.empty()) (void)verify_hash(password, dummy_);
    return Verdict::Rejected;
  }
  auto m = verify_hash(password, it->second);
  if (!m) return m.error();
  return m.value() == Match::Yes ? Verdict::Accepted : Verdict::Rejected;
}

}  // namespace tern::auth
