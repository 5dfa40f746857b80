// tern-sendmail -bs: an SMTP session on stdin/stdout (what Symfony Mailer speaks), as a pure
// machine: bytes in, replies out, and each complete message handed to the caller, whose
// answer (queued or refused) becomes the reply to the final "." (RFC 5321 §4.1.1.4).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tern::submit {

struct SessionMessage {
  bool sender_given = true;  // MAIL FROM in the session is the sender, like -f
  std::string sender;        // empty: the null sender
  std::vector<std::string> mail_params;  // BODY=, RET=, ENVID= as given (validated)
  std::vector<std::string> rcpts;
  std::vector<std::vector<std::string>> rcpt_params;  // per recipient: NOTIFY=, ORCPT=
  std::string data;          // dot-unstuffed, CRLF line ends
};

class SmtpSession {
 public:
  // `max_size`: limits.max_message_size; a longer message is read to its "." and refused
  // with 552 (RFC 5321 §4.5.3.1.10), so it never grows past the limit in memory.
  SmtpSession(std::string hostname, uint64_t max_size) : hostname_(std::move(hostname)), max_size_(max_size) {}
  [[nodiscard]] std::string greeting() const;
  // Feeds input; returns the replies to write. Stops at a complete message (has_message())
  // and keeps the rest of the input until message_done().
  std::string feed(std::string_view bytes);
  [[nodiscard]] bool has_message() const noexcept { return state_ == State::Waiting; }
  [[nodiscard]] const SessionMessage& message() const noexcept { return msg_; }
  // The caller's verdict on message(): the reply to the "."; then continues with the input
  // kept meanwhile (its replies are appended).
  std::string message_done(bool queued, int exit_code, std::string_view text);
  [[nodiscard]] bool finished() const noexcept { return state_ == State::Closed; }

 private:
  enum class State { Command, Data, Waiting, Closed };
  std::string command(std::string_view line);
  std::string run();
  std::string hostname_;
  uint64_t max_size_;
  bool too_big_ = false;
  State state_ = State::Command;
  std::string buf_;
  SessionMessage msg_;
  bool in_transaction_ = false;
};

}  // namespace tern::submit
