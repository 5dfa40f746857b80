// The scheduler: which queued recipients are due, grouped by destination, and how many
// deliveries run at once. It owns the in-memory state of every queued message and is the
// one writer of recipient state changes (through the store). Delivery workers reach it
// through take()/report()/closed().
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "config/config.hpp"
#include "io/loop.hpp"
#include "queue/envelope.hpp"
#include "queue/store.hpp"

namespace tern::scheduler {

// Where a group of recipients goes: the MX set of a domain, or a configured route.
struct Destination {
  std::string key;     // "mx:domain" or "route:host:port"
  bool route = false;
  std::string domain;  // for MX destinations
  std::string host;    // for routes: a name or an IP literal
  uint16_t port = 0;   // for routes; 0 = delivery.port
};

// One transaction's worth of work: a message's recipients for one destination.
struct Job {
  uint64_t id = 0;
  std::string msg_id;
  std::string sender;
  std::vector<std::string> mail_params;
  int64_t arrival_us = 0;
  std::vector<size_t> rcpt_index;     // into the message's recipients
  std::vector<std::string> rcpts;     // their addresses, same order
  std::vector<std::vector<std::string>> rcpt_params;  // their ESMTP parameters, same order
};

enum class Result { Delivered, Deferred, Failed, RetryNow };
struct RcptOutcome {
  Result result = Result::Deferred;
  std::string reply;
  bool dsn_passed = false;  // the next hop took RFC 3461 parameters (it reports from now on)
};

// Starts a delivery worker for a destination with its first job; the worker asks take()
// for more while its connection lasts (implemented by delivery::Agent).
class Dispatcher {
 public:
  virtual ~Dispatcher() = default;
  virtual void open(const Destination& d, Job first) = 0;
};

struct QueueEntry {  // one line of `ternctl queue`
  queue::Envelope env;
  uint64_t size = 0;
  int64_t next_attempt_us = 0;  // 0: none scheduled (in flight, or nothing left to do)
};

class Scheduler {
 public:
  Scheduler(io::Loop& loop, const Clock& clock, queue::Store& store, const config::Config& cfg,
            uint64_t seed);
  ~Scheduler();
  void set_dispatcher(Dispatcher* d) { dispatcher_ = d; }
  // Shutdown: no more dispatching and no timer keeping the loop alive.
  void stop();
  void apply(const config::Config& cfg);

  // A committed message (new or recovered at startup).
  void add(const queue::Envelope& env, uint64_t size, bool recovered);
  // Every recovered message has been added: build the notices still owed (those not
  // already in the queue from before a crash).
  void recovery_done();

  // Worker side.
  std::optional<Job> take(const std::string& dest_key);
  // `attempt_started_us` for outcomes decided without an attempt (expiry, a destination
  // that is down): the recipients keep their last attempt's time and host.
  static constexpr int64_t kNoAttempt = -1;
  // Outcomes in the job's recipient order; `relay` names the host for the log line.
  void report(const Job& job, const std::vector<RcptOutcome>& outcomes, const std::string& relay,
              int64_t attempt_started_us);
  // A worker ended. `reached`: it got a usable SMTP session at some point (else the
  // destination is down and waits for its own retry time).
  void closed(const std::string& dest_key, bool reached, const std::string& reason);

  // Admin side.
  void flush();
  [[nodiscard]] std::vector<QueueEntry> list() const;
  [[nodiscard]] size_t messages() const noexcept { return msgs_.size(); }
  [[nodiscard]] size_t in_flight() const noexcept { return total_conns_; }

 private:
  struct Msg {
    queue::Envelope env;
    uint64_t size = 0;
    size_t open_jobs = 0;   // jobs waiting, ready or in flight
    bool removing = false;
    bool failure_notice_busy = false;  // a failure notice is being queued
    int notices_pending = 0;           // notices of any kind being built (the file must stay)
  };
  enum class JobState { Waiting, Ready, InFlight };
  struct JobRec {
    Job job;
    std::string dest;
    JobState state = JobState::Waiting;
    int64_t due_us = 0;
  };
  struct Dest {
    Destination info;
    size_t jobs = 0;  // jobs of this destination in any state (it is forgotten at 0)
    std::deque<uint64_t> ready;
    uint32_t conns = 0;
    uint32_t failures = 0;
    int64_t down_until_us = 0;
  };

  Destination destination_for(const std::string& rcpt_domain) const;
  void make_jobs(Msg& m, const std::vector<size_t>& indices, int64_t due_us);
  void wait(uint64_t job_id, int64_t due_us);
  void arm_timer();
  void on_timer();
  void dispatch();
  void expire(JobRec& j, const std::string& why);
  void job_finished(const std::string& msg_id);
  void forget_job(uint64_t job_id);  // erases it; drops its destination when nothing is left
  void maybe_remove(const std::string& msg_id);
  [[nodiscard]] int64_t backoff_us(unsigned attempts);

  // Notices (notices.cpp): bounces, delay warnings, "relayed" notices.
  [[nodiscard]] bool owes_failure_notice(const Msg& m, const queue::Recipient& r) const;
  void send_failure_notices(const std::string& msg_id);
  void send_delay_warning(const std::string& msg_id, const std::vector<size_t>& idx);
  void send_relayed_notice(const std::string& msg_id, const std::vector<size_t>& idx);
  enum class NoticeKind { Failure, Delay, Relayed };
  // Reads the original, builds the DSN for `idx` and commits it to the queue as a new
  // message from <>; `done(true)` once it is durable.
  void queue_notice(const std::string& msg_id, NoticeKind kind, const std::vector<size_t>& idx,
                    std::function<void(bool)> done);

  io::Loop& loop_;
  const Clock& clock_;
  queue::Store& store_;
  config::Delivery delivery_;
  std::map<std::string, config::Route> routes_;
  std::string hostname_;
  std::string postmaster_;
  std::map<std::string, std::unique_ptr<queue::Incoming>> notices_;  // being committed
  std::map<std::string, std::set<size_t>> covered_;  // original id → recipients a queued bounce reports
  Dispatcher* dispatcher_ = nullptr;
  std::mt19937_64 rng_;
  std::map<std::string, Msg> msgs_;
  std::map<uint64_t, JobRec> jobs_;
  std::set<std::pair<int64_t, uint64_t>> waiting_;  // (due, job id)
  std::map<std::string, Dest> dests_;
  uint32_t total_conns_ = 0;
  uint64_t next_job_ = 1;
  io::Timer timer_;
  int64_t timer_at_ = 0;
  bool stopped_ = false;
  io::Timer notice_retry_;  // a notice that could not be queued is tried again later
};

}  // namespace tern::scheduler
