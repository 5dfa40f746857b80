// MTA-STS policy, TXT record and MX pattern rules of RFC 8461 (pure).
#include "sts/policy.hpp"

#include <optional>

#include "common/strings.hpp"

namespace tern::sts {

namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_alnum(char c) { return is_alpha(c) || is_digit(c); }
bool is_wsp(char c) { return c == ' ' || c == '\t'; }

// §3.2 sts-policy-ext-name / §3.1 sts-ext-name: (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
bool valid_ext_name(std::string_view n) {
  if (n.empty() || n.size() > 32 || !is_alnum(n[0])) return false;
  for (char c : n)
    if (!is_alnum(c) && c != '_' && c != '-' && c != '.') return false;
  return true;
}

// §3.2 sts-policy-vchar: VCHAR or a non-ASCII octet (UTF-8), with blanks only between them.
bool valid_ext_value(std::string_view v) {
  if (v.empty() || is_wsp(v.front()) || is_wsp(v.back())) return false;
  for (unsigned char c : v)
    if (!(c >= 0x21 && c <= 0x7e) && c < 0x80 && !is_wsp(char(c))) return false;
  return true;
}

// §3.2 sts-policy-mx-value: an optional "*." then labels of letters, digits and '-'.
// IP literals are refused: patterns name hosts, and "1.2.3.4" would otherwise look like a
// four-label name.
std::optional<std::string> mx_pattern(std::string_view v, std::string& why) {
  std::string_view name = v;
  if (name.starts_with("*.")) name.remove_prefix(2);
  if (name.empty() || name.size() > 253) {
    why = "mx pattern has no name or is too long";
    return std::nullopt;
  }
  bool all_numeric = true;
  size_t start = 0;
  while (start <= name.size()) {
    size_t dot = name.find('.', start);
    if (dot == std::string_view::npos) dot = name.size();
    const std::string_view label = name.substr(start, dot - start);
    if (label.empty() || label.size() > 63) {
      why = "mx pattern has an empty or overlong label";
      return std::nullopt;
    }
    for (char c : label) {
      if (!is_alnum(c) && c != '-') {
        why = c == '*' ? "mx pattern has '*' other than as the whole leftmost label"
                       : "mx pattern has a character other than letters, digits, '-' and '.'";
        return std::nullopt;
      }
      if (!is_digit(c)) all_numeric = false;
    }
    start = dot + 1;
  }
  if (all_numeric) {
    why = "mx pattern is an IP address literal";
    return std::nullopt;
  }
  return to_lower(v);
}

std::string quoted(std::string_view s) {
  std::string out = "\"";
  for (unsigned char c : s.substr(0, 80)) out += (c >= 0x20 && c < 0x7f) ? char(c) : '?';
  if (s.size() > 80) out += "...";
  return out + "\"";
}

}  // namespace

const char* to_string(Mode m) noexcept {
  switch (m) {
    case Mode::Enforce: return "enforce";
    case Mode::Testing: return "testing";
    case Mode::None: return "none";
  }
  return "?";
}

Result<Policy> parse_policy(std::string_view text) {
  if (text.size() > kMaxPolicySize) return Error::perm("policy larger than 64 KiB");
  Policy p;
  bool have_version = false, have_mode = false, have_max_age = false;
  size_t pos = 0, line_no = 0;
  bool blank_seen = false;  // blank lines are allowed only at the very end
  while (pos < text.size()) {
    ++line_no;
    size_t lf = text.find('\n', pos);
    const bool terminated = lf != std::string_view::npos;
    if (!terminated) lf = text.size();
    std::string_view line = text.substr(pos, lf - pos);
    pos = terminated ? lf + 1 : text.size();
    // §3.2 sts-policy-term: LF or CRLF; a CR anywhere else is malformed.
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    const auto err = [&](const std::string& why) {
      return Error::perm("line " + std::to_string(line_no) + ": " + why);
    };
    if (line.find('\r') != std::string_view::npos) return err("stray carriage return");
    if (line.empty()) {
      blank_seen = true;
      continue;
    }
    if (blank_seen) return err("blank line inside the policy");
    // sts-policy-field: NAME ":" *WSP VALUE, with trailing blanks allowed before the end of line.
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) return err("no ':' in " + quoted(line));
    const std::string_view key = line.substr(0, colon);
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && is_wsp(value.front())) value.remove_prefix(1);
    while (!value.empty() && is_wsp(value.back())) value.remove_suffix(1);
    if (!valid_ext_name(key)) return err("bad key " + quoted(key));
    // Literal strings of the ABNF are case-insensitive (RFC 5234 §2.3).
    if (iequals(key, "version")) {
      if (have_version) return err("duplicate version");
      if (!iequals(value, "STSv1")) return err("unsupported version " + quoted(value));
      have_version = true;
    } else if (iequals(key, "mode")) {
      if (have_mode) return err("duplicate mode");
      if (iequals(value, "enforce")) p.mode = Mode::Enforce;
      else if (iequals(value, "testing")) p.mode = Mode::Testing;
      else if (iequals(value, "none")) p.mode = Mode::None;
      else return err("unknown mode " + quoted(value));
      have_mode = true;
    } else if (iequals(key, "max_age")) {
      if (have_max_age) return err("duplicate max_age");
      // §3.2 sts-policy-max-age-value: 1*10DIGIT, at most 31557600.
      if (value.empty() || value.size() > 10) return err("max_age is not 1 to 10 digits");
      int64_t n = 0;
      for (char c : value) {
        if (!is_digit(c)) return err("max_age is not a number: " + quoted(value));
        n = n * 10 + (c - '0');
      }
      if (n > kMaxAgeLimit) return err("max_age " + std::string(value) + " exceeds 31557600");
      p.max_age = n;
      have_max_age = true;
    } else if (iequals(key, "mx")) {
      std::string why;
      auto pat = mx_pattern(value, why);
      if (!pat) return err(why + ": " + quoted(value));
      p.mx.push_back(std::move(*pat));
    } else if (!valid_ext_value(value)) {
      // §3.2: unknown keys are ignored, but they must still be well-formed fields.
      return err("bad value for " + quoted(key));
    }
  }
  if (!have_version) return Error::perm("no version field");
  if (!have_mode) return Error::perm("no mode field");
  if (!have_max_age) return Error::perm("no max_age field");
  // §3.2: mx is required; a policy of mode none exists only to retire a policy and has no
  // use for hosts, so its absence there is tolerated.
  if (p.mx.empty() && p.mode != Mode::None) return Error::perm("no mx field");
  return p;
}

TxtVerdict parse_txt(const std::vector<std::string>& records) {
  TxtVerdict v;
  const std::string* the = nullptr;
  size_t count = 0;
  for (const auto& r : records) {
    // §3.1: records not starting with "v=STSv1;" (case-sensitive) are someone else's.
    std::string_view s = r;
    if (!s.starts_with("v=STSv1")) continue;
    s.remove_prefix(7);
    while (!s.empty() && is_wsp(s.front())) s.remove_prefix(1);
    if (!s.starts_with(";")) continue;
    ++count;
    the = &r;
  }
  if (count == 0) {
    v.reason = "no v=STSv1 TXT record";
    return v;
  }
  if (count > 1) {
    v.reason = std::to_string(count) + " v=STSv1 TXT records (exactly one is required)";
    return v;
  }
  // sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
  // sts-field-delim = *WSP ";" *WSP; fields are id=1*32(ALPHA/DIGIT) or NAME=VALUE.
  std::string_view s = *the;
  s.remove_prefix(7);
  bool have_id = false;
  size_t fields = 0;
  while (true) {
    while (!s.empty() && is_wsp(s.front())) s.remove_prefix(1);
    if (s.empty()) break;
    if (s.front() != ';') {
      v.reason = "malformed v=STSv1 TXT record (fields must be separated by ';')";
      return v;
    }
    s.remove_prefix(1);
    while (!s.empty() && is_wsp(s.front())) s.remove_prefix(1);
    if (s.empty()) break;  // a trailing delimiter
    size_t end = 0;
    while (end < s.size() && s[end] != ';' && !is_wsp(s[end])) ++end;
    const std::string_view field = s.substr(0, end);
    s.remove_prefix(end);
    const size_t eq = field.find('=');
    if (eq == std::string_view::npos) {
      v.reason = "malformed v=STSv1 TXT record (a field without '=')";
      return v;
    }
    const std::string_view name = field.substr(0, eq), value = field.substr(eq + 1);
    ++fields;
    if (name == "id") {
      bool ok = !value.empty() && value.size() <= 32 && !have_id;
      for (char c : value) ok = ok && is_alnum(c);
      if (!ok) {
        v.reason = "malformed v=STSv1 TXT record (id must be 1 to 32 letters and digits, once)";
        return v;
      }
      v.id = std::string(value);
      have_id = true;
      continue;
    }
    bool ok = valid_ext_name(name) && !value.empty();
    for (char c : value) ok = ok && c >= 0x21 && c <= 0x7e && c != '=' && c != ';';
    if (!ok) {
      v.reason = "malformed v=STSv1 TXT record (bad field " + quoted(field) + ")";
      return v;
    }
  }
  if (!have_id) {
    v.reason = fields ? "v=STSv1 TXT record without id" : "v=STSv1 TXT record with no fields";
    v.id.clear();
    return v;
  }
  v.found = true;
  return v;
}

bool pattern_matches(std::string_view pattern, std::string_view host) {
  if (!host.empty() && host.back() == '.') host.remove_suffix(1);
  if (pattern.starts_with("*.")) {
    // §4.1: the wildcard stands for exactly one label, the leftmost.
    const size_t dot = host.find('.');
    if (dot == std::string_view::npos || dot == 0) return false;
    return iequals(host.substr(dot + 1), pattern.substr(2));
  }
  return iequals(host, pattern);
}

bool mx_matches(const Policy& p, std::string_view host) {
  for (const auto& pat : p.mx)
    if (pattern_matches(pat, host)) return true;
  return false;
}

}  // namespace tern::sts
