// The inbound SMTP session state machine (RFC 5321 server side). Pure: bytes and events
// come in, reply bytes and requests to its host go out. It never touches a socket, the
// disk or a clock itself; the connection glue (connection.cpp) does that and reports back.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/net.hpp"
#include "config/config.hpp"
#include "queue/envelope.hpp"
#include "server/relay_policy.hpp"
#include "smtp/command.hpp"
#include "smtp/data_decoder.hpp"
#include "smtp/headers.hpp"
#include "smtp/sasl.hpp"

namespace tern::server {

// Immutable settings shared by the sessions started under one config generation.
struct SessionSettings {
  std::string hostname;
  config::Limits limits;
  RelayPolicy policy;
  bool tls_available = false;  // a server certificate is loaded: STARTTLS can be offered
  bool auth_offered = false;  // auth.users_file is set: AUTH PLAIN LOGIN after TLS (RFC 4954)
  bool show_user = false;     // auth.show_user: the authenticated name goes into Received:
};

struct ClientInfo {
  IpAddress address;
  uint16_t port = 0;
  bool relay = false;  // in relay.networks
  bool implicit_tls = false;  // came in on a tls: implicit listener (no STARTTLS there)
  bool auth_required = false;  // came in on an auth: required listener (MAIL needs AUTH)
};

// How the users file answered a verification request (the server's verifier workers).
enum class AuthOutcome { Accepted, Rejected, TempFail };

// What the TLS handshake established, for Received: and the log.
struct TlsSummary {
  std::string version;  // "TLSv1.3"
  std::string cipher;
  int bits = 0;
};

// How the queue answered a commit request.
enum class CommitOutcome { Committed, NoSpace, IoError };

// What the session asks of the outside world. Implemented by the connection glue (and by a
// fake in unit tests).
class SessionHost {
 public:
  virtual ~SessionHost() = default;
  // Free-space reserve check at MAIL (queue_min_free plus the announced SIZE).
  virtual bool queue_has_room(uint64_t announced_size) = 0;
  // Starts spooling a message and returns its queue id.
  virtual std::string begin_message(const queue::Envelope& env) = 0;
  virtual void message_data(std::string_view content) = 0;
  // Makes the message durable; the answer arrives later through Session::on_commit.
  virtual void commit_message() = 0;
  virtual void abort_message() = 0;
  virtual int64_t now_us() = 0;
  // Checks a user name and password off the loop; the answer arrives later through
  // Session::on_auth_result. False when no verifier can take it now (the client gets 454).
  virtual bool verify_credentials(const smtp::sasl::Credentials& /*credentials*/) { return false; }
  // A refusal worth a log line (the glue adds who and when). Whatever in `what` came from
  // the client has already been passed through log_safe().
  virtual void log_event(std::string_view /*what*/) {}
  // A refusal, for the counters ("550 5.7.1").
  virtual void count_reject(int /*code*/, std::string_view /*enhanced*/) {}
};

class Session {
 public:
  // Bdat: a BDAT transaction between chunks; BdatChunk: reading a chunk's octets (RFC 3030).
  // StartTls: the 220 to STARTTLS is out; the glue runs the handshake and reports back
  // through on_tls_started (or ends the connection).
  // Auth: reading SASL responses after a 334; WaitAuth: the password is being verified.
  enum class State {
    Ready, Greeted, Mail, Rcpt, Data, Bdat, BdatChunk, WaitCommit, StartTls, Auth, WaitAuth, Closed
  };

  Session(std::shared_ptr<const SessionSettings> settings, ClientInfo client, SessionHost& host);

  void start();                      // queues the 220 greeting
  void feed(std::string_view bytes); // client input
  void on_commit(CommitOutcome outcome);
  // The TLS handshake completed (after STARTTLS, or on an implicit-TLS listener before any
  // command). After STARTTLS the session starts over: the client must greet again
  // (RFC 3207 §4.2).
  void on_tls_started(TlsSummary tls);
  void on_auth_result(AuthOutcome outcome);
  void on_timeout();
  void on_shutdown();                // server stopping: finish the transaction, then 421

  [[nodiscard]] std::string take_output() { return std::exchange(out_, {}); }
  [[nodiscard]] bool has_output() const noexcept { return !out_.empty(); }
  [[nodiscard]] State state() const noexcept { return state_; }
  [[nodiscard]] bool closed() const noexcept { return state_ == State::Closed; }
  // False while the session waits for the queue or a password check: the glue stops
  // reading (and the client timeout) meanwhile.
  // (During the TLS handshake reading goes on: those bytes are the handshake's.)
  [[nodiscard]] bool wants_input() const noexcept {
    return state_ != State::WaitCommit && state_ != State::WaitAuth && state_ != State::Closed;
  }
  // Reading message content (DATA or a BDAT chunk): the glue applies timeouts.data.
  [[nodiscard]] bool in_data() const noexcept {
    return state_ == State::Data || state_ == State::BdatChunk || skip_octets_ > 0;
  }
  [[nodiscard]] const std::string& last_queue_id() const noexcept { return queue_id_; }
  // The 220 to STARTTLS is queued: once it is written, the glue must start the handshake.
  [[nodiscard]] bool wants_tls() const noexcept { return state_ == State::StartTls; }
  [[nodiscard]] const std::optional<TlsSummary>& tls() const noexcept { return tls_; }
  [[nodiscard]] uint32_t messages_accepted() const noexcept { return accepted_; }
  // SMTP AUTH succeeded on this connection (RFC 4954); the name it succeeded with.
  [[nodiscard]] bool authenticated() const noexcept { return authenticated_; }
  [[nodiscard]] const std::string& authenticated_user() const noexcept { return auth_user_; }

 private:
  using Verb = smtp::Verb;
  struct CommandSpec;
  static const CommandSpec kCommands[];

  void pump();
  void handle_line(std::string_view line);
  void feed_data();
  void feed_chunk();
  void take_content();
  void end_chunk();
  void finish_data();
  [[nodiscard]] bool refuse_content(bool at_end);
  void begin_message();
  void flush_headers();
  void reset_transaction();
  void emit(int code, std::string_view enhanced, std::string_view text);
  void error(int code, std::string_view enhanced, std::string_view text);
  void close_with(int code, std::string_view enhanced, std::string_view text);
  [[nodiscard]] std::string received_header() const;
  [[nodiscard]] bool starttls_offered() const noexcept;

  void cmd_helo(const smtp::Command& c);
  void cmd_ehlo(const smtp::Command& c);
  void cmd_mail(const smtp::Command& c);
  void cmd_rcpt(const smtp::Command& c);
  void cmd_data(const smtp::Command& c);
  void cmd_rset(const smtp::Command& c);
  void cmd_noop(const smtp::Command& c);
  void cmd_quit(const smtp::Command& c);
  void cmd_vrfy(const smtp::Command& c);
  void cmd_help(const smtp::Command& c);
  void cmd_non_smtp(const smtp::Command& c);
  [[nodiscard]] bool tls_active() const noexcept { return tls_.has_value(); }
  void cmd_auth(const smtp::Command& c);
  void auth_step(smtp::sasl::Step step);
  void auth_line(std::string_view line);
  void abort_auth();
  void cmd_bdat(const smtp::Command& c);
  void cmd_starttls(const smtp::Command& c);
  void skip_bdat(const smtp::Command& c);

  std::shared_ptr<const SessionSettings> settings_;
  ClientInfo client_;
  SessionHost& host_;
  State state_ = State::Ready;
  std::string out_;
  std::string in_;
  size_t in_pos_ = 0;
  bool discarding_long_line_ = false;
  std::string_view current_line_;  // the command being handled (for log lines only)
  bool draining_ = false;  // shutdown requested: close after the current transaction
  uint32_t errors_ = 0;
  uint32_t accepted_ = 0;

  // Per-session
  std::optional<TlsSummary> tls_;
  std::string helo_;
  bool esmtp_ = false;
  // SMTP AUTH: the exchange in progress, its result, and failures on this connection.
  std::optional<smtp::sasl::Exchange> sasl_;
  std::string pending_user_;  // being verified
  std::string auth_user_;
  bool authenticated_ = false;
  uint32_t auth_failures_ = 0;
  // Per-transaction
  queue::Envelope env_;
  bool smtputf8_ = false;
  std::string queue_id_;
  std::optional<smtp::DataDecoder> decoder_;
  std::string content_;      // decoded bytes of the current input chunk
  std::string header_buf_;   // header section being collected
  smtp::HeaderEnd header_end_;  // where the search for its end has got to
  bool headers_done_ = false;
  bool too_big_ = false;
  uint64_t content_size_ = 0;
  size_t received_count_ = 0;
  // BDAT (RFC 3030): the chunk being read, and octets of a refused chunk still to discard.
  uint64_t chunk_left_ = 0;
  uint64_t chunk_size_ = 0;
  bool chunk_last_ = false;
  uint64_t skip_octets_ = 0;
};

}  // namespace tern::server
