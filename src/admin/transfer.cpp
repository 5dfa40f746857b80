// ternctl export and import: archive files written and read on the thread pool, never on the
// loop; the queue manager holds, waits and removes; the injector queues what is imported.
#include "admin/transfer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <cerrno>
#include <cstring>
#include <optional>
#include <set>

#include "common/log_escape.hpp"
#include "queue/archive.hpp"
#include "queue/codec.hpp"
#include "queue/crc32c.hpp"

namespace tern::admin {

namespace {

std::string errno_text(int e) { return std::strerror(e); }

int write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    const ssize_t w = ::write(fd, s.data(), s.size());
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    s.remove_prefix(size_t(w));
  }
  return 0;
}

int pread_all(int fd, char* p, size_t n, uint64_t at) {
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, n, off_t(at));
    if (r < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (r == 0) return EIO;  // shorter than it was a moment ago
    p += r;
    n -= size_t(r);
    at += uint64_t(r);
  }
  return 0;
}

std::string parent_of(const std::string& path) {
  const size_t slash = path.rfind('/');
  return slash == 0 || slash == std::string::npos ? "/" : path.substr(0, slash);
}

// A queue file, whole (it is about to be copied into the archive).
int read_whole(const std::string& path, std::string& out) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return errno;
  struct stat st {};
  int err = ::fstat(fd, &st) != 0 ? errno : 0;
  if (!err) {
    out.resize(size_t(st.st_size));
    err = pread_all(fd, out.data(), out.size(), 0);
  }
  ::close(fd);
  return err;
}

// Sequential reads of an archive for the checking pass: lines of bounded length, and runs of
// bytes checksummed without being kept.
class SequentialReader {
 public:
  explicit SequentialReader(int fd) : fd_(fd), buf_(1 << 20) {}
  [[nodiscard]] uint64_t offset() const { return offset_; }
  // One line without its "\n": nullopt at a clean end of file; an error for a line too
  // long, cut off by the end of the file, or a read error.
  Result<std::optional<std::string>> line(size_t max) {
    std::string out;
    while (true) {
      if (at_ == len_) {
        if (int e = fill()) return Error::temp("read: " + errno_text(e));
        if (len_ == 0) {
          if (out.empty()) return std::optional<std::string>{};
          return Error::perm("archive ends in the middle of a line");
        }
      }
      const char* start = buf_.data() + at_;
      const void* nl = std::memchr(start, '\n', len_ - at_);
      const size_t take = nl ? size_t(static_cast<const char*>(nl) - start) : len_ - at_;
      if (out.size() + take > max) return Error::perm("archive line too long (damaged archive)");
      out.append(start, take);
      at_ += take;
      offset_ += take;
      if (nl) {
        ++at_;
        ++offset_;
        return std::optional<std::string>{std::move(out)};
      }
    }
  }
  // Consumes `n` bytes into the CRC-32C `crc`.
  Status consume(uint64_t n, uint32_t& crc) {
    while (n > 0) {
      if (at_ == len_) {
        if (int e = fill()) return Error::temp("read: " + errno_text(e));
        if (len_ == 0) return Error::perm("archive is truncated");
      }
      const size_t take = size_t(std::min<uint64_t>(n, len_ - at_));
      crc = queue::crc32c(crc, std::string_view(buf_.data() + at_, take));
      at_ += take;
      offset_ += take;
      n -= take;
    }
    return ok_status();
  }

 private:
  int fill() {
    at_ = 0;
    len_ = 0;
    while (true) {
      const ssize_t r = ::read(fd_, buf_.data(), buf_.size());
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return errno;
      len_ = size_t(r);
      return 0;
    }
  }
  int fd_;
  std::vector<char> buf_;
  size_t at_ = 0, len_ = 0;
  uint64_t offset_ = 0;
};

// The index of imports done: "HOST ID NEWID TIME_US" lines. A torn last line (a crash during
// an append) is ignored.
Status read_index(const std::string& path, std::set<std::string>& keys) {
  std::string text;
  if (int e = read_whole(path, text)) {
    if (e == ENOENT) return ok_status();
    return Error::temp("cannot read " + path + ": " + errno_text(e));
  }
  size_t pos = 0;
  while (true) {
    const size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) break;
    const std::string_view line(text.data() + pos, nl - pos);
    pos = nl + 1;
    const size_t a = line.find(' ');
    const size_t b = a == std::string_view::npos ? a : line.find(' ', a + 1);
    if (b == std::string_view::npos) continue;
    auto host = queue::unescape(line.substr(0, a)), id = queue::unescape(line.substr(a + 1, b - a - 1));
    if (host && id) keys.insert(*host + " " + *id);
  }
  return ok_status();
}

Status append_index(const std::string& queue_dir, const std::string& lines) {
  const std::string path = queue_dir + "/imported";
  bool created = false;
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT) {
    fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0640);
    created = fd >= 0;
  }
  if (fd < 0) return Error::temp("cannot open " + path + ": " + errno_text(errno));
  int err = write_all(fd, lines);
  if (!err && ::fdatasync(fd) != 0) err = errno;
  ::close(fd);
  if (!err && created) {
    const int dfd = ::open(queue_dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || ::fsync(dfd) != 0) err = errno;
    if (dfd >= 0) ::close(dfd);
  }
  if (err) return Error::temp("cannot write " + path + ": " + errno_text(err));
  return ok_status();
}

std::string index_line(const std::string& origin, const std::string& new_id, int64_t now_us) {
  const size_t sp = origin.find(' ');
  return queue::escape_token(origin.substr(0, sp)) + " " + queue::escape_token(origin.substr(sp + 1)) + " " + new_id +
         " " + std::to_string(now_us) + "\n";
}

}  // namespace

Transfer::Transfer(io::Loop& loop, const Clock& clock, qmgr::Manager& manager, queue::Injector& injector,
                   TransferSettings settings)
    : loop_(loop), clock_(clock), manager_(manager), injector_(injector), settings_(std::move(settings)) {}

Transfer::~Transfer() { *alive_ = false; }

// ---- export ----

struct Transfer::ExportRun {
  std::string path, dir, who, host;
  int64_t now_us = 0;
  int fd = -1, dir_fd = -1;
  std::string fatal;
  std::vector<qmgr::ExportItem> items, written, kept;
  std::vector<std::string> kept_why;
  std::vector<qmgr::AdminResult> results;
  std::function<void(TransferAnswer)> done;
  ~ExportRun() {
    if (fd >= 0) ::close(fd);
    if (dir_fd >= 0) ::close(dir_fd);
  }
  void keep(const qmgr::ExportItem& i, std::string why) {
    kept.push_back(i);
    kept_why.push_back(std::move(why));
  }
  // An archive that will not be used is removed (durably: nobody may import it later).
  void discard_archive() {
    if (fd >= 0) ::close(fd), fd = -1;
    ::unlink(path.c_str());
    ::fsync(dir_fd);
  }
  // Thread pool: writes the archive, fsyncs it and its directory.
  void write() {
    if (items.empty()) return discard_archive();
    int err = write_all(fd, queue::encode_archive_head({host, now_us}));
    uint64_t count = 0;
    for (size_t k = 0; k < items.size() && !err; ++k) {
      const auto& item = items[k];
      std::string file;
      if (int e = read_whole(item.path, file)) {
        keep(item, "cannot read its queue file: " + errno_text(e));
        continue;
      }
      auto entry = queue::entry_from_queue_file(file, host, item.was_held, item.next_attempt_us);
      if (!entry) {
        keep(item, entry.error().message);
        continue;
      }
      file.clear();
      file.shrink_to_fit();
      if ((err = write_all(fd, queue::encode_archive_entry(*entry))) == 0) {
        written.push_back(item);
        ++count;
      }
    }
    if (!err) err = write_all(fd, queue::encode_archive_end(count));
    // The archive and its name are durable before any message leaves this queue.
    if (!err && ::fsync(fd) != 0) err = errno;
    if (!err) {
      const int closing = fd;
      fd = -1;
      if (::close(closing) != 0) err = errno;
    }
    if (!err && ::fsync(dir_fd) != 0) err = errno;
    if (err) {
      fatal = "cannot write " + path + ": " + errno_text(err) + "; nothing was exported";
      for (const auto& i : written) keep(i, "the archive could not be written");
      written.clear();
      discard_archive();
      return;
    }
    if (count == 0) discard_archive();
  }
};

void Transfer::export_to(const qmgr::Selector& sel, const std::string& path, const std::string& who,
                         std::function<void(TransferAnswer)> done) {
  if (path.empty() || path[0] != '/') return done(TransferAnswer{{}, "the archive path must be absolute"});
  auto run = std::make_shared<ExportRun>();
  run->path = path;
  run->dir = parent_of(path);
  run->who = who;
  run->done = std::move(done);
  // Created first (O_EXCL: an existing file is never overwritten), so that a bad path is
  // refused before any message is held.
  loop_.queue_work(
      [run] {
        run->dir_fd = ::open(run->dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (run->dir_fd < 0) {
          run->fatal = "cannot open the directory " + run->dir + ": " + errno_text(errno);
          return;
        }
        run->fd = ::open(run->path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (run->fd < 0) {
          const int e = errno;
          run->fatal = "cannot create " + run->path + ": " + errno_text(e) +
                       (e == EEXIST ? " (an existing file is never overwritten)" : "");
        }
      },
      [this, alive = alive_, run, sel] {
        if (!*alive) return;
        if (!run->fatal.empty()) return run->done(TransferAnswer{{}, run->fatal});
        spdlog::info("control: export to {} by {}", log_safe(run->path), run->who);
        manager_.export_prepare(sel, run->who, [this, alive, run](std::vector<qmgr::ExportItem> items,
                                                                  std::vector<qmgr::AdminResult> results) {
          if (!*alive) return;
          run->items = std::move(items);
          run->results = std::move(results);
          run->host = settings_.hostname;
          run->now_us = clock_.now_us();
          loop_.queue_work([run] { run->write(); }, [this, alive, run] {
            if (!*alive) return;
            for (size_t k = 0; k < run->kept.size(); ++k)
              run->results.push_back(qmgr::AdminResult{run->kept[k].id, "", "not exported: " + run->kept_why[k]});
            if (!run->written.empty())
              spdlog::info("control: {} message(s) written to {}; removing them here", run->written.size(),
                           log_safe(run->path));
            manager_.export_finish(run->written, run->kept, run->who, [run](std::vector<qmgr::AdminResult> r) {
              run->results.insert(run->results.end(), r.begin(), r.end());
              TransferAnswer a{std::move(run->results), run->fatal};
              if (a.fatal.empty() && a.results.empty()) a.fatal = "no message matches";
              run->done(std::move(a));
            });
          });
        });
      });
}

// ---- import ----

struct Transfer::ImportRun {
  struct Frame {
    uint64_t offset = 0, length = 0;
    bool crc_ok = false;
  };
  struct Item {
    std::string label;  // "ID from HOST", or "message N" when the entry cannot be read
    std::string origin;
    std::optional<queue::ImportedMessage> msg;
    std::string refused;
    std::unique_ptr<queue::Incoming> in;
    std::string new_id;
  };
  std::string path, who, queue_dir;
  uint64_t max_entry = 0;
  int fd = -1;
  std::string fatal;
  std::string host;  // the archive's head
  std::vector<Frame> frames;
  size_t next = 0;
  std::set<std::string> seen;  // origins imported before (index, queue) or in this run
  std::vector<Item> batch;
  size_t committing = 0;
  std::string index_error;
  size_t imported = 0;
  std::vector<qmgr::AdminResult> results;
  std::function<void(TransferAnswer)> done;
  ~ImportRun() {
    if (fd >= 0) ::close(fd);
  }

  // Thread pool: the whole archive's framing and checksums, before anything is queued: a
  // damaged or cut-off archive is refused as a whole.
  void check() {
    // O_NONBLOCK: a fifo given by mistake must not keep a pool thread waiting for a writer.
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
      fatal = "cannot open " + path + ": " + errno_text(errno);
      return;
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      fatal = path + " is not a regular file";
      return;
    }
    SequentialReader r(fd);
    std::string head;
    for (int i = 0; i < 3; ++i) {
      auto line = r.line(queue::kMaxArchiveLine);
      if (!line || !*line) {
        fatal = path + ": " + (line ? "not a tern export archive" : line.error().message);
        return;
      }
      head += **line + "\n";
    }
    auto h = queue::parse_archive_head(head);
    if (!h) {
      fatal = path + ": " + h.error().message;
      return;
    }
    host = h->host;
    while (true) {
      auto line = r.line(queue::kMaxArchiveLine);
      if (!line || !*line) {
        fatal = path + ": " + (line ? "archive is truncated (no end line)" : line.error().message);
        return;
      }
      auto f = queue::parse_archive_frame(**line);
      if (!f) {
        fatal = path + ": damaged after " + std::to_string(frames.size()) + " message(s): " + f.error().message;
        return;
      }
      if (f->end) {
        if (f->count != frames.size()) {
          fatal = path + ": the end line counts " + std::to_string(f->count) + " message(s), the archive has " +
                  std::to_string(frames.size());
          return;
        }
        auto after = r.line(queue::kMaxArchiveLine);
        if (!after || *after) fatal = path + ": bytes after the end line";
        return;
      }
      Frame fr{r.offset(), f->length, false};
      uint32_t crc = 0;
      if (auto st = r.consume(f->length, crc); !st) {
        fatal = path + ": " + st.error().message + " in message " + std::to_string(frames.size() + 1);
        return;
      }
      auto nl = r.line(0);  // the newline after the entry
      if (!nl || !*nl) {
        fatal = path + ": damaged in message " + std::to_string(frames.size() + 1);
        return;
      }
      fr.crc_ok = crc == f->crc;
      frames.push_back(fr);
    }
  }

  // Thread pool: reads and decodes the next batch of entries.
  void read_batch(int64_t now_us) {
    uint64_t bytes = 0;
    while (next < frames.size() && batch.size() < kImportBatch && bytes < kImportBatchBytes) {
      const Frame& f = frames[next++];
      Item item;
      item.label = "message " + std::to_string(next);
      if (!f.crc_ok) {
        item.refused = "refused: checksum mismatch (damaged archive)";
      } else if (f.length > max_entry) {
        item.refused = "refused: larger than this node accepts (" + std::to_string(f.length) + " bytes)";
      } else {
        std::string body(size_t(f.length), '\0');
        if (int e = pread_all(fd, body.data(), body.size(), f.offset)) {
          item.refused = "refused: cannot read it: " + errno_text(e);
        } else if (auto entry = queue::parse_archive_entry(body); !entry) {
          item.refused = "refused: " + entry.error().message;
        } else {
          body.clear();
          body.shrink_to_fit();
          item.label = entry->origin_id + " from " + entry->origin_host;
          item.origin = entry->origin_host + " " + entry->origin_id;
          if (seen.count(item.origin)) {
            item.refused = "already imported";
          } else if (auto m = queue::decode_archive_entry(*entry, now_us); !m) {
            item.refused = "refused: " + m.error().message;
          } else {
            bytes += m->data.size();
            item.msg = std::move(m.value());
            seen.insert(item.origin);
          }
        }
      }
      batch.push_back(std::move(item));
    }
  }
};

void Transfer::import_from(const std::string& path, const std::string& who, std::function<void(TransferAnswer)> done) {
  if (path.empty() || path[0] != '/') return done(TransferAnswer{{}, "the archive path must be absolute"});
  if (manager_.recovering())
    return done(TransferAnswer{{}, "ternd is still reading its queue; try again once startup is done"});
  if (importing_) return done(TransferAnswer{{}, "another import is running"});
  importing_ = true;
  auto run = std::make_shared<ImportRun>();
  run->path = path;
  run->who = who;
  run->queue_dir = settings_.queue_dir;
  run->max_entry = settings_.max_entry;
  run->done = std::move(done);
  for (auto& o : manager_.origins()) run->seen.insert(std::move(o));
  spdlog::info("control: import from {} by {}", log_safe(path), who);
  loop_.queue_work(
      [run] {
        run->check();
        if (!run->fatal.empty()) return;
        if (auto st = read_index(run->queue_dir + "/imported", run->seen); !st) run->fatal = st.error().message;
      },
      [this, alive = alive_, run] {
        if (!*alive) return;
        if (!run->fatal.empty()) {
          importing_ = false;
          return run->done(TransferAnswer{{}, run->fatal});
        }
        import_next(run);
      });
}

void Transfer::import_next(const std::shared_ptr<ImportRun>& run) {
  if (run->next >= run->frames.size()) {
    importing_ = false;
    spdlog::info("control: import from {}: {} of {} message(s) imported", log_safe(run->path), run->imported,
                 run->frames.size());
    TransferAnswer a{std::move(run->results), {}};
    if (run->frames.empty()) a.fatal = run->path + ": the archive holds no message";
    return run->done(std::move(a));
  }
  const int64_t now = clock_.now_us();
  loop_.queue_work([run, now] { run->read_batch(now); }, [this, alive = alive_, run] {
    if (!*alive) return;
    run->committing = 1;  // until every commit below has been asked for
    for (auto& item : run->batch) {
      if (!item.msg) continue;
      if (!injector_.has_room(item.msg->data.size())) {
        item.refused = "refused: not enough free space in the queue";
        continue;
      }
      item.in = injector_.begin(std::move(item.msg->env), {}, item.msg->history);
      item.new_id = item.in->id();
      item.in->append(item.msg->data);
      item.msg.reset();
      ++run->committing;
      item.in->commit([this, alive, run, &item](queue::CommitStatus st) {
        if (!*alive) return;
        if (st != queue::CommitStatus::Committed) {
          item.refused = std::string("refused: cannot queue it: ") +
                         (st == queue::CommitStatus::NoSpace ? "no space left" : "I/O error");
          item.new_id.clear();
        }
        if (--run->committing == 0) import_committed(run);
      });
    }
    if (--run->committing == 0) import_committed(run);
  });
}

// The batch is queued: the index learns its origins (after the commits, so that a crash in
// between leaves a message the index lacks, added at the next start, never an index entry
// without its message), then the next batch.
void Transfer::import_committed(const std::shared_ptr<ImportRun>& run) {
  std::string lines;
  const int64_t now = clock_.now_us();
  for (const auto& item : run->batch)
    if (!item.new_id.empty() && item.refused.empty()) lines += index_line(item.origin, item.new_id, now);
  auto err = std::make_shared<std::string>();
  loop_.queue_work(
      [run, lines, err] {
        if (lines.empty()) return;
        if (auto st = append_index(run->queue_dir, lines); !st) *err = st.error().message;
      },
      [this, alive = alive_, run, err] {
        if (!*alive) return;
        if (!err->empty())
          spdlog::error("control: import: {}; the messages are queued, but a second import of the same archive "
                        "could queue them again once they are delivered", *err);
        for (auto& item : run->batch) {
          if (!item.refused.empty()) {
            run->results.push_back(qmgr::AdminResult{item.label, "", item.refused});
            continue;
          }
          ++run->imported;
          spdlog::info("qmgr: id={} imported from {} by {}", item.new_id, log_safe(item.origin), run->who);
          run->results.push_back(qmgr::AdminResult{item.label, "imported as " + item.new_id, ""});
        }
        run->batch.clear();
        import_next(run);
      });
}

// ---- startup ----

void Transfer::note_recovered(const queue::Envelope& env) {
  if (!env.origin.empty()) recovered_origins_.push_back(env.origin + " " + env.id);
}

void Transfer::recovery_done() {
  if (recovered_origins_.empty()) return;
  auto found = std::make_shared<std::vector<std::string>>(std::move(recovered_origins_));
  recovered_origins_.clear();
  const std::string dir = settings_.queue_dir;
  const int64_t now = clock_.now_us();
  loop_.queue_work([found, dir, now] {
    std::set<std::string> known;
    if (auto st = read_index(dir + "/imported", known); !st) {
      spdlog::error("queue: {}", st.error().message);
      return;
    }
    std::string lines;
    for (const auto& f : *found) {
      const size_t last = f.rfind(' ');
      const std::string origin = f.substr(0, last);
      if (!known.count(origin)) lines += index_line(origin, f.substr(last + 1), now);
    }
    if (lines.empty()) return;
    if (auto st = append_index(dir, lines); !st) spdlog::error("queue: {}", st.error().message);
    else spdlog::info("queue: added imported message(s) found at startup to {}/imported", dir);
  }, [] {});
}

}  // namespace tern::admin
