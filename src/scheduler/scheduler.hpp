// The scheduler: which jobs are due, grouped by destination, and how many deliveries run
// at once. It knows job ids, due times and destinations only; the queue manager owns the
// messages behind the jobs and records every outcome. Destinations that cannot be reached
// are probed by one connection until they answer (their other mail waits).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <random>
#include <unordered_map>
#include <string>
#include <vector>

#include "common/alarm.hpp"
#include "common/clock.hpp"
#include "config/config.hpp"
#include "scheduler/destination.hpp"

namespace tern::scheduler {

using JobId = uint64_t;

// Starts a delivery connection for a destination with its first job; the connection asks
// take() for more while it lasts (implemented by delivery::Agent).
class Dispatcher {
 public:
  virtual ~Dispatcher() = default;
  virtual void open(const Destination& d, JobId first) = 0;
};

// The owner of the jobs (the queue manager), told when a ready job is given back without
// an attempt because its destination turned out to be down.
class JobOwner {
 public:
  virtual ~JobOwner() = default;
  virtual void parked(JobId id, const std::string& reason) = 0;
};

struct Limits {
  uint32_t max_in_flight = 100;
  uint32_t max_per_destination = 10;
  config::Retry retry;  // also paces the probes of a destination that is down
};

class Scheduler {
 public:
  Scheduler(Alarm& alarm, const Clock& clock, Limits limits, uint64_t seed);
  void set_dispatcher(Dispatcher* d) { dispatcher_ = d; }
  void set_owner(JobOwner* o) { owner_ = o; }
  void apply(const Limits& l) { limits_ = l; }
  // Shutdown: no more dispatching and no alarm keeping the loop alive.
  void stop();

  // A job for `dest` that becomes ready at `due_us`.
  void add(JobId id, const Destination& dest, int64_t due_us);
  // The job is over (its outcome recorded) or cancelled: forget it.
  void finished(JobId id);

  // Connection side: the next ready job of the destination, now in flight.
  std::optional<JobId> take(const std::string& dest_key);
  // A connection ended. `reached`: it got a usable SMTP session at some point (or gave up
  // for a reason that says nothing about the destination); otherwise the destination is
  // down and its mail waits for the probe's retry.
  void closed(const std::string& dest_key, bool reached, const std::string& reason);

  // Admin side: everything waiting becomes due now; destinations down are forgiven.
  void flush();
  // One waiting job becomes due now (ternctl flush ID, release); its destination's
  // down state is forgiven too. False when the job is not waiting.
  bool expedite(JobId id);
  [[nodiscard]] std::optional<int64_t> due(JobId id) const;
  [[nodiscard]] bool in_flight(JobId id) const;
  [[nodiscard]] size_t in_flight() const noexcept { return total_conns_; }
  [[nodiscard]] size_t jobs() const noexcept { return jobs_.size(); }
  [[nodiscard]] bool destination_down(const std::string& key) const;

 private:
  enum class State { Waiting, Ready, InFlight };
  struct Dest;
  struct Job {
    Dest* dest = nullptr;  // map nodes are stable; a Dest outlives its jobs (jobs > 0)
    State state = State::Waiting;
    int64_t due_us = 0;
  };
  struct Dest {
    Destination info;
    size_t jobs = 0;  // jobs of this destination in any state (it is forgotten at 0)
    std::deque<JobId> ready;
    uint32_t conns = 0;
    uint32_t failures = 0;  // rounds of failed connections (a round counts once)
    int64_t down_until_us = 0;
  };

  void wait(JobId id, int64_t due_us);
  [[nodiscard]] bool waiting_valid(const std::pair<int64_t, JobId>& e) const;
  void prune_waiting();  // drops stale entries from the top of waiting_
  void arm();
  void on_alarm();
  void dispatch();
  void maybe_forget(const std::string& key);
  [[nodiscard]] int64_t backoff_us(unsigned failures);

  Alarm& alarm_;
  const Clock& clock_;
  Limits limits_;
  Dispatcher* dispatcher_ = nullptr;
  JobOwner* owner_ = nullptr;
  std::mt19937_64 rng_;
  std::unordered_map<JobId, Job> jobs_;
  // (due, job), a min-heap on due time. Entries are not removed when a job stops waiting
  // (finished, or waiting again with another due time): one counts only while its job is
  // still Waiting with that due time (see waiting_valid). At startup a million recovered
  // jobs go through here; a heap in one vector costs a fraction of a tree node per job.
  std::vector<std::pair<int64_t, JobId>> waiting_;
  std::map<std::string, Dest> dests_;
  uint32_t total_conns_ = 0;
  int64_t alarm_at_ = 0;
  int64_t last_sweep_us_ = 0;
  bool stopped_ = false;
  bool dispatching_ = false;
};

}  // namespace tern::scheduler
