// setgroups/setresgid/setresuid with the bind capability kept across the uid change.
#include "service/privileges.hpp"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <vector>

namespace tern::service {

namespace {
std::string why(const char* what) { return std::string(what) + ": " + std::strerror(errno); }

// Effective and permitted: CAP_NET_BIND_SERVICE only (capset(2); libcap is not needed for one bit).
bool keep_bind_capability() {
  __user_cap_header_struct hdr{};
  hdr.version = _LINUX_CAPABILITY_VERSION_3;
  hdr.pid = 0;
  __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3]{};
  data[0].effective = data[0].permitted = 1u << CAP_NET_BIND_SERVICE;
  return syscall(SYS_capset, &hdr, data) == 0;
}
// A passwd entry with the buffer its strings live in.
struct User {
  passwd pw{};
  std::vector<char> buf = std::vector<char>(16384);
};

Result<std::unique_ptr<User>> lookup(const std::string& name) {
  auto u = std::make_unique<User>();
  passwd* found = nullptr;
  if (getpwnam_r(name.c_str(), &u->pw, u->buf.data(), u->buf.size(), &found) != 0 || !found)
    return Error::perm("user: no such user '" + name + "'");
  return u;
}
}  // namespace

Status drop_privileges(const std::string& user) {
  auto who = lookup(user);
  if (!who) return who.error();
  const passwd& pw = (*who)->pw;
  if (::geteuid() == pw.pw_uid) return ok_status();
  if (::geteuid() != 0) return Error::perm("user: " + user + ": only root can change user (running as uid " +
                                           std::to_string(::geteuid()) + ")");
  if (pw.pw_uid == 0) return ok_status();
  if (::initgroups(pw.pw_name, pw.pw_gid) != 0) return Error::perm(why("initgroups"));
  if (::prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) return Error::perm(why("prctl(PR_SET_KEEPCAPS)"));
  if (::setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid) != 0) return Error::perm(why("setresgid"));
  if (::setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid) != 0) return Error::perm(why("setresuid"));
  (void)::prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0);
  if (!keep_bind_capability()) return Error::perm(why("capset(CAP_NET_BIND_SERVICE)"));
  // Core dumps stay off after the change (the kernel's default for a changed uid).
  return ok_status();
}

namespace {
// One line per file that cannot be opened: "path: reason".
std::string try_open(const std::vector<std::string>& paths) {
  std::string out;
  for (const auto& p : paths) {
    const int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) out += p + ": " + std::strerror(errno) + "\n";
    else ::close(fd);
  }
  return out;
}
}  // namespace

Result<std::vector<std::string>> unreadable_by(const std::string& user, const std::vector<std::string>& paths) {
  auto who = lookup(user);
  if (!who) return who.error();
  const passwd& pw = (*who)->pw;
  std::string lines;
  if (::geteuid() == pw.pw_uid) {
    lines = try_open(paths);
  } else if (::geteuid() != 0) {
    return Error::perm("cannot check which files user " + user + " can read without being root or " + user);
  } else {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return Error::temp(why("pipe2"));
    const pid_t pid = ::fork();
    if (pid < 0) return Error::temp(why("fork"));
    if (pid == 0) {
      ::close(fds[0]);
      std::string out;
      if (::initgroups(pw.pw_name, pw.pw_gid) != 0 || ::setresgid(pw.pw_gid, pw.pw_gid, pw.pw_gid) != 0 ||
          ::setresuid(pw.pw_uid, pw.pw_uid, pw.pw_uid) != 0)
        out = "!" + why("cannot become the user");
      else
        out = try_open(paths);
      for (size_t off = 0; off < out.size();) {
        const ssize_t n = ::write(fds[1], out.data() + off, out.size() - off);
        if (n <= 0) break;
        off += size_t(n);
      }
      ::_exit(0);
    }
    ::close(fds[1]);
    char chunk[4096];
    for (;;) {
      const ssize_t n = ::read(fds[0], chunk, sizeof chunk);
      if (n > 0) lines.append(chunk, size_t(n));
      else if (n == 0 || errno != EINTR) break;
    }
    ::close(fds[0]);
    int st = 0;
    while (::waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
    if (!lines.empty() && lines[0] == '!') return Error::temp(lines.substr(1));
  }
  std::vector<std::string> out;
  for (size_t pos = 0; pos < lines.size();) {
    const size_t eol = lines.find('\n', pos);
    out.push_back(lines.substr(pos, eol - pos));
    pos = eol == std::string::npos ? lines.size() : eol + 1;
  }
  return out;
}

}  // namespace tern::service
