// The queue manager: owns the table of queued messages and is the only writer of their
// state records (delivered, deferred, failed, failed-notified, delay-warned). It turns a
// message into jobs (one per destination) for the scheduler, turns each job's outcomes
// into records, retries and expiry, and asks bounce/ for the notices owed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "bounce/notices.hpp"
#include "common/alarm.hpp"
#include "common/clock.hpp"
#include "common/stats.hpp"
#include "config/config.hpp"
#include "qmgr/files.hpp"
#include "qmgr/jobs.hpp"
#include "qmgr/selector.hpp"
#include "queue/envelope.hpp"
#include "scheduler/scheduler.hpp"

namespace tern::qmgr {

struct Settings {
  config::Delivery delivery;
  std::map<std::string, config::Route> routes;
  std::string postmaster;
};

enum class AdminOp { Hold, Release, Delete, Flush };
const char* to_string(AdminOp op) noexcept;

// One message's answer to an operator command: "held", "released", "deleted", "flushed",
// or `error` set ("no such message", "not held", the I/O error).
struct AdminResult {
  std::string id;
  std::string done;
  std::string error;
};

// A message ready to be written into an export archive: held durably, no attempt in flight,
// no notice being built, and nothing else will touch it until export_finish().
struct ExportItem {
  std::string id;
  std::string path;             // its queue file
  bool was_held = false;        // an operator had held it before the export
  int64_t next_attempt_us = 0;  // when its next attempt was due (0: none scheduled)
};

struct QueueEntry {  // one line of `ternctl queue`
  queue::Envelope env;
  uint64_t size = 0;
  int64_t next_attempt_us = 0;  // 0: none scheduled (in flight, or nothing left to do)
};

class Manager final : public Jobs, public scheduler::JobOwner {
 public:
  // `retry_alarm` paces retries of notices that could not be queued.
  Manager(const Clock& clock, QueueFiles& files, scheduler::Scheduler& sched, bounce::Notices& notices,
          Alarm& retry_alarm, Settings settings, uint64_t seed);
  void apply(Settings s) { settings_ = std::move(s); }
  void stop();

  // A committed message: new, or read back at startup (`recovered`). Until
  // recovery_done(), recovered mail is scheduled but no notice is sent (every notice-for
  // record must be known first, or a bounce could go out twice).
  void add(queue::Envelope env, uint64_t size, bool recovered);
  void recovery_done();

  // Jobs (delivery side).
  std::optional<DeliveryRequest> begin(JobId id) override;
  void report(JobId id, std::vector<Outcome> outcomes, int64_t attempt_started_us) override;
  // JobOwner (scheduler side): the job's destination is down.
  void parked(JobId id, const std::string& reason) override;

  // Admin side.
  void flush() { sched_.flush(); }
  // Applies an operator command to the selected messages; `done` gets one result per
  // message once its record is durable. `who` names the operator in the log ("uid=0").
  // Hold: a durable !held record; the message is not attempted until released, but still
  // expires. Release: !released, then due now. Delete: a durable !deleted record first,
  // then the attempt in flight is cancelled and the file removed (no bounce).
  void admin(AdminOp op, const Selector& sel, const std::string& who,
             std::function<void(std::vector<AdminResult>)> done);
  // Export (ternctl export), in two steps around the archive write. export_prepare holds
  // the selected messages durably (!held), waits for attempts in flight and notices being
  // built to end (an attempt's outcome is recorded as usual: a message it finished is not
  // exported), then hands out the messages to write, plus one result per message it will
  // not export. export_finish: `written` ones get a durable !exported record, lose their
  // jobs and their files; `kept` ones (the archive could not be written) are released
  // again unless an operator had held them.
  void export_prepare(const Selector& sel, const std::string& who,
                      std::function<void(std::vector<ExportItem>, std::vector<AdminResult>)> ready);
  void export_finish(std::vector<ExportItem> written, std::vector<ExportItem> kept, const std::string& who,
                     std::function<void(std::vector<AdminResult>)> done);
  // Origins ("HOST ID") of the imported messages now queued (ternctl import's duplicate check).
  [[nodiscard]] std::vector<std::string> origins() const;
  // Ids the selector picks (unknown explicit ids come back in `unknown`).
  [[nodiscard]] std::vector<std::string> select(const Selector& sel, std::vector<std::string>& unknown) const;
  // Cancels the delivery attempt of a job in flight (the agent drops its connection).
  void set_canceller(std::function<void(JobId)> c) { cancel_ = std::move(c); }
  void set_counters(Counters* c) { counters_ = c; }
  // Held messages, and the arrival time of the oldest message (0 when the queue is empty).
  [[nodiscard]] size_t held() const;
  [[nodiscard]] int64_t oldest_arrival_us() const;
  [[nodiscard]] const queue::Envelope* envelope(const std::string& id) const;
  [[nodiscard]] std::string path_of(const std::string& id) const { return files_.path_of(id); }
  [[nodiscard]] std::vector<QueueEntry> list() const;
  [[nodiscard]] size_t messages() const noexcept { return msgs_.size(); }
  [[nodiscard]] bool recovering() const noexcept { return recovering_; }
  // Recipients remembered as covered by a bounce queued before a restart (only recovery
  // fills this; it empties as they are recorded).
  [[nodiscard]] size_t covered_entries() const noexcept;

  static constexpr int64_t kNoAttempt = -1;

 private:
  struct Msg {
    queue::Envelope env;
    uint64_t size = 0;
    // Kept small: a queued message costs memory for as long as it waits (a million of
    // them must fit in under a GiB).
    uint32_t open_jobs = 0;            // jobs waiting, ready or in flight
    bool removing = false;
    bool failure_notice_busy = false;  // a bounce is being queued
    bool exporting = false;            // ternctl export has it: no other command touches it
    int notices_pending = 0;           // notices of any kind being built (the file must stay)
  };
  struct Job {
    const std::string* msg_id;  // the key of its message in msgs_ (it outlives its jobs)
    std::vector<size_t> rcpts;  // indices into the message's recipients
  };

  void make_jobs(Msg& m, const std::vector<size_t>& idx, int64_t due_us);
  void record(JobId id, std::vector<Outcome> outcomes, int64_t attempt_started_us);
  // True when these outcomes deliver the message's last open recipients with nothing owed
  // after them: it is removed without recording them first.
  [[nodiscard]] bool finishes_message(const Msg& m, JobId id, const Job& job,
                                      const std::vector<Outcome>& outcomes) const;
  [[nodiscard]] bool expired(const Msg& m, int64_t now_us) const;
  [[nodiscard]] int64_t expiry_us(const Msg& m) const;
  struct AdminBatch;
  void admin_one(AdminOp op, const std::string& id, const std::shared_ptr<AdminBatch>& batch);
  void admin_step_done(const std::shared_ptr<AdminBatch>& batch);
  struct ExportWait;  // export.cpp
  void export_held(const std::shared_ptr<ExportWait>& w);
  void poll_exports();
  void forget_jobs(const std::set<std::string>& ids);
  [[nodiscard]] std::vector<JobId> jobs_of(const std::set<std::string>& ids) const;
  void send_failure_notices(const std::string& msg_id);
  void send_notice(const std::string& msg_id, bounce::NoticeKind kind, std::vector<size_t> idx);
  void send_delay_warning(const std::string& msg_id, const std::vector<size_t>& deferred);
  void retry_notices_later();
  void maybe_remove(const std::string& msg_id);
  [[nodiscard]] int64_t backoff_us(unsigned attempts);
  [[nodiscard]] bounce::Policy policy() const;

  const Clock& clock_;
  QueueFiles& files_;
  scheduler::Scheduler& sched_;
  bounce::Notices& notices_;
  Alarm& retry_alarm_;
  Settings settings_;
  std::mt19937_64 rng_;
  std::map<std::string, Msg> msgs_;
  std::map<JobId, Job> jobs_;
  JobId next_job_ = 1;
  std::function<void(JobId)> cancel_;
  Counters* counters_ = nullptr;
  bool recovering_ = true;
  bool stopped_ = false;
  // Recipients a bounce queued before a restart already reports (its notice-for record),
  // by original message id: filled only while recovering, emptied as they are recorded
  // notified, and dropped with their message.
  std::map<std::string, std::vector<size_t>> covered_;
  // While recovering: bounces read back (scheduled at recovery_done) and "relayed"
  // notices owed by mail delivered meanwhile (sent then).
  std::vector<std::pair<std::string, int64_t>> held_back_;
  std::vector<std::pair<std::string, std::vector<size_t>>> relayed_after_recovery_;
  // Exports waiting for attempts in flight (or notices being built) to end.
  std::vector<std::shared_ptr<ExportWait>> export_waits_;
};

}  // namespace tern::qmgr
