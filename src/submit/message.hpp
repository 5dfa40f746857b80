// What tern-sendmail does to the message it reads before handing it over, and what ternd
// adds to a locally submitted message: pure functions over bytes, no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace tern::submit {

// Turns sendmail input into an RFC 5322 message with CRLF line ends (RFC 5322 §2.1): a bare
// LF or a bare CR ends a line, a last line without one gets one. Unless `ignore_dots`, a
// line holding only "." ends the message (what sendmail does without -i/-oi); whatever
// follows it is dropped. `ended_by_dot` tells whether that happened.
std::string normalize_input(std::string_view input, bool ignore_dots, bool* ended_by_dot = nullptr);

// Makes sure an empty line separates the header section from the body (RFC 5322 §2.1): a
// message whose first line is no header field, or whose header fields run straight into
// body text, gets one there — otherwise the fields tern prepends would swallow that text.
void separate_body(std::string& message);

// The header fields of a CRLF message, unfolded (RFC 5322 §2.2.3), in order.
struct HeaderField {
  std::string name;   // as written
  std::string value;  // unfolded, leading blanks removed
};
std::vector<HeaderField> header_fields(std::string_view message);

// The addr-specs in an address-list field value (RFC 5322 §3.4): display names, comments,
// groups ("undisclosed-recipients:;") and source routes are dropped; each result is
// "local@domain" as written. Refused: a '<' without its '>', an unterminated quote or
// comment, an address without '@'.
Result<std::vector<std::string>> parse_address_list(std::string_view value);

// -t: the recipients from To:, Cc: and Bcc: (RFC 5322 §3.6.3), in order, duplicates dropped.
Result<std::vector<std::string>> recipients_from_headers(std::string_view message);

// The message without its Bcc: fields (with their continuation lines): blind copies stay
// blind (RFC 5322 §3.6.3, the first of its three ways).
std::string remove_bcc(std::string_view message);

// What ternd prepends to a locally submitted message: Received: naming the local user
// (RFC 5321 §4.4 leaves "from" free for non-SMTP input), and From:, Date:, Message-ID:
// when the message lacks them (RFC 5322 §3.6 requires From and Date; RFC 5322 §3.6.4
// says a Message-ID SHOULD be there).
struct LocalOrigin {
  std::string user;       // the caller's login name ("uid1234" when it has none)
  uint32_t uid = 0;
  std::string full_name;  // -F, for a From: tern adds
  std::string hostname;
  std::string queue_id;
  std::string date;       // an RFC 5322 date-time, now
  std::string message_id; // "<...>", unique
};
std::string local_prelude(std::string_view message, const LocalOrigin& origin);

}  // namespace tern::submit
