// Scheduling: due times, destinations, concurrency and the probing of destinations that
// are down.
#include "scheduler/scheduler.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "scheduler/backoff.hpp"

namespace tern::scheduler {

namespace {
constexpr int64_t kSecond = 1000000;
// waiting_ is a min-heap on (due, job): std::push_heap keeps the largest on top, so compare
// the other way round.
constexpr auto kLater = [](const std::pair<int64_t, JobId>& a, const std::pair<int64_t, JobId>& b) {
  return a > b;
};
}

Scheduler::Scheduler(Alarm& alarm, const Clock& clock, Limits limits, uint64_t seed)
    : alarm_(alarm), clock_(clock), limits_(limits), rng_(seed) {}

int64_t Scheduler::backoff_us(unsigned failures) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  return int64_t(retry_delay(limits_.retry, failures, unit(rng_)).count()) * kSecond;
}

void Scheduler::add(JobId id, const Destination& dest, int64_t due_us) {
  Dest& d = dests_[dest.key];
  if (d.info.key.empty()) d.info = dest;
  ++d.jobs;
  jobs_[id].dest = &d;
  wait(id, due_us);
}

void Scheduler::wait(JobId id, int64_t due_us) {
  Job& j = jobs_.at(id);
  j.state = State::Waiting;
  j.due_us = due_us;
  waiting_.emplace_back(due_us, id);
  std::push_heap(waiting_.begin(), waiting_.end(), kLater);
  arm();
}

bool Scheduler::waiting_valid(const std::pair<int64_t, JobId>& e) const {
  auto it = jobs_.find(e.second);
  return it != jobs_.end() && it->second.state == State::Waiting && it->second.due_us == e.first;
}

void Scheduler::prune_waiting() {
  while (!waiting_.empty() && !waiting_valid(waiting_.front())) {
    std::pop_heap(waiting_.begin(), waiting_.end(), kLater);
    waiting_.pop_back();
  }
}

void Scheduler::finished(JobId id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end()) return;
  Dest& d = *it->second.dest;
  const std::string key = d.info.key;
  // Its waiting_ entry, if any, goes stale with the job (dropped when it reaches the top).
  if (it->second.state == State::Ready) {
    auto& r = d.ready;
    for (auto q = r.begin(); q != r.end(); ++q)
      if (*q == id) {
        r.erase(q);
        break;
      }
  }
  jobs_.erase(it);
  if (d.jobs) --d.jobs;
  maybe_forget(key);
  arm();
}

// A destination is remembered while it has jobs or connections, or while it is down (so
// new mail for it waits for the probe too); otherwise nothing about it is worth keeping.
void Scheduler::maybe_forget(const std::string& key) {
  auto d = dests_.find(key);
  if (d == dests_.end()) return;
  if (d->second.jobs > 0 || d->second.conns > 0 || d->second.down_until_us > clock_.now_us()) return;
  dests_.erase(d);
}

// One alarm for the whole queue, set to the earliest due time (no directory scans).
void Scheduler::arm() {
  prune_waiting();
  if (waiting_.empty() || stopped_) {
    alarm_.cancel();
    alarm_at_ = 0;
    return;
  }
  const int64_t first = waiting_.front().first;
  if (alarm_at_ == first) return;
  alarm_at_ = first;
  alarm_.set(first, [this] {
    alarm_at_ = 0;
    on_alarm();
  });
}

void Scheduler::on_alarm() {
  const int64_t now = clock_.now_us();
  // Destinations that were down and have nothing left are forgotten once their time is up
  // (swept at most once a minute: the scan is over every destination).
  if (now - last_sweep_us_ >= 60 * kSecond) {
    last_sweep_us_ = now;
    std::erase_if(dests_, [now](const auto& d) {
      return d.second.jobs == 0 && d.second.conns == 0 && d.second.down_until_us <= now;
    });
  }
  std::vector<std::pair<int64_t, JobId>> later;
  while (!waiting_.empty() && waiting_.front().first <= now) {
    const auto top = waiting_.front();
    std::pop_heap(waiting_.begin(), waiting_.end(), kLater);
    waiting_.pop_back();
    if (!waiting_valid(top)) continue;  // finished, or waiting for another time
    const JobId id = top.second;
    Job& j = jobs_.at(id);
    Dest& d = *j.dest;
    if (d.down_until_us > now) {  // the destination is down: wait for its probe
      later.push_back({d.down_until_us, id});
      continue;
    }
    j.state = State::Ready;
    d.ready.push_back(id);
  }
  for (auto [due, id] : later) {
    jobs_.at(id).due_us = due;
    waiting_.emplace_back(due, id);
    std::push_heap(waiting_.begin(), waiting_.end(), kLater);
  }
  dispatch();
  arm();
}

void Scheduler::dispatch() {
  if (!dispatcher_ || stopped_ || dispatching_) return;
  dispatching_ = true;  // open() may call back into take()/closed(): no nested dispatch
  const int64_t now = clock_.now_us();
  std::vector<std::pair<Destination, JobId>> opens;
  for (auto& [key, d] : dests_) {
    // A destination that failed is probed by one connection until it answers again.
    const uint32_t limit = d.failures > 0 ? 1 : limits_.max_per_destination;
    while (!d.ready.empty() && d.conns < limit && total_conns_ < limits_.max_in_flight && d.down_until_us <= now) {
      ++d.conns;
      ++total_conns_;
      const JobId id = d.ready.front();
      d.ready.pop_front();
      jobs_.at(id).state = State::InFlight;
      opens.emplace_back(d.info, id);
    }
  }
  for (auto& [dest, id] : opens) dispatcher_->open(dest, id);
  dispatching_ = false;
}

std::optional<JobId> Scheduler::take(const std::string& dest_key) {
  auto it = dests_.find(dest_key);
  if (it == dests_.end() || it->second.ready.empty()) return std::nullopt;
  const JobId id = it->second.ready.front();
  it->second.ready.pop_front();
  jobs_.at(id).state = State::InFlight;
  return id;
}

void Scheduler::closed(const std::string& dest_key, bool reached, const std::string& reason) {
  Dest& d = dests_[dest_key];
  if (d.info.key.empty()) d.info.key = dest_key;
  if (d.conns) --d.conns;
  if (total_conns_) --total_conns_;
  const int64_t now = clock_.now_us();
  if (!reached) {
    // Parallel connections that fail in the same round count once: a short outage seen
    // by ten connections must not put the destination at the longest backoff.
    if (d.down_until_us <= now) {
      ++d.failures;
      d.down_until_us = now + backoff_us(d.failures);
      spdlog::info("scheduler: destination {} unreachable ({}); its mail waits {:.0f}s", dest_key, reason,
                   double(d.down_until_us - now) / 1e6);
    }
    // Its other ready mail is not tried on its own: the owner defers it with the probe's
    // reason (so backoff, expiry and delay warnings advance for it too).
    std::vector<JobId> parked(d.ready.begin(), d.ready.end());
    d.ready.clear();
    for (JobId id : parked) jobs_.at(id).state = State::InFlight;
    for (JobId id : parked)
      if (owner_) owner_->parked(id, "Not tried: " + dest_key + " is down (" + reason + ")");
  } else {
    d.failures = 0;
    d.down_until_us = 0;
  }
  maybe_forget(dest_key);
  dispatch();
  arm();
}

bool Scheduler::destination_down(const std::string& key) const {
  auto it = dests_.find(key);
  return it != dests_.end() && it->second.down_until_us > clock_.now_us();
}

void Scheduler::stop() {
  dispatcher_ = nullptr;
  stopped_ = true;
  alarm_.cancel();
}

void Scheduler::flush() {
  const int64_t now = clock_.now_us();
  for (auto& [key, d] : dests_) {
    d.failures = 0;
    d.down_until_us = 0;
  }
  std::vector<std::pair<int64_t, JobId>> all;
  all.swap(waiting_);
  for (const auto& e : all) {
    if (!waiting_valid(e)) continue;
    jobs_.at(e.second).due_us = now;
    waiting_.emplace_back(now, e.second);  // all equal: still a heap
  }
  std::make_heap(waiting_.begin(), waiting_.end(), kLater);
  alarm_at_ = -1;
  arm();
}

bool Scheduler::expedite(JobId id) {
  auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second.state != State::Waiting) return false;
  Dest& d = *it->second.dest;
  d.failures = 0;
  d.down_until_us = 0;
  const int64_t now = clock_.now_us();
  // The old heap entry goes stale (its due time no longer matches the job's).
  it->second.due_us = now;
  waiting_.emplace_back(now, id);
  std::push_heap(waiting_.begin(), waiting_.end(), kLater);
  alarm_at_ = -1;
  arm();
  return true;
}

bool Scheduler::in_flight(JobId id) const {
  auto it = jobs_.find(id);
  return it != jobs_.end() && it->second.state == State::InFlight;
}

std::optional<int64_t> Scheduler::due(JobId id) const {
  auto it = jobs_.find(id);
  if (it == jobs_.end() || it->second.state != State::Waiting) return std::nullopt;
  return it->second.due_us;
}

}  // namespace tern::scheduler
