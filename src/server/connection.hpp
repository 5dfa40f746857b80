// One inbound SMTP connection: glues a Session (pure) to its socket, its timer and the queue.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "io/loop.hpp"
#include "io/transport.hpp"
#include "queue/store.hpp"
#include "server/session.hpp"
#include "tls/engine.hpp"

namespace tern::server {

class Server;

class Connection final : public SessionHost {
 public:
  Connection(Server& server, uint64_t id, std::unique_ptr<io::Transport> tcp,
             std::shared_ptr<const SessionSettings> settings, ClientInfo client,
             std::shared_ptr<const tls::ServerContext> tls);
  ~Connection() override;

  void start();
  void shutdown();  // server draining
  void force_close();
  [[nodiscard]] const ClientInfo& client() const noexcept { return client_; }

  // SessionHost
  bool queue_has_room(uint64_t announced_size) override;
  std::string begin_message(const queue::Envelope& env) override;
  void message_data(std::string_view content) override;
  void commit_message() override;
  void abort_message() override;
  int64_t now_us() override;
  bool verify_credentials(const smtp::sasl::Credentials& credentials) override;
  void log_event(std::string_view what) override;
  void count_reject(int code, std::string_view enhanced) override;

 private:
  void on_data(std::string_view bytes);
  void settle();  // after any event: flush replies, arm the timer, close if done
  void finish(const char* why);
  bool start_tls();
  void on_tls_ready();

  Server& server_;
  uint64_t id_;
  std::unique_ptr<io::Transport> tcp_;
  ClientInfo client_;
  std::shared_ptr<const SessionSettings> settings_;
  std::shared_ptr<const tls::ServerContext> tls_ctx_;  // the certificate this session started with
  std::shared_ptr<tls::Info> tls_;                     // set once a handshake has begun
  Session session_;
  io::Timer timer_;
  std::unique_ptr<queue::Incoming> incoming_;
  int64_t started_us_ = 0;
  bool finished_ = false;
  bool reading_ = false;
  // Verifier answers arrive after the connection may be gone; made at the first AUTH only
  // (idle connections stay small).
  std::shared_ptr<bool> alive_;
  std::unique_ptr<io::Timer> auth_delay_;  // holds a 535 back (AuthThrottle)
};

}  // namespace tern::server
