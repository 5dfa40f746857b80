// Queue store: spooling through the thread pool (written in place in msg/, closed by a
// checksummed record), group commit of the directory, status appends, removals.
// (Startup recovery is in recovery.cpp.)
#include "queue/store.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <utility>
#include <spdlog/spdlog.h>

#include "common/log_escape.hpp"
#include "common/limits.hpp"
#include "queue/codec.hpp"
#include "queue/crc32c.hpp"

namespace tern::queue {

// Shared between the loop thread and the one thread-pool job that may be writing it at a
// time. Fields marked [job] are touched only by jobs (which never overlap), the rest only on
// the loop thread.
struct Spool {
  Store* store = nullptr;
  std::string id;
  Envelope env;
  std::string header;        // encoded at begin(); data-size patched at commit
  std::string pending;       // content not yet handed to a job
  std::string chunk;         // [job] the content the running job writes
  int fd = -1;               // [job]
  int err = 0;               // [job] first errno; read on the loop after the job
  bool owns_file = false;    // [job] msg/ID was created by this message (not an id collision)
  uint32_t crc = 0;          // [job] CRC-32C of the data written so far
  uint64_t data_size = 0;    // content bytes handed to jobs so far
  bool job_running = false;
  bool commit_requested = false;
  bool aborted = false;
  bool discarding = false;   // discard() has taken over: nothing else reports
  bool finished = false;     // final job done (closing record written, fdatasync'd, closed)
  bool name_durable = false; // the fsync of msg/ that followed the create has returned
  int dir_err = 0;           // ... and failed with this
  std::function<void(CommitStatus)> done;
};

CommitStatus classify_errno(int err) noexcept {
  return (err == ENOSPC || err == EDQUOT) ? CommitStatus::NoSpace : CommitStatus::IoError;
}

namespace {

int write_all(int fd, const char* p, size_t n) {
  while (n > 0) {
    ssize_t w = ::write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += w;
    n -= size_t(w);
  }
  return 0;
}

int pwrite_all(int fd, const std::string& s, off_t at) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t w = ::pwrite(fd, s.data() + done, s.size() - done, at + off_t(done));
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    done += size_t(w);
  }
  return 0;
}

// Creates `path` (mode 0750) and any missing parent. An existing directory is left as it is:
// check_trusted() decides whether it may be used, tern never changes its mode behind the
// operator's back.
int make_dir(const std::string& path) {
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  if (ec) return ec.value();
  if (::mkdir(path.c_str(), 0750) != 0 && errno != EEXIST) return errno;
  return 0;
}

// A queue directory that another user can write into lets that user forge queue files,
// which tern would act on (deliver, bounce to a forged sender): refuse to start instead.
Status check_trusted(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    return Error::perm("queue: cannot stat " + path + ": " + std::strerror(errno));
  if (!S_ISDIR(st.st_mode)) return Error::perm("queue: " + path + " is not a directory");
  const uid_t me = ::geteuid();
  if (st.st_uid != me)
    return Error::perm("queue: " + path + " is owned by uid " + std::to_string(st.st_uid) +
                       ", not by uid " + std::to_string(me) + " that ternd runs as; refusing to use it "
                       "(chown it to ternd's user)");
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", unsigned(st.st_mode & 07777));
    return Error::perm("queue: " + path + " is writable by group or others (mode " + mode +
                       "); refusing to use it (chmod go-w " + path + ")");
  }
  return ok_status();
}

}  // namespace

// ---- Incoming ----

Incoming::~Incoming() {
  if (!s_) return;
  s_->done = nullptr;  // owner gone: nobody to tell
  if (!s_->commit_requested) abort();
}

const std::string& Incoming::id() const noexcept { return s_->id; }

void Incoming::append(std::string_view content) {
  if (s_->aborted || s_->commit_requested) return;
  s_->pending.append(content);
  if (!s_->job_running && s_->pending.size() >= limits::kSpoolChunk) s_->store->submit_write(s_, false);
}

void Incoming::commit(std::function<void(CommitStatus)> done) {
  if (s_->commit_requested) return;
  if (s_->aborted) {
    // Nothing left to commit, but the caller waits for an answer: give it one, on the loop
    // thread like every other outcome (never from inside commit()).
    s_->done = std::move(done);
    s_->store->loop_.queue_work([] {}, [s = s_] {
      if (auto d = std::exchange(s->done, nullptr)) d(CommitStatus::IoError);
    });
    return;
  }
  s_->commit_requested = true;
  s_->done = std::move(done);
  ++s_->store->in_flight_;
  if (!s_->job_running) s_->store->submit_write(s_, true);
}

void Incoming::abort() {
  if (s_->aborted || s_->commit_requested) return;
  s_->aborted = true;
  s_->pending.clear();
  if (!s_->job_running) s_->store->discard(s_);
}

// ---- Store ----

Store::Store(io::Loop& loop, std::string dir, const Clock& clock, int lock_fd, int tmp_fd, int msg_fd)
    : loop_(loop),
      dir_(std::move(dir)),
      clock_(clock),
      lock_fd_(lock_fd),
      tmp_fd_(tmp_fd),
      msg_fd_(msg_fd),
      dir_fds_(nullptr, [tmp_fd, msg_fd](void*) {
        ::close(tmp_fd);
        ::close(msg_fd);
      }),
      free_timer_(loop) {
  refresh_free_space();
  free_timer_.start(1000, 1000, [this] { refresh_free_space(); });
}

Store::~Store() {
  *alive_ = false;
  ::close(lock_fd_);  // tmp/ and msg/ close with the last thread-pool job using them
}

Result<std::unique_ptr<Store>> Store::open(io::Loop& loop, const std::string& dir, const Clock& clock) {
  for (const std::string& d : {dir, dir + "/tmp", dir + "/msg", dir + "/corrupt"}) {
    if (int e = make_dir(d))
      return Error::perm("queue: cannot create " + d + ": " + std::strerror(e));
    if (auto st = check_trusted(d); !st) return st.error();
  }
  // One ternd per queue: a second one must not touch the first one's files (its recovery
  // would delete messages still being received).
  int lock_fd = ::open((dir + "/lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0640);
  if (lock_fd < 0) return Error::perm("queue: cannot open " + dir + "/lock: " + std::strerror(errno));
  if (::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
    ::close(lock_fd);
    return Error::perm("queue: " + dir + " is in use by another ternd (lock held on " + dir + "/lock)");
  }
  int tmp_fd = ::open((dir + "/tmp").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int msg_fd = ::open((dir + "/msg").c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (tmp_fd < 0 || msg_fd < 0) {
    int e = errno;
    if (tmp_fd >= 0) ::close(tmp_fd);
    if (msg_fd >= 0) ::close(msg_fd);
    ::close(lock_fd);
    return Error::perm("queue: cannot open " + dir + ": " + std::strerror(e));
  }
  return std::unique_ptr<Store>(new Store(loop, dir, clock, lock_fd, tmp_fd, msg_fd));
}

std::unique_ptr<Incoming> Store::begin(Envelope env, const std::vector<std::string>& history) {
  auto s = std::make_shared<Spool>();
  s->store = this;
  s->id = ids_.next(uint64_t(clock_.now_us()));
  env.id = s->id;
  s->header = encode_header(env, 0, history);
  s->env = std::move(env);
  submit_create(s);
  return std::unique_ptr<Incoming>(new Incoming(std::move(s)));
}

// Creates msg/ID at once (at DATA, while the client sends the body): the inode allocation
// is off the path between "." and the 250, and the fsync of msg/ that makes the name
// durable runs while the body arrives (queue-format.md, "Writing and committing").
void Store::submit_create(const std::shared_ptr<Spool>& s) {
  s->job_running = true;
  const int msg_fd = msg_fd_;
  loop_.queue_work(
      [s, msg_fd, fds = dir_fds_] {
        // O_EXCL: an id collision (clock stepped back across a restart) must never
        // overwrite a committed message.
        s->fd = ::openat(msg_fd, s->id.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (s->fd < 0) {
          s->err = errno;
          return;
        }
        s->owns_file = true;
        // The header with a placeholder data-size and no closing record: until the final
        // job, startup would find this file incomplete and remove it.
        if (int e = write_all(s->fd, s->header.data(), s->header.size())) s->err = e;
      },
      [this, alive = alive_, s] {
        if (!*alive) return;  // the Store is gone (shutdown): nothing to update
        s->job_running = false;
        if (s->owns_file && !s->aborted) {
          created_.push_back(s);
          if (!batch_running_) run_batch();
        }
        write_done(s);
      });
}

void Store::submit_write(const std::shared_ptr<Spool>& s, bool final) {
  s->job_running = true;
  s->chunk = std::move(s->pending);
  s->pending.clear();
  s->data_size += s->chunk.size();
  if (final) {
    const size_t at = data_size_offset(s->header);
    s->header.replace(at, kDataSizeDigits, format_data_size(s->data_size));
  }
  loop_.queue_work(
      [s, final] {
        if (s->err) return;
        const bool whole = final && s->chunk.size() == s->data_size;  // every byte is in this job
        const off_t chunk_at = off_t(s->header.size() + s->data_size - s->chunk.size());
        s->crc = crc32c(s->crc, s->chunk);
        if (!final) {
          if (int e = pwrite_all(s->fd, s->chunk, chunk_at)) s->err = e;
        } else {
          const std::string end = encode_end(crc32c(s->crc, s->header));
          const off_t end_at = off_t(s->header.size() + s->data_size);
          if (whole && uint64_t(end_at) + end.size() <= kCheckedFileLimit) {
            // A small file: header (data-size filled in), data and closing record in one
            // write and one fdatasync. The record may reach the disk before the data if the
            // power fails meanwhile: startup checks its CRC.
            std::string file;
            file.reserve(s->header.size() + s->chunk.size() + end.size());
            file.append(s->header).append(s->chunk).append(end);
            if (int e = pwrite_all(s->fd, file, 0)) s->err = e;
          } else {
            // A larger one: the data is made durable first, then the closing record and the
            // real data-size are written, record first (a crash between the two leaves the
            // placeholder data-size, which startup removes as unfinished); startup trusts
            // the record without reading the data.
            if (int e = pwrite_all(s->fd, s->chunk, chunk_at)) s->err = e;
            if (!s->err && ::fdatasync(s->fd) != 0) s->err = errno;
            if (!s->err)
              if (int e = pwrite_all(s->fd, end, end_at)) s->err = e;
            if (!s->err)
              if (int e = pwrite_all(s->fd, s->header, 0)) s->err = e;
          }
          // Nothing may be acknowledged before the data and the closing record are on disk.
          if (!s->err && ::fdatasync(s->fd) != 0) s->err = errno;
          if (!s->err) {
            if (::close(s->fd) != 0) s->err = errno;
            s->fd = -1;  // on an error discard() closes it
          }
        }
        s->chunk.clear();
        s->chunk.shrink_to_fit();
      },
      [this, alive = alive_, s, final] {
        if (!*alive) return;  // the Store is gone (shutdown): nothing to update
        s->job_running = false;
        if (final) s->finished = true;
        write_done(s);
      });
}

void Store::write_done(const std::shared_ptr<Spool>& s) {
  if (s->aborted || s->discarding) return discard(s);
  if (s->err) {
    if (!s->commit_requested) return;  // reported at commit()
    if (!s->finished) return submit_write(s, true);  // the final job sees err and stops at once
    return discard(s);
  }
  if (s->finished) return maybe_committed(s);
  if (s->commit_requested) return submit_write(s, true);
  if (s->pending.size() >= limits::kSpoolChunk) submit_write(s, false);
}

// A message is committed once its file is complete on disk (final job) and its name in
// msg/ is durable (the directory fsync after its create): only then the 250.
void Store::maybe_committed(const std::shared_ptr<Spool>& s) {
  if (s->discarding || s->aborted || s->err || s->job_running || !s->finished || !s->name_durable) return;
  if (s->dir_err) {
    s->err = s->dir_err;
    return discard(s);
  }
  --in_flight_;
  spdlog::info("queue: id={} queued client=[{}] from=<{}> nrcpt={} size={}", s->id, s->env.client_address,
               log_safe(s->env.sender), s->env.recipients.size(), s->data_size);
  if (committed_cb_) committed_cb_(s->env, s->data_size);
  if (auto done = std::exchange(s->done, nullptr)) done(CommitStatus::Committed);
}

// Removes a message that will not be committed; reports the failure if a commit was asked.
// Runs only when no job of the message is running.
void Store::discard(const std::shared_ptr<Spool>& s) {
  if (s->discarding && s->job_running) return;
  s->discarding = true;
  s->job_running = true;  // the unlink below; nothing else runs for this message after it
  const int msg_fd = msg_fd_;
  const int err = s->err;
  // A file whose closing record was written may be complete on disk even though the commit
  // failed (a failed fdatasync, a failed directory fsync): the removal must be durable, or
  // a restart would deliver a message the client was told to send again.
  const bool sync_dir = s->finished;
  loop_.queue_work(
      [s, msg_fd, sync_dir, fds = dir_fds_] {
        if (s->fd >= 0) ::close(s->fd), s->fd = -1;
        if (s->owns_file) {
          ::unlinkat(msg_fd, s->id.c_str(), 0);
          if (sync_dir) ::fsync(msg_fd);
        }
      },
      [this, alive = alive_, s, err] {
        if (!*alive) return;  // the Store is gone (shutdown): nothing to update
        if (!s->commit_requested) return;
        --in_flight_;
        spdlog::error("queue: id={} write failed: {}", s->id, std::strerror(err ? err : EIO));
        // Moved out first: the callback may destroy the Incoming, which clears s->done.
        if (auto done = std::exchange(s->done, nullptr)) done(classify_errno(err ? err : EIO));
      });
}

// Group commit of names: one fsync of msg/ makes durable every message created since the
// last one and every removal asked for since then. No 250 is sent before the fsync after
// a message's create has returned, and no removal is reported before it either.
void Store::run_batch() {
  batch_running_ = true;
  auto batch = std::make_shared<std::vector<std::shared_ptr<Spool>>>(std::move(created_));
  created_.clear();
  auto removals = std::make_shared<std::vector<Removal>>(std::move(removing_));
  removing_.clear();
  auto dir_err = std::make_shared<int>(0);
  const int msg_fd = msg_fd_;
  loop_.queue_work(
      [removals, dir_err, msg_fd, fds = dir_fds_] {
        for (auto& r : *removals)
          if (::unlinkat(msg_fd, r.id.c_str(), 0) != 0 && errno != ENOENT) r.err = errno;
        if (::fsync(msg_fd) != 0) *dir_err = errno;
      },
      [this, alive = alive_, batch, removals, dir_err] {
        if (!*alive) return;  // the Store is gone (shutdown): nothing to update
        batch_running_ = false;
        for (auto& r : *removals) {
          const int err = r.err ? r.err : *dir_err;
          auto done = std::move(r.done);
          if (err) done(Error::temp(std::string("remove failed: ") + std::strerror(err)));
          else done(ok_status());
        }
        for (auto& s : *batch) {
          s->name_durable = true;
          s->dir_err = *dir_err;
          maybe_committed(s);
        }
        if (!created_.empty() || !removing_.empty()) run_batch();
      });
}

void Store::refresh_free_space() {
  if (free_refresh_running_) return;
  free_refresh_running_ = true;
  auto result = std::make_shared<uint64_t>(UINT64_MAX);
  std::string dir = dir_;
  loop_.queue_work(
      [result, dir] {
        struct statvfs v {};
        if (::statvfs(dir.c_str(), &v) == 0) *result = uint64_t(v.f_bavail) * v.f_frsize;
      },
      [this, alive = alive_, result] {
        if (!*alive) return;  // the Store is gone (shutdown): nothing to update
        free_refresh_running_ = false;
        free_bytes_ = *result;
      });
}

void Store::append_status(const std::string& id, std::string records, std::function<void(Status)> done) {
  AppendQueue& q = appends_[id];
  q.items.push_back({std::move(records), std::move(done)});
  if (q.in_flight == 0) start_append(id);
}

// Writes every append waiting for `id` in one write and one fdatasync. Runs only when no
// other append to that file is in flight (see append_status).
void Store::start_append(const std::string& id) {
  AppendQueue& q = appends_[id];
  q.in_flight = q.items.size();
  std::string records;
  for (const auto& a : q.items) records += a.records;
  auto err = std::make_shared<int>(0);
  const int msg_fd = msg_fd_;
  loop_.queue_work(
      [id, records = std::move(records), err, msg_fd, fds = dir_fds_] {
        int fd = ::openat(msg_fd, id.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd < 0) {
          *err = errno;
          return;
        }
        struct stat st {};
        const bool sized = ::fstat(fd, &st) == 0;
        if (int e = write_all(fd, records.data(), records.size())) *err = e;
        if (!*err && ::fdatasync(fd) != 0) *err = errno;
        // A partly written record (a full disk) is cut off again, so that the next append
        // cannot fuse with it into a malformed one. Nothing else appends meanwhile, so the
        // size seen above is where our own records began.
        if (*err && sized && ::ftruncate(fd, st.st_size) == 0) ::fdatasync(fd);
        ::close(fd);
      },
      [this, alive = alive_, id, err] {
        if (!*alive) return;  // the Store is gone (shutdown): nothing to update
        auto it = appends_.find(id);
        AppendQueue& q = it->second;
        std::vector<PendingAppend> finished(std::make_move_iterator(q.items.begin()),
                                            std::make_move_iterator(q.items.begin() + long(q.in_flight)));
        q.items.erase(q.items.begin(), q.items.begin() + long(q.in_flight));
        q.in_flight = 0;
        if (q.items.empty()) appends_.erase(it);
        else start_append(id);
        if (*err) spdlog::error("queue: id={} status update failed: {}", id, std::strerror(*err));
        // Callbacks last: they may append again (to this id too), which queues behind.
        for (auto& a : finished) {
          if (*err) a.done(Error::temp(std::string("status update failed: ") + std::strerror(*err)));
          else a.done(ok_status());
        }
      });
}

// Removals ride the commit batches: the unlink and the directory fsync that makes it
// durable are shared with every message committed or removed at the same time.
void Store::remove(const std::string& id, std::function<void(Status)> done) {
  removing_.push_back(Removal{id, std::move(done), 0});
  if (!batch_running_) run_batch();
}

bool Store::has_room(uint64_t need) const noexcept {
  return free_bytes_ >= min_free_ && free_bytes_ - min_free_ >= need;
}

}  // namespace tern::queue
