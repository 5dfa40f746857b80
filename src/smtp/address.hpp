// RFC 5321 §4.1.2 paths and mailboxes (with the RFC 6531 UTF-8 extension): parsing only.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace tern::smtp {

struct Address {
  bool null = false;                      // the null reverse-path <>
  std::vector<std::string> source_route;  // "@a,@b:" domains, which tern ignores (RFC 5321 §4.1.1.3)
  std::string local;                      // as written (a quoted local part keeps its quotes)
  std::string domain;                     // as written; empty only for a bare <postmaster>
  bool literal = false;                   // domain is an address literal "[...]"
  bool utf8 = false;                      // contains non-ASCII (needs SMTPUTF8)

  // local@domain, or the bare local part for <postmaster>; empty for <>.
  [[nodiscard]] std::string mailbox() const;
  // True for RCPT TO:<postmaster> without a domain (RFC 5321 §4.5.1), any case.
  [[nodiscard]] bool bare_postmaster() const;
};

struct ParsedPath {
  Address address;
  std::string_view rest;  // what follows the closing '>' (ESMTP parameters)
};

// Parses "<...>" at the start of `text`. `allow_null` for MAIL FROM, `allow_postmaster`
// for RCPT TO, `allow_utf8` once SMTPUTF8 was given on MAIL. The error text is fit for a
// 501 reply.
Result<ParsedPath> parse_path(std::string_view text, bool allow_null, bool allow_postmaster,
                              bool allow_utf8);

// RFC 5321 Domain (letters, digits, hyphens; labels 1..63) or, with allow_utf8, U-labels.
bool valid_domain(std::string_view d, bool allow_utf8);

}  // namespace tern::smtp
