// Listeners, connection limits, settings generations and graceful shutdown.
#include "server/server.hpp"

#include <spdlog/spdlog.h>

#include "server/connection.hpp"
#include "smtp/reply.hpp"

namespace tern::server {

Server::Server(io::Loop& loop, queue::Injector& injector, const Clock& clock, const config::Config& cfg,
               std::shared_ptr<const tls::ServerContext> tls)
    : loop_(loop), injector_(injector), clock_(clock), reaper_(loop) {
  apply(cfg, std::move(tls));
}

Server::~Server() = default;

std::shared_ptr<const SessionSettings> Server::make_settings(const config::Config& cfg, bool tls) {
  return std::make_shared<const SessionSettings>(SessionSettings{cfg.hostname, cfg.limits, RelayPolicy(cfg), tls});
}

void Server::apply(const config::Config& cfg, std::shared_ptr<const tls::ServerContext> tls) {
  tls_ = std::move(tls);
  settings_ = make_settings(cfg, tls_ != nullptr);
  timeouts_ = cfg.timeouts;
}

Status Server::listen(const std::vector<config::Listen>& listen) {
  auto key_of = [](const config::Listen& l) { return l.address.str() + (l.implicit_tls ? " implicit" : " starttls"); };
  std::map<std::string, std::unique_ptr<io::TcpListener>> next;
  for (const auto& l : listen) {
    const std::string key = key_of(l);
    if (auto it = listeners_.find(key); it != listeners_.end()) {
      next.emplace(key, std::move(it->second));  // unchanged: keeps its socket
      listeners_.erase(it);
    }
  }
  // Closed before the new ones open: the same address may come back with another mode.
  for (auto& [key, l] : listeners_) spdlog::info("smtpd: no longer listening on {}", key);
  listeners_.clear();
  Status result = ok_status();
  for (const auto& l : listen) {
    const std::string key = key_of(l);
    if (next.count(key)) continue;
    const bool implicit = l.implicit_tls;
    auto lst = io::TcpListener::listen(loop_, l.address, [this, implicit](std::unique_ptr<io::Stream> c) {
      accept(std::move(c), implicit);
    });
    if (!lst) {
      if (result.ok()) result = lst.error();
      continue;
    }
    spdlog::info("smtpd: listening on {}{}", l.address.str(), implicit ? " (implicit TLS)" : "");
    next.emplace(key, std::move(lst.value()));
  }
  listeners_ = std::move(next);
  return result;
}

const char* admission_refusal(const config::Limits& lim, size_t open_total, uint32_t open_from_client,
                              bool relay_client) noexcept {
  if (open_total >= lim.max_connections) return "Error: too many connections";
  // Like Postfix's exemption of $mynetworks: a local application (or a relaying host of the
  // operator's own) legitimately opens many connections at once.
  const bool per_client_applies = !relay_client || lim.per_client_limit_for_relay;
  if (per_client_applies && open_from_client >= lim.max_connections_per_client)
    return "Error: too many connections from your address";
  return nullptr;
}

void Server::accept(std::unique_ptr<io::Stream> tcp, bool implicit_tls) {
  const IpAddress addr = tcp->peer().address;
  const std::string key = addr.str();
  const bool relay = settings_->policy.client_may_relay(addr);
  const char* refusal = admission_refusal(settings_->limits, conns_.size(), per_client_[key], relay);
  if (refusal) {
    spdlog::warn("smtpd: refused connection from [{}]: {}", key, refusal);
    if (counters_) ++counters_->rejected["421 4.7.0 connection limit"];
    if (per_client_[key] == 0) per_client_.erase(key);
    // On an implicit-TLS port the client expects a handshake, not text: just close.
    if (!implicit_tls) tcp->write(smtp::reply(421, "4.7.0", settings_->hostname + " " + refusal));
    tcp->close_after_flush();
    return;
  }
  ++per_client_[key];
  if (counters_) ++counters_->connections_in;
  const uint64_t id = next_id_++;
  ClientInfo client{addr, tcp->peer().port, relay, implicit_tls};
  auto conn = std::make_unique<Connection>(*this, id, std::move(tcp), settings_, client, tls_);
  Connection* raw = conn.get();
  conns_.emplace(id, std::move(conn));
  raw->start();
}

void Server::release(uint64_t id) {
  auto it = conns_.find(id);
  if (it == conns_.end()) return;
  const std::string key = it->second->client().address.str();
  if (auto pc = per_client_.find(key); pc != per_client_.end() && --pc->second == 0) per_client_.erase(pc);
  // The connection may be on the call stack: destroy it on the next loop turn.
  dead_.push_back(std::move(it->second));
  conns_.erase(it);
  reaper_.start(0, 0, [this] {
    dead_.clear();
    check_drained();
  });
}

void Server::shutdown(std::function<void()> done) {
  on_drained_ = std::move(done);
  listeners_.clear();  // stop accepting
  spdlog::info("smtpd: shutting down: {} connection(s) open, waiting up to {}s", conns_.size(),
               timeouts_.shutdown.count());
  std::vector<Connection*> live;
  for (auto& [id, c] : conns_) live.push_back(c.get());
  for (auto* c : live) c->shutdown();
  shutdown_deadline_ = std::make_unique<io::Timer>(loop_);
  shutdown_deadline_->start(uint64_t(timeouts_.shutdown.count()) * 1000, 0, [this] {
    std::vector<Connection*> rest;
    for (auto& [id, c] : conns_) rest.push_back(c.get());
    if (!rest.empty()) spdlog::warn("smtpd: shutdown deadline: closing {} connection(s)", rest.size());
    for (auto* c : rest) c->force_close();
  });
  check_drained();
}

void Server::check_drained() {
  if (!on_drained_ || !conns_.empty() || !dead_.empty()) return;
  if (injector_.commits_in_flight() > 0) {  // a closed connection's message is still committing
    reaper_.start(50, 0, [this] { check_drained(); });
    return;
  }
  shutdown_deadline_.reset();
  auto done = std::move(on_drained_);
  on_drained_ = nullptr;
  done();
}

}  // namespace tern::server
