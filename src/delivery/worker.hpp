// One outbound connection's life: resolve → connect (next address on failure) → SMTP
// session → one transaction per job, reusing the connection while the destination has mail.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"
#include "delivery/client_session.hpp"
#include "dns/mx.hpp"
#include "io/loop.hpp"
#include "io/tcp.hpp"
#include "scheduler/scheduler.hpp"

namespace tern::delivery {

class Agent;

class Worker {
 public:
  Worker(Agent& agent, uint64_t id, scheduler::Destination dest, scheduler::Job first);
  ~Worker();
  void start();
  void stop();   // finish the current transaction, then quit
  void abort();  // shutdown deadline: drop everything now (the job stays queued as it was)

 private:
  struct Candidate {
    std::string host;
    IpAddress address;
    uint16_t port = 0;
    [[nodiscard]] std::string relay() const;
  };
  void resolve();
  void resolve_addresses(std::vector<dns::MxHost> hosts, bool implicit);
  void targets_ready(Result<std::vector<dns::MxHost>> hosts);
  void fail_all_jobs(const Error& e);
  void connect_next();
  void on_connected(int status);
  void pump();
  void begin_job();
  void start_transaction(uint64_t size, std::shared_ptr<const std::string> encoded);
  void finish_job(const TxnResult& r);
  void next_job();
  void drop_connection();
  void arm_timer();
  void report_job(scheduler::Result result, const std::string& reply);
  void done();

  Agent& agent_;
  uint64_t id_;
  scheduler::Destination dest_;
  std::optional<scheduler::Job> job_;
  std::vector<Candidate> cands_;
  size_t next_cand_ = 0;
  size_t current_ = 0;  // index of the candidate connected to
  std::unique_ptr<io::Stream> stream_;
  std::unique_ptr<ClientSession> session_;
  io::Timer timer_;
  bool reached_ = false;          // some session got ready: the destination is not down
  bool session_started_ = false;  // the current session has had its first job started
  bool stopping_ = false;
  bool finished_ = false;
  bool loading_ = false;  // waiting for the queue file to be read
  size_t unsent_ = 0;     // bytes of the message still queued at the last data_block check
  std::string last_error_;
  int64_t attempt_started_us_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tern::delivery
