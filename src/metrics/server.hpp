// The metrics endpoint: GET /metrics over HTTP/1.0 on the event loop, one request per
// connection, bounded (8 KiB request head, 5 s). Hand-written rather than prometheus-cpp
// with civetweb: those run threads of their own and would read tern's counters across
// threads; this needs a few dozen lines on the loop that already owns them.
#pragma once

#include <functional>
#include <map>
#include <memory>

#include "common/net.hpp"
#include "common/result.hpp"
#include "common/stats.hpp"
#include "io/loop.hpp"
#include "io/tcp.hpp"

namespace tern::metrics {

class Server {
 public:
  static Result<std::unique_ptr<Server>> start(io::Loop& loop, const Endpoint& at, const Counters& counters,
                                               std::function<Gauges()> gauges);
  ~Server();

 private:
  struct Client;
  Server(io::Loop& loop, const Counters& counters, std::function<Gauges()> gauges);
  void accept(std::unique_ptr<io::Stream> s);
  void drop(Client* c);

  io::Loop& loop_;
  const Counters& counters_;
  std::function<Gauges()> gauges_;
  std::unique_ptr<io::TcpListener> listener_;
  std::map<Client*, std::unique_ptr<Client>> clients_;
};

}  // namespace tern::metrics
