// The delivery agent: starts one Connection per outbound connection the scheduler asks
// for, and owns them. A connection resolves the destination, connects, and runs
// transactions for as long as the scheduler has mail for that destination.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/stats.hpp"
#include "config/config.hpp"
#include "dns/mx.hpp"
#include "dns/resolver.hpp"
#include "io/loop.hpp"
#include "io/transport.hpp"
#include "qmgr/jobs.hpp"
#include "scheduler/scheduler.hpp"
#include "sts/source.hpp"
#include "tls/context.hpp"

namespace tern::delivery {

class Connection;

struct AgentSettings {
  std::string hostname;  // our EHLO name
  config::Delivery delivery;
  dns::Self self;
  std::map<std::string, config::Route> routes;  // TLS and credentials of route destinations
  // Client TLS contexts by CA file ("" = the system store), loaded off the loop with the
  // configuration; a file that failed to load is absent and its error is kept.
  std::map<std::string, std::shared_ptr<const tls::ClientContext>> tls_clients;
  std::map<std::string, std::string> tls_errors;
};

// Builds the client TLS contexts every configured CA file needs (reads files: call off
// the loop).
void load_tls_clients(AgentSettings& s);

// How connections reach the world: TCP connects and timers. ternd uses the real ones
// (io::Stream::connect, io::ClockAlarm); unit tests drive a Connection through fakes.
struct Io {
  using Connect = std::function<std::unique_ptr<io::Transport>(const Endpoint& to, const IpAddress* source,
                                                               std::function<void(int)> done)>;
  Connect connect;
  std::function<std::unique_ptr<Alarm>()> make_alarm;
};

class Agent final : public scheduler::Dispatcher {
 public:
  Agent(io::Loop& loop, const Clock& clock, qmgr::Jobs& jobs, scheduler::Scheduler& sched,
        dns::Resolver& resolver, AgentSettings settings, uint64_t seed);
  ~Agent() override;

  void open(const scheduler::Destination& d, scheduler::JobId first) override;
  void apply(AgentSettings s) { settings_ = std::move(s); }
  void set_io(Io io) { io_ = std::move(io); }
  // Workers finish their current transaction and quit; `done` runs when none is left, or
  // after `deadline`, when the rest are cut off (their mail stays queued as it was).
  void shutdown(std::chrono::seconds deadline, std::function<void()> done);
  [[nodiscard]] size_t workers() const noexcept { return workers_.size(); }
  // An operator deleted the message of job `id`: the connection running it is dropped
  // at once (the job itself is already forgotten).
  void cancel(qmgr::JobId id);
  void set_counters(Counters* c) { counters_ = c; }
  // MTA-STS policies (nullptr: mta_sts is off). Must outlive the agent.
  void set_sts(sts::Source* s) { sts_ = s; }

 private:
  friend class Connection;
  void release(uint64_t id);

  io::Loop& loop_;
  const Clock& clock_;
  qmgr::Jobs& jobs_;
  scheduler::Scheduler& sched_;
  dns::Resolver& resolver_;
  AgentSettings settings_;
  Io io_;
  std::mt19937_64 rng_;
  std::map<uint64_t, std::unique_ptr<Connection>> workers_;
  std::vector<std::unique_ptr<Connection>> dead_;
  io::Timer reaper_;
  io::Timer deadline_;
  uint64_t next_id_ = 1;
  bool stopping_ = false;
  std::function<void()> on_stopped_;
  Counters* counters_ = nullptr;
  sts::Source* sts_ = nullptr;
};

}  // namespace tern::delivery
