// The admin control socket: a Unix stream socket where ternctl sends one command line and
// reads the answer. Access: root, ternd's own user, and members of control.group (the
// socket's mode is 0660 and the peer's credentials are checked on every connection).
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "common/clock.hpp"
#include "common/stats.hpp"
#include "common/result.hpp"
#include "config/config.hpp"
#include "io/tcp.hpp"
#include "admin/transfer.hpp"
#include "qmgr/manager.hpp"

namespace tern::admin {

// Protocol (version 2): the client sends one line (admin/command.hpp has the grammar). The
// server answers "OK" or "ERR reason" on the first line, then the body, then closes the
// connection. An operator command that fails for some messages answers "ERR ..." with a
// line per message in the body.
class ControlServer {
 public:
  // `gauges` fills in what is measured when asked (queue size, open connections...).
  static Result<std::unique_ptr<ControlServer>> start(io::Loop& loop, const config::Control& cfg,
                                                      qmgr::Manager& sched, const Clock& clock,
                                                      const Counters& counters,
                                                      std::function<Gauges()> gauges, Transfer& transfer);
  ~ControlServer();  // closes clients still connected

 private:
  struct Client;
  ControlServer(io::Loop& loop, qmgr::Manager& sched, const Clock& clock, gid_t gid, const Counters& counters,
                std::function<Gauges()> gauges, Transfer& transfer);
  void execute(Client* c, const std::string& line);
  void answer(Client* c, std::string text);
  // Checks the peer's credentials (off the loop when NSS must be asked), then serve()s it.
  void accept(std::unique_ptr<io::Stream> s);
  void serve(std::unique_ptr<io::Stream> s, uid_t uid);
  static void refuse(std::unique_ptr<io::Stream> s, uid_t uid, gid_t gid);
  void drop(Client* c);

  io::Loop& loop_;
  qmgr::Manager& sched_;
  const Clock& clock_;
  gid_t gid_;
  const Counters& counters_;
  std::function<Gauges()> gauges_;
  Transfer& transfer_;
  std::unique_ptr<io::UnixListener> listener_;
  std::map<Client*, std::unique_ptr<Client>> clients_;
  // Connections waiting for a group look-up on the thread pool.
  std::map<io::Stream*, std::unique_ptr<io::Stream>> checking_;
  // Cleared by the destructor: a look-up finishing later must not touch the server.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tern::admin
