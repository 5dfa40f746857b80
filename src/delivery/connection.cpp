// The delivery connection driver: resolution, address failover, the SMTP session, the
// streamed body and the per-state deadlines.
#include "delivery/connection.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>

#include "common/log_escape.hpp"
#include "common/strings.hpp"
#include "delivery/agent.hpp"
#include "delivery/outcome.hpp"
#include "queue/body_reader.hpp"

namespace tern::delivery {

namespace {

// The log's verified= word: how the peer was authenticated, or "no".
std::string verified_word(const tls::Info& i) {
  return i.verified ? (i.verified_by.empty() ? std::string("pkix") : i.verified_by) : std::string("no");
}

// The body goes out in pieces of this size: memory per delivery is a few pieces (the one
// being read and encoded, the one in the socket's queue), whatever the message size.
constexpr size_t kChunk = 64 * 1024;
// Headers read to decide whether an SMTPUTF8 message really needs SMTPUTF8.
constexpr size_t kMaxHeaderCheck = 1 << 20;

bool is_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return false;
  return true;
}

}  // namespace

const char* to_string(Connection::State s) noexcept {
  using S = Connection::State;
  switch (s) {
    case S::Starting: return "starting";
    case S::Resolving: return "resolving";
    case S::Connecting: return "connecting";
    case S::Greeting: return "greeting";
    case S::Ehlo: return "EHLO/HELO reply";
    case S::StartTls: return "STARTTLS reply";
    case S::Handshake: return "TLS handshake";
    case S::Auth: return "AUTH reply";
    case S::Ready: return "ready";
    case S::Loading: return "queue file";
    case S::Mail: return "MAIL reply";
    case S::Rcpt: return "RCPT reply";
    case S::Data: return "DATA reply";
    case S::Body: return "data block";
    case S::DataEnd: return "end-of-data reply";
    case S::Rset: return "RSET reply";
    case S::Quit: return "QUIT reply";
    case S::Done: return "done";
  }
  return "?";
}

Connection::Connection(Agent& agent, uint64_t id, scheduler::Destination dest, qmgr::JobId first)
    : agent_(agent), id_(id), dest_(std::move(dest)), job_id_(first), alarm_(agent.io_.make_alarm()) {}

Connection::~Connection() {
  *alive_ = false;
  alarm_->cancel();
}

// The one state of this connection: its own phases, or the SMTP session's.
Connection::State Connection::state() const noexcept {
  if (finished_) return State::Done;
  if (phase_resolving_) return State::Resolving;
  if (connecting_) return State::Connecting;
  if (!session_) return State::Starting;
  if (loading_) return State::Loading;
  switch (session_->state()) {
    case ClientSession::State::Greeting: return State::Greeting;
    case ClientSession::State::Ehlo:
    case ClientSession::State::Helo: return State::Ehlo;
    case ClientSession::State::StartTls: return State::StartTls;
    case ClientSession::State::Handshake: return State::Handshake;
    case ClientSession::State::Auth: return State::Auth;
    case ClientSession::State::Ready: return State::Ready;
    case ClientSession::State::Rset: return State::Rset;
    case ClientSession::State::Body: return State::Body;
    case ClientSession::State::DataEnd: return State::DataEnd;
    case ClientSession::State::Quit: return State::Quit;
    case ClientSession::State::Closed: return State::Done;
    case ClientSession::State::Txn:
      switch (session_->waiting_for()) {
        case ClientSession::Wait::Rcpt: return State::Rcpt;
        case ClientSession::Wait::Data: return State::Data;
        default: return State::Mail;
      }
  }
  return State::Done;
}

// Deadlines are tied to states and set when a state is entered (RFC 5321 §4.5.3.2): bytes
// that trickle in without completing a reply do not extend them.
void Connection::on_state_change() {
  const State s = state();
  if (s == armed_) return;
  armed_ = s;
  const auto& t = agent_.settings_.delivery.timeouts;
  std::chrono::seconds d{0};
  switch (s) {
    case State::Connecting: d = t.connect; break;
    case State::Greeting: d = t.greeting; break;
    case State::Ehlo:
    case State::StartTls:
    case State::Handshake:  // Postfix bounds the handshake like a command reply too
    case State::Auth:
    case State::Rset: d = t.helo; break;
    case State::Mail: d = t.mail; break;
    case State::Rcpt: d = t.rcpt; break;
    case State::Data: d = t.data; break;
    case State::Body: d = t.data_block; break;  // re-armed on progress (send_body)
    case State::DataEnd: d = t.data_end; break;
    case State::Quit: d = t.quit; break;
    // DNS has its own per-query timeout; the queue file is local; Ready is between jobs.
    case State::Starting:
    case State::Resolving:
    case State::Ready:
    case State::Loading:
    case State::Done: alarm_->cancel(); return;
  }
  alarm_->set(agent_.clock_.now_us() + int64_t(d.count()) * 1000000, [this] { on_deadline(); });
}

void Connection::on_deadline() {
  const State s = state();
  armed_ = State::Done;
  if (s == State::Connecting) {
    connecting_ = false;
    return address_failed("connect timed out");
  }
  if (!session_) return;
  const std::string why = "Timeout waiting for the " + std::string(to_string(s)) + " from " + relay();
  if (s == State::Handshake || (tls_ && !tls_->done)) return tls_failed("handshake timed out");
  if (s == State::Body)
    session_->on_closed("4.4.2", "Timeout sending the data to " + relay() + " (no progress)");
  else
    session_->on_closed("4.4.2", why);
  pump();
}

std::string Connection::relay() const { return current_ < cands_.size() ? cands_[current_].relay() : dest_.key; }

void Connection::start() {
  // Never start inside the scheduler's dispatch: begin on the next loop turn.
  alarm_->set(agent_.clock_.now_us(), [this] {
    attempt_started_us_ = agent_.clock_.now_us();
    req_ = agent_.jobs_.begin(job_id_);
    if (!req_) return next_request();
    resolve();
  });
}

// The first job went away (expired): find one that still has work before resolving.
void Connection::next_request() {
  while (!stopping_) {
    auto id = agent_.sched_.take(dest_.key);
    if (!id) break;
    job_id_ = *id;
    req_ = agent_.jobs_.begin(job_id_);
    if (req_) return resolve();
  }
  reached_ = true;  // nothing was tried: the destination is not down
  done();
}

// A transaction under way is finished (its recipients' fate recorded); anything earlier
// (DNS, connecting, greeting) is abandoned at once: the job stays queued for the next start.
void Connection::stop() {
  stopping_ = true;
  const State s = state();
  const bool in_transaction = req_ && session_started_ && s != State::Ready && s != State::Done;
  if (in_transaction) return;
  reached_ = true;  // abandoned, not failed: the destination is not marked down
  req_.reset();
  done();
}

void Connection::abort() {
  stopping_ = true;
  reached_ = true;
  req_.reset();
  done();
}

void Connection::resolve() {
  tls_plan_ = plan_tls(dest_, agent_.settings_.delivery, agent_.settings_.routes);
  phase_resolving_ = true;
  on_state_change();
  // MTA-STS first (it comes back here once the domain's policy is known).
  if (!dest_.route && agent_.sts_ && !sts_looked_up_) return lookup_sts();
  dane_wanted_ = tls_plan_.level == config::TlsLevel::Dane;
  pre_sts_plan_ = tls_plan_;
  apply_sts(tls_plan_, sts_, dest_, agent_.settings_.delivery);
  auto alive = alive_;
  if (dest_.route) {
    dns::MxHost h{0, dest_.host, {}};
    if (auto ip = IpAddress::parse(dest_.host)) {
      h.addresses.push_back(*ip);
      return hosts_ready({h});
    }
    return resolve_addresses({h}, false);
  }
  agent_.resolver_.resolve_mx(dest_.domain, [this, alive](dns::MxAnswer a) {
    if (!*alive) return;
    if (auto o = classify_mx_answer(dest_.domain, a)) return fail_all_jobs(*o);
    mx_secure_ = a.secure;
    if (a.rcode == dns::Rcode::NoData) {
      // No MX: the domain itself is the implicit MX (RFC 5321 §5.1).
      return resolve_addresses({dns::MxHost{0, dest_.domain, {}}}, true);
    }
    auto ordered = dns::order_mx(a.records, agent_.rng_, agent_.settings_.delivery.max_mx_hosts);
    if (!ordered) return fail_all_jobs(Outcome::make(Fate::Failed, ordered.error().status, ordered.error().message));
    resolve_addresses(std::move(*ordered), false);
  });
}

// A and/or AAAA for every host, in parallel; hosts whose names do not resolve are skipped.
// A host's addresses count as secure when every answer for it was DNSSEC-validated.
void Connection::resolve_addresses(std::vector<dns::MxHost> hosts, bool implicit) {
  struct Pending {
    std::vector<dns::MxHost> hosts;
    std::vector<bool> secure;
    size_t left = 0;
    bool tempfail = false;
  };
  auto p = std::make_shared<Pending>();
  p->hosts = std::move(hosts);
  p->secure.assign(p->hosts.size(), true);
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
        if (!a.secure || (a.rcode != dns::Rcode::Ok && a.rcode != dns::Rcode::NoData)) p->secure[i] = false;
        if (--p->left > 0) return;
        bool any = false;
        for (size_t k = 0; k < p->hosts.size(); ++k) {
          p->hosts[k].secure = p->secure[k] && !p->hosts[k].addresses.empty();
          any |= !p->hosts[k].addresses.empty();
        }
        if (!any) {
          const std::string what = implicit      ? dest_.domain + " (no MX, no A/AAAA)"
                                   : dest_.route ? "next hop " + dest_.host
                                                 : "every MX host of " + dest_.domain;
          // A route's host must never make mail bounce: it is tern's own configuration.
          return fail_all_jobs(no_address(what, p->tempfail || dest_.route));
        }
        if (dane_wanted_) return lookup_dane(std::move(p->hosts));
        hosts_ready(std::move(p->hosts));
      });
    }
  }
}

// Under `dane`: the TLSA records of every host whose addresses are secure, in parallel
// (RFC 7672 §2.2; §2.2.1 allows this for hosts of an insecure MX set too). A host whose
// addresses are not secure stays opportunistic: its TLSA records could not be trusted.
void Connection::lookup_dane(std::vector<dns::MxHost> hosts) {
  dane_.clear();
  struct Pending {
    std::vector<dns::MxHost> hosts;
    size_t left = 0;
  };
  auto p = std::make_shared<Pending>();
  p->hosts = std::move(hosts);
  std::vector<size_t> todo;
  for (size_t i = 0; i < p->hosts.size(); ++i)
    if (p->hosts[i].secure && !dane_.contains(p->hosts[i].name)) {
      dane_.emplace(p->hosts[i].name, HostDane{});
      todo.push_back(i);
    }
  if (todo.empty()) return hosts_ready(std::move(p->hosts));
  p->left = todo.size();
  auto alive = alive_;
  for (size_t i : todo) {
    const std::string host = p->hosts[i].name;
    agent_.resolver_.resolve_tlsa(tlsa_name(dest_.port, host), [this, alive, p, host](dns::TlsaAnswer a) {
      if (!*alive) return;
      HostDane d = dane_for_host(a);
      if (d.mode != DaneMode::Opportunistic)
        spdlog::info("delivery: dest={} host={} dane={} {}", dest_.key, host, to_string(d.mode),
                     d.mode == DaneMode::Authenticate ? std::to_string(d.records.size()) + " usable TLSA record(s)"
                                                      : log_safe(d.why));
      dane_[host] = std::move(d);
      if (--p->left > 0) return;
      std::vector<HostDane> verdicts;
      for (const auto& [_, v] : dane_) verdicts.push_back(v);
      if (sts_.active() && dane_takes_precedence(verdicts)) {
        spdlog::info("mta-sts: domain={} policy id={} set aside: its MX hosts publish DNSSEC-secure TLSA "
                     "records, and DANE takes precedence",
                     dest_.domain, sts_.id);
        sts_ = StsPlan{};
        tls_plan_ = pre_sts_plan_;
      }
      hosts_ready(std::move(p->hosts));
    });
  }
}

void Connection::hosts_ready(std::vector<dns::MxHost> hosts) {
  phase_resolving_ = false;
  if (!sts_hosts(hosts)) return;
  const auto& d = agent_.settings_.delivery;
  CandidateRules rules{dest_.route, dest_.port, d.prefer_ipv6, d.max_addresses,
                       dest_.route ? dest_.domain + " (" + dest_.host + ":" + std::to_string(dest_.port) + ")"
                                   : dest_.domain};
  auto c = candidates(std::move(hosts), agent_.settings_.self, rules);
  if (auto* o = std::get_if<Outcome>(&c)) return fail_all_jobs(*o);
  cands_ = std::move(std::get<std::vector<Candidate>>(c));
  connect_next();
}

// DNS (or the self rule) said no for good, or not now. A permanent answer holds for every
// job of this destination; a temporary one marks the destination down.
void Connection::fail_all_jobs(const Outcome& o) {
  phase_resolving_ = false;
  if (o.fate == Fate::Failed) {
    reached_ = true;  // the destination is not down; its mail is undeliverable
    while (true) {
      if (req_) report(std::vector<Outcome>(req_->rcpts.size(), o));
      if (stopping_) break;
      auto id = agent_.sched_.take(dest_.key);
      if (!id) break;
      job_id_ = *id;
      req_ = agent_.jobs_.begin(job_id_);
    }
    return done();
  }
  tried_.push_back(o.text);
  tried_status_.push_back(o.status);
  if (req_) report(std::vector<Outcome>(req_->rcpts.size(), o));
  done();
}

// One line per address that failed, so "why was the primary not used?" has an answer.
void Connection::address_failed(std::string why, std::string status) {
  const Candidate& c = cands_[current_];
  spdlog::info("delivery: id={} dest={} host={} address={} port={} failed: {}", req_ ? req_->msg_id : "-",
               dest_.key, c.host, c.address.str(), c.port, log_safe(why));
  tried_.push_back(c.relay() + ": " + why);
  tried_status_.push_back(std::move(status));
  connect_next();
}

// The handshake failed (or timed out). Under `may` without credentials the same address
// is tried again at once in plaintext, so mail is not stuck behind a broken TLS stack
// (Postfix does the same); otherwise it is a failed address like any other, never a
// plaintext fallback.
void Connection::tls_failed(std::string why) {
  const Candidate& c = cands_[current_];
  if (host_plan_.level == config::TlsLevel::May && !host_plan_.auth && plaintext_cand_ != current_) {
    spdlog::warn("delivery: id={} host={} address={} TLS handshake failed ({}); retrying in plaintext",
                 req_ ? req_->msg_id : "-", c.host, c.address.str(), log_safe(why));
    plaintext_cand_ = current_;
    next_cand_ = current_;
    return connect_next();
  }
  address_failed("TLS handshake failed: " + why, "4.7.5");
}

// Stacks the TLS engine on the connection (after the 220 to STARTTLS, or at once for
// implicit TLS). SNI and the names to verify are those of the host connected to.
bool Connection::start_tls() {
  tls_ = std::make_shared<tls::Info>();
  auto it = agent_.settings_.tls_clients.find(host_plan_.ca_file);
  if (it == agent_.settings_.tls_clients.end()) {
    auto e = agent_.settings_.tls_errors.find(host_plan_.ca_file);
    tls_->error = e != agent_.settings_.tls_errors.end() ? e->second : "no TLS client context";
    return false;
  }
  const Candidate& c = cands_[current_];
  tls::ClientOptions opts;
  if (!IpAddress::parse(c.host)) opts.sni = c.host;
  // Names are checked at every level so the log's verified= means the same everywhere;
  // only `verify` acts on the answer.
  opts.names = verify_names(host_plan_, c.host, mx_secure_);
  if (host_plan_.level == config::TlsLevel::Dane) {
    // RFC 7672 §3.2.2: the TLSA base domain (the MX host) is the DANE-TA reference name.
    opts.dane_base = c.host;
    for (const auto& t : host_plan_.tlsa) opts.dane.push_back({t.usage, t.selector, t.mtype, t.data});
  }
  auto engine = tls::Engine::client(it->second, opts, tls_);
  if (!engine) {
    tls_->error = "cannot create a TLS connection";
    return false;
  }
  return transport_->insert_filter(std::move(engine));
}

// The handshake completed: under `verify` the peer must have proved who it is before a
// single command (or credential) goes out.
void Connection::on_tls_ready() {
  if (!session_ || !tls_) return;
  const Candidate& c = cands_[current_];
  spdlog::info("delivery: conn={} host={} address={} TLS established: {} cipher={} verified={}{}{}{}{}", id_,
               c.host, c.address.str(), tls_->version, tls_->cipher, verified_word(*tls_),
               tls_->dane_match.empty() ? "" : " tlsa=", tls_->dane_match,
               tls_->verified ? "" : " reason=", tls_->verified ? "" : log_safe(tls_->verify_error));
  if (host_plan_.level == config::TlsLevel::Verify && !tls_->verified)
    return address_failed("TLS certificate verification failed: " + tls_->verify_error +
                              (tls_->peer_subject.empty() ? "" : " (" + tls_->peer_subject + ")"),
                          "4.7.5");
  if (host_plan_.level == config::TlsLevel::Dane && !tls_->verified)
    return address_failed("DANE authentication failed: " + tls_->verify_error +
                              (tls_->peer_subject.empty() ? "" : " (" + tls_->peer_subject + ")"),
                          "4.7.5");
  session_->on_tls_started();
  pump();
}

std::string Connection::tls_summary() const {
  if (!tls_ || !tls_->done) return "tls=none";
  std::string s = "tls=" + tls_->version + " cipher=" + tls_->cipher + " verified=" + verified_word(*tls_);
  if (!tls_->dane_match.empty()) s += " tlsa=\"" + tls_->dane_match + "\"";
  return s;
}

void Connection::connect_next() {
  drop_connection();
  if (stopping_ || !req_) return done();
  if (next_cand_ >= cands_.size()) {
    report(std::vector<Outcome>(req_->rcpts.size(), unreachable(tried_, tried_status_)));
    return done();
  }
  current_ = next_cand_++;
  const Candidate& c = cands_[current_];
  host_plan_ = tls_plan_;
  if (dane_wanted_) {
    auto it = dane_.find(c.host);
    const HostDane none;
    const HostDane& d = it == dane_.end() ? none : it->second;
    // A failed or bogus TLSA lookup: never a plaintext (or unauthenticated) fallback, and
    // not used under an MTA-STS policy either.
    if (d.mode == DaneMode::Unusable) return address_failed(d.why, "4.7.5");
    host_plan_ = plan_for_host(tls_plan_, d);
  }
  const IpAddress* source = nullptr;
  for (const auto& a : agent_.settings_.delivery.source_addresses)
    if (a.v6 == c.address.v6) source = &a;
  auto alive = alive_;
  connecting_ = true;
  if (agent_.counters_) ++agent_.counters_->connections_out;
  transport_ = agent_.io_.connect(Endpoint{c.address, c.port}, source, [this, alive](int st) {
    if (*alive) on_connected(st);
  });
  on_state_change();
}

void Connection::on_connected(int status) {
  connecting_ = false;
  if (status != 0) return address_failed(connect_error(status));
  session_ = std::make_unique<ClientSession>(agent_.settings_.hostname,
                                             session_security(host_plan_, plaintext_cand_ == current_));
  session_started_ = false;
  sts_checked_ = false;
  tls_.reset();
  const std::string rel = relay();
  transport_->set_events({
      [this](std::string_view b) {
        session_->feed(b);
        pump();
      },
      [this, rel](int err) {
        if (tls_ && !tls_->done) return tls_failed(tls_->error.empty() ? "connection closed" : tls_->error);
        if (tls_ && err == -EPROTO) {
          session_->on_closed("4.7.5", "TLS error with " + rel + ": " + tls_->error);
          return pump();
        }
        session_->on_closed("4.4.2", "Connection lost with " + rel);
        pump();
      },
      [this] {
        if (!awaiting_drain_) return;
        awaiting_drain_ = false;
        send_body();
      },
      [this] { on_tls_ready(); },
  });
  // Implicit TLS (a port-465 smarthost): the handshake comes before the greeting.
  if (host_plan_.implicit && !start_tls()) return address_failed("cannot start TLS: " + tls_->error, "4.7.5");
  transport_->start_read();
  on_state_change();
}

void Connection::pump() {
  if (!session_) return;
  if (std::string out = session_->take_output(); !out.empty()) transport_->write(std::move(out));
  if (session_->replies() != replies_seen_) {
    // A reply came: the next one awaited gets a deadline of its own, even in the same state
    // (each RCPT of a transaction, HELO after a refused EHLO).
    replies_seen_ = session_->replies();
    armed_ = State::Done;
  }
  if (const auto& f = session_->setup_failure()) return address_failed(f->why, f->status);
  if (session_->wants_tls() && !tls_) {
    // The one reply to STARTTLS was read and nothing followed it: start the handshake.
    if (!start_tls()) return address_failed("cannot start TLS: " + tls_->error, "4.7.5");
    return on_state_change();
  }
  if (auto r = session_->take_result()) return finish_job(std::move(*r));
  if (session_->ready() && !session_started_) {
    // A fresh session (the first, or one after a reconnect) is ready: run the held job.
    session_started_ = true;
    reached_ = true;
    return load_transaction();
  }
  if (session_->closed()) {
    if (!req_) return done();  // after QUIT, or an idle close
    return address_failed("connection closed before the transaction");
  }
  if (session_->wants_body() && !read_pending_ && !awaiting_drain_) send_body();
  on_state_change();
}

// Before MAIL: the queue file is opened (its body is streamed after the 354), and an
// SMTPUTF8 message bound for a next hop without SMTPUTF8 is checked for what it really
// needs: with an all-ASCII envelope and header section it goes without (as Postfix does).
void Connection::load_transaction() {
  if (!req_) return next_job();
  attempt_started_us_ = agent_.clock_.now_us();
  loading_ = true;
  body_done_ = false;
  read_pending_ = awaiting_drain_ = false;
  encoder_ = std::make_shared<smtp::DotEncoder>();
  const uint64_t gen = ++gen_;
  on_state_change();
  bool smtputf8 = false;
  for (const auto& p : req_->mail_params) smtputf8 |= iequals(p, "SMTPUTF8");
  auto alive = alive_;
  queue::BodyReader::open(agent_.loop_, req_->path, [this, alive, gen, smtputf8](Result<std::shared_ptr<queue::BodyReader>> r) {
    if (!*alive || gen != gen_ || !req_) return;
    if (!r) {
      loading_ = false;
      spdlog::error("delivery: id={} cannot read the queue file: {}", req_->msg_id, r.error().message);
      report(std::vector<Outcome>(req_->rcpts.size(),
                                  Outcome::make(Fate::Deferred, "4.3.0", "Cannot read the queue file: " + r.error().message)));
      return next_job();
    }
    reader_ = std::move(*r);
    if (!smtputf8 || !session_ || session_->capabilities().smtputf8) return start_transaction(smtputf8);
    bool ascii = is_ascii(req_->sender);
    for (const auto& a : req_->rcpts) ascii = ascii && is_ascii(a);
    if (!ascii) return start_transaction(true);  // the session fails it (5.6.7)
    queue::read_data_prefix(agent_.loop_, req_->path, kMaxHeaderCheck, true, [this, alive, gen](Result<std::string> h) {
      if (!*alive || gen != gen_ || !req_) return;
      start_transaction(!h || !is_ascii(*h));
    });
  });
}

void Connection::start_transaction(bool smtputf8) {
  loading_ = false;
  if (!session_ || !session_->ready()) {
    next_cand_ = current_;  // the connection went away meanwhile: reconnect
    return connect_next();
  }
  Transaction t;
  t.sender = req_->sender;
  t.rcpts = req_->rcpts;
  t.size = req_->size;
  t.smtputf8 = smtputf8;
  for (const auto& p : req_->mail_params) {
    if (istarts_with(p, "BODY=8BITMIME")) t.eight_bit = true;
    if (istarts_with(p, "RET=") || istarts_with(p, "ENVID=")) t.mail_dsn.push_back(p);
  }
  for (const auto& params : req_->rcpt_params) {
    t.rcpt_dsn.emplace_back();
    for (const auto& p : params)
      if (istarts_with(p, "NOTIFY=") || istarts_with(p, "ORCPT=")) t.rcpt_dsn.back().push_back(p);
  }
  session_->start(std::move(t));
  pump();
}

// Streams the body: read and dot-stuff the next piece in the thread pool, write it, and
// pull the next one when the transport has drained (so at most one piece waits in the
// socket's queue). Each piece that goes out is progress for the data_block deadline.
void Connection::send_body() {
  if (!session_ || !session_->wants_body() || !reader_ || read_pending_ || awaiting_drain_) return;
  if (body_done_) {
    session_->body_sent();
    return on_state_change();
  }
  read_pending_ = true;
  auto alive = alive_;
  const uint64_t gen = gen_;
  reader_->next(
      kChunk,
      [enc = encoder_](std::string& piece, bool last) {  // thread pool: never `this`
        std::string out;
        enc->encode(piece, out);
        if (last) enc->finish(out);
        piece = std::move(out);
      },
      [this, alive, gen](Result<std::string> piece) {
        if (!*alive || gen != gen_) return;
        read_pending_ = false;
        if (!session_ || !session_->wants_body()) return pump();
        if (!piece) {
          spdlog::error("delivery: id={} reading the queue file: {}", req_->msg_id, piece.error().message);
          session_->on_closed("4.3.0", "Cannot read the queue file: " + piece.error().message);
          return pump();
        }
        body_done_ = reader_->at_end();
        // Progress: the data_block deadline starts again with each piece sent.
        armed_ = State::Done;
        on_state_change();
        if (!transport_->write(std::move(*piece))) {
          awaiting_drain_ = true;  // on_drain continues
          return;
        }
        send_body();
      });
}

void Connection::finish_job(TxnResult r) {
  reader_.reset();
  if (r.next_host) {
    address_failed(r.rcpts.empty() ? "refused" : r.rcpts[0].text);
    return;
  }
  for (auto& o : r.rcpts) {
    o.relay = relay();
    o.dsn_passed = r.dsn_passed;
    o.tls = tls_summary();
  }
  sts_check_tls();
  report(std::move(r.rcpts));
  next_job();
}

// Connection reuse: the next job for this destination rides the same session (RSET first).
void Connection::next_job() {
  req_.reset();
  while (!stopping_ && !req_) {
    auto id = agent_.sched_.take(dest_.key);
    if (!id) break;
    job_id_ = *id;
    req_ = agent_.jobs_.begin(job_id_);
  }
  if (!req_) {
    if (session_ && session_->ready()) {
      session_->quit();
      return pump();
    }
    return done();
  }
  tried_.clear();
  tried_status_.clear();
  if (session_ && session_->ready()) return load_transaction();
  next_cand_ = current_;
  connect_next();
}

void Connection::drop_connection() {
  alarm_->cancel();
  armed_ = State::Done;
  connecting_ = false;
  ++gen_;  // answers still on their way belong to the connection dropped here
  loading_ = read_pending_ = awaiting_drain_ = body_done_ = false;
  replies_seen_ = 0;
  if (transport_) transport_->close_after_flush();
  transport_.reset();
  session_.reset();
  reader_.reset();
}

void Connection::report(std::vector<Outcome> outs) {
  if (!req_) return;
  const qmgr::JobId id = job_id_;
  req_.reset();
  sts_mark(outs);
  agent_.jobs_.report(id, std::move(outs), attempt_started_us_ ? attempt_started_us_ : agent_.clock_.now_us());
}

void Connection::done() {
  if (finished_) return;
  finished_ = true;
  *alive_ = false;  // nothing asynchronous acts on this connection any more
  drop_connection();
  agent_.sched_.closed(dest_.key, reached_, tried_.empty() ? "no reason" : tried_.back());
  agent_.release(id_);
}

}  // namespace tern::delivery
