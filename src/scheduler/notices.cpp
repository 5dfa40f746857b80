// Delivery status notifications owed to senders (RFC 3461/3464): bounces for failed
// recipients, one delay warning per message (at most once: recorded before it is queued),
// "relayed" notices for NOTIFY=SUCCESS. Each goes through the queue like any other
// message, from the null sender.
//
// Crash safety of bounces: a recipient is durably "failed" before its notice is built; the
// notice is committed (fsync'd) before the recipient is marked "failed-notified"; the
// original is removed only after that. A crash in between rebuilds the notice at startup.
#include <spdlog/spdlog.h>

#include "bounce/dsn.hpp"
#include "queue/codec.hpp"
#include "scheduler/scheduler.hpp"
#include "smtp/dsn_params.hpp"

namespace tern::scheduler {

namespace {
constexpr int64_t kSecond = 1000000;

bool has_param(const std::vector<std::string>& params, std::string_view name) {
  for (const auto& p : params)
    if (p.size() == name.size() && std::equal(p.begin(), p.end(), name.begin(), [](char a, char b) {
          return std::toupper(static_cast<unsigned char>(a)) == std::toupper(static_cast<unsigned char>(b));
        }))
      return true;
  return false;
}
}  // namespace

bool Scheduler::owes_failure_notice(const Msg& m, const queue::Recipient& r) const {
  if (m.env.sender.empty()) {
    // Never a bounce for a bounce (no loops); where configured, the postmaster hears of it,
    // unless the failed recipient is the postmaster.
    return delivery_.double_bounce_to_postmaster && r.address != postmaster_ && r.original != "postmaster";
  }
  return smtp::rcpt_dsn(r.params).notify.wants_failure();
}

void Scheduler::send_failure_notices(const std::string& msg_id) {
  auto it = msgs_.find(msg_id);
  if (it == msgs_.end()) return;
  Msg& m = it->second;
  if (m.failure_notice_busy) return;  // the running one re-checks when it is done
  std::vector<size_t> idx;
  for (size_t i = 0; i < m.env.recipients.size(); ++i) {
    const auto& r = m.env.recipients[i];
    if (r.state == queue::RcptState::Failed && owes_failure_notice(m, r)) idx.push_back(i);
  }
  if (idx.empty()) return;
  m.failure_notice_busy = true;
  // Recipients whose bounce is already queued (a crash came before they were recorded as
  // notified) are only recorded now; the rest get a new bounce.
  std::vector<size_t> covered, fresh;
  auto cov = covered_.find(msg_id);
  for (size_t i : idx) (cov != covered_.end() && cov->second.count(i) ? covered : fresh).push_back(i);
  auto record = [this, msg_id](std::vector<size_t> done_idx) {
    std::string records;
    const int64_t now = clock_.now_us();
    for (size_t i : done_idx) {
      const auto& r = msgs_.at(msg_id).env.recipients[i];
      records += queue::encode_status(i, queue::RcptState::FailedNotified, now, r.last_relay, r.last_reply);
    }
    store_.append_status(msg_id, std::move(records), [this, msg_id, done_idx](Status st) {
      auto it = msgs_.find(msg_id);
      if (it == msgs_.end()) return;
      Msg& m = it->second;
      m.failure_notice_busy = false;
      if (!st.ok()) spdlog::error("bounce: id={} notice queued but not recorded: {}", msg_id, st.error().message);
      for (size_t i : done_idx) m.env.recipients[i].state = queue::RcptState::FailedNotified;
      send_failure_notices(msg_id);  // failures that arrived meanwhile
      maybe_remove(msg_id);
    });
  };
  if (fresh.empty()) {
    spdlog::info("bounce: id={} notice already queued before a restart; recording it", msg_id);
    return record(covered);
  }
  idx = fresh;
  queue_notice(msg_id, NoticeKind::Failure, idx, [this, msg_id, idx, record, covered](bool ok) {
    auto it = msgs_.find(msg_id);
    if (it == msgs_.end()) return;
    if (!ok) {
      it->second.failure_notice_busy = false;
      if (stopped_) return;
      // Nothing else may ever happen to this message: try every owed notice again later.
      notice_retry_.start(60 * 1000, 0, [this] {
        std::vector<std::string> ids;
        for (const auto& [id, m] : msgs_) ids.push_back(id);
        for (const auto& id : ids) send_failure_notices(id);
      });
      return;
    }
    std::vector<size_t> all = idx;
    all.insert(all.end(), covered.begin(), covered.end());
    record(all);
  });
}

void Scheduler::send_delay_warning(const std::string& msg_id, const std::vector<size_t>& deferred) {
  auto it = msgs_.find(msg_id);
  if (it == msgs_.end()) return;
  Msg& m = it->second;
  const int64_t now = clock_.now_us();
  if (delivery_.delay_warning.count() == 0 || m.env.sender.empty() || m.env.delay_warned_us) return;
  if (now - m.env.arrival_us < int64_t(delivery_.delay_warning.count()) * kSecond) return;
  std::vector<size_t> idx;
  for (size_t i : deferred)
    if (smtp::rcpt_dsn(m.env.recipients[i].params).notify.wants_delay()) idx.push_back(i);
  if (idx.empty()) return;
  // Recorded first, queued second: a crash in between loses this warning rather than ever
  // sending it twice (a restart never repeats one).
  m.env.delay_warned_us = now;
  m.notices_pending++;
  store_.append_status(msg_id, queue::encode_delay_warned(now), [this, msg_id, idx](Status st) {
    auto it = msgs_.find(msg_id);
    if (it == msgs_.end()) return;
    it->second.notices_pending--;
    if (!st.ok()) {
      spdlog::error("bounce: id={} delay warning not recorded, not sent: {}", msg_id, st.error().message);
      it->second.env.delay_warned_us = 0;  // try again at the next deferral
      return maybe_remove(msg_id);
    }
    queue_notice(msg_id, NoticeKind::Delay, idx, [](bool) {});
  });
}

void Scheduler::send_relayed_notice(const std::string& msg_id, const std::vector<size_t>& delivered) {
  auto it = msgs_.find(msg_id);
  if (it == msgs_.end()) return;
  const Msg& m = it->second;
  if (m.env.sender.empty()) return;
  std::vector<size_t> idx;
  for (size_t i : delivered)
    if (smtp::rcpt_dsn(m.env.recipients[i].params).notify.wants_success()) idx.push_back(i);
  if (idx.empty()) return;
  queue_notice(msg_id, NoticeKind::Relayed, idx, [](bool) {});
}

void Scheduler::queue_notice(const std::string& msg_id, NoticeKind kind, const std::vector<size_t>& idx,
                             std::function<void(bool)> done) {
  msgs_.at(msg_id).notices_pending++;
  store_.read_message(msg_id, [this, msg_id, kind, idx, done = std::move(done)](
                                  tern::Result<std::shared_ptr<const std::string>> data) {
    auto it = msgs_.find(msg_id);
    if (it == msgs_.end()) return;
    Msg& m = it->second;
    auto finish = [this, msg_id, done](bool ok) {
      auto it = msgs_.find(msg_id);
      if (it != msgs_.end()) it->second.notices_pending--;
      done(ok);
      maybe_remove(msg_id);
    };
    if (!data) {
      spdlog::error("bounce: id={} cannot read the original: {}", msg_id, data.error().message);
      return finish(false);
    }
    const int64_t now = clock_.now_us();
    const auto mdsn = smtp::message_dsn(m.env.mail_params);
    bounce::Report rep;
    rep.reporting_mta = hostname_;
    rep.to = m.env.sender.empty() ? postmaster_ : m.env.sender;
    rep.queue_id = msg_id;
    rep.notice_id = msg_id + "." + std::to_string(now);
    rep.envid = mdsn.envid;
    rep.arrival_us = m.env.arrival_us;
    rep.now_us = now;
    rep.utf8 = has_param(m.env.mail_params, "SMTPUTF8");
    // The whole message only goes back to senders tern can vouch for: mail from outsiders
    // may carry a forged sender, and a full bounce would deliver their content to it.
    rep.return_full = kind == NoticeKind::Failure && mdsn.ret == smtp::Ret::Full && m.env.client_relay;
    rep.original = **data;
    for (size_t i : idx) {
      const auto& r = m.env.recipients[i];
      bounce::RcptReport x;
      x.final_recipient = r.address;
      x.orcpt = smtp::rcpt_dsn(r.params).orcpt;
      x.action = kind == NoticeKind::Failure ? bounce::Action::Failed
                 : kind == NoticeKind::Delay ? bounce::Action::Delayed
                                             : bounce::Action::Relayed;
      // RFC 3464 §2.3.4: expiry is reported as 5.4.7 (the reply text starts with it).
      x.status = bounce::status_of(r.last_reply, kind == NoticeKind::Failure ? "5.0.0"
                                                 : kind == NoticeKind::Delay ? "4.0.0" : "2.0.0");
      if (kind == NoticeKind::Relayed) x.status = "2.0.0";
      if (kind == NoticeKind::Delay && x.status.front() != '4') x.status = "4.0.0";
      const size_t bracket = r.last_relay.find('[');
      x.remote_mta = r.last_relay.substr(0, bracket);
      x.diagnostic = r.last_reply;
      x.last_attempt_us = r.updated_us;
      if (kind == NoticeKind::Delay)
        x.will_retry_until_us = m.env.arrival_us + int64_t(delivery_.max_queue_time.count()) * kSecond;
      rep.rcpts.push_back(std::move(x));
    }
    std::string text = bounce::build(rep);

    queue::Envelope env;
    env.arrival_us = now;
    env.client_address = "127.0.0.1";
    env.client_helo = hostname_;
    env.client_relay = true;
    env.protocol = "LOCAL";
    env.sender = "";  // notices come from the null sender (RFC 5321 §4.5.5)
    if (rep.utf8) env.mail_params = {"SMTPUTF8", "BODY=8BITMIME"};
    else if (bounce::needs_8bit(text)) env.mail_params = {"BODY=8BITMIME"};  // RFC 6152
    queue::Recipient to;
    to.address = rep.to;
    env.recipients.push_back(to);
    if (kind == NoticeKind::Failure) {  // lets recovery tell this bounce is already queued
      env.notice_for = msg_id;
      env.notice_rcpts = idx;
    }
    auto incoming = store_.begin(env);
    const std::string notice_id = incoming->id();
    incoming->append(text);
    const char* what = kind == NoticeKind::Failure ? "bounce" : kind == NoticeKind::Delay ? "delay warning" : "relayed notice";
    const size_t n = idx.size();
    incoming->commit([this, notice_id, msg_id, what, n, to = rep.to, finish](queue::CommitStatus st) {
      notices_.erase(notice_id);
      const bool ok = st == queue::CommitStatus::Committed;
      if (ok)
        spdlog::info("bounce: id={} {} queued as {} to=<{}> nrcpt={}", msg_id, what, notice_id, to, n);
      else
        spdlog::error("bounce: id={} {} could not be queued", msg_id, what);
      finish(ok);
    });
    notices_[notice_id] = std::move(incoming);
  });
}

}  // namespace tern::scheduler
