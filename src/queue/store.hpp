// The on-disk queue (queue-format.md): the only writer of new queue files. Writes incoming
// messages in place in msg/ through the thread pool, closes each with a checksummed record
// and one fdatasync that overlaps the fsync of msg/ after its create (that directory fsync
// shared by every message created meanwhile and every removal: group commit), and recovers
// the queue at startup.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/clock.hpp"
#include "common/result.hpp"
#include "io/loop.hpp"
#include "queue/envelope.hpp"
#include "queue/queue_id.hpp"

namespace tern::queue {

enum class CommitStatus { Committed, NoSpace, IoError };

struct Spool;  // one message being written; shared with the thread-pool jobs that write it

// A message being received. Owned by the SMTP connection; destroying it without commit()
// aborts the message (its temporary file is removed).
class Incoming {
 public:
  ~Incoming();
  Incoming(const Incoming&) = delete;
  Incoming& operator=(const Incoming&) = delete;

  [[nodiscard]] const std::string& id() const noexcept;
  void append(std::string_view content);
  // Finishes, fsyncs and commits; `done` runs on the loop thread, exactly once, unless the
  // Incoming was destroyed first. After abort() it reports IoError (nothing was stored).
  void commit(std::function<void(CommitStatus)> done);
  void abort();

 private:
  friend class Store;
  explicit Incoming(std::shared_ptr<Spool> s) : s_(std::move(s)) {}
  std::shared_ptr<Spool> s_;
};

struct RecoveryReport {
  std::vector<Envelope> messages;  // every committed message, oldest first
  std::vector<uint64_t> sizes;     // their data sizes, same order
  size_t leftovers_removed = 0;  // in tmp/, or in msg/ still being received: removed
  size_t corrupt_moved = 0;
  size_t left_untouched = 0;   // need a newer tern (must-understand record): left in msg/
  size_t deleted_removed = 0;  // had a !deleted record: unlinked
  size_t exported_removed = 0;  // had an !exported record: unlinked
};

// The counts of a recovery, without the messages (recover_async hands those out in batches).
struct RecoveryStats {
  size_t messages = 0;
  size_t leftovers_removed = 0;
  size_t corrupt_moved = 0;
  size_t left_untouched = 0;
  size_t deleted_removed = 0;
  size_t exported_removed = 0;
};

class Store {
 public:
  // Creates the directory tree if needed. Blocking: call before the loop runs.
  static Result<std::unique_ptr<Store>> open(io::Loop& loop, const std::string& dir,
                                             const Clock& clock);
  ~Store();
  // Stops the background free-space refresh and any recovery under way, so the loop can end.
  void close() {
    free_timer_.stop();
    *recovery_stopped_ = true;
  }

  // Startup recovery (blocking, before serving): removes leftovers in tmp/ and messages in
  // msg/ that were still being received (no 250 was given for them), moves unreadable
  // files to corrupt/, unlinks files with a !deleted or !exported record, leaves alone files that need a
  // newer tern, and returns every committed message. Reads msg/ on several threads (one
  // read() per small file into a reused buffer). Messages may have `held` set.
  Result<RecoveryReport> recover();

  // The same recovery without blocking the loop, so delivery can start before all of msg/
  // has been read. The work runs on the thread pool (a few chunks at a time, leaving threads
  // for commits); every callback runs on the loop thread:
  //  - `listed(files)` once, when tmp/ has been emptied and msg/ listed (`files` names),
  //    before any batch: from then on new messages may be begun (recovery touches only the
  //    names it listed), so the caller can open its listener;
  //  - `batch(messages, sizes)` once per chunk of up to kRecoveryChunk files, in queue order
  //    (oldest first across batches too), sizes parallel to messages;
  //  - `done(stats)` once at the end, after every batch and after tmp/ and msg/ have been
  //    fsync'd, or `done(error)` on a read error (EIO, EMFILE, ...: startup should stop;
  //    batches already delivered stay valid, no more follow).
  // Until `done`, the caller has not seen every file: in particular not every `notice-for`
  // record, so it must not decide on bounces or delay warnings before then. Call once,
  // before any message is begun (recovery removes files in msg/ that are still being
  // received, so none may be begun before `listed`); the Store must outlive the callbacks.
  // close() stops a recovery under way: no more chunks are read, and `done` reports an
  // error once the chunks in flight are back.
  void recover_async(std::function<void(size_t files)> listed,
                     std::function<void(std::vector<Envelope>&&, std::vector<uint64_t>&&)> batch,
                     std::function<void(Result<RecoveryStats>)> done);
  static constexpr size_t kRecoveryChunk = 2048;

  // Starts a message: creates msg/ID at once (in the thread pool), so that the create and
  // the directory fsync run while the body arrives. `history`: an imported message's state
  // records, written into the header (codec encode_header).
  std::unique_ptr<Incoming> begin(Envelope env, const std::vector<std::string>& history = {});

  // Free-space reserve: true when the file system has `min_free` + `need` bytes available.
  // Uses a figure refreshed in the thread pool every second (statvfs never on the loop).
  [[nodiscard]] bool has_room(uint64_t need) const noexcept;
  void set_min_free(uint64_t bytes) noexcept { min_free_ = bytes; }

  // Called on the loop thread for every message committed (the scheduler subscribes here).
  void on_committed(std::function<void(const Envelope&, uint64_t size)> cb) { committed_cb_ = std::move(cb); }

  // Appends status records (codec encode_status) to a committed message and fdatasyncs them.
  // Appends to one message are serialised: at most one write is in flight per file, records
  // land in call order, and those asked for while one is in flight share the next write and
  // fdatasync. (A failed append cuts its own partial record off again, which is only safe
  // because no other append to that file can run meanwhile.)
  void append_status(const std::string& id, std::string records, std::function<void(Status)> done);
  // Removes a message whose every recipient is final and every notice queued; `done` once
  // the unlink is durable (the directory fsync is shared with the commit batches).
  void remove(const std::string& id, std::function<void(Status)> done);

  [[nodiscard]] const std::string& dir() const noexcept { return dir_; }
  [[nodiscard]] size_t commits_in_flight() const noexcept { return in_flight_; }

 private:
  friend class Incoming;
  friend struct Spool;
  Store(io::Loop& loop, std::string dir, const Clock& clock, int lock_fd, int tmp_fd, int msg_fd);
  void submit_create(const std::shared_ptr<Spool>& s);
  void submit_write(const std::shared_ptr<Spool>& s, bool final);
  void write_done(const std::shared_ptr<Spool>& s);
  void maybe_committed(const std::shared_ptr<Spool>& s);
  void run_batch();
  void refresh_free_space();
  void discard(const std::shared_ptr<Spool>& s);
  void start_append(const std::string& id);

  struct PendingAppend {
    std::string records;
    std::function<void(Status)> done;
  };

  io::Loop& loop_;
  std::string dir_;
  const Clock& clock_;
  struct RecoveryTask;  // recovery.cpp
  int lock_fd_;  // flock'd for the process's lifetime: one ternd per queue
  int tmp_fd_;
  int msg_fd_;
  // Owns tmp_fd_ and msg_fd_: every thread-pool job that uses them holds a copy, so a job
  // still queued at exit never works on a closed (or reused) descriptor.
  std::shared_ptr<void> dir_fds_;
  IdGenerator ids_;
  uint64_t min_free_ = 0;
  uint64_t free_bytes_ = UINT64_MAX;
  io::Timer free_timer_;
  bool free_refresh_running_ = false;
  std::vector<std::shared_ptr<Spool>> created_;  // created in msg/, waiting for the next directory fsync
  struct Removal {
    std::string id;
    std::function<void(Status)> done;
    int err = 0;
  };
  std::vector<Removal> removing_;              // finished, waiting for the next batch
  bool batch_running_ = false;
  size_t in_flight_ = 0;
  std::function<void(const Envelope&, uint64_t)> committed_cb_;
  // Thread-pool completions still queued when the Store is destroyed (at exit) see this
  // false and do nothing.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::shared_ptr<bool> recovery_stopped_ = std::make_shared<bool>(false);  // set by close()
  // Status appends per message id: [0, in_flight) are being written, the rest wait.
  struct AppendQueue {
    std::vector<PendingAppend> items;
    size_t in_flight = 0;
  };
  std::unordered_map<std::string, AppendQueue> appends_;
};

// errno → commit status: a full disk or quota is NoSpace (452 4.3.1), anything else IoError.
CommitStatus classify_errno(int err) noexcept;

}  // namespace tern::queue
