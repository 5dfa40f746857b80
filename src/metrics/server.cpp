// The metrics endpoint's connections.
#include "metrics/server.hpp"

#include <spdlog/spdlog.h>

#include "metrics/exposition.hpp"

namespace tern::metrics {

namespace {
constexpr uint64_t kClientTimeoutMs = 5000;
}

struct Server::Client {
  explicit Client(io::Loop& loop) : timer(loop) {}
  std::unique_ptr<io::Stream> stream;
  io::Timer timer;
  std::string head;
};

Server::Server(io::Loop& loop, const Counters& counters, std::function<Gauges()> gauges)
    : loop_(loop), counters_(counters), gauges_(std::move(gauges)) {}

Server::~Server() = default;

Result<std::unique_ptr<Server>> Server::start(io::Loop& loop, const Endpoint& at, const Counters& counters,
                                              std::function<Gauges()> gauges) {
  std::unique_ptr<Server> s(new Server(loop, counters, std::move(gauges)));
  Server* raw = s.get();
  auto l = io::TcpListener::listen(loop, at, [raw](std::unique_ptr<io::Stream> st) { raw->accept(std::move(st)); });
  if (!l) return l.error();
  s->listener_ = std::move(l.value());
  spdlog::info("metrics: listening on http://{}/metrics", at.str());
  return s;
}

void Server::drop(Client* c) { clients_.erase(c); }

void Server::accept(std::unique_ptr<io::Stream> st) {
  auto owned = std::make_unique<Client>(loop_);
  Client* c = owned.get();
  c->stream = std::move(st);
  clients_.emplace(c, std::move(owned));
  c->timer.start(kClientTimeoutMs, 0, [this, c] { drop(c); });
  c->stream->set_events({
      [this, c](std::string_view b) {
        c->head.append(b.substr(0, kMaxRequest + 4 - std::min(c->head.size(), kMaxRequest + 4)));
        const Verdict v = judge_request(c->head);
        if (v == Verdict::NeedMore) return;
        c->stream->write(response(v, v == Verdict::Ok ? exposition(counters_, gauges_()) : std::string()));
        c->stream->close_after_flush();
        drop(c);
      },
      [this, c](int) { drop(c); },
      nullptr,
      nullptr,
  });
  c->stream->start_read();
}

}  // namespace tern::metrics
