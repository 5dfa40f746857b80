// The SMTP listener side: listening sockets, the live connections and their limits, the
// settings generation new sessions start with, and graceful shutdown.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <map>
#include <unordered_map>
#include <vector>

#include "common/clock.hpp"
#include "common/stats.hpp"
#include "config/config.hpp"
#include "io/loop.hpp"
#include "io/tcp.hpp"
#include "queue/injector.hpp"
#include "server/session.hpp"
#include "tls/context.hpp"

namespace tern::server {

class Connection;

// Why a new connection is refused (a 421 text), or nullptr to admit it. `open_from_client`
// counts the client's connections already open; relay-network clients are exempt from the
// per-client limit unless limits.relay_networks_per_client_limit says apply. Pure.
[[nodiscard]] const char* admission_refusal(const config::Limits& lim, size_t open_total,
                                            uint32_t open_from_client, bool relay_client) noexcept;

class Server {
 public:
  // `tls`: the server certificate (nullptr: no TLS; STARTTLS is not offered).
  Server(io::Loop& loop, queue::Injector& injector, const Clock& clock, const config::Config& cfg,
         std::shared_ptr<const tls::ServerContext> tls);
  ~Server();

  // Opens every configured listener. A failure is fatal at startup (the caller exits 1).
  // Called again (SIGHUP), it opens the new ones and closes those no longer configured;
  // sessions in progress are not touched. A listener that cannot be opened then is
  // reported and the others stay as they were.
  Status listen(const std::vector<config::Listen>& listen);
  // Applies a reloaded config (and certificate) to sessions that start from now on.
  void apply(const config::Config& cfg, std::shared_ptr<const tls::ServerContext> tls);
  // Stops accepting, lets transactions finish up to timeouts.shutdown, then calls `done`.
  void shutdown(std::function<void()> done);

  [[nodiscard]] size_t connection_count() const noexcept { return conns_.size(); }
  void set_counters(Counters* c) { counters_ = c; }

 private:
  friend class Connection;
  void accept(std::unique_ptr<io::Stream> tcp, bool implicit_tls);
  void release(uint64_t id);
  void check_drained();
  static std::shared_ptr<const SessionSettings> make_settings(const config::Config& cfg, bool tls);

  io::Loop& loop_;
  queue::Injector& injector_;  // the one path into the queue
  const Clock& clock_;
  std::shared_ptr<const SessionSettings> settings_;
  std::shared_ptr<const tls::ServerContext> tls_;
  config::Timeouts timeouts_;
  std::map<std::string, std::unique_ptr<io::TcpListener>> listeners_;  // "address implicit|starttls"
  std::unordered_map<uint64_t, std::unique_ptr<Connection>> conns_;
  std::unordered_map<std::string, uint32_t> per_client_;
  std::vector<std::unique_ptr<Connection>> dead_;  // destroyed on the next loop turn
  io::Timer reaper_;
  std::unique_ptr<io::Timer> shutdown_deadline_;
  std::function<void()> on_drained_;
  uint64_t next_id_ = 1;
  Counters* counters_ = nullptr;
};

}  // namespace tern::server
