// The outbound SMTP client state machine (RFC 5321 client side, RFC 2920 pipelining).
// Pure: server bytes and events in; command bytes, a per-recipient outcome and "try the
// next host" out. The body itself is streamed by the driver (delivery/connection.cpp),
// which owns the transport and the timers: after the 354 the session waits in Body until
// body_sent().
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/outcome.hpp"
#include "smtp/reply_parser.hpp"

namespace tern::delivery {

// What the next hop offered in its EHLO reply.
struct Capabilities {
  bool esmtp = false;
  bool pipelining = false;
  bool size = false;
  uint64_t max_size = 0;  // 0: no limit announced
  bool eightbitmime = false;
  bool smtputf8 = false;
  bool dsn = false;
  bool starttls = false;     // RFC 3207
  bool auth_plain = false;   // RFC 4954 AUTH with the PLAIN mechanism (RFC 4616)
  bool auth_login = false;   // the LOGIN mechanism
};

// What the route or domain asks of TLS and authentication on this connection.
struct ClientSecurity {
  bool starttls = false;     // say STARTTLS when the server offers it
  bool require_tls = false;  // never go on in plaintext (encrypt, verify, credentials)
  bool tls_active = false;   // implicit TLS: the connection is TLS from the first byte
  struct Credentials {
    std::string username;
    std::string password;
  };
  std::optional<Credentials> auth;  // sent only inside TLS
};

// A session that could not get ready: why, and the enhanced status code that names the
// class of failure (4.7.x for TLS and authentication).
struct SetupFailure {
  std::string status;
  std::string why;
  bool tls_failure = false;  // counts as a TLS failure (no plaintext retry, 4.7.x deferral)
};
Capabilities parse_ehlo(const smtp::Reply& r);

struct Transaction {
  std::string sender;               // without <>
  std::vector<std::string> rcpts;   // without <>
  uint64_t size = 0;                // of the message data, for SIZE=
  bool eight_bit = false;           // BODY=8BITMIME was given on arrival
  bool smtputf8 = false;            // SMTPUTF8 was given on arrival
  // RFC 3461 parameters as received, passed on when the next hop offers DSN.
  std::vector<std::string> mail_dsn;               // RET=..., ENVID=...
  std::vector<std::vector<std::string>> rcpt_dsn;  // NOTIFY=..., ORCPT=... per recipient
};

struct TxnResult {
  bool dsn_passed = false;  // the next hop offered DSN and got the parameters
  // True when this host could not take the transaction at all (4xx at MAIL, 421, lost
  // connection before any recipient was decided): the caller tries the next address; the
  // recipients below are then all Deferred with its reason.
  bool next_host = false;
  std::vector<Outcome> rcpts;  // decided where the reply arrives (STYLE habit 5)
};

class ClientSession {
 public:
  // StartTls: STARTTLS sent, its reply awaited. Handshake: the driver runs the TLS
  // handshake and calls on_tls_started(). Auth: an AUTH exchange is under way.
  enum class State { Greeting, Ehlo, Helo, StartTls, Handshake, Auth, Ready, Rset, Txn, Body, DataEnd, Quit, Closed };

  explicit ClientSession(std::string helo_name, ClientSecurity security = {})
      : helo_(std::move(helo_name)), sec_(std::move(security)) {}

  void feed(std::string_view bytes);  // server bytes
  // Connection lost or timed out: `status` is the enhanced code for the recipients.
  void on_closed(std::string status, std::string why);
  void start(Transaction t);          // only in Ready
  void body_sent();                   // only in Body: the whole dot-stuffed body is out
  void quit();
  // The TLS handshake after STARTTLS completed (and passed the driver's checks): EHLO again,
  // with everything learnt before forgotten (RFC 3207 §4.2).
  void on_tls_started();
  [[nodiscard]] bool wants_tls() const noexcept { return state_ == State::Handshake; }
  [[nodiscard]] bool tls_active() const noexcept { return sec_.tls_active; }
  [[nodiscard]] bool authenticated() const noexcept { return authenticated_; }

  [[nodiscard]] std::string take_output() { return std::exchange(out_, {}); }
  [[nodiscard]] State state() const noexcept { return state_; }
  [[nodiscard]] bool ready() const noexcept { return state_ == State::Ready; }
  [[nodiscard]] bool closed() const noexcept { return state_ == State::Closed; }
  [[nodiscard]] bool wants_body() const noexcept { return state_ == State::Body; }
  [[nodiscard]] size_t replies() const noexcept { return replies_; }  // complete replies so far
  // Set when the session could not get to Ready (greeting or EHLO/HELO refused, or lost).
  [[nodiscard]] const std::optional<SetupFailure>& setup_failure() const noexcept { return setup_failure_; }
  [[nodiscard]] std::optional<TxnResult> take_result() { return std::exchange(result_, std::nullopt); }
  [[nodiscard]] const Capabilities& capabilities() const noexcept { return caps_; }
  // Which RFC 5321 §4.5.3.2 timeout applies while waiting in the current state.
  enum class Wait { Greeting, Helo, Mail, Rcpt, Data, DataBlock, DataEnd, Quit, None };
  [[nodiscard]] Wait waiting_for() const noexcept;

 private:
  enum class Cmd { Mail, Rcpt, Data };
  void on_reply(const smtp::Reply& r);
  void on_txn_reply(const smtp::Reply& r);
  void send(std::string line);
  void send_next_commands();
  void finish_txn();
  void begin_mail();
  void fail_setup(std::string why, std::string status = "4.4.0", bool tls = false);
  void after_ehlo();
  void on_auth_reply(const smtp::Reply& r);
  void decide_all(const Outcome& o, bool only_open);

  std::string helo_;
  State state_ = State::Greeting;
  std::string out_;
  smtp::ReplyParser parser_;
  Capabilities caps_;
  ClientSecurity sec_;
  std::optional<SetupFailure> setup_failure_;
  bool authenticated_ = false;
  int auth_step_ = 0;  // LOGIN: 0 = user name asked, 1 = password asked
  std::optional<TxnResult> result_;
  bool used_ = false;  // a transaction already ran on this connection (RSET before the next)
  size_t replies_ = 0;

  // Current transaction
  Transaction txn_;
  std::vector<Cmd> cmds_;       // MAIL, RCPT × n, DATA
  size_t sent_ = 0, answered_ = 0;
  std::vector<std::optional<Outcome>> rcpt_;     // decided outcomes
  std::vector<bool> accepted_;                   // RCPT got 2xx
  std::vector<std::string> lines_;  // command lines of cmds_
  bool mail_ok_ = false;
  std::optional<Outcome> mail_refusal_;  // applied once every reply is in
  bool decided_any_ = false;
  bool server_closing_ = false; // a 421 came: the server is closing the connection
};

}  // namespace tern::delivery
