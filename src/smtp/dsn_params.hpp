// The DSN extension's ESMTP parameters (RFC 3461 §4): RET and ENVID on MAIL, NOTIFY and
// ORCPT on RCPT, with xtext coding. Pure.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace tern::smtp {

// xtext (RFC 3461 §4): "+XX" for '+', '=' and bytes outside 33..126.
Result<std::string> xtext_decode(std::string_view s);
std::string xtext_encode(std::string_view s);

enum class Ret { Unspecified, Full, Hdrs };

// NOTIFY as flags; `given` is false when the client sent no NOTIFY (then tern notifies on
// failure and delay, RFC 3461 §4.1 leaves the default to the MTA).
struct Notify {
  bool given = false;
  bool never = false;
  bool success = false;
  bool failure = false;
  bool delay = false;

  [[nodiscard]] bool wants_failure() const noexcept { return !given || failure; }
  [[nodiscard]] bool wants_delay() const noexcept { return !given || delay; }
  [[nodiscard]] bool wants_success() const noexcept { return given && success; }
  [[nodiscard]] std::string str() const;  // "SUCCESS,FAILURE" / "NEVER"
};

Result<Ret> parse_ret(std::string_view v);
Result<Notify> parse_notify(std::string_view v);
// ENVID: xtext, decoded at most 100 octets (RFC 3461 §4.4). Returns the decoded id.
Result<std::string> parse_envid(std::string_view v);

// ORCPT's one internal form: the address type and the address decoded to plain octets.
struct Orcpt {
  std::string addr_type;  // "rfc822" or "utf-8" in that spelling; any other type as given
  std::string address;    // decoded (UTF-8 for the utf-8 type)
};
// ORCPT=addr-type;value (RFC 3461 §4.2). The value is xtext for any type; for the utf-8
// type (RFC 6533 §3) it may also hold "\x{HEX}" escapes (utf-8-addr-xtext) and, under
// SMTPUTF8, raw UTF-8 (utf-8-addr-unitext). Refused (501) only for broken syntax (a bad
// "+XX" or "\x{...}", malformed UTF-8, an empty address); an unusual address type or
// unusual decoded content (controls, 8-bit octets in rfc822) is accepted.
Result<Orcpt> parse_orcpt(std::string_view v);

// The ORCPT value tern stores and passes on to the next hop, in a form any DSN-capable next
// hop accepts even without SMTPUTF8: "rfc822;" + xtext when the address is ASCII,
// "utf-8;" + utf-8-addr-xtext (pure ASCII, RFC 6533 §3) when it is non-ASCII UTF-8,
// otherwise the type as given + ";" + xtext.
std::string format_orcpt(const Orcpt& o);

// The DSN parameters tern keeps with a message, recovered from the raw ESMTP parameters
// stored in the queue file.
struct MessageDsn {
  Ret ret = Ret::Unspecified;
  std::string envid;  // decoded; empty = none
};
struct RcptDsn {
  Notify notify;
  std::optional<Orcpt> orcpt;
};
MessageDsn message_dsn(const std::vector<std::string>& mail_params);
RcptDsn rcpt_dsn(const std::vector<std::string>& rcpt_params);

}  // namespace tern::smtp
