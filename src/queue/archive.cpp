// Export archives (grammar: queue-format.md, "Export archives"): encoding, and decoding of
// untrusted archives with every length bounded before it is used.
#include "queue/archive.hpp"

#include <charconv>

#include "queue/codec.hpp"
#include "queue/crc32c.hpp"

namespace tern::queue {

namespace {

constexpr char kHex[] = "0123456789ABCDEF";

template <typename T>
bool parse_uint(std::string_view s, T& out) {
  if (s.empty() || s.size() > 20) return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

std::string hex8(uint32_t v) {
  std::string r;
  for (int shift = 28; shift >= 0; shift -= 4) r += kHex[(v >> shift) & 15];
  return r;
}

bool parse_hex8(std::string_view s, uint32_t& out) {
  if (s.size() != 8) return false;
  out = 0;
  for (char c : s) {
    unsigned v = 0;
    if (c >= '0' && c <= '9') v = unsigned(c - '0');
    else if (c >= 'A' && c <= 'F') v = unsigned(c - 'A' + 10);
    else return false;
    out = out << 4 | v;
  }
  return true;
}

// Takes one "\n"-terminated line off the front of `rest`; false when there is none.
bool take_line(std::string_view& rest, std::string_view& line) {
  const size_t nl = rest.find('\n');
  if (nl == std::string_view::npos) return false;
  line = rest.substr(0, nl);
  rest.remove_prefix(nl + 1);
  return true;
}

// "key value" with exactly that key; the value (may be empty when `allow_empty`).
bool keyed(std::string_view line, std::string_view key, std::string_view& value) {
  if (line.size() <= key.size() || !line.starts_with(key) || line[key.size()] != ' ') return false;
  value = line.substr(key.size() + 1);
  return true;
}

// A host name or queue id from an archive: printable ASCII without spaces or '%', bounded.
bool plain_token(std::string_view s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (unsigned char c : s)
    if (c <= 0x20 || c >= 0x7f || c == '%') return false;
  return true;
}

bool plausible_id(std::string_view id) {
  if (id.empty() || id.size() > kMaxOriginId) return false;
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) return false;
  return true;
}

// The key of a record line (up to the first space).
std::string_view key_of(std::string_view line) { return line.substr(0, line.find(' ')); }

// Where the status records of a queue file begin, after its data and (version 3) its closing
// record, whose checksum is verified here. `p` is the parsed header of `file`.
Result<size_t> trailer_start(std::string_view file, const ParsedHeader& p) {
  if (p.data_size > file.size() || p.header_length > file.size() - p.data_size)
    return Error::perm("the queue file is shorter than its data-size says");
  const size_t data_end = p.header_length + size_t(p.data_size);
  if (p.version < 3) return data_end;
  const auto crc = parse_end(file.substr(data_end));
  if (!crc) return Error::perm("the queue file has no closing record");
  const uint32_t want = crc32c(crc32c(0, file.substr(p.header_length, size_t(p.data_size))), file.substr(0, p.header_length));
  if (want != *crc) return Error::perm("the queue file's closing record does not match its content");
  return data_end + kEndRecordLength;
}

}  // namespace

std::string encode_archive_head(const ArchiveHead& head) {
  return std::string(kArchiveMagic) + "\nhost " + head.host + "\ncreated " + std::to_string(head.created_us) + "\n";
}

std::string encode_archive_entry(const ArchiveEntry& e) {
  std::string body = "origin " + e.origin_host + " " + e.origin_id + "\n";
  body += std::string("held ") + (e.held ? "yes" : "no") + "\n";
  body += "next-attempt " + std::to_string(e.next_attempt_us) + "\n";
  body += "queue-file\n";
  body += e.queue_file;
  std::string out = "message " + std::to_string(body.size()) + " " + hex8(crc32c(0, body)) + "\n";
  out += body;
  out += '\n';
  return out;
}

std::string encode_archive_end(uint64_t count) { return "end " + std::to_string(count) + "\n"; }

Result<ArchiveHead> parse_archive_head(std::string_view text) {
  std::string_view line, value;
  ArchiveHead h;
  if (!take_line(text, line) || line != kArchiveMagic) {
    if (line.starts_with("TERN-ARCHIVE "))
      return Error::perm("archive format '" + std::string(line.substr(0, 40)) + "' is not one this tern reads");
    return Error::perm("not a tern export archive");
  }
  if (!take_line(text, line) || !keyed(line, "host", value) || !plain_token(value, kMaxOriginHost))
    return Error::perm("archive head: malformed host line");
  h.host = std::string(value);
  if (!take_line(text, line) || !keyed(line, "created", value) || !parse_uint(value, h.created_us))
    return Error::perm("archive head: malformed created line");
  if (!text.empty()) return Error::perm("archive head: unexpected bytes");
  return h;
}

Result<ArchiveFrame> parse_archive_frame(std::string_view line) {
  ArchiveFrame f;
  std::string_view value;
  if (keyed(line, "end", value)) {
    if (!parse_uint(value, f.count)) return Error::perm("malformed end line");
    f.end = true;
    return f;
  }
  if (!keyed(line, "message", value)) return Error::perm("expected a message or end line");
  const size_t sp = value.find(' ');
  if (sp == std::string_view::npos || !parse_uint(value.substr(0, sp), f.length) ||
      !parse_hex8(value.substr(sp + 1), f.crc))
    return Error::perm("malformed message line");
  return f;
}

Result<ArchiveEntry> parse_archive_entry(std::string_view body) {
  ArchiveEntry e;
  std::string_view line, value;
  if (!take_line(body, line) || !keyed(line, "origin", value)) return Error::perm("entry: no origin line");
  const size_t sp = value.find(' ');
  if (sp == std::string_view::npos || !plain_token(value.substr(0, sp), kMaxOriginHost) ||
      !plausible_id(value.substr(sp + 1)))
    return Error::perm("entry: malformed origin line");
  e.origin_host = std::string(value.substr(0, sp));
  e.origin_id = std::string(value.substr(sp + 1));
  if (!take_line(body, line) || !keyed(line, "held", value) || (value != "yes" && value != "no"))
    return Error::perm("entry: malformed held line");
  e.held = value == "yes";
  if (!take_line(body, line) || !keyed(line, "next-attempt", value) || !parse_uint(value, e.next_attempt_us))
    return Error::perm("entry: malformed next-attempt line");
  if (!take_line(body, line) || line != "queue-file") return Error::perm("entry: no queue-file line");
  e.queue_file = std::string(body);
  return e;
}

Result<ParsedArchive> parse_archive(std::string_view all) {
  ParsedArchive out;
  std::string_view rest = all, line;
  std::string head;
  for (int i = 0; i < 3; ++i) {
    if (!take_line(rest, line) || line.size() > kMaxArchiveLine) return Error::perm("archive head is incomplete");
    head.append(line).push_back('\n');
  }
  auto h = parse_archive_head(head);
  if (!h) return h.error();
  out.head = std::move(h.value());
  while (true) {
    if (!take_line(rest, line) || line.size() > kMaxArchiveLine)
      return Error::perm("archive is truncated after " + std::to_string(out.entries.size()) + " message(s)");
    auto f = parse_archive_frame(line);
    if (!f) return Error::perm("archive is damaged after " + std::to_string(out.entries.size()) + " message(s): " +
                               f.error().message);
    if (f->end) {
      if (f->count != out.entries.size())
        return Error::perm("archive end line counts " + std::to_string(f->count) + " message(s), found " +
                           std::to_string(out.entries.size()));
      if (!rest.empty()) return Error::perm("bytes after the archive's end line");
      return out;
    }
    if (f->length >= rest.size() || rest[size_t(f->length)] != '\n')
      return Error::perm("archive is truncated or damaged in message " + std::to_string(out.entries.size() + 1));
    const std::string_view body = rest.substr(0, size_t(f->length));
    rest.remove_prefix(size_t(f->length) + 1);
    if (crc32c(0, body) != f->crc) out.entries.emplace_back(Error::perm("checksum mismatch"));
    else out.entries.push_back(parse_archive_entry(body));
  }
}

Result<ArchiveEntry> entry_from_queue_file(std::string_view file, std::string_view host, bool held,
                                           int64_t next_attempt_us) {
  auto parsed = parse_header(file);
  if (!parsed) return Error::perm("unreadable queue file: " + parsed.error().message);
  const ParsedHeader& p = parsed.value();
  if (!p.unknown_must_understand.empty())
    return Error::perm("needs a newer tern ('" + p.unknown_must_understand + "')");
  auto at = trailer_start(file, p);
  if (!at) return at.error();
  const std::string_view trailer = file.substr(*at);
  Envelope check = p.envelope;
  std::string unknown;
  if (auto st = apply_status_records(check, trailer, &unknown); !st)
    return Error::perm("unreadable queue file: " + st.error().message);
  if (!unknown.empty()) return Error::perm("needs a newer tern ('" + unknown + "')");
  if (check.deleted || check.exported) return Error::perm("the message was deleted or exported");
  ArchiveEntry e;
  e.origin_host = std::string(host);
  e.origin_id = p.envelope.id;
  e.held = held;
  e.next_attempt_us = next_attempt_us;
  e.queue_file.reserve(file.size());
  e.queue_file.append(file.substr(0, *at));
  // Status records only: the operator's !held/!released are replaced by `held`, and a torn
  // last record (no newline) is dropped, as a reader would.
  std::string_view rest = trailer, line;
  while (take_line(rest, line)) {
    const std::string_view key = key_of(line);
    if (key == "!held" || key == "!released") continue;
    e.queue_file.append(line).push_back('\n');
  }
  return e;
}

Result<ImportedMessage> decode_archive_entry(const ArchiveEntry& e, int64_t now_us) {
  auto parsed = parse_header(e.queue_file);
  if (!parsed) return Error::perm("malformed queue file: " + parsed.error().message);
  ParsedHeader& p = parsed.value();
  if (!p.unknown_must_understand.empty())
    return Error::perm("needs a newer tern ('" + p.unknown_must_understand.substr(0, 64) + "')");
  if (p.envelope.id != e.origin_id) return Error::perm("the queue file's id does not match the archive's origin");
  auto at = trailer_start(e.queue_file, p);
  if (!at) return at.error();
  const std::string_view trailer = std::string_view(e.queue_file).substr(*at);
  ImportedMessage m;
  m.env = std::move(p.envelope);
  std::string unknown;
  if (auto st = apply_status_records(m.env, trailer, &unknown); !st)
    return Error::perm("malformed status record: " + st.error().message);
  if (!unknown.empty()) return Error::perm("needs a newer tern ('" + unknown.substr(0, 64) + "')");
  if (m.env.deleted || m.env.exported) return Error::perm("the message was deleted or exported");
  // What the new file carries: every state record, from an earlier import's history too, in
  // order; the operator's hold as the archive says.
  auto carry = [&m](std::string_view line) {
    const std::string_view key = key_of(line);
    if (key == "status" || key == "status-code" || key == "delay-warned") m.history.emplace_back(line);
  };
  for (const auto& h : p.history) carry(h);
  std::string_view rest = trailer, line;
  while (take_line(rest, line)) carry(line);
  m.env.held = e.held;
  if (e.held) m.history.push_back("!held " + std::to_string(now_us));
  // A bounce's notice-for names a message in the exporting node's queue, not here.
  m.env.notice_for.clear();
  m.env.notice_rcpts.clear();
  m.env.origin = e.origin_host + " " + e.origin_id;
  m.data = e.queue_file.substr(p.header_length, size_t(p.data_size));
  return m;
}

}  // namespace tern::queue
