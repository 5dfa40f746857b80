// SMTP command lines and ESMTP parameters (RFC 5321 §4.1, RFC 1869 §6): parsing only.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace tern::smtp {

enum class Verb {
  Ehlo, Helo, Mail, Rcpt, Data, Rset, Noop, Quit, Vrfy, Help,
  Expn, Starttls, Auth, Bdat, Etrn, Turn,  // recognised; answered "not implemented" for now
  // Another protocol's request (HTTP methods, a proxy's CONNECT, POP3/FTP USER and PASS, or
  // any "... HTTP/n" request line): a cross-protocol attack, never an SMTP client's typo.
  NonSmtp,
  Unknown,
};

struct Command {
  Verb verb = Verb::Unknown;
  std::string_view arg;  // after the verb and one space, trailing spaces trimmed
};

// Splits one command line (CRLF already removed). Never fails: unknown verbs are Verb::Unknown,
// lines of other protocols Verb::NonSmtp.
Command parse_command(std::string_view line);

struct Param {
  std::string keyword;               // upper-cased
  std::optional<std::string> value;  // as given
  std::string raw;                   // "KEYWORD=value" as given
};

// ESMTP parameters after a path: SP-separated keyword[=value] (RFC 5321 §4.1.2).
Result<std::vector<Param>> parse_params(std::string_view rest, bool allow_utf8);

// "FROM:" / "TO:" prefix (case-insensitive), then optional spaces some clients add.
// Returns what follows, or nullopt if the prefix is missing.
std::optional<std::string_view> strip_prefix(std::string_view arg, std::string_view prefix);

}  // namespace tern::smtp
