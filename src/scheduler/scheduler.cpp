// Scheduling: due times, destinations, concurrency, backoff, expiry, and the durable
// recording of every recipient's state change.
#include "scheduler/scheduler.hpp"

#include <algorithm>
#include <spdlog/spdlog.h>

#include "common/strings.hpp"
#include "queue/codec.hpp"
#include "scheduler/backoff.hpp"
#include "smtp/reply_parser.hpp"

namespace tern::scheduler {

namespace {

constexpr int64_t kSecond = 1000000;
// Recovered mail is spread over this window so a restart does not retry all of it at once.
constexpr int64_t kRestartJitterUs = 2 * kSecond;

std::string domain_of(const std::string& address) {
  const size_t at = address.rfind('@');
  return at == std::string::npos ? std::string() : canonical_domain(address.substr(at + 1));
}

bool is_final(queue::RcptState s) {
  return s == queue::RcptState::Delivered || s == queue::RcptState::Failed ||
         s == queue::RcptState::FailedNotified;
}

// The enhanced status code in a reply ("MAIL: 550 5.7.1 ..." → "5.7.1"), or a default.
std::string dsn_of(const std::string& reply, Result r) {
  if (std::string code = smtp::find_enhanced(reply); !code.empty()) return code;
  return r == Result::Delivered ? "2.0.0" : r == Result::Failed ? "5.0.0" : "4.0.0";
}

}  // namespace

Scheduler::Scheduler(io::Loop& loop, const Clock& clock, queue::Store& store, const config::Config& cfg,
                     uint64_t seed)
    : loop_(loop), clock_(clock), store_(store), rng_(seed), timer_(loop), notice_retry_(loop) {
  apply(cfg);
}

Scheduler::~Scheduler() = default;

void Scheduler::apply(const config::Config& cfg) {
  delivery_ = cfg.delivery;
  routes_ = cfg.routes;
  hostname_ = cfg.hostname;
  postmaster_ = cfg.postmaster;
}

int64_t Scheduler::backoff_us(unsigned attempts) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  return int64_t(retry_delay(delivery_.retry, attempts, unit(rng_)).count()) * kSecond;
}

Destination Scheduler::destination_for(const std::string& domain) const {
  auto it = routes_.find(domain);
  if (it == routes_.end()) it = routes_.find("*");
  Destination d;
  if (it != routes_.end()) {
    d.route = true;
    d.host = it->second.host;
    d.port = it->second.port ? it->second.port : delivery_.port;
    d.key = "route:" + d.host + ":" + std::to_string(d.port);
    d.domain = domain;
    return d;
  }
  d.domain = domain;
  d.port = delivery_.port;
  d.key = "mx:" + domain;
  return d;
}

void Scheduler::add(const queue::Envelope& env, uint64_t size, bool recovered) {
  Msg& m = msgs_[env.id];
  m.env = env;
  m.size = size;
  const int64_t now = clock_.now_us();
  std::vector<size_t> todo;
  int64_t due = now;
  for (size_t i = 0; i < env.recipients.size(); ++i) {
    const auto& r = env.recipients[i];
    if (is_final(r.state)) continue;
    todo.push_back(i);
    if (recovered && r.state == queue::RcptState::Deferred)
      due = std::max(due, r.updated_us + backoff_us(r.attempts));
  }
  if (recovered) {
    std::uniform_int_distribution<int64_t> jitter(0, kRestartJitterUs);
    due = std::max(due, now) + jitter(rng_);
  }
  if (!env.notice_for.empty())
    covered_[env.notice_for].insert(env.notice_rcpts.begin(), env.notice_rcpts.end());
  if (todo.empty()) return maybe_remove(env.id);
  make_jobs(m, todo, due);
}

// Groups recipients by destination: one job (one transaction) per destination.
void Scheduler::make_jobs(Msg& m, const std::vector<size_t>& indices, int64_t due_us) {
  std::map<std::string, std::pair<Destination, std::vector<size_t>>> groups;
  for (size_t i : indices) {
    Destination d = destination_for(domain_of(m.env.recipients[i].address));
    auto& g = groups[d.key];
    g.first = d;
    g.second.push_back(i);
  }
  for (auto& [key, g] : groups) {
    Dest& dest = dests_[key];
    if (dest.info.key.empty()) dest.info = g.first;
    ++dest.jobs;
    const uint64_t id = next_job_++;
    JobRec& j = jobs_[id];
    j.dest = key;
    j.job.id = id;
    j.job.msg_id = m.env.id;
    j.job.sender = m.env.sender;
    j.job.mail_params = m.env.mail_params;
    j.job.arrival_us = m.env.arrival_us;
    for (size_t i : g.second) {
      j.job.rcpt_index.push_back(i);
      j.job.rcpts.push_back(m.env.recipients[i].address);
      j.job.rcpt_params.push_back(m.env.recipients[i].params);
    }
    ++m.open_jobs;
    wait(id, due_us);
  }
}

void Scheduler::wait(uint64_t id, int64_t due_us) {
  JobRec& j = jobs_.at(id);
  j.state = JobState::Waiting;
  j.due_us = due_us;
  waiting_.insert({due_us, id});
  arm_timer();
}

// One timer for the whole queue, set to the earliest due time (no directory scans).
void Scheduler::arm_timer() {
  if (waiting_.empty() || stopped_) {
    timer_.stop();
    timer_at_ = 0;
    return;
  }
  const int64_t first = waiting_.begin()->first;
  if (timer_at_ == first) return;
  timer_at_ = first;
  const int64_t delay_us = std::max<int64_t>(0, first - clock_.now_us());
  timer_.start(uint64_t((delay_us + 999) / 1000), 0, [this] {
    timer_at_ = 0;
    on_timer();
  });
}

void Scheduler::on_timer() {
  const int64_t now = clock_.now_us();
  std::vector<std::pair<int64_t, uint64_t>> later;
  while (!waiting_.empty() && waiting_.begin()->first <= now) {
    const uint64_t id = waiting_.begin()->second;
    waiting_.erase(waiting_.begin());
    JobRec& j = jobs_.at(id);
    Msg& m = msgs_.at(j.job.msg_id);
    if (now - m.env.arrival_us >= int64_t(delivery_.max_queue_time.count()) * kSecond) {
      expire(j, "");
      continue;
    }
    Dest& d = dests_[j.dest];
    if (d.down_until_us > now) {  // the destination is down: wait for its retry
      later.push_back({d.down_until_us, id});
      continue;
    }
    j.state = JobState::Ready;
    d.ready.push_back(id);
  }
  for (auto [due, id] : later) {
    jobs_.at(id).due_us = due;
    waiting_.insert({due, id});
  }
  dispatch();
  arm_timer();
}

void Scheduler::dispatch() {
  if (!dispatcher_) return;
  const int64_t now = clock_.now_us();
  for (auto& [key, d] : dests_) {
    // A destination that failed is probed by one connection until it answers again.
    const uint32_t limit = d.failures > 0 ? 1 : delivery_.max_per_destination;
    while (!d.ready.empty() && d.conns < limit && total_conns_ < delivery_.max_in_flight &&
           d.down_until_us <= now) {
      ++d.conns;
      ++total_conns_;
      const uint64_t id = d.ready.front();
      d.ready.pop_front();
      JobRec& j = jobs_.at(id);
      j.state = JobState::InFlight;
      dispatcher_->open(d.info, j.job);
    }
  }
}

std::optional<Job> Scheduler::take(const std::string& dest_key) {
  auto it = dests_.find(dest_key);
  if (it == dests_.end() || it->second.ready.empty()) return std::nullopt;
  const uint64_t id = it->second.ready.front();
  it->second.ready.pop_front();
  JobRec& j = jobs_.at(id);
  j.state = JobState::InFlight;
  return j.job;
}

void Scheduler::report(const Job& job, const std::vector<RcptOutcome>& outcomes, const std::string& relay,
                       int64_t attempt_started_us) {
  auto jit = jobs_.find(job.id);
  if (jit == jobs_.end()) return;
  Msg& m = msgs_.at(job.msg_id);
  const int64_t now = clock_.now_us();
  const bool expired = now - m.env.arrival_us >= int64_t(delivery_.max_queue_time.count()) * kSecond;
  std::string records;
  struct Change {
    size_t idx;
    queue::RcptState state;
    Result result;
    std::string reply;
    bool dsn_passed;
  };
  std::vector<Change> changes;
  std::vector<size_t> retry_now;
  for (size_t k = 0; k < outcomes.size() && k < job.rcpt_index.size(); ++k) {
    const size_t idx = job.rcpt_index[k];
    const auto& o = outcomes[k];
    switch (o.result) {
      case Result::Delivered:
        changes.push_back({idx, queue::RcptState::Delivered, o.result, o.reply, o.dsn_passed});
        break;
      case Result::Failed:
        changes.push_back({idx, queue::RcptState::Failed, o.result, o.reply, false});
        break;
      case Result::Deferred:
        if (expired)
          changes.push_back({idx, queue::RcptState::Failed, Result::Failed,
                             "5.4.7 Delivery time expired; last attempt: " + o.reply, false});
        else
          changes.push_back({idx, queue::RcptState::Deferred, o.result, o.reply, false});
        break;
      case Result::RetryNow:
        retry_now.push_back(idx);
        break;
    }
  }
  const std::string relay_host = relay == "none" ? std::string() : relay;
  const bool attempted = attempt_started_us != kNoAttempt;
  for (const auto& c : changes) {
    // Without an attempt the recipient keeps its last attempt's time and host (DSN
    // Last-Attempt-Date and Remote-MTA).
    const auto& r = m.env.recipients[c.idx];
    records += queue::encode_status(c.idx, c.state, attempted ? now : r.updated_us,
                                    attempted ? relay_host : r.last_relay, c.reply);
  }
  const std::string msg_id = job.msg_id;
  const uint64_t job_id = job.id;
  auto apply = [this, msg_id, job_id, changes, retry_now, relay, relay_host, attempt_started_us, now](Status st) {
    if (!st.ok()) spdlog::error("delivery: id={} state not recorded: {}", msg_id, st.error().message);
    auto mit = msgs_.find(msg_id);
    if (mit == msgs_.end()) return;
    Msg& m = mit->second;
    std::vector<size_t> deferred, relayed;
    unsigned attempts = 0;
    for (const auto& c : changes) {
      auto& r = m.env.recipients[c.idx];
      r.state = c.state;
      if (attempt_started_us != kNoAttempt) {
        r.updated_us = now;
        r.last_relay = relay_host;
      }
      r.last_reply = c.reply;
      if (c.state == queue::RcptState::Delivered && !c.dsn_passed) relayed.push_back(c.idx);
      if (c.state == queue::RcptState::Deferred) {
        ++r.attempts;
        attempts = std::max(attempts, r.attempts);
        deferred.push_back(c.idx);
      }
      const char* status = c.result == Result::Delivered ? "sent"
                           : c.state == queue::RcptState::Deferred ? "deferred"
                           : c.reply.starts_with("5.4.7") ? "expired" : "bounced";
      spdlog::info("delivery: id={} to=<{}> relay={} delay={:.1f}s attempt={:.1f}s dsn={} status={} ({})",
                   msg_id, r.address, relay, double(now - m.env.arrival_us) / 1e6,
                   attempt_started_us == kNoAttempt ? 0.0 : double(now - attempt_started_us) / 1e6, dsn_of(c.reply, c.result), status, c.reply);
    }
    if (!deferred.empty()) make_jobs(m, deferred, now + backoff_us(attempts));
    if (!retry_now.empty()) make_jobs(m, retry_now, now);
    forget_job(job_id);
    // Notices: the recipients' states above are durable (or logged as not) before any is built.
    if (!relayed.empty()) send_relayed_notice(msg_id, relayed);
    if (!deferred.empty()) send_delay_warning(msg_id, deferred);
    send_failure_notices(msg_id);
    job_finished(msg_id);
  };
  if (records.empty()) return apply(ok_status());
  store_.append_status(msg_id, std::move(records), std::move(apply));
}

void Scheduler::expire(JobRec& j, const std::string&) {
  const Job job = j.job;
  Msg& m = msgs_.at(job.msg_id);
  std::vector<RcptOutcome> outs;
  for (size_t idx : job.rcpt_index) {
    const auto& r = m.env.recipients[idx];
    outs.push_back({Result::Deferred, r.last_reply.empty() ? "no delivery attempt succeeded" : r.last_reply});
  }
  j.state = JobState::InFlight;  // report() finishes it like any other job
  report(job, outs, "none", kNoAttempt);
}

void Scheduler::closed(const std::string& dest_key, bool reached, const std::string& reason) {
  Dest& d = dests_[dest_key];
  if (d.conns) --d.conns;
  if (total_conns_) --total_conns_;
  const int64_t now = clock_.now_us();
  if (!reached) {
    ++d.failures;
    d.down_until_us = now + backoff_us(d.failures);
    spdlog::info("scheduler: destination {} unreachable ({}); its mail waits {:.0f}s", dest_key, reason,
                 double(d.down_until_us - now) / 1e6);
    // Its other ready mail is not tried on its own: it is deferred with the probe's reason
    // (so backoff, expiry and delay warnings advance for it too) and waits for the
    // destination's retry.
    std::vector<Job> parked;
    while (!d.ready.empty()) {
      JobRec& j = jobs_.at(d.ready.front());
      d.ready.pop_front();
      j.state = JobState::InFlight;
      parked.push_back(j.job);
    }
    for (const auto& job : parked) {
      const std::vector<RcptOutcome> outs(job.rcpts.size(),
                                          RcptOutcome{Result::Deferred, "4.4.1 Not tried: " + dest_key + " is down (" + reason + ")"});
      report(job, outs, "none", kNoAttempt);
    }
  } else {
    d.failures = 0;
    d.down_until_us = 0;
  }
  if (d.jobs == 0 && d.conns == 0 && d.down_until_us <= now) dests_.erase(dest_key);
  dispatch();
  arm_timer();
}

void Scheduler::forget_job(uint64_t job_id) {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return;
  const std::string key = it->second.dest;
  jobs_.erase(it);
  auto d = dests_.find(key);
  if (d == dests_.end() || --d->second.jobs > 0 || d->second.conns > 0) return;
  // A destination that is down is remembered until its retry time, so new mail for it
  // waits too; otherwise nothing about it is worth keeping.
  if (d->second.down_until_us > clock_.now_us()) return;
  dests_.erase(d);
}

void Scheduler::job_finished(const std::string& msg_id) {
  auto it = msgs_.find(msg_id);
  if (it == msgs_.end()) return;
  if (it->second.open_jobs) --it->second.open_jobs;
  maybe_remove(msg_id);
}

// A message leaves the queue when every recipient is final and no notice is owed (a failed
// recipient of a non-null sender is owed a bounce: the bounce issue sends it, then removes).
void Scheduler::maybe_remove(const std::string& msg_id) {
  auto it = msgs_.find(msg_id);
  if (it == msgs_.end()) return;
  Msg& m = it->second;
  if (m.open_jobs > 0 || m.removing) return;
  if (m.notices_pending > 0) return;
  for (const auto& r : m.env.recipients) {
    if (!is_final(r.state)) return;
    if (r.state == queue::RcptState::Failed && owes_failure_notice(m, r)) return;
  }
  m.removing = true;
  if (m.env.sender.empty()) {
    for (const auto& r : m.env.recipients)
      if (r.state == queue::RcptState::Failed)
        spdlog::warn("queue: id={} mail from <> to=<{}> could not be delivered; dropped (no bounce for a bounce): {}",
                     msg_id, r.address, r.last_reply);
  }
  store_.remove(msg_id, [this, msg_id](Status st) {
    if (!st.ok()) spdlog::error("queue: id={} {}", msg_id, st.error().message);
    else spdlog::info("queue: id={} removed (every recipient done)", msg_id);
    msgs_.erase(msg_id);
  });
}

void Scheduler::recovery_done() {
  std::vector<std::string> ids;
  for (const auto& [id, m] : msgs_) ids.push_back(id);
  for (const auto& id : ids) send_failure_notices(id);
}

void Scheduler::stop() {
  dispatcher_ = nullptr;
  timer_.stop();
  notice_retry_.stop();
  stopped_ = true;
}

void Scheduler::flush() {
  const int64_t now = clock_.now_us();
  for (auto& [key, d] : dests_) {
    d.failures = 0;
    d.down_until_us = 0;
  }
  std::vector<uint64_t> ids;
  for (const auto& [due, id] : waiting_) ids.push_back(id);
  waiting_.clear();
  for (uint64_t id : ids) {
    jobs_.at(id).due_us = now;
    waiting_.insert({now, id});
  }
  timer_at_ = -1;
  arm_timer();
}

std::vector<QueueEntry> Scheduler::list() const {
  std::map<std::string, int64_t> next;
  for (const auto& [jid, j] : jobs_) {
    if (j.state != JobState::Waiting) continue;
    auto [it, fresh] = next.emplace(j.job.msg_id, j.due_us);
    if (!fresh) it->second = std::min(it->second, j.due_us);
  }
  std::vector<QueueEntry> out;
  for (const auto& [id, m] : msgs_) {
    auto it = next.find(id);
    out.push_back(QueueEntry{m.env, m.size, it == next.end() ? 0 : it->second});
  }
  return out;
}

}  // namespace tern::scheduler
