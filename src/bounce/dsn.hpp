// Delivery status notifications (RFC 3464 inside RFC 6522 multipart/report; RFC 6533 for
// SMTPUTF8 mail). Pure: a report description in, the complete message bytes out.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "smtp/dsn_params.hpp"

namespace tern::bounce {

enum class Action { Failed, Delayed, Relayed };

struct RcptReport {
  std::string final_recipient;        // the address tern tried
  std::optional<smtp::Orcpt> orcpt;   // from the client's ORCPT only (RFC 3461 §4.2)
  Action action = Action::Failed;
  std::string status;                 // "5.1.1"
  std::string remote_mta;             // host the reply came from; empty if none
  std::string diagnostic;             // the remote reply, or tern's reason
  // Whether `diagnostic` is a remote SMTP reply ("smtp;") or tern's own reason; unknown
  // (queue files from before it was recorded): told from the text's shape.
  std::optional<bool> remote_reply;
  int64_t last_attempt_us = 0;
  int64_t will_retry_until_us = 0;    // for Action::Delayed
};

struct Report {
  std::string reporting_mta;  // tern's hostname
  std::string to;             // the original envelope sender
  std::string queue_id;       // of the original message
  std::string notice_id;      // unique, for Message-ID and the MIME boundary
  std::string envid;          // decoded ENVID; empty = none
  int64_t arrival_us = 0;
  int64_t now_us = 0;
  bool utf8 = false;          // SMTPUTF8 mail: RFC 6533 global types
  bool return_full = false;   // RET=FULL and the message is small enough
  std::string_view original;  // the original message bytes
  std::vector<RcptReport> rcpts;
};

// Largest original message returned whole (RET=FULL); bigger ones return headers only.
inline constexpr size_t kMaxReturnedMessage = 512 * 1024;

std::string build(const Report& r);
// True when the built notice has 8-bit content (it must then go out with BODY=8BITMIME).
inline bool needs_8bit(std::string_view notice) {
  for (unsigned char c : notice)
    if (c >= 0x80) return true;
  return false;
}

// The enhanced status code at the start of a reply ("550 5.1.1 x" → "5.1.1"), or `fallback`.
std::string status_of(std::string_view reply, std::string_view fallback);

}  // namespace tern::bounce
