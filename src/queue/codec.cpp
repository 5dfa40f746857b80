// Encoding and decoding of queue files (grammar: queue-format.md, version 3; reads 1 and 2 too).
#include "queue/codec.hpp"

#include <charconv>
#include <cstring>
#include <optional>
#include <vector>

namespace tern::queue {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";

std::string escape(std::string_view s, bool keep_space) {
  std::string out;
  out.reserve(s.size());
  for (unsigned char c : s) {
    const bool bad = c < 0x20 || c == 0x7f || c == '%' || (c == ' ' && !keep_space);
    if (bad) {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    } else {
      out += char(c);
    }
  }
  return out;
}

template <typename T>
bool parse_uint(std::string_view s, T& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

// Splits a record line into space-separated fields (escaping guarantees no field has a space,
// except a trailing free-text field which the caller re-joins via `rest`).
std::vector<std::string_view> split(std::string_view line) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i <= line.size()) {
    size_t j = line.find(' ', i);
    if (j == std::string_view::npos) j = line.size();
    out.push_back(line.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// A record key as the extension rules define it: a lower-case letter, then lower-case
// letters, digits and '-'.
bool valid_key(std::string_view k) {
  if (k.empty() || k[0] < 'a' || k[0] > 'z') return false;
  for (char c : k)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) return false;
  return true;
}

// Unknown record in a version-2 header or in any trailer: "" to skip it (optional), the key
// when it is must-understand, nullopt when it is not a record at all.
std::optional<std::string_view> classify_unknown(std::string_view key) {
  if (!key.empty() && key[0] == kMustUnderstand && valid_key(key.substr(1))) return key;
  if (valid_key(key)) return std::string_view{};
  return std::nullopt;
}

Result<std::string> unbracket(std::string_view field) {
  if (field.size() < 2 || field.front() != '<' || field.back() != '>')
    return Error::bug("address not in <>: " + std::string(field));
  return unescape(field.substr(1, field.size() - 2));
}

}  // namespace

const char* to_string(RcptState s) noexcept {
  switch (s) {
    case RcptState::Pending: return "pending";
    case RcptState::Delivered: return "delivered";
    case RcptState::Deferred: return "deferred";
    case RcptState::Failed: return "failed";
    case RcptState::FailedNotified: return "failed-notified";
  }
  return "?";
}

bool parse_rcpt_state(std::string_view t, RcptState& out) noexcept {
  for (auto s : {RcptState::Pending, RcptState::Delivered, RcptState::Deferred, RcptState::Failed,
                 RcptState::FailedNotified}) {
    if (t == to_string(s)) {
      out = s;
      return true;
    }
  }
  return false;
}

std::string escape_token(std::string_view s) { return escape(s, false); }
std::string escape_text(std::string_view s) { return escape(s, true); }

Result<std::string> unescape(std::string_view s) {
  if (s.find('%') == std::string_view::npos) return std::string(s);  // the common case
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out += s[i];
      continue;
    }
    if (i + 3 > s.size()) return Error::bug("truncated %XX escape");
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data() + i + 1, s.data() + i + 3, v, 16);
    if (ec != std::errc() || p != s.data() + i + 3) return Error::bug("bad %XX escape");
    out += char(v);
    i += 2;
  }
  return out;
}

std::string format_data_size(uint64_t size) {
  std::string digits = std::to_string(size);
  return std::string(kDataSizeDigits - digits.size(), '0') + digits;
}

std::string encode_header(const Envelope& env, uint64_t data_size, const std::vector<std::string>& history) {
  std::string h;
  h.reserve(512);
  h += kMagic;
  h += '\n';
  h += "id " + escape_token(env.id) + "\n";
  h += "arrival " + std::to_string(env.arrival_us) + "\n";
  h += "client-address " + escape_token(env.client_address) + "\n";
  h += "client-port " + std::to_string(env.client_port) + "\n";
  h += "client-helo " + escape_text(env.client_helo) + "\n";
  h += std::string("client-relay ") + (env.client_relay ? "yes" : "no") + "\n";
  h += "protocol " + escape_token(env.protocol) + "\n";
  h += "sender <" + escape_token(env.sender) + ">\n";
  for (const auto& p : env.mail_params) h += "mail-param " + escape_token(p) + "\n";
  for (const auto& r : env.recipients) {
    h += "rcpt <" + escape_token(r.address) + ">";
    if (!r.original.empty()) h += " orig=<" + escape_token(r.original) + ">";
    // A parameter that begins like the orig= field is escaped so it reads back as a parameter.
    for (const auto& p : r.params)
      h += p.starts_with("orig=") ? " %6F" + escape_token(p.substr(1)) : " " + escape_token(p);
    h += "\n";
  }
  if (!env.notice_for.empty()) {
    h += "notice-for " + escape_token(env.notice_for) + " ";
    for (size_t i = 0; i < env.notice_rcpts.size(); ++i)
      h += (i ? "," : "") + std::to_string(env.notice_rcpts[i]);
    h += "\n";
  }
  if (const size_t sp = env.origin.find(' '); sp != std::string::npos)
    h += "origin " + escape_token(env.origin.substr(0, sp)) + " " + escape_token(env.origin.substr(sp + 1)) + "\n";
  for (const auto& line : history) h += "!history " + line + "\n";
  h += "data-size " + format_data_size(data_size) + "\n";
  h += "data\n";
  return h;
}

size_t data_size_offset(std::string_view header) {
  auto pos = header.rfind("\ndata-size ");
  return pos == std::string_view::npos ? std::string_view::npos : pos + 11;
}

std::string encode_end(uint32_t crc) {
  std::string r = "end ";
  for (int shift = 28; shift >= 0; shift -= 4) r += kHex[(crc >> shift) & 15];
  r += '\n';
  return r;
}

std::optional<uint32_t> parse_end(std::string_view trailer) {
  if (trailer.size() < kEndRecordLength || !trailer.starts_with("end ") || trailer[kEndRecordLength - 1] != '\n')
    return std::nullopt;
  uint32_t crc = 0;
  for (char c : trailer.substr(4, 8)) {
    const char* at = std::strchr(kHex, c);
    if (c == 0 || at == nullptr) return std::nullopt;  // upper-case hex only, as written
    crc = crc << 4 | uint32_t(at - kHex);
  }
  return crc;
}

std::string encode_status(size_t rcpt_index, RcptState state, int64_t time_us,
                          std::string_view relay, std::string_view reply) {
  // "-" stands for "no relay", so a relay literally named "-" is escaped.
  const std::string relay_field = relay.empty() ? "-" : relay == "-" ? "%2D" : escape_token(relay);
  return "status " + std::to_string(rcpt_index) + " " + to_string(state) + " " +
         std::to_string(time_us) + " " + relay_field + " " + escape_text(reply) + "\n";
}

std::string encode_status_code(size_t rcpt_index, std::string_view code, bool remote) {
  return "status-code " + std::to_string(rcpt_index) + " " + escape_token(code) + (remote ? " remote\n" : " local\n");
}

std::string encode_delay_warned(int64_t time_us) {
  return "delay-warned " + std::to_string(time_us) + "\n";
}

std::string encode_held(int64_t time_us) { return "!held " + std::to_string(time_us) + "\n"; }
std::string encode_released(int64_t time_us) { return "!released " + std::to_string(time_us) + "\n"; }
std::string encode_deleted(int64_t time_us) { return "!deleted " + std::to_string(time_us) + "\n"; }
std::string encode_exported(int64_t time_us) { return "!exported " + std::to_string(time_us) + "\n"; }

Result<ParsedHeader> parse_header(std::string_view prefix) {
  ParsedHeader out;
  Envelope& env = out.envelope;
  size_t pos = 0;
  bool first = true, have_size = false, have_sender = false;
  while (true) {
    size_t nl = prefix.find('\n', pos);
    if (nl == std::string_view::npos) return Error::bug("header not terminated by a data line");
    std::string_view line = prefix.substr(pos, nl - pos);
    pos = nl + 1;
    if (first) {
      if (!line.starts_with(kMagicPrefix) || !parse_uint(line.substr(kMagicPrefix.size()), out.version) ||
          out.version == 0)
        return Error::bug("not a tern queue file");
      if (out.version > kFormatVersion) {
        // Written by a newer tern: this reader cannot know what it may do with the file.
        out.unknown_must_understand = std::string(line);
        return out;
      }
      first = false;
      continue;
    }
    if (line == "data") break;
    size_t sp = line.find(' ');
    std::string_view key = line.substr(0, sp);
    std::string_view val = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
    auto bad = [&](const char* why) {
      return Error::bug(std::string(key) + ": " + why);
    };
    if (key == "id") {
      auto v = unescape(val);
      if (!v || v->empty()) return bad("empty or malformed");
      env.id = *v;
    } else if (key == "arrival") {
      if (!parse_uint(val, env.arrival_us)) return bad("not a number");
    } else if (key == "client-address") {
      auto v = unescape(val);
      if (!v) return v.error();
      env.client_address = *v;
    } else if (key == "client-port") {
      if (!parse_uint(val, env.client_port)) return bad("not a port number");
    } else if (key == "client-helo") {
      auto v = unescape(val);
      if (!v) return v.error();
      env.client_helo = *v;
    } else if (key == "client-relay") {
      if (val != "yes" && val != "no") return bad("expected yes or no");
      env.client_relay = val == "yes";
    } else if (key == "protocol") {
      auto v = unescape(val);
      if (!v) return v.error();
      env.protocol = *v;
    } else if (key == "sender") {
      auto v = unbracket(val);
      if (!v) return v.error();
      env.sender = *v;
      have_sender = true;
    } else if (key == "mail-param") {
      auto v = unescape(val);
      if (!v) return v.error();
      env.mail_params.push_back(*v);
    } else if (key == "rcpt") {
      auto fields = split(val);
      Recipient r;
      auto a = unbracket(fields[0]);
      if (!a || a->empty()) return bad("malformed recipient address");
      r.address = *a;
      for (size_t i = 1; i < fields.size(); ++i) {
        if (fields[i].starts_with("orig=")) {
          auto o = unbracket(fields[i].substr(5));
          if (!o) return o.error();
          r.original = *o;
        } else {
          auto p = unescape(fields[i]);
          if (!p) return p.error();
          r.params.push_back(*p);
        }
      }
      env.recipients.push_back(std::move(r));
    } else if (key == "notice-for") {
      auto f = split(val);
      if (f.size() != 2) return bad("expected ID INDEX,INDEX...");
      auto id = unescape(f[0]);
      if (!id || id->empty()) return bad("malformed id");
      env.notice_for = *id;
      size_t pos = 0;
      while (pos <= f[1].size()) {
        size_t comma = f[1].find(',', pos);
        if (comma == std::string_view::npos) comma = f[1].size();
        size_t idx = 0;
        if (!parse_uint(f[1].substr(pos, comma - pos), idx)) return bad("malformed index list");
        env.notice_rcpts.push_back(idx);
        pos = comma + 1;
      }
    } else if (key == "origin" && out.version >= 2) {
      // origin HOST ID: where an imported message came from (ternctl import).
      auto f = split(val);
      if (f.size() != 2) return bad("expected HOST ID");
      auto host = unescape(f[0]), id = unescape(f[1]);
      if (!host || !id || host->empty() || id->empty() || host->find(' ') != std::string::npos ||
          id->find(' ') != std::string::npos)
        return bad("malformed");
      env.origin = *host + " " + *id;
    } else if (key == "!history" && out.version >= 2) {
      // !history RECORD: a state record carried over from the exporting node. Only records
      // that describe the message's past may appear; one a reader does not know is judged
      // as in a trailer (an optional one is skipped when applied, a must-understand one
      // leaves the file alone).
      const std::string_view inner = val.substr(0, val.find(' '));
      if (inner == "!released" || inner == "!deleted" || inner == "!exported" || inner == "!history")
        return bad("record not allowed in a history");
      out.history.emplace_back(val);
    } else if (key == "data-size") {
      if (val.size() != kDataSizeDigits || !parse_uint(val, out.data_size)) return bad("malformed");
      have_size = true;
    } else {
      const auto unknown = out.version >= 2 ? classify_unknown(key) : std::nullopt;
      if (!unknown) return Error::bug("unknown record '" + std::string(key) + "'");
      if (!unknown->empty() && out.unknown_must_understand.empty())
        out.unknown_must_understand = std::string(*unknown);
      // An optional record this version does not know is skipped.
    }
  }
  if (env.id.empty() || !have_sender || !have_size || env.recipients.empty())
    return Error::bug("header lacks id, sender, recipients or data-size");
  if (!out.history.empty() && out.unknown_must_understand.empty()) {
    std::string lines;
    for (const auto& h : out.history) lines.append(h).push_back('\n');
    std::string unknown;
    if (auto st = apply_status_records(env, lines, &unknown); !st) return Error::bug("!history: " + st.error().message);
    if (!unknown.empty()) out.unknown_must_understand = "!history " + unknown;
  }
  out.header_length = pos;
  return out;
}

Status apply_status_records(Envelope& env, std::string_view trailer, std::string* unknown_must_understand) {
  size_t pos = 0;
  while (pos < trailer.size()) {
    size_t nl = trailer.find('\n', pos);
    if (nl == std::string_view::npos) break;  // torn final append: ignored by design
    std::string_view line = trailer.substr(pos, nl - pos);
    pos = nl + 1;
    auto f = split(line);
    if (f[0] == "delay-warned" || f[0] == "!held" || f[0] == "!released" || f[0] == "!deleted" ||
        f[0] == "!exported") {
      int64_t t = 0;
      if (f.size() != 2 || !parse_uint(f[1], t))
        return Error::bug("malformed " + std::string(f[0]) + " record: " + std::string(line));
      if (f[0] == "delay-warned") env.delay_warned_us = t;
      else if (f[0] == "!held") env.held = true;
      else if (f[0] == "!released") env.held = false;
      else if (f[0] == "!exported") env.exported = true;
      else env.deleted = true;
      continue;
    }
    if (f[0] == "status-code") {  // status-code INDEX CODE remote|local (follows its status)
      size_t idx = 0;
      if (f.size() != 4 || !parse_uint(f[1], idx) || idx >= env.recipients.size() ||
          (f[3] != "remote" && f[3] != "local") || f[2].empty() || f[2].size() > 16)
        return Error::bug("malformed status-code record: " + std::string(line));
      env.recipients[idx].last_status = std::string(f[2]);
      env.recipients[idx].last_remote = f[3] == "remote";
      continue;
    }
    if (f[0] != "status") {
      const auto unknown = classify_unknown(f[0]);
      if (!unknown) return Error::bug("malformed status record: " + std::string(line));
      if (unknown->empty()) continue;  // optional, unknown to this version: skipped
      if (!unknown_must_understand)
        return Error::perm("record '" + std::string(*unknown) + "' needs a newer tern");
      *unknown_must_understand = std::string(*unknown);
      return ok_status();
    }
    // status INDEX STATE TIME RELAY TEXT
    if (f.size() < 5) return Error::bug("malformed status record");
    size_t idx = 0;
    RcptState st{};
    int64_t t = 0;
    if (!parse_uint(f[1], idx) || idx >= env.recipients.size() || !parse_rcpt_state(f[2], st) ||
        !parse_uint(f[3], t))
      return Error::bug("malformed status record: " + std::string(line));
    auto relay = unescape(f[4] == "-" ? std::string_view{} : f[4]);
    if (!relay) return relay.error();
    size_t text_at = f[0].size() + f[1].size() + f[2].size() + f[3].size() + f[4].size() + 5;
    auto text = unescape(text_at <= line.size() ? line.substr(text_at) : std::string_view{});
    if (!text) return text.error();
    Recipient& r = env.recipients[idx];
    r.state = st;
    r.updated_us = t;
    if (st == RcptState::Deferred) ++r.attempts;
    r.last_relay = *relay;
    r.last_reply = *text;
    r.last_status.clear();  // a status-code record, if any, follows
    r.last_remote = false;
  }
  return ok_status();
}

std::vector<HistoryEvent> history_of(std::string_view trailer) {
  std::vector<HistoryEvent> out;
  auto number = [](std::string_view t, int64_t& v) {
    if (t.empty() || t.size() > 19 || t.find_first_not_of("0123456789") != std::string_view::npos) return false;
    v = 0;
    for (char c : t) v = v * 10 + (c - '0');
    return true;
  };
  while (!trailer.empty()) {
    const size_t nl = trailer.find('\n');
    if (nl == std::string_view::npos) break;  // a torn last record
    std::string_view line = trailer.substr(0, nl);
    trailer.remove_prefix(nl + 1);
    auto next = [&line]() {
      const size_t sp = line.find(' ');
      std::string_view w = line.substr(0, sp);
      line = sp == std::string_view::npos ? std::string_view{} : line.substr(sp + 1);
      return w;
    };
    const std::string_view key = next();
    HistoryEvent e;
    if (key == "status") {
      int64_t idx = 0;
      if (!number(next(), idx)) continue;
      e.rcpt = long(idx);
      e.what = std::string(next());
      if (!number(next(), e.time_us)) continue;
      const std::string_view relay = next();
      if (relay != "-")
        if (auto r = unescape(relay)) e.relay = *r;
      if (auto r = unescape(line)) e.reply = *r;
    } else if (key == "!held" || key == "!released" || key == "!deleted" || key == "!exported" ||
               key == "delay-warned") {
      if (!number(next(), e.time_us)) continue;
      e.what = std::string(key[0] == '!' ? key.substr(1) : key);
    } else {
      continue;
    }
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace tern::queue
