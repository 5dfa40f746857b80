// One inbound SMTP connection: glues a Session (pure) to its socket, its timer and the queue.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "io/loop.hpp"
#include "io/transport.hpp"
#include "queue/store.hpp"
#include "server/session.hpp"

namespace tern::server {

class Server;

class Connection final : public SessionHost {
 public:
  Connection(Server& server, uint64_t id, std::unique_ptr<io::Transport> tcp,
             std::shared_ptr<const SessionSettings> settings, ClientInfo client);
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

 private:
  void on_data(std::string_view bytes);
  void settle();  // after any event: flush replies, arm the timer, close if done
  void finish(const char* why);

  Server& server_;
  uint64_t id_;
  std::unique_ptr<io::Transport> tcp_;
  ClientInfo client_;
  std::shared_ptr<const SessionSettings> settings_;
  Session session_;
  io::Timer timer_;
  std::unique_ptr<queue::Incoming> incoming_;
  int64_t started_us_ = 0;
  bool finished_ = false;
  bool reading_ = false;
  // Verifier answers and failure delays arrive after the connection may be gone.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  std::unique_ptr<io::Timer> auth_delay_;  // holds a 535 back (AuthThrottle)
};

}  // namespace tern::server
