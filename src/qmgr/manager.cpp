// The queue manager: jobs, outcomes into durable records, retries, expiry, notices.
//
// Crash safety of bounces: a recipient is durably "failed" before its notice is built; the
// notice is committed (fsync'd) before the recipient is marked "failed-notified"; the
// original is removed only after that. A crash in between is repaired at startup: the
// queued bounce names the original (`notice-for`), so it is recorded, not sent again.
#include "qmgr/manager.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cassert>
#include <memory>

#include "common/log_escape.hpp"
#include "common/strings.hpp"
#include "queue/codec.hpp"
#include "scheduler/backoff.hpp"

namespace tern::qmgr {

namespace {

constexpr int64_t kSecond = 1000000;
// Recovered mail is spread over this window so a restart does not retry all of it at once.
constexpr int64_t kRestartJitterUs = 2 * kSecond;
// A notice that could not be queued (disk full, say) is tried again after this.
constexpr int64_t kNoticeRetryUs = 60 * kSecond;

bool is_final(queue::RcptState s) {
  return s == queue::RcptState::Delivered || s == queue::RcptState::Failed ||
         s == queue::RcptState::FailedNotified;
}

queue::RcptState state_of(Fate f) {
  switch (f) {
    case Fate::Delivered: return queue::RcptState::Delivered;
    case Fate::Failed: return queue::RcptState::Failed;
    case Fate::Deferred:
    case Fate::RetryNow: break;
  }
  return queue::RcptState::Deferred;
}

const char* log_status(const Outcome& o, bool expiry) {
  switch (o.fate) {
    case Fate::Delivered: return "sent";
    case Fate::Failed: return expiry ? "expired" : "bounced";
    case Fate::Deferred:
    case Fate::RetryNow: break;
  }
  return "deferred";
}

}  // namespace

Manager::Manager(const Clock& clock, QueueFiles& files, scheduler::Scheduler& sched, bounce::Notices& notices,
                 Alarm& retry_alarm, Settings settings, uint64_t seed)
    : clock_(clock),
      files_(files),
      sched_(sched),
      notices_(notices),
      retry_alarm_(retry_alarm),
      settings_(std::move(settings)),
      rng_(seed) {
  sched_.set_owner(this);
}

void Manager::stop() {
  stopped_ = true;
  retry_alarm_.cancel();
}

int64_t Manager::backoff_us(unsigned attempts) {
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  return int64_t(scheduler::retry_delay(settings_.delivery.retry, attempts, unit(rng_)).count()) * kSecond;
}

bounce::Policy Manager::policy() const {
  return bounce::Policy{settings_.delivery.double_bounce_to_postmaster, settings_.postmaster,
                        int64_t(settings_.delivery.delay_warning.count()) * kSecond};
}

bool Manager::expired(const Msg& m, int64_t now_us) const {
  return now_us >= expiry_us(m);
}

int64_t Manager::expiry_us(const Msg& m) const {
  return m.env.arrival_us + int64_t(settings_.delivery.max_queue_time.count()) * kSecond;
}

void Manager::add(queue::Envelope env, uint64_t size, bool recovered) {
  const std::string id = env.id;
  if (msgs_.count(id)) return;  // known already (committed while recovery listed msg/)
  if (!env.notice_for.empty() && recovering_) {
    // A bounce queued before a crash: its original's recipients must not get another.
    auto& cov = covered_[env.notice_for];
    cov.insert(cov.end(), env.notice_rcpts.begin(), env.notice_rcpts.end());
  }
  Msg& m = msgs_[id];
  m.env = std::move(env);
  // What only the queue file needs (shown by the admin tool from there): not kept in
  // memory for as long as the message waits.
  m.env.client_helo = {};
  m.env.client_address = {};
  m.env.protocol = {};
  m.size = size;
  const int64_t now = clock_.now_us();
  std::vector<size_t> todo;
  int64_t due = now;
  for (size_t i = 0; i < m.env.recipients.size(); ++i) {
    const auto& r = m.env.recipients[i];
    if (is_final(r.state)) continue;
    todo.push_back(i);
    if (recovered && r.state == queue::RcptState::Deferred)
      due = std::max(due, r.updated_us + backoff_us(r.attempts));
  }
  if (recovered) {
    std::uniform_int_distribution<int64_t> jitter(0, kRestartJitterUs);
    due = std::max(due, now) + jitter(rng_);
  }
  // Imported with a failure whose notice the exporting node had not sent yet: owed from here.
  if (!m.env.origin.empty() && !recovering_) send_failure_notices(id);
  if (todo.empty()) return maybe_remove(id);
  if (recovering_ && !m.env.notice_for.empty()) {
    // A bounce read back while recovering waits until every file has been read and its
    // original's recipients are recorded as notified: delivered and removed earlier, it
    // could leave an original that a crash would bounce a second time.
    held_back_.emplace_back(id, due);
    return;
  }
  if (m.env.held) spdlog::info("qmgr: id={} is held; not attempted until released", id);
  make_jobs(m, todo, due);
}

void Manager::recovery_done() {
  recovering_ = false;
  // "Relayed" notices owed by mail delivered while recovering.
  for (auto& [id, idx] : relayed_after_recovery_) {
    if (auto it = msgs_.find(id); it != msgs_.end()) {
      it->second.notices_pending--;
      send_notice(id, bounce::NoticeKind::Relayed, std::move(idx));
    }
  }
  relayed_after_recovery_.clear();
  std::erase_if(covered_, [this](const auto& c) { return !msgs_.count(c.first); });  // originals gone
  std::vector<std::string> ids;
  for (const auto& [id, m] : msgs_) ids.push_back(id);
  for (const auto& id : ids) {
    send_failure_notices(id);
    maybe_remove(id);
  }
  // Bounces read back while recovering: scheduled after the appends above were issued.
  for (auto& [id, due] : held_back_) {
    auto it = msgs_.find(id);
    if (it == msgs_.end()) continue;
    std::vector<size_t> todo;
    for (size_t i = 0; i < it->second.env.recipients.size(); ++i)
      if (!is_final(it->second.env.recipients[i].state)) todo.push_back(i);
    if (!todo.empty()) make_jobs(it->second, todo, due);
  }
  held_back_.clear();
}

// Groups recipients by destination: one job (one transaction) per destination.
void Manager::make_jobs(Msg& m, const std::vector<size_t>& indices, int64_t due_us) {
  const std::string* key = &msgs_.find(m.env.id)->first;
  // A held message is never attempted; its jobs wait for its expiry, when it bounces like
  // any message too old (a release makes them due at once).
  if (m.env.held) due_us = std::max(due_us, expiry_us(m));
  if (indices.size() == 1) {  // the common case (a million of them at startup): no grouping
    const JobId id = next_job_++;
    jobs_[id] = Job{key, indices};
    ++m.open_jobs;
    sched_.add(id,
               scheduler::destination_for(scheduler::domain_of(m.env.recipients[indices[0]].address),
                                          settings_.routes, settings_.delivery.port),
               due_us);
    return;
  }
  std::map<std::string, std::pair<scheduler::Destination, std::vector<size_t>>> groups;
  for (size_t i : indices) {
    auto d = scheduler::destination_for(scheduler::domain_of(m.env.recipients[i].address), settings_.routes,
                                        settings_.delivery.port);
    auto& g = groups[d.key];
    g.first = std::move(d);
    g.second.push_back(i);
  }
  for (auto& [dest_key, g] : groups) {
    const JobId id = next_job_++;
    jobs_[id] = Job{key, std::move(g.second)};
    ++m.open_jobs;
    sched_.add(id, g.first, due_us);
  }
}

std::optional<DeliveryRequest> Manager::begin(JobId id) {
  auto jit = jobs_.find(id);
  if (jit == jobs_.end()) return std::nullopt;
  Msg& m = msgs_.at(*jit->second.msg_id);
  if (expired(m, clock_.now_us())) {
    // Past delivery.max_queue_time: no attempt; report() turns "deferred" into 5.4.7.
    std::vector<Outcome> outs;
    for (size_t idx : jit->second.rcpts) {
      const auto& r = m.env.recipients[idx];
      outs.push_back(Outcome::make(Fate::Deferred, r.last_status.empty() ? "4.0.0" : r.last_status,
                                   r.last_reply.empty() ? "no delivery attempt succeeded" : r.last_reply));
    }
    record(id, std::move(outs), kNoAttempt);
    return std::nullopt;
  }
  if (m.env.held) {
    // Held after this job was scheduled (or made due by a flush): back to wait for expiry.
    const Job job = jit->second;
    jobs_.erase(jit);
    sched_.finished(id);
    if (m.open_jobs) --m.open_jobs;
    make_jobs(m, job.rcpts, expiry_us(m));
    poll_exports();  // an export may wait for this job
    return std::nullopt;
  }
  DeliveryRequest q;
  q.job = id;
  q.msg_id = m.env.id;
  q.sender = m.env.sender;
  q.mail_params = m.env.mail_params;
  for (size_t idx : jit->second.rcpts) {
    q.rcpts.push_back(m.env.recipients[idx].address);
    q.rcpt_params.push_back(m.env.recipients[idx].params);
  }
  q.size = m.size;
  q.path = files_.path_of(m.env.id);
  return q;
}

void Manager::report(JobId id, std::vector<Outcome> outcomes, int64_t attempt_started_us) {
  record(id, std::move(outcomes), attempt_started_us);
}

void Manager::parked(JobId id, const std::string& reason) {
  auto jit = jobs_.find(id);
  if (jit == jobs_.end()) return;
  std::vector<Outcome> outs(jit->second.rcpts.size(), Outcome::make(Fate::Deferred, "4.4.1", reason));
  record(id, std::move(outs), kNoAttempt);
}

// The one place where outcomes become state: records appended and fdatasync'd first, then
// the in-memory state, the log line, retries and notices.
void Manager::record(JobId id, std::vector<Outcome> outcomes, int64_t attempt_started_us) {
  auto jit = jobs_.find(id);
  if (jit == jobs_.end()) return;
  const Job job = jit->second;
  const std::string msg_id = *job.msg_id;  // a copy: the lambda below outlives nothing else
  if (outcomes.size() != job.rcpts.size()) {
    // A bug in the delivery side: every recipient must get exactly one outcome, or some
    // would be neither final nor scheduled.
    spdlog::critical("qmgr: BUG: id={} job={} got {} outcome(s) for {} recipient(s)", msg_id, id,
                     outcomes.size(), job.rcpts.size());
    assert(false && "outcome count does not match the job's recipients");
    outcomes.resize(job.rcpts.size(), Outcome::make(Fate::Deferred, "4.3.0", "internal error: no outcome"));
  }
  Msg& m = msgs_.at(msg_id);
  const int64_t now = clock_.now_us();
  const bool too_old = expired(m, now);
  const bool attempted = attempt_started_us != kNoAttempt;
  const bool finishes = attempted && finishes_message(m, id, job, outcomes);
  std::vector<bool> expiry(outcomes.size(), false);
  std::string records;
  for (size_t k = 0; k < outcomes.size(); ++k) {
    Outcome& o = outcomes[k];
    if (o.fate == Fate::Deferred && too_old) {
      o = Outcome::make(Fate::Failed, "5.4.7", "Delivery time expired; last attempt: " + o.text);
      expiry[k] = true;
    }
    if (o.fate == Fate::RetryNow) continue;
    // Without an attempt the recipient keeps its last attempt's time and host (DSN
    // Last-Attempt-Date and Remote-MTA).
    const auto& r = m.env.recipients[job.rcpts[k]];
    records += queue::encode_status(job.rcpts[k], state_of(o.fate), attempted ? now : r.updated_us,
                                    attempted ? o.relay : r.last_relay, o.text);
    if (!o.status.empty()) records += queue::encode_status_code(job.rcpts[k], o.status, o.remote);
  }
  auto apply = [this, id, job, msg_id, outcomes = std::move(outcomes), expiry, attempted, attempt_started_us,
                now](Status st) {
    if (!st.ok()) spdlog::error("qmgr: id={} state not recorded: {}", msg_id, st.error().message);
    jobs_.erase(id);
    sched_.finished(id);
    auto mit = msgs_.find(msg_id);
    if (mit == msgs_.end()) return;
    Msg& m = mit->second;
    if (m.removing) return;  // an operator is deleting it: no retries, no notices
    if (m.open_jobs) --m.open_jobs;
    std::vector<size_t> deferred, retry_now, delivered;
    unsigned attempts = 0;
    for (size_t k = 0; k < outcomes.size(); ++k) {
      const Outcome& o = outcomes[k];
      const size_t idx = job.rcpts[k];
      auto& r = m.env.recipients[idx];
      if (o.fate == Fate::RetryNow) {
        retry_now.push_back(idx);
        continue;
      }
      r.state = state_of(o.fate);
      if (attempted) {
        r.updated_us = now;
        r.last_relay = o.relay;
      }
      r.last_reply = o.text;
      r.last_status = o.status;
      r.last_remote = o.remote;
      if (o.fate == Fate::Delivered && !o.dsn_passed) delivered.push_back(idx);
      if (o.fate == Fate::Deferred) {
        ++r.attempts;
        attempts = std::max(attempts, r.attempts);
        deferred.push_back(idx);
      }
      if (counters_) {
        if (o.fate == Fate::Delivered) {
          ++counters_->delivered;
          counters_->delivery_delay.observe(double(now - m.env.arrival_us) / 1e6);
        }
        if (o.fate == Fate::Deferred) ++counters_->deferred;
        if (o.fate == Fate::Failed) {
          ++counters_->bounced;
          if (expiry[k]) ++counters_->expired;
        }
      }
      spdlog::info("delivery: id={} to=<{}> relay={} {} delay={:.1f}s attempt={:.1f}s dsn={} status={} ({})", msg_id,
                   r.address, o.relay.empty() ? "none" : o.relay, o.tls.empty() ? "tls=none" : o.tls,
                   double(now - m.env.arrival_us) / 1e6,
                   attempted ? double(now - attempt_started_us) / 1e6 : 0.0, o.status, log_status(o, expiry[k]),
                   log_safe(o.text));
    }
    if (!deferred.empty()) make_jobs(m, deferred, now + backoff_us(attempts));
    if (!retry_now.empty()) make_jobs(m, retry_now, now);
    // Notices: the recipients' states above are durable (or logged as not) before any is built.
    if (auto idx = bounce::relayed_notice_due(m.env, delivered); !idx.empty()) {
      if (recovering_) {  // sent at recovery_done(); the message stays until then
        m.notices_pending++;
        relayed_after_recovery_.emplace_back(msg_id, std::move(idx));
      } else {
        send_notice(msg_id, bounce::NoticeKind::Relayed, std::move(idx));
      }
    }
    if (!recovering_) {
      if (!deferred.empty()) send_delay_warning(msg_id, deferred);
      send_failure_notices(msg_id);
    }
    maybe_remove(msg_id);
  };
  // The common case, a transaction that delivers the message's last recipients: no record
  // and fdatasync before the removal; the removal itself is made durable (queue-format.md).
  // An export may be waiting for this attempt to end.
  auto apply_then_poll = [this, apply = std::move(apply)](Status st) {
    apply(std::move(st));
    poll_exports();
  };
  if (records.empty() || finishes) return apply_then_poll(ok_status());
  files_.append_status(msg_id, std::move(records), std::move(apply_then_poll));
}

bool Manager::finishes_message(const Msg& m, JobId id, const Job& job, const std::vector<Outcome>& outcomes) const {
  (void)id;  // the job is one of m's: the only one open when open_jobs is 1
  if (m.open_jobs != 1 || m.notices_pending > 0 || m.failure_notice_busy) return false;
  std::vector<size_t> delivered;
  for (size_t k = 0; k < outcomes.size(); ++k) {
    if (outcomes[k].fate != Fate::Delivered) return false;
    if (!outcomes[k].dsn_passed) delivered.push_back(job.rcpts[k]);
  }
  if (!bounce::relayed_notice_due(m.env, delivered).empty()) return false;
  const auto pol = policy();
  for (size_t i = 0; i < m.env.recipients.size(); ++i) {
    if (std::find(job.rcpts.begin(), job.rcpts.end(), i) != job.rcpts.end()) continue;
    const auto& r = m.env.recipients[i];
    if (!is_final(r.state)) return false;
    if (r.state == queue::RcptState::Failed && bounce::owes_failure_notice(pol, m.env, r)) return false;
  }
  return true;
}

void Manager::send_failure_notices(const std::string& msg_id) {
  auto it = msgs_.find(msg_id);
  if (it == msgs_.end() || recovering_ || stopped_) return;
  Msg& m = it->second;
  if (m.failure_notice_busy || m.removing) return;  // the running one re-checks when done
  // Being exported: the bounce is owed by the node that imports it (or by this one, should
  // the export fail: export_finish calls this again).
  if (m.exporting) return;
  const auto pol = policy();
  std::vector<size_t> covered, fresh;
  const auto cov = covered_.find(msg_id);
  for (size_t i = 0; i < m.env.recipients.size(); ++i) {
    const auto& r = m.env.recipients[i];
    if (r.state != queue::RcptState::Failed || !bounce::owes_failure_notice(pol, m.env, r)) continue;
    // A bounce already queued before a restart covers it: only record it now.
    const bool is_covered =
        cov != covered_.end() && std::find(cov->second.begin(), cov->second.end(), i) != cov->second.end();
    (is_covered ? covered : fresh).push_back(i);
  }
  if (covered.empty() && fresh.empty()) return;
  m.failure_notice_busy = true;
  auto mark_notified = [this, msg_id](std::vector<size_t> done_idx) {
    std::string records;
    const int64_t now = clock_.now_us();
    const auto& env = msgs_.at(msg_id).env;
    for (size_t i : done_idx) {
      const auto& r = env.recipients[i];
      records += queue::encode_status(i, queue::RcptState::FailedNotified, now, r.last_relay, r.last_reply);
      if (!r.last_status.empty()) records += queue::encode_status_code(i, r.last_status, r.last_remote);
    }
    files_.append_status(msg_id, std::move(records), [this, msg_id, done_idx](Status st) {
      auto it = msgs_.find(msg_id);
      if (it == msgs_.end()) return;
      Msg& m = it->second;
      m.failure_notice_busy = false;
      if (!st.ok()) spdlog::error("bounce: id={} notice queued but not recorded: {}", msg_id, st.error().message);
      for (size_t i : done_idx) m.env.recipients[i].state = queue::RcptState::FailedNotified;
      if (auto c = covered_.find(msg_id); c != covered_.end()) {
        std::erase_if(c->second, [&](size_t i) { return std::find(done_idx.begin(), done_idx.end(), i) != done_idx.end(); });
        if (c->second.empty()) covered_.erase(c);
      }
      send_failure_notices(msg_id);  // failures that arrived meanwhile
      maybe_remove(msg_id);
      poll_exports();
    });
  };
  if (fresh.empty()) {
    spdlog::info("bounce: id={} notice already queued before a restart; recording it", msg_id);
    return mark_notified(covered);
  }
  m.notices_pending++;
  notices_.send(m.env, bounce::NoticeKind::Failure, fresh, [this, msg_id, fresh, covered, mark_notified](bool ok) {
    auto it = msgs_.find(msg_id);
    if (it == msgs_.end()) return;
    it->second.notices_pending--;
    if (!ok) {
      it->second.failure_notice_busy = false;
      poll_exports();
      return retry_notices_later();  // nothing else may ever happen to this message
    }
    std::vector<size_t> all = fresh;
    all.insert(all.end(), covered.begin(), covered.end());
    mark_notified(all);
  });
}

void Manager::retry_notices_later() {
  if (stopped_) return;
  retry_alarm_.set(clock_.now_us() + kNoticeRetryUs, [this] {
    std::vector<std::string> ids;
    for (const auto& [id, m] : msgs_) ids.push_back(id);
    for (const auto& id : ids) {
      send_failure_notices(id);
      maybe_remove(id);
    }
  });
}

void Manager::send_delay_warning(const std::string& msg_id, const std::vector<size_t>& deferred) {
  Msg& m = msgs_.at(msg_id);
  if (m.exporting) return;  // the importing node decides (its delay-warned record travels too)
  const int64_t now = clock_.now_us();
  std::vector<size_t> idx = bounce::delay_warning_due(policy(), m.env, deferred, now);
  if (idx.empty()) return;
  // Recorded first, queued second: a crash in between loses this warning rather than ever
  // sending it twice (a restart never repeats one).
  m.env.delay_warned_us = now;
  m.notices_pending++;
  files_.append_status(msg_id, queue::encode_delay_warned(now), [this, msg_id, idx](Status st) {
    auto it = msgs_.find(msg_id);
    if (it == msgs_.end()) return;
    it->second.notices_pending--;
    if (!st.ok()) {
      spdlog::error("bounce: id={} delay warning not recorded, not sent: {}", msg_id, st.error().message);
      it->second.env.delay_warned_us = 0;  // try again at the next deferral
      maybe_remove(msg_id);
      return poll_exports();
    }
    send_notice(msg_id, bounce::NoticeKind::Delay, idx);
  });
}

// Delay warnings and relayed notices: at most once, nothing recorded after them.
void Manager::send_notice(const std::string& msg_id, bounce::NoticeKind kind, std::vector<size_t> idx) {
  Msg& m = msgs_.at(msg_id);
  m.notices_pending++;
  notices_.send(m.env, kind, idx, [this, msg_id](bool) {
    auto it = msgs_.find(msg_id);
    if (it == msgs_.end()) return;
    it->second.notices_pending--;
    maybe_remove(msg_id);
    poll_exports();
  });
}

// A message leaves the queue when every recipient is final and no notice is owed or being
// built.
void Manager::maybe_remove(const std::string& msg_id) {
  auto it = msgs_.find(msg_id);
  if (it == msgs_.end()) return;
  Msg& m = it->second;
  if (m.open_jobs > 0 || m.removing || m.notices_pending > 0 || m.failure_notice_busy) return;
  const auto pol = policy();
  for (const auto& r : m.env.recipients) {
    if (!is_final(r.state)) return;
    if (r.state == queue::RcptState::Failed && bounce::owes_failure_notice(pol, m.env, r)) return;
  }
  m.removing = true;
  if (m.env.sender.empty()) {
    for (const auto& r : m.env.recipients)
      if (r.state == queue::RcptState::Failed)
        spdlog::warn("queue: id={} mail from <> to=<{}> could not be delivered; dropped (no bounce for a bounce): {}",
                     msg_id, r.address, log_safe(r.last_reply));
  }
  files_.remove(msg_id, [this, msg_id](Status st) {
    auto it = msgs_.find(msg_id);
    if (it == msgs_.end()) return;
    if (!st.ok()) {
      // Not durably gone: a restart could bring it back with recipients still open (their
      // delivery was not recorded on the fast path). Record every state now and try the
      // removal again later.
      spdlog::error("queue: id={} {}; recording its state and retrying", msg_id, st.error().message);
      std::string records;
      const auto& env = it->second.env;
      for (size_t i = 0; i < env.recipients.size(); ++i) {
        const auto& r = env.recipients[i];
        records += queue::encode_status(i, r.state, r.updated_us, r.last_relay, r.last_reply);
      }
      files_.append_status(msg_id, std::move(records), [this, msg_id](Status) {
        if (auto m = msgs_.find(msg_id); m != msgs_.end()) m->second.removing = false;
        retry_notices_later();  // also retries the removal
      });
      return;
    }
    spdlog::info("queue: id={} removed (every recipient done)", msg_id);
    msgs_.erase(it);
    covered_.erase(msg_id);
  });
}

size_t Manager::covered_entries() const noexcept {
  size_t n = 0;
  for (const auto& [id, c] : covered_) n += c.size();
  return n;
}

std::vector<QueueEntry> Manager::list() const {
  std::map<std::string_view, int64_t> next;  // message → its earliest waiting job
  for (const auto& [jid, j] : jobs_)
    if (auto due = sched_.due(jid)) {
      auto [it, fresh] = next.emplace(*j.msg_id, *due);
      if (!fresh) it->second = std::min(it->second, *due);
    }
  std::vector<QueueEntry> out;
  for (const auto& [id, m] : msgs_) {
    auto it = next.find(id);
    out.push_back(QueueEntry{m.env, m.size, it == next.end() ? 0 : it->second});
  }
  return out;
}

const char* to_string(AdminOp op) noexcept {
  switch (op) {
    case AdminOp::Hold: return "hold";
    case AdminOp::Release: return "release";
    case AdminOp::Delete: return "delete";
    case AdminOp::Flush: return "flush";
  }
  return "?";
}

size_t Manager::held() const {
  size_t n = 0;
  for (const auto& [id, m] : msgs_) n += m.env.held;
  return n;
}

int64_t Manager::oldest_arrival_us() const {
  int64_t oldest = 0;
  for (const auto& [id, m] : msgs_)
    if (oldest == 0 || m.env.arrival_us < oldest) oldest = m.env.arrival_us;
  return oldest;
}

const queue::Envelope* Manager::envelope(const std::string& id) const {
  auto it = msgs_.find(id);
  return it == msgs_.end() || it->second.removing ? nullptr : &it->second.env;
}

std::vector<std::string> Manager::select(const Selector& sel, std::vector<std::string>& unknown) const {
  std::vector<std::string> out;
  if (!sel.ids.empty()) {
    for (const auto& id : sel.ids) {
      if (envelope(id)) out.push_back(id);
      else unknown.push_back(id);
    }
    return out;
  }
  if (!sel.all && sel.domain.empty() && sel.sender.empty()) return out;
  for (const auto& [id, m] : msgs_) {
    if (m.removing || m.exporting) continue;
    // "<>" selects the null sender (bounces).
    if (!sel.sender.empty() && !iequals(m.env.sender, sel.sender == "<>" ? "" : sel.sender)) continue;
    if (!sel.domain.empty()) {
      bool any = false;
      for (const auto& r : m.env.recipients) any = any || scheduler::domain_of(r.address) == sel.domain;
      if (!any) continue;
    }
    out.push_back(id);
  }
  return out;
}

// The jobs of a set of messages, in one pass over the job table: an operator command on a
// whole queue (delete --all) stays linear, not one scan per message.
std::vector<JobId> Manager::jobs_of(const std::set<std::string>& ids) const {
  std::vector<JobId> out;
  if (ids.empty()) return out;
  for (const auto& [jid, j] : jobs_)
    if (ids.count(*j.msg_id)) out.push_back(jid);
  return out;
}

// Every job of these messages leaves the scheduler; one in flight has its connection
// dropped (before the final "." is acknowledged the next hop discards the message).
void Manager::forget_jobs(const std::set<std::string>& ids) {
  for (JobId j : jobs_of(ids)) {
    const bool flying = sched_.in_flight(j);
    sched_.finished(j);
    jobs_.erase(j);
    if (flying && cancel_) cancel_(j);
  }
  for (const auto& id : ids)
    if (auto it = msgs_.find(id); it != msgs_.end()) it->second.open_jobs = 0;
}

// What one operator command has done so far: its answers, and the messages whose jobs
// change once every record is durable (done together, in one pass over the jobs).
struct Manager::AdminBatch {
  std::vector<AdminResult> results;
  std::set<std::string> released, deleted;
  size_t left = 0;
  std::string who;
  std::function<void(std::vector<AdminResult>)> done;
};

void Manager::admin(AdminOp op, const Selector& sel, const std::string& who,
                    std::function<void(std::vector<AdminResult>)> done) {
  std::vector<std::string> unknown;
  const std::vector<std::string> ids = select(sel, unknown);
  auto batch = std::make_shared<AdminBatch>();
  batch->who = who;
  batch->done = std::move(done);
  for (auto& u : unknown) batch->results.push_back(AdminResult{u, "", "no such message"});
  if (op == AdminOp::Flush) {
    const std::set<std::string> chosen(ids.begin(), ids.end());
    for (JobId j : jobs_of(chosen)) sched_.expedite(j);
    for (const auto& id : ids) {
      spdlog::info("qmgr: id={} flushed by {}", id, who);
      batch->results.push_back(
          AdminResult{id, msgs_.at(id).env.held ? "flushed (held: not attempted)" : "flushed", ""});
    }
    return batch->done(std::move(batch->results));
  }
  if (ids.empty()) return batch->done(std::move(batch->results));
  batch->left = ids.size();
  for (const auto& id : ids) admin_one(op, id, batch);
}

// One message's durable record is written (or failed): once every message of the command
// is there, the released ones become due and the deleted ones lose their jobs and files.
void Manager::admin_step_done(const std::shared_ptr<AdminBatch>& batch) {
  if (--batch->left > 0) return;
  for (JobId j : jobs_of(batch->released)) sched_.expedite(j);
  if (batch->deleted.empty()) return batch->done(std::move(batch->results));
  forget_jobs(batch->deleted);
  batch->left = batch->deleted.size();
  for (const auto& id : batch->deleted)
    files_.remove(id, [this, id, batch](Status rst) {
      msgs_.erase(id);
      if (!rst.ok())
        spdlog::error("queue: id={} {}; its !deleted record makes the next start remove it", id, rst.error().message);
      spdlog::info("qmgr: id={} deleted by {} (no bounce)", id, batch->who);
      batch->results.push_back(AdminResult{id, "deleted", ""});
      if (--batch->left == 0) batch->done(std::move(batch->results));
    });
}

void Manager::admin_one(AdminOp op, const std::string& id, const std::shared_ptr<AdminBatch>& batch) {
  auto answer = [this, batch](AdminResult r) {
    batch->results.push_back(std::move(r));
    admin_step_done(batch);
  };
  auto it = msgs_.find(id);
  if (it == msgs_.end() || it->second.removing) return answer(AdminResult{id, "", "no such message"});
  Msg& m = it->second;
  if (m.exporting) return answer(AdminResult{id, "", "being exported"});
  const int64_t now = clock_.now_us();
  switch (op) {
    case AdminOp::Flush:
      return;  // handled by admin() in one pass
    case AdminOp::Hold:
      if (m.env.held) return answer(AdminResult{id, "held (already)", ""});
      files_.append_status(id, queue::encode_held(now), [this, id, batch, answer](Status st) {
        if (!st.ok()) return answer(AdminResult{id, "", st.error().message});
        auto it = msgs_.find(id);
        if (it == msgs_.end()) return answer(AdminResult{id, "", "no such message"});
        it->second.env.held = true;
        spdlog::info("qmgr: id={} held by {}", id, batch->who);
        answer(AdminResult{id, "held", ""});
      });
      return;
    case AdminOp::Release:
      if (!m.env.held) return answer(AdminResult{id, "", "not held"});
      files_.append_status(id, queue::encode_released(now), [this, id, batch, answer](Status st) {
        if (!st.ok()) return answer(AdminResult{id, "", st.error().message});
        auto it = msgs_.find(id);
        if (it == msgs_.end()) return answer(AdminResult{id, "", "no such message"});
        it->second.env.held = false;
        batch->released.insert(id);
        spdlog::info("qmgr: id={} released by {}", id, batch->who);
        answer(AdminResult{id, "released", ""});
      });
      return;
    case AdminOp::Delete:
      // The !deleted record is durable before anything else: a crash from here on cannot
      // bring the message back (startup removes a file carrying it).
      m.removing = true;
      files_.append_status(id, queue::encode_deleted(now), [this, id, batch](Status st) {
        auto it = msgs_.find(id);
        if (it == msgs_.end()) {
          batch->results.push_back(AdminResult{id, "", "no such message"});
        } else if (!st.ok()) {
          it->second.removing = false;
          batch->results.push_back(AdminResult{id, "", st.error().message});
        } else {
          batch->deleted.insert(id);  // answered once its file is gone
        }
        admin_step_done(batch);
      });
      return;
  }
}

}  // namespace tern::qmgr
