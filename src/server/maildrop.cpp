// Maildrop import (see maildrop.hpp). A file is taken only when it is a complete regular
// file: opened with O_NOFOLLOW|O_NONBLOCK (no symlink, no FIFO to hang on), one link (not a
// hard link to someone else's file), mode 0740 (tern-sendmail's mark that it is durable and
// whole; the group, inherited from the setgid directory, is ternd's) and no larger than the limit. Its owner (fstat) is who sent it; its content is
// untrusted and parsed like a request on the submission socket.
#include "server/maildrop.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <spdlog/spdlog.h>
#include <vector>

#include "common/log_escape.hpp"
#include "submit/protocol.hpp"

namespace tern::server {

namespace {

// tern-sendmail writes 0640 and sets this once the file is durable (fsync + syncfs).
constexpr mode_t kComplete = 0740;

struct Found {
  std::string name;
  uid_t uid = 0;
  std::string user;
  std::string content;
};

// On the thread pool: the complete files of the maildrop, read.
std::vector<Found> read_maildrop(const std::string& dir, uint64_t max_size, const std::set<std::string>& skip,
                                 std::string& error, std::vector<std::string>& unreadable) {
  std::vector<Found> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    if (errno != ENOENT) error = std::strerror(errno);
    return out;
  }
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name.empty() || name[0] == '.' || name.starts_with("bad.") || skip.count(name)) continue;
    const int fd = ::openat(::dirfd(d), name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
      // A symlink (ELOOP) is no one's message; anything else the operator should hear of.
      if (errno != ELOOP && errno != ENOENT) unreadable.push_back(name + ": " + std::strerror(errno));
      continue;
    }
    struct stat st {};
    const bool take = ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 &&
                      (st.st_mode & 07777) == kComplete && uint64_t(st.st_size) <= max_size;
    if (take) {
      Found f{name, st.st_uid, {}, {}};
      f.content.reserve(size_t(st.st_size));
      char buf[65536];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0 && f.content.size() <= max_size) f.content.append(buf, size_t(n));
      if (n == 0 && f.content.size() <= max_size) {
        f.user = user_name_of(st.st_uid);
        out.push_back(std::move(f));
      }
    }
    ::close(fd);
  }
  ::closedir(d);
  return out;
}

}  // namespace

Maildrop::Maildrop(io::Loop& loop, std::string dir, LocalSubmission& submission, std::string hostname,
                   uint64_t max_size, uint32_t max_rcpts)
    : loop_(loop),
      dir_(std::move(dir)),
      submission_(submission),
      hostname_(std::move(hostname)),
      max_size_(max_size),
      max_rcpts_(max_rcpts),
      timer_(loop),
      retry_(loop),
      watch_(loop) {}

Maildrop::~Maildrop() { *alive_ = false; }

void Maildrop::start(uint64_t interval_ms) {
  // tern-sendmail's last step is the fchmod that marks a file complete: an attribute change.
  if (auto why = watch_.start(dir_, [this] { scan(); }); !why.empty())
    spdlog::warn("maildrop: cannot watch {} ({}); scanning every {} s only", dir_, why, interval_ms / 1000);
  scan();
  timer_.start(interval_ms, interval_ms, [this] { scan(); });
}

void Maildrop::scan() {
  if (scanning_) {
    rescan_ = true;
    return;
  }
  scanning_ = true;
  rescan_ = false;
  struct Work {
    std::vector<Found> found;
    std::string error;
    std::vector<std::string> unreadable;
  };
  auto w = std::make_shared<Work>();
  const uint64_t file_limit = max_size_ + 64 * 1024 + uint64_t(max_rcpts_) * submit::kMaxLine;
  loop_.queue_work([w, dir = dir_, file_limit, skip = in_flight_] { w->found = read_maildrop(dir, file_limit, skip, w->error, w->unreadable); },
                   [this, alive = alive_, w] {
                     if (!*alive) return;
                     scanning_ = false;
                     if (!w->error.empty()) spdlog::error("maildrop: cannot read {}: {}", dir_, w->error);
                     for (const auto& u : w->unreadable)
                       if (warned_.insert(u).second)  // once per file, not every scan
                         spdlog::error("maildrop: cannot open {}/{} (is the directory setgid, mode 3733?)", dir_, log_safe(u));
                     for (auto& f : w->found) {
                       if (in_flight_.count(f.name)) continue;
                       submit::RequestReader reader(hostname_, max_size_, max_rcpts_);
                       const auto st = reader.feed(f.content);
                       std::string body = reader.take_leftover();
                       std::string problem;
                       if (st == submit::RequestReader::State::Refused) problem = reader.refusal().text;
                       else if (st != submit::RequestReader::State::Data) problem = "not a complete request";
                       else if (body.size() != reader.request().size) problem = "the message is cut short";
                       const std::string path = dir_ + "/" + f.name;
                       if (!problem.empty()) {
                         // Kept, under a name the scan skips, for the operator to look at.
                         spdlog::error("maildrop: {} from uid={} set aside as bad.{}: {}", f.name, f.uid, f.name,
                                       log_safe(problem));
                         loop_.queue_work([path, bad = dir_ + "/bad." + f.name] { (void)::rename(path.c_str(), bad.c_str()); },
                                          [] {});
                         continue;
                       }
                       in_flight_.insert(f.name);
                       const submit::Request& q = reader.request();
                       std::vector<std::pair<std::string, std::vector<std::string>>> rcpts;
                       for (const auto& r : q.rcpts) rcpts.emplace_back(r.address, r.params);
                       submission_.inject(
                           LocalSender{f.uid, f.user}, q.sender, q.sender_given, q.mail_params, q.full_name,
                           std::move(rcpts), std::move(body),
                           [this, alive = alive_, name = f.name, path, uid = f.uid](LocalSubmission::Done d) {
                             if (!*alive) return;
                             if (!d.ok && d.text.starts_with("65")) {
                               // A data error does not go away by retrying: set aside.
                               spdlog::error("maildrop: {} from uid={} set aside as bad.{}: {}", name, uid, name, d.text);
                               loop_.queue_work([path, bad = dir_ + "/bad." + name] { (void)::rename(path.c_str(), bad.c_str()); },
                                                [this, alive, name] {
                                                  if (*alive) in_flight_.erase(name);
                                                });
                               return;
                             }
                             if (!d.ok) {
                               in_flight_.erase(name);
                               spdlog::warn("maildrop: {} from uid={} not queued ({}); tried again later", name, uid,
                                            d.text);
                               // Nothing in the directory changes when room comes back: look again soon.
                               retry_.start(kRetryMs, 0, [this] { scan(); });
                               return;
                             }
                             spdlog::info("maildrop: {} from uid={} queued as id={}", name, uid, d.text);
                             // Committed: only now may the file go (at-least-once, never lost).
                             loop_.queue_work([path] { (void)::unlink(path.c_str()); },
                                              [this, alive, name] {
                                                if (*alive) in_flight_.erase(name);
                                              });
                           });
                     }
                     // Changes seen while this scan ran (more files dropped meanwhile).
                     if (rescan_) scan();
                   });
}

}  // namespace tern::server
