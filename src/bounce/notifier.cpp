// Notices through the queue.
#include "bounce/notifier.hpp"

#include <spdlog/spdlog.h>

#include "bounce/dsn.hpp"
#include "common/strings.hpp"
#include "queue/body_reader.hpp"
#include "smtp/dsn_params.hpp"

namespace tern::bounce {

namespace {

bool has_param(const std::vector<std::string>& params, std::string_view name) {
  for (const auto& p : params)
    if (iequals(p, name)) return true;
  return false;
}

const char* name_of(NoticeKind k) {
  return k == NoticeKind::Failure ? "bounce" : k == NoticeKind::Delay ? "delay warning" : "relayed notice";
}

}  // namespace

void Notifier::send(const queue::Envelope& orig, NoticeKind kind, const std::vector<size_t>& idx,
                    std::function<void(bool)> done) {
  const auto mdsn = smtp::message_dsn(orig.mail_params);
  // The whole message only goes back to senders tern can vouch for: mail from outsiders
  // may carry a forged sender, and a full bounce would deliver their content to it.
  const bool full = kind == NoticeKind::Failure && mdsn.ret == smtp::Ret::Full && orig.client_relay;
  // One byte past the limit tells the builder the message is too big to return whole.
  const size_t max = full ? kMaxReturnedMessage + 1 : kMaxReturnedMessage;
  // A snapshot of what the report needs: the original may change or go while we read.
  auto env = std::make_shared<queue::Envelope>(orig);
  auto alive = alive_;
  queue::read_data_prefix(
      loop_, s_.queue_dir + "/msg/" + orig.id, max, !full,
      [this, alive, env, kind, idx, full, done = std::move(done)](Result<std::string> data) mutable {
        if (!*alive) return;
        const std::string& msg_id = env->id;
        if (!data) {
          spdlog::error("bounce: id={} cannot read the original: {}", msg_id, data.error().message);
          return done(false);
        }
        const int64_t now = clock_.now_us();
        const auto mdsn = smtp::message_dsn(env->mail_params);
        Report rep;
        rep.reporting_mta = s_.hostname;
        rep.to = env->sender.empty() ? s_.postmaster : env->sender;
        rep.queue_id = msg_id;
        rep.notice_id = msg_id + "." + std::to_string(now);
        rep.envid = mdsn.envid;
        rep.arrival_us = env->arrival_us;
        rep.now_us = now;
        rep.utf8 = has_param(env->mail_params, "SMTPUTF8");
        rep.return_full = full;
        rep.original = *data;
        for (size_t i : idx) {
          const auto& r = env->recipients[i];
          RcptReport x;
          x.final_recipient = r.address;
          x.orcpt = smtp::rcpt_dsn(r.params).orcpt;
          x.action = kind == NoticeKind::Failure ? Action::Failed
                     : kind == NoticeKind::Delay ? Action::Delayed
                                                 : Action::Relayed;
          // The status recorded with the outcome (RFC 3464 §2.3.4; expiry is 5.4.7); a
          // file from before status codes were recorded falls back to the reply text.
          const char* fallback = kind == NoticeKind::Failure ? "5.0.0" : kind == NoticeKind::Delay ? "4.0.0" : "2.0.0";
          x.status = !r.last_status.empty() ? r.last_status : status_of(r.last_reply, fallback);
          if (kind == NoticeKind::Relayed) x.status = "2.0.0";
          if (kind == NoticeKind::Delay && x.status.front() != '4') x.status = "4.0.0";
          const size_t bracket = r.last_relay.find('[');
          x.remote_mta = r.last_relay.substr(0, bracket);
          x.diagnostic = r.last_reply;
          if (!r.last_status.empty()) x.remote_reply = r.last_remote;
          x.last_attempt_us = r.updated_us;
          if (kind == NoticeKind::Delay) x.will_retry_until_us = env->arrival_us + s_.max_queue_time_us;
          rep.rcpts.push_back(std::move(x));
        }
        std::string text = build(rep);

        queue::Envelope n;
        n.arrival_us = now;
        n.client_address = "127.0.0.1";
        n.client_helo = s_.hostname;
        n.client_relay = true;
        n.protocol = "LOCAL";
        n.sender = "";  // notices come from the null sender (RFC 5321 §4.5.5)
        if (rep.utf8) n.mail_params = {"SMTPUTF8", "BODY=8BITMIME"};
        else if (needs_8bit(text)) n.mail_params = {"BODY=8BITMIME"};  // RFC 6152
        queue::Recipient to;
        to.address = rep.to;
        n.recipients.push_back(to);
        if (kind == NoticeKind::Failure) {  // lets recovery tell this bounce is already queued
          n.notice_for = msg_id;
          n.notice_rcpts = idx;
        }
        auto incoming = injector_.begin(std::move(n));
        const std::string notice_id = incoming->id();
        incoming->append(text);
        const size_t count = idx.size();
        incoming->commit([this, alive, notice_id, msg_id, kind, count, to = rep.to, done](queue::CommitStatus st) {
          if (!*alive) return;
          committing_.erase(notice_id);
          const bool ok = st == queue::CommitStatus::Committed;
          if (ok)
            spdlog::info("bounce: id={} {} queued as {} to=<{}> nrcpt={}", msg_id, name_of(kind), notice_id, to, count);
          else
            spdlog::error("bounce: id={} {} could not be queued", msg_id, name_of(kind));
          done(ok);
        });
        committing_[notice_id] = std::move(incoming);
      });
}

}  // namespace tern::bounce
