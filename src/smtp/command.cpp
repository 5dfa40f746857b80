// Command-line and ESMTP parameter parsing.
#include "smtp/command.hpp"

#include "common/log_escape.hpp"
#include "common/strings.hpp"

namespace tern::smtp {

namespace {
struct VerbName {
  std::string_view name;
  Verb verb;
};
constexpr VerbName kVerbs[] = {
    {"EHLO", Verb::Ehlo}, {"HELO", Verb::Helo},   {"MAIL", Verb::Mail},
    {"RCPT", Verb::Rcpt}, {"DATA", Verb::Data},   {"RSET", Verb::Rset},
    {"NOOP", Verb::Noop}, {"QUIT", Verb::Quit},   {"VRFY", Verb::Vrfy},
    {"HELP", Verb::Help}, {"EXPN", Verb::Expn},   {"STARTTLS", Verb::Starttls},
    {"AUTH", Verb::Auth}, {"BDAT", Verb::Bdat},   {"ETRN", Verb::Etrn},
    {"TURN", Verb::Turn},
    // Other protocols' verbs, so that a browser or proxy client made to talk to port 25 is
    // turned away at its first line (cross-protocol request forgery).
    {"GET", Verb::NonSmtp},     {"POST", Verb::NonSmtp},  {"HEAD", Verb::NonSmtp},
    {"PUT", Verb::NonSmtp},     {"DELETE", Verb::NonSmtp}, {"OPTIONS", Verb::NonSmtp},
    {"PATCH", Verb::NonSmtp},   {"TRACE", Verb::NonSmtp}, {"CONNECT", Verb::NonSmtp},
    {"USER", Verb::NonSmtp},    {"PASS", Verb::NonSmtp},
};

// "METHOD target HTTP/1.1" with any method: an HTTP request line.
bool http_request_line(std::string_view line) {
  const size_t sp = line.rfind(' ');
  if (sp == std::string_view::npos || sp == 0) return false;
  const std::string_view proto = line.substr(sp + 1);
  return proto.size() >= 6 && istarts_with(proto, "HTTP/") && proto[5] >= '0' && proto[5] <= '9';
}
}  // namespace

Command parse_command(std::string_view line) {
  size_t sp = line.find(' ');
  std::string_view verb = line.substr(0, sp);
  Command c;
  for (const auto& v : kVerbs)
    if (iequals(verb, v.name)) c.verb = v.verb;
  if (c.verb == Verb::Unknown && http_request_line(line)) c.verb = Verb::NonSmtp;
  if (sp != std::string_view::npos) {
    std::string_view arg = line.substr(sp + 1);
    while (!arg.empty() && arg.back() == ' ') arg.remove_suffix(1);
    c.arg = arg;
  }
  return c;
}

std::optional<std::string_view> strip_prefix(std::string_view arg, std::string_view prefix) {
  if (!istarts_with(arg, prefix)) return std::nullopt;
  arg.remove_prefix(prefix.size());
  while (!arg.empty() && arg.front() == ' ') arg.remove_prefix(1);
  return arg;
}

Result<std::vector<Param>> parse_params(std::string_view rest, bool allow_utf8) {
  std::vector<Param> out;
  size_t i = 0;
  while (i < rest.size()) {
    if (rest[i] == ' ') {
      ++i;
      continue;
    }
    size_t end = rest.find(' ', i);
    if (end == std::string_view::npos) end = rest.size();
    std::string_view tok = rest.substr(i, end - i);
    i = end;
    size_t eq = tok.find('=');
    std::string_view kw = tok.substr(0, eq);
    if (kw.empty()) return Error::perm("5.5.4 Malformed parameter");
    for (size_t k = 0; k < kw.size(); ++k) {
      unsigned char ch = static_cast<unsigned char>(kw[k]);
      bool alnum = (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'z');
      if (!alnum && !(k > 0 && ch == '-')) return Error::perm("5.5.4 Malformed parameter keyword");
    }
    Param p;
    p.keyword = to_upper(kw);
    p.raw = std::string(tok);
    if (eq != std::string_view::npos) {
      std::string_view v = tok.substr(eq + 1);
      if (v.empty()) return Error::perm("5.5.4 Empty parameter value");
      for (unsigned char ch : v) {
        // esmtp-value = 1*(%d33-60 / %d62-126), UTF-8 allowed with SMTPUTF8 (RFC 6531 §3.3)
        if (ch == '=' || ch < 33 || ch == 127 || (ch >= 128 && !allow_utf8))
          return Error::perm("5.5.4 Malformed parameter value");
      }
      // RFC 6531 §3.3: the non-ASCII octets must be well-formed UTF-8 (RFC 3629).
      if (allow_utf8 && !valid_utf8(v)) return Error::perm("5.6.7 Malformed UTF-8 in parameter value");
      p.value = std::string(v);
    }
    out.push_back(std::move(p));
  }
  return out;
}

}  // namespace tern::smtp
