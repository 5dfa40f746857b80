// The envelope of a queued message: the value type that crosses from the SMTP server to
// the queue and (later) to delivery. Plain data, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tern::queue {

// Per-recipient delivery state. Every recipient starts Pending; later states are
// appended to the queue file as `status` records (queue-format.md).
enum class RcptState { Pending, Delivered, Deferred, Failed, FailedNotified };

const char* to_string(RcptState s) noexcept;
bool parse_rcpt_state(std::string_view text, RcptState& out) noexcept;

struct Recipient {
  std::string address;              // where tern delivers (after the postmaster rewrite)
  std::string original;             // as the client gave it, when tern rewrote it; else empty
  std::vector<std::string> params;  // raw ESMTP RCPT parameters (e.g. NOTIFY=..., ORCPT=...)
  RcptState state = RcptState::Pending;
  int64_t updated_us = 0;           // time of the last state change
  std::string last_reply;           // remote reply (or tern's reason) behind the state
  std::string last_relay;           // host that gave it ("" when no host answered)
  std::string last_status;          // its RFC 3463 enhanced status code
  bool last_remote = false;         // last_reply is a remote SMTP reply (DSN "smtp;")
  unsigned attempts = 0;            // delivery attempts that ended deferred (status records)
};

struct Envelope {
  std::string id;
  int64_t arrival_us = 0;           // microseconds since the Unix epoch
  std::string client_address;       // IP address of the SMTP client
  uint16_t client_port = 0;
  std::string client_helo;          // HELO/EHLO argument as given
  bool client_relay = false;        // the client was in relay.networks
  std::string protocol;             // SMTP or ESMTP
  std::string sender;               // reverse-path without <>; empty = null sender
  std::vector<std::string> mail_params;  // raw ESMTP MAIL parameters (BODY=8BITMIME, SMTPUTF8, ...)
  std::vector<Recipient> recipients;
  int64_t delay_warned_us = 0;      // when the delay warning was queued (0: not yet)
  // For a bounce tern generated: the message and recipients it reports on, so that a crash
  // between queueing it and recording it never produces a second one.
  std::string notice_for;
  std::vector<size_t> notice_rcpts;
  // Operator actions (queue-format.md, must-understand records): a held message is not
  // delivered until released; a deleted one is removed at the next startup.
  bool held = false;
  bool deleted = false;
  bool exported = false;            // !exported: moved to another node's queue (ternctl export)
  // A message imported from another node (ternctl import): "HOST ID", the exporting node's
  // hostname and its queue id there; empty for mail that arrived here.
  std::string origin;
};

}  // namespace tern::queue
