// Reading and atomically replacing the MTA-STS cache files (blocking; thread pool only).
#include "sts/disk.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace tern::sts {

namespace {

// A policy is at most 64 KiB and the header a few lines: anything larger is not ours.
constexpr off_t kMaxCacheFile = 80 * 1024;
// Never a valid domain character (file_name_for), so no domain's file ends like this.
constexpr std::string_view kTempSuffix = ",new";

std::string err(const std::string& what) { return what + ": " + std::strerror(errno); }

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

}  // namespace

Result<std::vector<CacheFile>> read_cache_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0750) != 0 && errno != EEXIST) return Error::temp(err("cannot create " + dir));
  DIR* d = ::opendir(dir.c_str());
  if (d == nullptr) return Error::temp(err("cannot open " + dir));
  std::vector<CacheFile> out;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    const std::string path = dir + "/" + name;
    if (name.ends_with(kTempSuffix)) {
      ::unlink(path.c_str());  // an interrupted write: the file it was to replace is intact
      continue;
    }
    CacheFile f{name, {}, {}};
    Fd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
    struct stat st {};
    if (fd.fd < 0) {
      f.error = err("cannot open");
    } else if (::fstat(fd.fd, &st) != 0) {
      f.error = err("cannot stat");
    } else if (!S_ISREG(st.st_mode)) {
      f.error = "not a regular file";
    } else if (st.st_size > kMaxCacheFile) {
      f.error = "too large for a cached policy";
    } else {
      f.contents.resize(size_t(st.st_size));
      size_t got = 0;
      while (got < f.contents.size()) {
        const ssize_t n = ::read(fd.fd, f.contents.data() + got, f.contents.size() - got);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        got += size_t(n);
      }
      f.contents.resize(got);
    }
    out.push_back(std::move(f));
  }
  ::closedir(d);
  return out;
}

Status write_cache_file(const std::string& dir, const std::string& name, const std::string& contents) {
  const std::string path = dir + "/" + name;
  const std::string tmp = path + std::string(kTempSuffix);
  {
    Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0640));
    if (fd.fd < 0) return Error::temp(err("cannot create " + tmp));
    size_t put = 0;
    while (put < contents.size()) {
      const ssize_t n = ::write(fd.fd, contents.data() + put, contents.size() - put);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const std::string why = err("cannot write " + tmp);
        ::unlink(tmp.c_str());
        return Error::temp(why);
      }
      put += size_t(n);
    }
    if (::fsync(fd.fd) != 0) {
      const std::string why = err("cannot fsync " + tmp);
      ::unlink(tmp.c_str());
      return Error::temp(why);
    }
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = err("cannot rename " + tmp);
    ::unlink(tmp.c_str());
    return Error::temp(why);
  }
  Fd d(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (d.fd < 0 || ::fsync(d.fd) != 0) return Error::temp(err("cannot fsync " + dir));
  return ok_status();
}

}  // namespace tern::sts
