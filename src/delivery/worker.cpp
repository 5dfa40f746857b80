// A delivery worker: resolution, address failover, the SMTP session and its timeouts.
#include "delivery/worker.hpp"

#include <algorithm>
#include <spdlog/spdlog.h>

#include "delivery/agent.hpp"
#include "delivery/outcome.hpp"
#include "smtp/data_encoder.hpp"
#include "common/strings.hpp"

namespace tern::delivery {

std::string Worker::Candidate::relay() const {
  return host + "[" + address.str() + "]:" + std::to_string(port);
}

Worker::Worker(Agent& agent, uint64_t id, scheduler::Destination dest, scheduler::Job first)
    : agent_(agent), id_(id), dest_(std::move(dest)), job_(std::move(first)), timer_(agent.loop_) {}

Worker::~Worker() {
  *alive_ = false;
  timer_.stop();
}

void Worker::start() {
  // Never start inside the scheduler's dispatch loop: begin on the next loop turn.
  timer_.start(0, 0, [this] { resolve(); });
}

// A transaction under way is finished (its recipients' fate recorded); anything earlier
// (DNS, connecting, greeting) is abandoned at once: the job stays queued for the next start.
void Worker::stop() {
  stopping_ = true;
  const bool in_transaction = session_ && !session_->ready() && reached_ && job_;
  if (in_transaction || loading_) return;
  reached_ = true;  // abandoned, not failed: the destination is not marked down
  done();
}

void Worker::abort() {
  stopping_ = true;
  reached_ = true;
  job_.reset();
  done();
}

void Worker::resolve() {
  auto alive = alive_;
  if (dest_.route) {
    dns::MxHost h{0, dest_.host, {}};
    if (auto ip = IpAddress::parse(dest_.host)) {
      h.addresses.push_back(*ip);
      targets_ready(std::vector<dns::MxHost>{h});
      return;
    }
    return resolve_addresses({h}, false);
  }
  agent_.resolver_.resolve_mx(dest_.domain, [this, alive](dns::MxAnswer a) {
    if (!*alive) return;
    if (auto st = classify_mx_answer(dest_.domain, a); !st) return fail_all_jobs(st.error());
    if (a.rcode == dns::Rcode::NoData) {
      // No MX: the domain itself is the implicit MX (RFC 5321 §5.1).
      return resolve_addresses({dns::MxHost{0, dest_.domain, {}}}, true);
    }
    auto ordered = dns::order_mx(a.records, agent_.rng_, agent_.settings_.delivery.max_mx_hosts);
    if (!ordered) return fail_all_jobs(ordered.error());
    resolve_addresses(std::move(*ordered), false);
  });
}

// A and/or AAAA for every host, in parallel; hosts whose names do not resolve are skipped.
void Worker::resolve_addresses(std::vector<dns::MxHost> hosts, bool implicit) {
  struct Pending {
    std::vector<dns::MxHost> hosts;
    size_t left = 0;
    bool tempfail = false;
  };
  auto p = std::make_shared<Pending>();
  p->hosts = std::move(hosts);
  const auto family = agent_.settings_.delivery.address_family;
  std::vector<bool> families;
  if (family != config::AddressFamily::Ipv6) families.push_back(false);
  if (family != config::AddressFamily::Ipv4) families.push_back(true);
  p->left = p->hosts.size() * families.size();
  auto alive = alive_;
  for (size_t i = 0; i < p->hosts.size(); ++i) {
    for (bool v6 : families) {
      agent_.resolver_.resolve_addr(p->hosts[i].name, v6, [this, alive, p, i, implicit](dns::AddrAnswer a) {
        if (!*alive) return;
        if (a.rcode == dns::Rcode::Ok)
          for (const auto& ad : a.addresses) p->hosts[i].addresses.push_back(ad);
        else if (a.rcode == dns::Rcode::TempFail || a.rcode == dns::Rcode::Malformed)
          p->tempfail = true;
        if (--p->left > 0) return;
        std::vector<dns::MxHost> usable;
        for (auto& h : p->hosts)
          if (!h.addresses.empty()) usable.push_back(std::move(h));
        if (usable.empty()) {
          const std::string what = implicit ? dest_.domain + " (no MX, no A/AAAA)"
                                   : dest_.route ? "next hop " + dest_.host
                                                 : "every MX host of " + dest_.domain;
          // A route's host must never make mail bounce: it is tern's own configuration.
          return fail_all_jobs(no_address(what, p->tempfail || dest_.route));
        }
        // A route is the operator's explicit choice: only its exact endpoint can be me.
        if (dest_.route) return targets_ready(std::move(usable));
        targets_ready(dns::apply_self_rule(std::move(usable), agent_.settings_.self));
      });
    }
  }
}

void Worker::targets_ready(Result<std::vector<dns::MxHost>> hosts) {
  if (!hosts) return fail_all_jobs(hosts.error());
  const auto& d = agent_.settings_.delivery;
  for (auto& h : *hosts) {
    std::stable_sort(h.addresses.begin(), h.addresses.end(), [&](const IpAddress& a, const IpAddress& b) {
      return d.prefer_ipv6 ? (a.v6 && !b.v6) : (!a.v6 && b.v6);
    });
    for (const auto& a : h.addresses) {
      if (cands_.size() >= d.max_addresses) break;
      if (dest_.route && agent_.settings_.self.is_my_endpoint(Endpoint{a, dest_.port})) continue;
      cands_.push_back({h.name, a, dest_.port});
    }
  }
  if (cands_.empty())
    return fail_all_jobs(Error::perm("5.4.6 Route for " + dest_.domain + " points back to myself (" +
                                     dest_.host + ":" + std::to_string(dest_.port) + ")"));
  connect_next();
}

// DNS said no for good (or not now). A permanent answer holds for every job of this
// destination; a temporary one marks the destination down.
void Worker::fail_all_jobs(const Error& e) {
  last_error_ = e.message;
  if (e.kind == ErrorKind::Perm) {
    reached_ = true;  // the destination is not down; its mail is undeliverable
    while (job_) {
      report_job(scheduler::Result::Failed, e.message);
      if (stopping_) break;
      job_ = agent_.sched_.take(dest_.key);
    }
  } else {
    report_job(scheduler::Result::Deferred, e.message);
  }
  done();
}

void Worker::connect_next() {
  drop_connection();
  if (stopping_ || !job_) return done();
  if (next_cand_ >= cands_.size()) {
    report_job(scheduler::Result::Deferred, last_error_.empty() ? "4.4.1 No host could be reached" : last_error_);
    return done();
  }
  current_ = next_cand_++;
  const Candidate& c = cands_[current_];
  auto alive = alive_;
  stream_ = io::Stream::connect(agent_.loop_, Endpoint{c.address, c.port}, [this, alive](int st) {
    if (*alive) on_connected(st);
  });
  timer_.start(uint64_t(agent_.settings_.delivery.timeouts.connect.count()) * 1000, 0, [this] {
    last_error_ = "4.4.1 Connection to " + cands_[current_].relay() + " timed out";
    connect_next();
  });
}

void Worker::on_connected(int status) {
  timer_.stop();
  if (status != 0) {
    last_error_ = connect_error(cands_[current_].relay(), status);
    return connect_next();
  }
  session_ = std::make_unique<ClientSession>(agent_.settings_.hostname);
  session_started_ = false;
  const std::string relay = cands_[current_].relay();
  stream_->set_callbacks({
      [this](std::string_view b) {
        session_->feed(b);
        pump();
      },
      [this, relay](int) {
        session_->on_closed("4.4.2 Connection lost with " + relay);
        pump();
      },
  });
  stream_->start_read();
  arm_timer();
}

void Worker::pump() {
  if (!session_) return;
  if (std::string out = session_->take_output(); !out.empty()) stream_->write(std::move(out));
  if (const auto& f = session_->setup_failure()) {
    last_error_ = cands_[current_].relay() + ": " + *f;
    return connect_next();
  }
  if (auto r = session_->take_result()) return finish_job(*r);
  if (session_->ready() && !session_started_) {
    // A fresh session (the first, or one after a reconnect) is ready: run the held job.
    session_started_ = true;
    reached_ = true;
    return begin_job();
  }
  if (session_->closed()) {
    if (!job_) return done();  // after QUIT, or an idle close
    return connect_next();      // lost before the job could start: next address
  }
  arm_timer();
}

void Worker::begin_job() {
  if (!job_) return next_job();
  attempt_started_us_ = agent_.clock_.now_us();
  loading_ = true;
  timer_.stop();
  auto alive = alive_;
  agent_.store_.read_message(job_->msg_id, [this, alive](Result<std::shared_ptr<const std::string>> data) {
    if (!*alive) return;
    if (!data) {
      loading_ = false;
      report_job(scheduler::Result::Deferred, "4.3.0 Cannot read the queue file: " + data.error().message);
      return next_job();
    }
    // Dot-stuffing a message of up to limits.max_message_size is CPU work: thread pool.
    auto raw = *data;
    const uint64_t size = raw->size();
    auto encoded = std::make_shared<std::string>();
    agent_.loop_.queue_work([raw = std::move(raw), encoded]() mutable {
                              *encoded = smtp::encode_data(*raw);
                              raw.reset();  // only the encoded form is kept from here on
                            },
                            [this, alive, size, encoded] {
                              if (*alive) start_transaction(size, encoded);
                            });
  });
}

void Worker::start_transaction(uint64_t size, std::shared_ptr<const std::string> encoded) {
  loading_ = false;
  {
    if (!session_ || !session_->ready()) {
      next_cand_ = current_;  // the connection went away meanwhile: reconnect
      return connect_next();
    }
    Transaction t;
    t.sender = job_->sender;
    t.rcpts = job_->rcpts;
    t.encoded = std::move(encoded);
    t.size = size;
    for (const auto& p : job_->mail_params) {
      if (istarts_with(p, "BODY=8BITMIME")) t.eight_bit = true;
      if (iequals(p, "SMTPUTF8")) t.smtputf8 = true;
      if (istarts_with(p, "RET=") || istarts_with(p, "ENVID=")) t.mail_dsn.push_back(p);
    }
    for (const auto& params : job_->rcpt_params) {
      t.rcpt_dsn.emplace_back();
      for (const auto& p : params)
        if (istarts_with(p, "NOTIFY=") || istarts_with(p, "ORCPT=")) t.rcpt_dsn.back().push_back(p);
    }
    session_->start(std::move(t));
    pump();
  }
}

void Worker::finish_job(const TxnResult& r) {
  if (r.next_host) {
    last_error_ = cands_[current_].relay() + ": " + (r.rcpts.empty() ? "refused" : r.rcpts[0].reply);
    return connect_next();
  }
  std::vector<scheduler::RcptOutcome> outs;
  for (const auto& x : r.rcpts) outs.push_back({to_result(x.verdict), x.reply, r.dsn_passed});
  agent_.sched_.report(*job_, outs, cands_[current_].relay(), attempt_started_us_);
  job_.reset();
  next_job();
}

// Connection reuse: the next job for this destination rides the same session (RSET first).
void Worker::next_job() {
  if (!stopping_) job_ = agent_.sched_.take(dest_.key);
  if (!job_) {
    if (session_ && session_->ready()) {
      session_->quit();
      return pump();
    }
    return done();
  }
  if (session_ && session_->ready()) return begin_job();
  next_cand_ = current_;
  connect_next();
}

void Worker::drop_connection() {
  timer_.stop();
  if (stream_) stream_->close_after_flush();
  stream_.reset();
  session_.reset();
}

void Worker::arm_timer() {
  if (!session_) return;
  const auto& t = agent_.settings_.delivery.timeouts;
  // While the message is still going out, each data_block period must show progress
  // (RFC 5321 §4.5.3.2.5); the data_end wait starts once everything is sent.
  if (session_->waiting_for() == ClientSession::Wait::DataEnd && stream_ && stream_->queued_bytes() > 0) {
    unsent_ = stream_->queued_bytes();
    timer_.start(uint64_t(t.data_block.count()) * 1000, 0, [this] {
      const size_t now_unsent = stream_ ? stream_->queued_bytes() : 0;
      if (now_unsent < unsent_) return arm_timer();
      session_->on_closed("4.4.2 Timeout sending the data to " + cands_[current_].relay());
      pump();
    });
    return;
  }
  std::chrono::seconds s{0};
  const char* what = "";
  switch (session_->waiting_for()) {
    case ClientSession::Wait::Greeting: s = t.greeting, what = "greeting"; break;
    case ClientSession::Wait::Helo: s = t.helo, what = "EHLO/HELO/RSET reply"; break;
    case ClientSession::Wait::Mail: s = t.mail, what = "MAIL reply"; break;
    case ClientSession::Wait::Rcpt: s = t.rcpt, what = "RCPT reply"; break;
    case ClientSession::Wait::Data: s = t.data, what = "DATA reply"; break;
    case ClientSession::Wait::DataBlock: s = t.data_block, what = "data block"; break;
    case ClientSession::Wait::DataEnd: s = t.data_end, what = "end-of-data reply"; break;
    case ClientSession::Wait::Quit: s = t.quit, what = "QUIT reply"; break;
    case ClientSession::Wait::None: timer_.stop(); return;
  }
  timer_.start(uint64_t(s.count()) * 1000, 0, [this, what] {
    session_->on_closed("4.4.2 Timeout waiting for the " + std::string(what) + " from " + cands_[current_].relay());
    pump();
  });
}

void Worker::report_job(scheduler::Result result, const std::string& reply) {
  if (!job_) return;
  std::vector<scheduler::RcptOutcome> outs(job_->rcpts.size(), scheduler::RcptOutcome{result, reply});
  // Only a host that answered is a relay (the DSN's Remote-MTA); a refused or silent
  // address shows in the reply text instead.
  const bool answered = session_ && session_->state() != ClientSession::State::Greeting;
  const std::string relay = answered ? cands_[current_].relay() : "none";
  agent_.sched_.report(*job_, outs, relay, attempt_started_us_ ? attempt_started_us_ : agent_.clock_.now_us());
  job_.reset();
}

void Worker::done() {
  if (finished_) return;
  finished_ = true;
  drop_connection();
  agent_.sched_.closed(dest_.key, reached_, last_error_);
  agent_.release(id_);
}

}  // namespace tern::delivery
