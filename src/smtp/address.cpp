// Path and mailbox parsing per RFC 5321 §4.1.2, RFC 6531 §3.3 for UTF-8.
#include "smtp/address.hpp"

#include "common/log_escape.hpp"
#include "common/net.hpp"
#include "common/strings.hpp"

namespace tern::smtp {

namespace {

bool is_alpha(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }

// RFC 5322 atext.
bool is_atext(unsigned char c) {
  if (is_alpha(c) || is_digit(c)) return true;
  switch (c) {
    case '!': case '#': case '$': case '%': case '&': case '\'': case '*': case '+': case '-':
    case '/': case '=': case '?': case '^': case '_': case '`': case '{': case '|': case '}':
    case '~':
      return true;
    default:
      return false;
  }
}

// Length of a well-formed multi-byte UTF-8 sequence at s, 0 if malformed: strictly per
// RFC 3629 (no overlong forms, surrogates or code points above U+10FFFF), so no two byte
// strings name the same address and nothing is relayed that a next hop would decode otherwise.
size_t utf8_seq(std::string_view s) { return utf8_char_length(s); }

struct Cursor {
  std::string_view s;
  size_t i = 0;
  bool utf8_seen = false;
  [[nodiscard]] bool at_end() const { return i >= s.size(); }
  [[nodiscard]] char peek() const { return at_end() ? '\0' : s[i]; }
};

bool is_ldh_label_char(unsigned char c) { return is_alpha(c) || is_digit(c) || c == '-'; }

// Consumes a domain (or U-label domain) and returns its extent; empty on failure.
std::string_view take_domain(Cursor& c, bool allow_utf8) {
  size_t start = c.i;
  while (!c.at_end()) {
    auto ch = static_cast<unsigned char>(c.peek());
    if (is_ldh_label_char(ch) || ch == '.') {
      ++c.i;
    } else if (ch >= 0x80 && allow_utf8) {
      size_t n = utf8_seq(c.s.substr(c.i));
      if (n == 0) return {};
      c.i += n;
      c.utf8_seen = true;
    } else {
      break;
    }
  }
  std::string_view d = c.s.substr(start, c.i - start);
  return valid_domain(d, allow_utf8) ? d : std::string_view{};
}

// address-literal = "[" ( IPv4 / "IPv6:" IPv6 / General ) "]"
std::string_view take_literal(Cursor& c) {
  size_t start = c.i;
  size_t close = c.s.find(']', c.i);
  if (close == std::string_view::npos) return {};
  std::string_view inner = c.s.substr(c.i + 1, close - c.i - 1);
  bool ok = false;
  if (istarts_with(inner, "IPv6:")) {
    auto a = IpAddress::parse(inner.substr(5));
    ok = a && a->v6;
  } else {
    auto a = IpAddress::parse(inner);
    ok = a && !a->v6;
  }
  if (!ok) return {};
  c.i = close + 1;
  return c.s.substr(start, c.i - start);
}

std::string_view take_local(Cursor& c, bool allow_utf8) {
  size_t start = c.i;
  if (c.peek() == '"') {
    ++c.i;
    while (!c.at_end()) {
      auto ch = static_cast<unsigned char>(c.peek());
      if (ch == '"') {
        ++c.i;
        return c.s.substr(start, c.i - start);
      }
      if (ch == '\\') {
        if (c.i + 1 >= c.s.size()) return {};
        auto q = static_cast<unsigned char>(c.s[c.i + 1]);
        if (q < 32 || q > 126) return {};
        c.i += 2;
      } else if (ch >= 32 && ch <= 126) {
        ++c.i;
      } else if (ch >= 0x80 && allow_utf8) {
        size_t n = utf8_seq(c.s.substr(c.i));
        if (n == 0) return {};
        c.i += n;
        c.utf8_seen = true;
      } else {
        return {};
      }
    }
    return {};
  }
  // Dot-string: atoms separated by single dots.
  bool need_atom = true;
  while (!c.at_end()) {
    auto ch = static_cast<unsigned char>(c.peek());
    if (is_atext(ch)) {
      ++c.i;
      need_atom = false;
    } else if (ch >= 0x80 && allow_utf8) {
      size_t n = utf8_seq(c.s.substr(c.i));
      if (n == 0) return {};
      c.i += n;
      c.utf8_seen = true;
      need_atom = false;
    } else if (ch == '.' && !need_atom) {
      ++c.i;
      need_atom = true;
    } else {
      break;
    }
  }
  if (need_atom) return {};
  return c.s.substr(start, c.i - start);
}

}  // namespace

bool valid_domain(std::string_view d, bool allow_utf8) {
  if (!d.empty() && d.back() == '.') d.remove_suffix(1);  // a trailing root dot is tolerated
  if (d.empty() || d.size() > 255) return false;
  if (allow_utf8 && !valid_utf8(d)) return false;  // U-labels: strict RFC 3629
  size_t label = 0;
  for (size_t i = 0; i <= d.size(); ++i) {
    if (i == d.size() || d[i] == '.') {
      if (label == 0 || label > 63) return false;
      if (d[i - 1] == '-' || d[i - label] == '-') return false;
      label = 0;
      continue;
    }
    auto ch = static_cast<unsigned char>(d[i]);
    if (!is_ldh_label_char(ch) && !(allow_utf8 && ch >= 0x80)) return false;
    ++label;
  }
  return true;
}

std::string Address::mailbox() const {
  if (null) return {};
  return domain.empty() ? local : local + "@" + domain;
}

bool Address::bare_postmaster() const { return domain.empty() && iequals(local, "postmaster"); }

Result<ParsedPath> parse_path(std::string_view text, bool allow_null, bool allow_postmaster,
                              bool allow_utf8) {
  Cursor c{text};
  ParsedPath out;
  Address& a = out.address;
  if (c.peek() != '<') return Error::perm("5.5.4 Syntax error: address must be in <>");
  ++c.i;
  if (c.peek() == '>') {
    if (!allow_null) return Error::perm("5.1.3 Null address not allowed here");
    ++c.i;
    a.null = true;
    out.rest = text.substr(c.i);
    return out;
  }
  // A-d-l: "@dom,@dom:" — parsed for syntax, then ignored.
  if (c.peek() == '@') {
    while (true) {
      ++c.i;  // '@'
      auto d = take_domain(c, allow_utf8);
      if (d.empty()) return Error::perm("5.1.3 Bad source route in address");
      a.source_route.emplace_back(d);
      if (c.peek() == ',') {
        ++c.i;
        if (c.peek() != '@') return Error::perm("5.1.3 Bad source route in address");
        continue;
      }
      if (c.peek() != ':') return Error::perm("5.1.3 Bad source route in address");
      ++c.i;
      break;
    }
  }
  auto local = take_local(c, allow_utf8);
  if (local.empty()) return Error::perm("5.1.3 Bad address syntax (local part)");
  // Local parts over 64 octets are allowed: RFC 5321 §4.5.3.1.1 permits rejecting them, but
  // real mail has them; only the overall path limit below applies.
  a.local = std::string(local);
  if (c.peek() == '>' && allow_postmaster && a.source_route.empty() &&
      iequals(a.local, "postmaster")) {
    ++c.i;
    out.rest = text.substr(c.i);
    return out;
  }
  if (c.peek() != '@') return Error::perm("5.1.3 Bad address syntax: domain part missing");
  ++c.i;
  std::string_view domain;
  if (c.peek() == '[') {
    domain = take_literal(c);
    a.literal = true;
  } else {
    domain = take_domain(c, allow_utf8);
  }
  if (domain.empty()) return Error::perm("5.1.3 Bad address syntax (domain)");
  a.domain = std::string(domain);
  if (c.peek() != '>') return Error::perm("5.1.3 Bad address syntax: missing closing >");
  ++c.i;
  if (c.i - 2 > 256) return Error::perm("5.1.3 Path too long");  // RFC 5321 §4.5.3.1.3
  a.utf8 = c.utf8_seen;
  if (a.utf8 && !allow_utf8) return Error::perm("5.6.7 Non-ASCII address needs SMTPUTF8");
  out.rest = text.substr(c.i);
  return out;
}

}  // namespace tern::smtp
