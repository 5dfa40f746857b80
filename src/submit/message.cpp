// Message handling for local submission (see message.hpp).
#include "submit/message.hpp"

#include <algorithm>

#include "common/strings.hpp"
#include "smtp/header_section.hpp"

namespace tern::submit {

std::string normalize_input(std::string_view in, bool ignore_dots, bool* ended_by_dot) {
  std::string out;
  out.reserve(in.size() + in.size() / 32 + 2);
  if (ended_by_dot) *ended_by_dot = false;
  size_t pos = 0;
  while (pos < in.size()) {
    size_t end = in.find_first_of("\r\n", pos);
    std::string_view line = in.substr(pos, end == std::string_view::npos ? std::string_view::npos : end - pos);
    if (end == std::string_view::npos) pos = in.size();
    else if (in[end] == '\r' && end + 1 < in.size() && in[end + 1] == '\n') pos = end + 2;
    else pos = end + 1;
    if (!ignore_dots && line == ".") {
      if (ended_by_dot) *ended_by_dot = true;
      break;
    }
    out.append(line);
    out.append("\r\n");
  }
  return out;
}

void separate_body(std::string& message) {
  bool complete = false;
  const size_t hlen = smtp::header_section_length(message, complete);
  if (hlen == message.size()) return;  // headers only (or nothing): the end of the message ends them
  const bool blank_ends_it = (hlen == 2 && message.compare(0, 2, "\r\n") == 0) ||
                             (hlen >= 4 && message.compare(hlen - 4, 4, "\r\n\r\n") == 0);
  if (!blank_ends_it) message.insert(hlen, "\r\n");
}

std::vector<HeaderField> header_fields(std::string_view message) {
  bool complete = false;
  const std::string_view block = message.substr(0, smtp::header_section_length(message, complete));
  std::vector<HeaderField> out;
  size_t pos = 0;
  while (pos < block.size()) {
    size_t end = block.find("\r\n", pos);
    if (end == std::string_view::npos) end = block.size();
    const std::string_view line = block.substr(pos, end - pos);
    pos = end + 2;
    if (line.empty()) break;
    if ((line[0] == ' ' || line[0] == '\t')) {
      if (!out.empty()) out.back().value.append(line);  // unfolding: CRLF removed (§2.2.3)
      continue;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    out.push_back({std::string(trim(line.substr(0, colon))), std::string(trim(line.substr(colon + 1)))});
  }
  return out;
}

namespace {

// Removes (nested) comments outside quoted strings, RFC 5322 §3.2.2, keeping quotes.
Result<std::string> strip_comments(std::string_view v) {
  std::string out;
  int depth = 0;
  bool quoted = false;
  for (size_t i = 0; i < v.size(); ++i) {
    const char c = v[i];
    if (c == '\\' && i + 1 < v.size() && (quoted || depth > 0)) {
      if (depth == 0) out.append(v.substr(i, 2));
      ++i;
      continue;
    }
    if (depth > 0) {
      if (c == '(') ++depth;
      else if (c == ')') --depth;
      continue;
    }
    if (c == '"') quoted = !quoted;
    else if (!quoted && c == '(') {
      depth = 1;
      out.push_back(' ');
      continue;
    }
    out.push_back(c);
  }
  if (quoted) return Error::perm("unterminated quoted string");
  if (depth > 0) return Error::perm("unterminated comment");
  return out;
}

// An addr-spec with the blanks outside quotes removed (CFWS may surround its tokens).
std::string squeeze(std::string_view s) {
  std::string out;
  bool quoted = false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    if (c == '\\' && quoted && i + 1 < s.size()) {
      out.append(s.substr(i, 2));
      ++i;
      continue;
    }
    if (c == '"') quoted = !quoted;
    if (!quoted && (c == ' ' || c == '\t')) continue;
    out.push_back(c);
  }
  return out;
}

Status take_address(std::string_view token, std::vector<std::string>& out) {
  token = trim(token);
  if (token.empty()) return ok_status();  // an empty list element or an empty group
  std::string spec;
  // '<' outside a quoted display name starts the angle-addr.
  size_t lt = std::string_view::npos;
  bool quoted = false;
  for (size_t i = 0; i < token.size(); ++i) {
    if (token[i] == '\\' && quoted) ++i;
    else if (token[i] == '"') quoted = !quoted;
    else if (!quoted && token[i] == '<') {
      lt = i;
      break;
    }
  }
  if (lt != std::string_view::npos) {
    const size_t gt = token.find('>', lt);
    if (gt == std::string_view::npos) return Error::perm("'<' without '>' in " + std::string(token));
    std::string_view inner = token.substr(lt + 1, gt - lt - 1);
    if (const size_t colon = inner.find(':'); !inner.empty() && inner.front() == '@' && colon != std::string_view::npos)
      inner.remove_prefix(colon + 1);  // obs-route (RFC 5322 §4.4)
    spec = squeeze(inner);
  } else {
    spec = squeeze(token);
  }
  if (spec.empty()) return ok_status();  // "<>" in a header names nobody
  const size_t at = spec.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == spec.size())
    return Error::perm("not an address: " + std::string(token));
  out.push_back(std::move(spec));
  return ok_status();
}

}  // namespace

Result<std::vector<std::string>> parse_address_list(std::string_view value) {
  auto stripped = strip_comments(value);
  if (!stripped) return stripped.error();
  const std::string& v = *stripped;
  std::vector<std::string> out;
  bool quoted = false, angle = false;
  size_t start = 0;
  for (size_t i = 0; i <= v.size(); ++i) {
    const char c = i < v.size() ? v[i] : ',';
    if (quoted) {
      if (c == '\\') ++i;
      else if (c == '"') quoted = false;
      continue;
    }
    if (c == '"') quoted = true;
    else if (c == '<') angle = true;
    else if (c == '>') angle = false;
    else if (!angle && c == ':') start = i + 1;  // "group name:" — the name is no address
    else if (i == v.size() && angle) return Error::perm("'<' without '>'");
    else if (!angle && (c == ',' || c == ';')) {
      if (auto st = take_address(std::string_view(v).substr(start, i - start), out); !st) return st.error();
      start = i + 1;
    }
  }
  return out;
}

Result<std::vector<std::string>> recipients_from_headers(std::string_view message) {
  std::vector<std::string> out;
  for (const auto& f : header_fields(message)) {
    if (!iequals(f.name, "To") && !iequals(f.name, "Cc") && !iequals(f.name, "Bcc")) continue;
    auto list = parse_address_list(f.value);
    if (!list) return Error::perm(f.name + ": " + list.error().message);
    for (auto& a : *list)
      if (std::find(out.begin(), out.end(), a) == out.end()) out.push_back(std::move(a));
  }
  return out;
}

std::string remove_bcc(std::string_view message) {
  bool complete = false;
  const size_t hlen = smtp::header_section_length(message, complete);
  std::string out;
  out.reserve(message.size());
  size_t pos = 0;
  bool dropping = false;
  while (pos < hlen) {
    size_t end = message.find("\r\n", pos);
    end = end == std::string_view::npos || end + 2 > hlen ? hlen : end + 2;
    const std::string_view line = message.substr(pos, end - pos);
    pos = end;
    const bool continuation = !line.empty() && (line[0] == ' ' || line[0] == '\t');
    if (!continuation) dropping = istarts_with(line, "Bcc:") || istarts_with(line, "Bcc :");
    if (!dropping) out.append(line);
  }
  out.append(message.substr(hlen));
  return out;
}

std::string local_prelude(std::string_view message, const LocalOrigin& o) {
  bool has_from = false, has_date = false, has_id = false;
  for (const auto& f : header_fields(message)) {
    has_from |= iequals(f.name, "From");
    has_date |= iequals(f.name, "Date");
    has_id |= iequals(f.name, "Message-ID");
  }
  std::string p = "Received: from local user " + o.user + " (uid " + std::to_string(o.uid) + ")\r\n\tby " +
                  o.hostname + " (tern) with LOCAL id " + o.queue_id + ";\r\n\t" + o.date + "\r\n";
  if (!has_from) {
    // The full name becomes a quoted-string (RFC 5322 §3.2.4); quotes, backslashes and line
    // breaks in it are dropped rather than trusted.
    std::string name;
    for (char c : o.full_name)
      if (c != '"' && c != '\\' && c != '\r' && c != '\n') name.push_back(c);
    p += "From: " + (name.empty() ? "" : "\"" + name + "\" ") + "<" + o.user + "@" + o.hostname + ">\r\n";
  }
  if (!has_date) p += "Date: " + o.date + "\r\n";
  if (!has_id) p += "Message-ID: " + o.message_id + "\r\n";
  return p;
}

}  // namespace tern::submit
