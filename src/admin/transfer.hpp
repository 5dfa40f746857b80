// Moving queued mail between nodes (`ternctl export` and `ternctl import`): writes and reads
// export archives (queue/archive.hpp) on the thread pool, asks the queue manager to hold and
// release messages, queues imported ones through the injector, and owns the index of imports
// already done (queue_dir/imported, queue-format.md "Export archives").
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "io/loop.hpp"
#include "qmgr/manager.hpp"
#include "queue/injector.hpp"

namespace tern::admin {

struct TransferSettings {
  std::string hostname;   // names this node in the archives it writes
  std::string queue_dir;  // where the index of imports lives
  uint64_t max_entry = 0; // largest archive entry accepted (bytes)
};

// The answer to one export or import: a line per message (`id`: what happened), and when the
// command could not run at all, why.
struct TransferAnswer {
  std::vector<qmgr::AdminResult> results;
  std::string fatal;
};

class Transfer {
 public:
  Transfer(io::Loop& loop, const Clock& clock, qmgr::Manager& manager, queue::Injector& injector,
           TransferSettings settings);
  ~Transfer();
  void apply(TransferSettings s) { settings_ = std::move(s); }

  // `path` must be absolute. The archive is created (O_EXCL, mode 0600) before anything is
  // held; messages leave this queue only once it is durable.
  void export_to(const qmgr::Selector& sel, const std::string& path, const std::string& who,
                 std::function<void(TransferAnswer)> done);
  // One import at a time; refused while the queue is still being read at startup.
  void import_from(const std::string& path, const std::string& who, std::function<void(TransferAnswer)> done);

  // Startup: imported messages found in msg/ whose origin the index lacks (a crash came
  // between the commit and the index write) are added to it.
  void note_recovered(const queue::Envelope& env);
  void recovery_done();

  static constexpr size_t kImportBatch = 64;               // messages read per thread-pool job
  static constexpr uint64_t kImportBatchBytes = 32u << 20; // ... or this many bytes

 private:
  struct ExportRun;
  struct ImportRun;
  void import_next(const std::shared_ptr<ImportRun>& run);
  void import_committed(const std::shared_ptr<ImportRun>& run);

  io::Loop& loop_;
  const Clock& clock_;
  qmgr::Manager& manager_;
  queue::Injector& injector_;
  TransferSettings settings_;
  bool importing_ = false;
  std::vector<std::string> recovered_origins_;  // "HOST ID NEWID"
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tern::admin
