// Connection glue: socket events into the session, session requests out to the queue.
#include "server/connection.hpp"

#include <spdlog/spdlog.h>

#include <cerrno>

#include "common/log_escape.hpp"
#include "server/server.hpp"

namespace tern::server {

namespace {
constexpr size_t kMaxQueuedReplies = 1 << 20;  // unread reply bytes before the client is dropped
}

Connection::Connection(Server& server, uint64_t id, std::unique_ptr<io::Transport> tcp,
                       std::shared_ptr<const SessionSettings> settings, ClientInfo client,
                       std::shared_ptr<const tls::ServerContext> tls)
    : server_(server),
      id_(id),
      tcp_(std::move(tcp)),
      client_(client),
      settings_(std::move(settings)),
      tls_ctx_(std::move(tls)),
      session_(settings_, client_, *this),
      timer_(server.loop_) {}

Connection::~Connection() = default;

void Connection::start() {
  started_us_ = now_us();
  spdlog::info("smtpd: conn={} connect from [{}]:{}{}", id_, client_.address.str(), client_.port,
               client_.relay ? " relay=yes" : "");
  tcp_->set_events({
      [this](std::string_view b) { on_data(b); },
      [this](int err) {
        if (session_.in_data() || incoming_) spdlog::warn("smtpd: conn={} lost connection in DATA", id_);
        if (tls_ && !tls_->done) {
          spdlog::info("smtpd: conn={} client=[{}] TLS handshake failed: {}", id_, client_.address.str(),
                       tls_->error.empty() ? (err == 0 ? "client closed" : "read error") : tls_->error);
          return finish("TLS handshake failed");
        }
        if (tls_ && err == -EPROTO) {
          spdlog::info("smtpd: conn={} client=[{}] TLS error: {}", id_, client_.address.str(), tls_->error);
          return finish("TLS error");
        }
        finish(err == 0 ? "client closed" : "read error");
      },
      nullptr,  // replies are small; the unread-reply bound below is enough back-pressure
      [this] { on_tls_ready(); },
  });
  // Implicit TLS (RFC 8314): the handshake comes first; the greeting waits in the engine.
  if (client_.implicit_tls && !start_tls()) return finish("TLS unavailable");
  session_.start();
  settle();
}

// Stacks the TLS engine on the socket: every later byte is TLS.
bool Connection::start_tls() {
  tls_ = std::make_shared<tls::Info>();
  auto engine = tls_ctx_ ? tls::Engine::server(tls_ctx_, tls_) : nullptr;
  if (!engine || !tcp_->insert_filter(std::move(engine))) {
    spdlog::error("smtpd: conn={} cannot start TLS: {}", id_, tls_->error.empty() ? "no context" : tls_->error);
    return false;
  }
  return true;
}

void Connection::on_tls_ready() {
  spdlog::info("smtpd: conn={} client=[{}] TLS established: {} cipher={} bits={}", id_, client_.address.str(),
               tls_->version, tls_->cipher, tls_->bits);
  session_.on_tls_started({tls_->version, tls_->cipher, tls_->bits});
  settle();
}

void Connection::on_data(std::string_view bytes) {
  session_.feed(bytes);
  settle();
}

void Connection::settle() {
  if (finished_) return;
  if (session_.has_output()) tcp_->write(session_.take_output());
  // STARTTLS: the 220 went out in plaintext just above; everything after is TLS.
  if (session_.wants_tls() && !tls_) {
    if (!start_tls()) {
      tcp_->close();
      return finish("TLS unavailable");
    }
  }
  // A client that pipelines without reading its replies would make them pile up here.
  if (tcp_->queued_bytes() > kMaxQueuedReplies) {
    spdlog::warn("smtpd: conn={} client=[{}] is not reading its replies; closing", id_, client_.address.str());
    tcp_->close();
    return finish("client not reading");
  }
  if (session_.closed()) return finish("session ended");
  if (session_.wants_input()) {
    if (!reading_) tcp_->start_read(), reading_ = true;
    const auto& t = server_.timeouts_;
    const auto secs = session_.in_data() ? t.data : t.command;
    timer_.start(uint64_t(secs.count()) * 1000, 0, [this] {
      spdlog::info("smtpd: conn={} timeout from [{}] in {}", id_, client_.address.str(),
                   session_.in_data() ? "DATA" : "command");
      session_.on_timeout();
      settle();
    });
  } else {
    // Waiting for the queue: no reading (back-pressure) and no client timeout.
    if (reading_) tcp_->stop_read(), reading_ = false;
    timer_.stop();
  }
}

void Connection::finish(const char* why) {
  if (finished_) return;
  finished_ = true;
  timer_.stop();
  if (auth_delay_) auth_delay_->stop();
  incoming_.reset();  // an unfinished message is removed
  tcp_->close_after_flush();
  std::string tls = "none";
  if (tls_ && tls_->done) tls = tls_->version + " cipher=" + tls_->cipher;
  spdlog::info("smtpd: conn={} disconnect from [{}] ({}) messages={} tls={}{}{} duration={:.3f}s", id_,
               client_.address.str(), why, session_.messages_accepted(), tls,
               session_.authenticated() ? " user=" : "",
               session_.authenticated() ? log_safe(session_.authenticated_user()) : std::string(),
               double(now_us() - started_us_) / 1e6);
  server_.release(id_);
}

void Connection::shutdown() {
  session_.on_shutdown();
  settle();
}

void Connection::force_close() {
  if (session_.has_output()) tcp_->write(session_.take_output());
  finish("shutdown deadline");
}

bool Connection::queue_has_room(uint64_t announced_size) {
  return server_.injector_.has_room(announced_size);
}

std::string Connection::begin_message(const queue::Envelope& env) {
  incoming_ = server_.injector_.begin(env);
  return incoming_->id();
}

void Connection::message_data(std::string_view content) {
  if (incoming_) incoming_->append(content);
}

void Connection::commit_message() {
  incoming_->commit([this](queue::CommitStatus st) {
    incoming_.reset();
    session_.on_commit(st == queue::CommitStatus::Committed ? CommitOutcome::Committed
                       : st == queue::CommitStatus::NoSpace ? CommitOutcome::NoSpace
                                                            : CommitOutcome::IoError);
    settle();
  });
}

void Connection::abort_message() { incoming_.reset(); }

bool Connection::verify_credentials(const smtp::sasl::Credentials& credentials) {
  if (!alive_) alive_ = std::make_shared<bool>(true);
  return server_.verify(credentials, [this, alive = std::weak_ptr<bool>(alive_)](AuthOutcome outcome) {
    if (!alive.lock() || finished_) return;
    if (outcome != AuthOutcome::Rejected) {
      session_.on_auth_result(outcome);
      return settle();
    }
    // A wrong password is answered late, later for each recent failure from this address.
    const int64_t delay_us = server_.auth_throttle_.failure(client_.address, now_us());
    if (!auth_delay_) auth_delay_ = std::make_unique<io::Timer>(server_.loop_);
    auth_delay_->start(uint64_t(delay_us / 1000), 0, [this] {
      session_.on_auth_result(AuthOutcome::Rejected);
      settle();
    });
  });
}

int64_t Connection::now_us() { return server_.clock_.now_us(); }

void Connection::count_reject(int code, std::string_view enhanced) {
  if (server_.counters_) ++server_.counters_->rejected[std::to_string(code) + (enhanced.empty() ? "" : " ") + std::string(enhanced)];
}

void Connection::log_event(std::string_view what) {
  spdlog::info("smtpd: conn={} client=[{}] {}", id_, client_.address.str(), what);
}

}  // namespace tern::server
