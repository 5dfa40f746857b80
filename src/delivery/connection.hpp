// One outbound connection's life, as one state machine: resolve → connect (next address
// on failure) → SMTP session (delivery/client_session, pure) → one transaction per job,
// the body streamed from the queue file chunk by chunk on the transport's drain events,
// reusing the connection while the destination has mail. Every state has its deadline,
// set when the state is entered (a peer that drips bytes does not extend it); while the
// body goes out, each data_block period must show progress.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/outcome.hpp"
#include "delivery/candidates.hpp"
#include "delivery/client_session.hpp"
#include "delivery/tls_policy.hpp"
#include "io/loop.hpp"
#include "io/transport.hpp"
#include "qmgr/jobs.hpp"
#include "queue/body_reader.hpp"
#include "scheduler/destination.hpp"
#include "smtp/data_encoder.hpp"
#include "tls/engine.hpp"

namespace tern::delivery {

class Agent;

class Connection {
 public:
  enum class State {
    Starting,    // getting the first job's request
    Resolving,   // MX, then A/AAAA
    Connecting,  // TCP to the current candidate
    Greeting, Ehlo, StartTls, Handshake, Auth, Ready, Loading, Mail, Rcpt, Data, Body, DataEnd, Rset, Quit,
    Done,
  };

  Connection(Agent& agent, uint64_t id, scheduler::Destination dest, qmgr::JobId first);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start();
  void stop();   // finish the current transaction, then quit
  void abort();  // shutdown deadline: drop everything now (the job stays queued as it was)
  [[nodiscard]] State state() const noexcept;
  // The job whose transaction this connection is running (or about to run).
  [[nodiscard]] bool working_on(qmgr::JobId id) const noexcept { return req_ && job_id_ == id; }

 private:
  void next_request();
  void resolve();
  void resolve_addresses(std::vector<dns::MxHost> hosts, bool implicit);
  void lookup_dane(std::vector<dns::MxHost> hosts);
  void hosts_ready(std::vector<dns::MxHost> hosts);
  void fail_all_jobs(const Outcome& o);
  void connect_next();
  void on_connected(int status);
  void pump();
  void load_transaction();
  void start_transaction(bool smtputf8);
  void send_body();
  void finish_job(TxnResult r);
  void next_job();
  void address_failed(std::string why, std::string status = {});
  bool start_tls();
  void on_tls_ready();
  void tls_failed(std::string why);
  [[nodiscard]] std::string tls_summary() const;
  void drop_connection();
  void on_state_change();
  void on_deadline();
  void report(std::vector<Outcome> outs);
  void done();
  [[nodiscard]] std::string relay() const;
  // MTA-STS steps (delivery/connection_sts.cpp).
  void lookup_sts();
  [[nodiscard]] bool sts_hosts(std::vector<dns::MxHost>& hosts);
  void sts_check_tls();
  void sts_mark(std::vector<Outcome>& outs) const;

  Agent& agent_;
  uint64_t id_;
  scheduler::Destination dest_;
  qmgr::JobId job_id_ = 0;
  std::optional<qmgr::DeliveryRequest> req_;
  bool phase_resolving_ = false;
  std::vector<Candidate> cands_;
  size_t next_cand_ = 0;
  size_t current_ = 0;               // index of the candidate connected to
  std::vector<std::string> tried_;   // "relay: why" for each address that failed
  std::vector<std::string> tried_status_;  // and the status code of each (4.7.x: TLS)
  TlsPlan tls_plan_;                 // the destination's
  TlsPlan host_plan_;                // for the candidate connected to (DANE decides per host)
  std::unordered_map<std::string, HostDane> dane_;  // under `dane`: each host's TLSA verdict
  bool mx_secure_ = false;           // the MX answer was DNSSEC-validated
  size_t plaintext_cand_ = SIZE_MAX; // the candidate retried without TLS after a failed handshake
  std::shared_ptr<tls::Info> tls_;   // this connection's TLS, once a handshake has begun
  std::unique_ptr<io::Transport> transport_;
  bool connecting_ = false;
  std::unique_ptr<ClientSession> session_;
  bool session_started_ = false;     // the current session has had its first job started
  bool loading_ = false;             // waiting for the queue file (before MAIL)
  std::shared_ptr<queue::BodyReader> reader_;
  // Shared with the thread-pool job that encodes the next piece: that job may still run
  // after this connection has moved on or gone, so it never touches `this`.
  std::shared_ptr<smtp::DotEncoder> encoder_;
  bool read_pending_ = false;        // a piece is being read and encoded
  bool awaiting_drain_ = false;      // a piece is queued in the transport
  bool body_done_ = false;
  // Bumped whenever a connection is dropped or a transaction starts: an asynchronous answer
  // (queue file opened, piece read) for an older one is ignored.
  uint64_t gen_ = 0;
  size_t replies_seen_ = 0;          // SMTP replies so far (each awaited one has its own deadline)
  std::unique_ptr<Alarm> alarm_;     // the current state's deadline
  State armed_ = State::Done;        // the state whose deadline the timer holds
  bool reached_ = false;             // some session got ready: the destination is not down
  bool stopping_ = false;
  bool finished_ = false;
  int64_t attempt_started_us_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  // MTA-STS: the policy is asked for once per connection, before the MX lookup.
  bool sts_looked_up_ = false;
  StsPlan sts_;
  // Under `dane`, the plan before MTA-STS changed it: DANE takes precedence over MTA-STS
  // for a domain whose hosts publish secure TLSA records (RFC 8461 §2).
  bool dane_wanted_ = false;
  TlsPlan pre_sts_plan_;
  bool sts_checked_ = false;         // testing: this session's TLS was judged and logged
};

const char* to_string(Connection::State s) noexcept;

}  // namespace tern::delivery
