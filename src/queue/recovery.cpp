// Startup recovery of the queue (queue-format.md, "What a crash leaves"): reads every file in
// msg/ (several at a time), removes what was still being received, sets aside what is not a
// queue file, unlinks what an operator deleted or exported, leaves alone what needs a newer tern.
// Store::recover and Store::recover_async.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <cstring>
#include <iterator>
#include <map>
#include <optional>
#include <spdlog/spdlog.h>
#include <thread>
#include <vector>

#include "queue/codec.hpp"
#include "queue/crc32c.hpp"
#include "queue/store.hpp"

namespace tern::queue {

namespace {

// Reads up to the whole file in one go for the common case: a 1 KB message with its header
// and trailer fits, so one read() per file and no per-file buffer.
constexpr size_t kFirstRead = 64 * 1024;
static_assert(kFirstRead >= kCheckedFileLimit, "a checked file must come whole in the first read");
// Recovery threads for the blocking recover(): with a cold page cache reading is mostly
// waiting for the disk, so many more threads than cores keep more reads in flight (the
// disk's queue depth); with a warm cache the extra threads cost little.
constexpr unsigned kRecoveryThreads = 16;
// Chunks read at once by recover_async: the rest of the thread pool stays free for commits.
constexpr size_t kAsyncChunksInFlight = 3;

enum class Outcome { Loaded, Corrupt, Untouched, Deleted, Exported, Incomplete, Fatal };

// pread until `n` bytes or the end of the file; returns the count or -errno.
ssize_t read_at(int fd, char* p, size_t n, off_t at) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::pread(fd, p + got, n - got, at + off_t(got));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) break;
    got += size_t(r);
  }
  return ssize_t(got);
}

// Per-thread buffers, reused for every file a thread reads.
// Both only grow: resizing a string down and up again would clear the bytes every time.
struct Buffers {
  std::vector<char> head;
  std::vector<char> trailer;
};

// Loads one msg/ entry. On Loaded, `env` and `size` are set; otherwise `why` says why.
// `careful`: stat the file first instead of trusting a short read to mean end of file (the
// fast path's assumption, re-checked this way before a file is declared corrupt).
Outcome load_one(int msg_fd, const std::string& name, Buffers& b, Envelope& env, uint64_t& size,
                 std::string& why, bool careful) {
  // O_NOFOLLOW and O_NONBLOCK: a symlink fails (ELOOP) and a fifo opens without waiting for a
  // writer, so that a stray entry is recognised instead of followed or waited on. Read-only:
  // cheaper to open than read-write; the rare torn tail reopens the file to cut it off.
  // O_NOATIME: reading every file at startup must not turn into writing every inode (files
  // are ternd's own, so the flag is allowed; EPERM on someone else's file: retried without).
  int fd = ::openat(msg_fd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = ::openat(msg_fd, name.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    const int e = errno;
    why = std::string("open: ") + std::strerror(e);
    // Not a file tern could have written (a directory, a symlink, a socket): set it aside.
    // Anything else (EMFILE, ENOMEM, EIO, ...) may pass, so it stops startup instead.
    if (e == EISDIR || e == ELOOP || e == ENXIO) {
      why = "not a regular file (" + why + ")";
      return Outcome::Corrupt;
    }
    return Outcome::Fatal;
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  uint64_t file_size = 0;
  auto stat_size = [&]() -> bool {
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
      why = std::string("fstat: ") + std::strerror(errno);
      return false;
    }
    if (!S_ISREG(st.st_mode)) {
      why = "not a regular file";
      return false;
    }
    file_size = uint64_t(st.st_size);
    return true;
  };
  if (careful && !stat_size()) return why == "not a regular file" ? Outcome::Corrupt : Outcome::Fatal;
  // Most files fit the first read: one read() and no fstat() (a read shorter than asked for
  // is the end of a regular file). The prefix grows until it holds the whole header.
  size_t want = careful ? size_t(std::min<uint64_t>(file_size, kFirstRead)) : kFirstRead;
  std::optional<Result<ParsedHeader>> parsed;
  std::string_view head;  // the bytes read so far, in b.head
  while (true) {
    if (b.head.size() < want) b.head.resize(want);
    const ssize_t n = careful ? read_at(fd, b.head.data(), want, 0) : ::pread(fd, b.head.data(), want, 0);
    if (n < 0) {
      why = std::string("read: ") + std::strerror(careful ? int(-n) : errno);
      return Outcome::Fatal;
    }
    head = std::string_view(b.head.data(), size_t(n));
    if (!careful) {
      if (size_t(n) < want) {
        file_size = uint64_t(n);
      } else {
        if (!stat_size()) return why == "not a regular file" ? Outcome::Corrupt : Outcome::Fatal;
        careful = true;  // from here on, sizes come from fstat
      }
    }
    parsed.emplace(parse_header(head));
    if (*parsed || uint64_t(n) >= file_size || want >= kMaxHeader) break;
    want = size_t(std::min<uint64_t>(file_size, uint64_t(want) * 4));
  }
  if (!*parsed) {
    why = parsed->error().message;
    // A message whose create was interrupted (power loss after the directory fsync): an
    // empty file, or the start of a version-3 header. Never acknowledged.
    if (file_size == 0 || (head.size() >= file_size && head.starts_with(kMagic) &&
                           head.find("\ndata\n") == std::string_view::npos)) {
      why = "header incomplete";
      return Outcome::Incomplete;
    }
    return Outcome::Corrupt;
  }
  ParsedHeader& p = parsed->value();
  if (!p.unknown_must_understand.empty()) {
    why = p.unknown_must_understand;
    return Outcome::Untouched;
  }
  const uint64_t data_end = p.header_length + p.data_size;
  // Version 3 files are written in place and closed by an `end` record after the data.
  // While the data-size is the placeholder 0 (tern's data is never empty: it starts with
  // its Received: header) the message was still being received: never acknowledged, so it
  // is removed (queue-format.md, "What a crash leaves"). A real data-size without a valid
  // record is set aside instead: a crash in the last write, or damage to a file that was
  // acknowledged, which tern cannot tell apart.
  const bool closed_format = p.version >= 3;
  if (closed_format && p.data_size == 0) {
    why = "still being received";
    return Outcome::Incomplete;
  }
  if (file_size < data_end) {
    why = "file shorter than its data-size says";
    return Outcome::Corrupt;
  }
  std::string_view trailer;
  if (head.size() >= file_size) {
    trailer = head.substr(size_t(data_end));  // the one read got it all
  } else {
    const size_t want_trailer = size_t(file_size - data_end);
    if (b.trailer.size() < want_trailer) b.trailer.resize(want_trailer);
    const ssize_t n = read_at(fd, b.trailer.data(), want_trailer, off_t(data_end));
    if (n < 0) {
      why = std::string("read: ") + std::strerror(int(-n));
      return Outcome::Fatal;
    }
    trailer = std::string_view(b.trailer.data(), size_t(n));
  }
  uint64_t trailer_at = data_end;  // where the status records begin
  if (closed_format) {
    const auto crc = parse_end(trailer);
    if (!crc) {
      why = "no closing record after the data";
      return Outcome::Corrupt;
    }
    // A small file was made durable by one fdatasync, so its record may have reached the
    // disk without all of its data: the CRC tells. A larger one got its record only after
    // its data was durable (and reading all its data here would slow startup).
    if (data_end + kEndRecordLength <= kCheckedFileLimit) {
      if (head.size() < data_end) {  // cannot happen: the first read covers kCheckedFileLimit
        why = "short read of a small file";
        return Outcome::Fatal;
      }
      const std::string_view h = head.substr(0, p.header_length), data = head.substr(p.header_length, p.data_size);
      if (crc32c(crc32c(0, data), h) != *crc) {
        why = "closing record's checksum does not match the file";
        return Outcome::Corrupt;
      }
    }
    trailer.remove_prefix(kEndRecordLength);
    trailer_at += kEndRecordLength;
  }
  std::string must_understand;
  if (auto applied = apply_status_records(p.envelope, trailer, &must_understand); !applied) {
    why = applied.error().message;
    return Outcome::Corrupt;
  }
  if (!must_understand.empty()) {  // checked before anything is changed in the file
    why = must_understand;
    return Outcome::Untouched;
  }
  if (p.envelope.id != name) {
    why = "id record does not match the file name";
    return Outcome::Corrupt;
  }
  // Deleted by an operator, or moved to another node's queue (its !exported record was
  // durable before the archive's copy could be imported there): never loaded again.
  if (p.envelope.deleted || p.envelope.exported) {
    if (::unlinkat(msg_fd, name.c_str(), 0) != 0) {
      why = std::string("unlink: ") + std::strerror(errno);
      return Outcome::Fatal;
    }
    return p.envelope.deleted ? Outcome::Deleted : Outcome::Exported;
  }
  if (!trailer.empty() && trailer.back() != '\n') {
    const size_t nl = trailer.rfind('\n');
    const size_t keep = nl == std::string_view::npos ? 0 : nl + 1;
    spdlog::warn("queue: msg/{}: dropping a torn status record (crash during an update)", name);
    const int wfd = ::openat(msg_fd, name.c_str(), O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    const bool cut = wfd >= 0 && ::ftruncate(wfd, off_t(trailer_at + keep)) == 0 && ::fdatasync(wfd) == 0;
    const int e = errno;
    if (wfd >= 0) ::close(wfd);
    if (!cut) {
      why = std::string("truncate: ") + std::strerror(e);
      return Outcome::Fatal;
    }
  }
  env = std::move(p.envelope);
  size = p.data_size;
  return Outcome::Loaded;
}

// A directory entry: its name and its type as readdir() reports it (DT_UNKNOWN when the
// file system does not say).
struct Entry {
  std::string name;
  unsigned char type = DT_UNKNOWN;
  bool operator<(const Entry& o) const { return name < o.name; }
};

std::vector<Entry> list_dir(int dirfd) {
  std::vector<Entry> names;
  const int fd = ::dup(dirfd);  // closedir() closes the descriptor it was given
  if (fd < 0) return names;
  DIR* d = ::fdopendir(fd);
  if (!d) {
    ::close(fd);
    return names;
  }
  ::rewinddir(d);
  while (auto* e = ::readdir(d)) {
    if (e->d_name[0] == '.') continue;
    names.push_back({e->d_name, e->d_type});
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());  // ids sort by arrival: oldest first
  return names;
}

}  // namespace

// Everything one recovery needs, shared by its threads or thread-pool jobs.
struct Store::RecoveryTask {
  int tmp_fd = -1, msg_fd = -1, corrupt_fd = -1;
  std::vector<Entry> names;  // msg/, sorted

  // One chunk of `names`: what it produced.
  struct Chunk {
    std::vector<Envelope> messages;
    std::vector<uint64_t> sizes;
    RecoveryStats stats;
    std::optional<Error> fatal;
  };

  ~RecoveryTask() {
    if (corrupt_fd >= 0) ::close(corrupt_fd);
  }

  // Removes tmp/ leftovers and lists msg/. Blocking (a thread or a pool job).
  Status prepare(const std::string& dir, RecoveryStats& stats) {
    corrupt_fd = ::open((dir + "/corrupt").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (corrupt_fd < 0) return Error::perm("queue: cannot open " + dir + "/corrupt: " + std::strerror(errno));
    // tmp/ holds only messages that never got their 250 (written by a tern before format 3):
    // remove them (queue-format.md).
    for (const auto& [name, type] : list_dir(tmp_fd)) {
      if (::unlinkat(tmp_fd, name.c_str(), 0) == 0) ++stats.leftovers_removed;
      else spdlog::warn("queue: cannot remove leftover tmp/{}: {}", name, std::strerror(errno));
    }
    names = list_dir(msg_fd);
    return ok_status();
  }

  [[nodiscard]] size_t chunks() const { return (names.size() + kRecoveryChunk - 1) / kRecoveryChunk; }

  void load_chunk(size_t index, Chunk& c) const {
    Buffers b;
    const size_t begin = index * kRecoveryChunk, end = std::min(names.size(), begin + kRecoveryChunk);
    c.messages.reserve(end - begin);
    c.sizes.reserve(end - begin);
    for (size_t i = begin; i < end && !c.fatal; ++i) {
      const std::string& name = names[i].name;
      const unsigned char type = names[i].type;
      Envelope env;
      uint64_t size = 0;
      std::string why;
      Outcome o = Outcome::Corrupt;
      if (type != DT_REG && type != DT_UNKNOWN) {
        why = "not a regular file";  // a directory, symlink, fifo, socket: never opened
      } else {
        o = load_one(msg_fd, name, b, env, size, why, type == DT_UNKNOWN);
        // The fast path trusts a short read to be the end of the file: before a file is
        // set aside for good, read it again the careful way.
        if ((o == Outcome::Corrupt || o == Outcome::Incomplete) && type == DT_REG)
          o = load_one(msg_fd, name, b, env, size, why, true);
      }
      switch (o) {
        case Outcome::Loaded:
          c.messages.push_back(std::move(env));
          c.sizes.push_back(size);
          ++c.stats.messages;
          break;
        case Outcome::Deleted:
          spdlog::info("queue: id={} deleted by an operator: removed", name);
          ++c.stats.deleted_removed;
          break;
        case Outcome::Exported:
          spdlog::info("queue: id={} was exported to an archive: removed", name);
          ++c.stats.exported_removed;
          break;
        case Outcome::Incomplete:
          // Never acknowledged (no 250 before the closing record is durable): the client
          // was not told the message was taken, so it is not mail tern holds.
          if (::unlinkat(msg_fd, name.c_str(), 0) != 0 && errno != ENOENT) {
            c.fatal = Error::temp("queue: cannot remove unfinished msg/" + name + ": " + std::strerror(errno));
            break;
          }
          spdlog::info("queue: msg/{} was never completed ({}): removed", name, why);
          ++c.stats.leftovers_removed;
          break;
        case Outcome::Untouched:
          spdlog::warn("queue: msg/{} needs a newer tern ('{}'); left untouched in msg/", name, why);
          ++c.stats.left_untouched;
          break;
        case Outcome::Corrupt:
          // Never delete mail: set it aside for the operator.
          if (why.starts_with("not a regular file"))
            spdlog::error("queue: msg/{}: {}; moved to corrupt/", name, why);
          else
            spdlog::error("queue: msg/{} is malformed ({}); moved to corrupt/", name, why);
          if (::renameat(msg_fd, name.c_str(), corrupt_fd, name.c_str()) != 0) {
            c.fatal = Error::perm("queue: cannot move msg/" + name + " to corrupt/: " + std::strerror(errno));
            break;
          }
          ++c.stats.corrupt_moved;
          break;
        case Outcome::Fatal:
          c.fatal = Error::temp("queue: cannot read msg/" + name + ": " + why);
          break;
      }
    }
  }

  // Makes the removals and moves durable. Blocking.
  Status finish() const {
    if (::fsync(tmp_fd) != 0 || ::fsync(msg_fd) != 0 || ::fsync(corrupt_fd) != 0)
      return Error::temp(std::string("queue: fsync of queue directories failed: ") + std::strerror(errno));
    return ok_status();
  }
};

namespace {
void add(RecoveryStats& into, const RecoveryStats& s) {
  into.messages += s.messages;
  into.leftovers_removed += s.leftovers_removed;
  into.corrupt_moved += s.corrupt_moved;
  into.left_untouched += s.left_untouched;
  into.deleted_removed += s.deleted_removed;
  into.exported_removed += s.exported_removed;
}
}  // namespace

Result<RecoveryReport> Store::recover() {
  const auto started = std::chrono::steady_clock::now();
  RecoveryTask task;
  task.tmp_fd = tmp_fd_;
  task.msg_fd = msg_fd_;
  RecoveryStats stats;
  if (auto st = task.prepare(dir_, stats); !st) return st.error();
  std::vector<RecoveryTask::Chunk> chunks(task.chunks());
  std::atomic<size_t> next{0};
  const unsigned threads = unsigned(std::clamp<size_t>(chunks.size(), 1, kRecoveryThreads));
  auto worker = [&] {
    for (size_t i; (i = next.fetch_add(1)) < chunks.size();) task.load_chunk(i, chunks[i]);
  };
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < threads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  RecoveryReport r;
  r.messages.reserve(task.names.size());
  r.sizes.reserve(task.names.size());
  for (auto& c : chunks) {
    if (c.fatal) return *c.fatal;
    add(stats, c.stats);
    std::move(c.messages.begin(), c.messages.end(), std::back_inserter(r.messages));
    r.sizes.insert(r.sizes.end(), c.sizes.begin(), c.sizes.end());
  }
  if (auto st = task.finish(); !st) return st.error();
  const auto took = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  spdlog::info("queue: read {} file(s) in msg/ in {:.2f}s on {} thread(s)", task.names.size(), took, threads);
  r.leftovers_removed = stats.leftovers_removed;
  r.corrupt_moved = stats.corrupt_moved;
  r.left_untouched = stats.left_untouched;
  r.deleted_removed = stats.deleted_removed;
  r.exported_removed = stats.exported_removed;
  return r;
}

void Store::recover_async(std::function<void(size_t)> listed,
                          std::function<void(std::vector<Envelope>&&, std::vector<uint64_t>&&)> batch,
                          std::function<void(Result<RecoveryStats>)> done) {
  // Loop-thread state of the recovery: which chunks were handed out, which came back.
  struct State {
    RecoveryTask task;
    RecoveryStats stats;
    std::optional<Error> error;
    size_t next = 0;       // next chunk to hand to the pool
    size_t delivered = 0;  // chunks passed to `batch`, in order
    size_t in_flight = 0;
    std::map<size_t, std::unique_ptr<RecoveryTask::Chunk>> ready;  // back, not yet delivered
    std::function<void(std::vector<Envelope>&&, std::vector<uint64_t>&&)> batch;
    std::function<void(Result<RecoveryStats>)> done;
  };
  auto st = std::make_shared<State>();
  st->task.tmp_fd = tmp_fd_;
  st->task.msg_fd = msg_fd_;
  st->batch = std::move(batch);
  st->done = std::move(done);
  auto prepared = std::make_shared<Status>(ok_status());

  // Runs on the loop: hands out chunks, passes back those that are contiguous, ends.
  auto pump = std::make_shared<std::function<void()>>();
  *pump = [this, st, stopped = recovery_stopped_, weak = std::weak_ptr<std::function<void()>>(pump)] {
    auto self = weak.lock();
    if (*stopped && !st->error) st->error = Error::temp("queue: recovery stopped (shutdown)");
    while (!st->error && st->in_flight < kAsyncChunksInFlight && st->next < st->task.chunks()) {
      const size_t index = st->next++;
      ++st->in_flight;
      auto chunk = std::make_shared<std::unique_ptr<RecoveryTask::Chunk>>(std::make_unique<RecoveryTask::Chunk>());
      loop_.queue_work([st, index, chunk, fds = dir_fds_] { st->task.load_chunk(index, **chunk); },
                       [st, index, chunk, self, alive = alive_] {
                         if (!*alive) return;  // the Store is gone (an early exit): nothing to report
                         --st->in_flight;
                         if ((*chunk)->fatal && !st->error) st->error = *(*chunk)->fatal;
                         st->ready.emplace(index, std::move(*chunk));
                         (*self)();
                       });
    }
    while (!st->error && !st->ready.empty() && st->ready.begin()->first == st->delivered) {
      auto c = std::move(st->ready.begin()->second);
      st->ready.erase(st->ready.begin());
      ++st->delivered;
      add(st->stats, c->stats);
      st->batch(std::move(c->messages), std::move(c->sizes));
    }
    if (st->in_flight > 0) return;
    if (st->error) return st->done(*st->error);
    if (st->delivered < st->task.chunks()) return;
    auto synced = std::make_shared<Status>(ok_status());
    loop_.queue_work([st, synced, fds = dir_fds_] { *synced = st->task.finish(); },
                     [st, synced, self, alive = alive_] {
                       if (!*alive) return;  // the Store is gone (an early exit): nothing to report
                       if (!*synced) return st->done(synced->error());
                       st->done(st->stats);
                     });
  };
  const std::string dir = dir_;
  // Every job holds dir_fds_ (tmp/ and msg/ stay open while it may use them) and its
  // completion checks alive_: the Store may be destroyed while recovery is under way when
  // startup fails after the listing (the listener cannot bind, say).
  loop_.queue_work([st, prepared, dir, fds = dir_fds_] { *prepared = st->task.prepare(dir, st->stats); },
                   [st, prepared, pump, listed = std::move(listed), alive = alive_] {
                     if (!*alive) return;  // the Store is gone (an early exit): nothing to report
                     if (!*prepared) return st->done(prepared->error());
                     listed(st->task.names.size());
                     (*pump)();
                   });
}

}  // namespace tern::queue
