// setgroups/setresgid/setresuid with the bind capability kept across the uid change.
#include "service/privileges.hpp"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
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
}  // namespace

Status drop_privileges(const std::string& user) {
  std::vector<char> buf(16384);
  passwd pw{};
  passwd* found = nullptr;
  if (getpwnam_r(user.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || !found)
    return Error::perm("user: no such user '" + user + "'");
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

}  // namespace tern::service
