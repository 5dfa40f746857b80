// The delivery agent: worker ownership and shutdown.
#include "delivery/agent.hpp"

#include <spdlog/spdlog.h>

#include "delivery/connection.hpp"
#include "io/tcp.hpp"

namespace tern::delivery {

Agent::Agent(io::Loop& loop, const Clock& clock, qmgr::Jobs& jobs, scheduler::Scheduler& sched,
             dns::Resolver& resolver, AgentSettings settings, uint64_t seed)
    : loop_(loop),
      clock_(clock),
      jobs_(jobs),
      sched_(sched),
      resolver_(resolver),
      settings_(std::move(settings)),
      rng_(seed),
      reaper_(loop),
      deadline_(loop) {
  io_.connect = [this](const Endpoint& to, const IpAddress* source, std::function<void(int)> done) {
    return std::unique_ptr<io::Transport>(io::Stream::connect(loop_, to, source, std::move(done)));
  };
  io_.make_alarm = [this] { return std::unique_ptr<Alarm>(new io::ClockAlarm(loop_, clock_)); };
}

Agent::~Agent() = default;

void load_tls_clients(AgentSettings& s) {
  std::vector<std::string> files{s.delivery.tls_ca_file};
  for (const auto& [domain, r] : s.routes)
    if (!r.tls_ca_file.empty()) files.push_back(r.tls_ca_file);
  for (const auto& f : files) {
    if (s.tls_clients.count(f) || s.tls_errors.count(f)) continue;
    auto ctx = tls::ClientContext::load(f);
    if (ctx) s.tls_clients.emplace(f, std::move(ctx.value()));
    else s.tls_errors.emplace(f, ctx.error().message);
  }
}

void Agent::open(const scheduler::Destination& d, scheduler::JobId first) {
  const uint64_t id = next_id_++;
  auto w = std::make_unique<Connection>(*this, id, d, first);
  Connection* raw = w.get();
  workers_.emplace(id, std::move(w));
  if (stopping_) raw->stop();
  raw->start();
}

void Agent::cancel(qmgr::JobId job) {
  for (auto& [id, w] : workers_)
    if (w->working_on(job)) {
      spdlog::info("delivery: conn={} attempt cancelled (its message was deleted)", id);
      w->abort();
      return;
    }
}

void Agent::release(uint64_t id) {
  auto it = workers_.find(id);
  if (it == workers_.end()) return;
  dead_.push_back(std::move(it->second));  // it may be on the call stack
  workers_.erase(it);
  reaper_.start(0, 0, [this] {
    dead_.clear();
    if (stopping_ && workers_.empty() && on_stopped_) {
      deadline_.stop();
      std::exchange(on_stopped_, nullptr)();
    }
  });
}

void Agent::shutdown(std::chrono::seconds deadline, std::function<void()> done) {
  stopping_ = true;
  on_stopped_ = std::move(done);
  auto each = [this](auto f) {
    std::vector<Connection*> live;  // a worker may release itself, which edits workers_
    for (auto& [id, w] : workers_) live.push_back(w.get());
    for (Connection* w : live) f(w);
  };
  each([](Connection* w) { w->stop(); });
  if (workers_.empty() && dead_.empty()) {
    std::exchange(on_stopped_, nullptr)();
    return;
  }
  deadline_.start(uint64_t(deadline.count()) * 1000, 0, [this, each] { each([](Connection* w) { w->abort(); }); });
}

}  // namespace tern::delivery
