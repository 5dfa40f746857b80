// ternd's end of local submission: the submission socket tern-sendmail talks to (protocol in
// submit/protocol.hpp). It owns the socket and its clients; messages go into the queue
// through queue::Injector, and a client hears OK only once its message is committed.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/clock.hpp"
#include "common/result.hpp"
#include "config/config.hpp"
#include "io/loop.hpp"
#include "io/tcp.hpp"
#include "queue/injector.hpp"

namespace tern::server {

// Who a local message comes from: the uid is from the socket's peer credentials or the
// maildrop file's owner; the user name is looked up off the loop.
struct LocalSender {
  uid_t uid = 0;
  std::string user;
};

class LocalSubmission {
 public:
  // Local users share the socket: past this many connections at once a newcomer is told to
  // try later (tern-sendmail then uses the maildrop), so no one user exhausts ternd's
  // descriptors. Counted in ternd's open-files budget.
  static constexpr size_t kMaxClients = 200;
  struct Settings {
    std::string hostname;
    uint64_t max_message_size = 0;
    uint32_t max_recipients = 0;
  };
  // `list_queue` renders the read-only listing answered to LIST (mailq, -bp).
  LocalSubmission(io::Loop& loop, queue::Injector& injector, const Clock& clock, Settings settings,
                  std::function<std::string()> list_queue);
  // Opens the submission socket (inject() works without it: the maildrop uses it).
  Status listen(const std::string& socket_path);
  ~LocalSubmission();
  LocalSubmission(const LocalSubmission&) = delete;
  LocalSubmission& operator=(const LocalSubmission&) = delete;
  void set_settings(Settings s) { settings_ = std::move(s); }

  // Queues one message (CRLF text from tern-sendmail or a maildrop file: untrusted) for the
  // request's envelope; `done` gets the queue id, or the refusal's "CODE text".
  struct Done {
    bool ok = false;
    std::string text;
  };
  void inject(const LocalSender& who, std::string sender, bool sender_given, std::vector<std::string> mail_params,
              std::string full_name, std::vector<std::pair<std::string, std::vector<std::string>>> rcpts,
              std::string message, std::function<void(Done)> done);

 private:
  struct Client;
  void accept(std::unique_ptr<io::Stream> s);
  void on_data(Client* c, std::string_view bytes);
  void submit(Client* c);
  void answer(Client* c, std::string text);
  void drop(Client* c);

  io::Loop& loop_;
  queue::Injector& injector_;
  const Clock& clock_;
  Settings settings_;
  std::function<std::string()> list_queue_;
  std::unique_ptr<io::UnixListener> listener_;
  std::map<Client*, std::unique_ptr<Client>> clients_;
  std::map<std::string, std::unique_ptr<queue::Incoming>> committing_;  // by queue id
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The login name for `uid` through NSS (which may block on a directory server: call it off
// the loop); "uid<N>" when there is none.
std::string user_name_of(uid_t uid);

}  // namespace tern::server
