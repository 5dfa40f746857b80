// The config loader: YAML text in, a validated tern::config::Config out, or one error line
// "PATH:LINE: KEY: message". The only file in tern that includes yaml-cpp.
#include "config/config.hpp"

#include <sys/stat.h>
#include <unistd.h>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <system_error>
#include <utility>

#include "common/strings.hpp"

namespace tern::config {
namespace {

namespace fs = std::filesystem;

// The loader stops at the first problem. Helpers deep inside a section throw this so that
// each section reads as a flat list of keys; load_string catches it (and everything
// yaml-cpp throws) and returns Error::perm, so no exception leaves this file.
struct ConfigError {
  std::string message;
};

// Where the text came from: names the file in errors and anchors relative paths.
struct Source {
  std::string path;
  fs::path dir;  // directory of `path`, possibly still relative
  bool read_files = true;  // false: files the config names are not opened (ternctl)
};

// The largest duration accepted. Timers and clocks downstream count nanoseconds in an
// int64, so anything beyond ~292 years would overflow there rather than here.
constexpr uint64_t kMaxDurationSeconds =
    uint64_t(std::numeric_limits<int64_t>::max()) / 1'000'000'000;

// Quotes text for a one-line message: control characters escaped, long values cut short.
std::string quote(std::string_view s) {
  std::string out = "\"";
  size_t shown = 0;
  for (unsigned char c : s) {
    if (++shown > 80) {
      out += "...";
      break;
    }
    if (c == '"' || c == '\\') {
      out += '\\';
      out += char(c);
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += char(c);
    }
  }
  return out + "\"";
}

// "a", "a or b", "a, b or c": the choices in an error message.
std::string one_of(const std::vector<std::string_view>& names) {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) out += (i + 1 == names.size()) ? " or " : ", ";
    out += names[i];
  }
  return out;
}

std::string errno_text(int err) { return std::generic_category().message(err); }

// Reads a whole file. On failure returns nullopt and sets `why` to the system's reason.
std::optional<std::string> read_whole_file(const std::string& path, std::string& why) {
  std::unique_ptr<FILE, int (*)(FILE*)> f(std::fopen(path.c_str(), "rb"), &std::fclose);
  if (!f) {
    why = errno_text(errno);
    return std::nullopt;
  }
  std::string out;
  char buf[16384];
  size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, f.get())) > 0) out.append(buf, n);
  // A directory opens fine on Linux and only fails here, with EISDIR.
  if (std::ferror(f.get())) {
    why = errno_text(errno);
    return std::nullopt;
  }
  return out;
}

// One node of the document with the dotted key that leads to it ("relay.domains[1].name")
// and the 1-based line to blame when it is wrong.
class Value {
 public:
  Value(const Source& src, YAML::Node node, std::string key, int line)
      : src_(&src), node_(std::move(node)), key_(std::move(key)), line_(line) {}

  [[noreturn]] void fail(const std::string& what) const {
    std::string where = src_->path + ":" + std::to_string(line_) + ": ";
    throw ConfigError{key_.empty() ? where + what : where + key_ + ": " + what};
  }

  [[nodiscard]] const Source& source() const { return *src_; }
  [[nodiscard]] const YAML::Node& node() const { return node_; }
  [[nodiscard]] const std::string& key() const { return key_; }
  [[nodiscard]] int line() const { return line_; }

  // What the value is, for the "got ..." half of a type error.
  [[nodiscard]] std::string describe() const {
    if (node_.IsSequence()) return "a list";
    if (node_.IsMap()) return "a map";
    if (node_.IsScalar()) return quote(node_.Scalar());
    return "an empty value";
  }

 private:
  const Source* src_;
  YAML::Node node_;
  std::string key_;
  int line_;
};

// yaml-cpp counts lines from 0; nodes it made up (an empty value) have no mark at all.
int line_of(const YAML::Node& node, int fallback) {
  const int line = node.Mark().line;
  return line >= 0 ? line + 1 : fallback;
}

std::string child_key(const std::string& parent, std::string_view name) {
  return parent.empty() ? std::string(name) : parent + "." + std::string(name);
}

// A map's entries by name, after checking that every key is known and appears once: a
// misspelt key must fail loudly instead of leaving its setting at the default.
class Fields {
 public:
  Fields(const Value& map, std::initializer_list<std::string_view> known) : map_(map) {
    // An empty section ("limits:" with every child commented out) keeps every default.
    if (map.node().IsNull()) return;
    if (!map.node().IsMap()) map.fail("expected a map of keys, got " + map.describe());
    for (const auto& kv : map.node()) {
      const int line = line_of(kv.first, map.line());
      if (!kv.first.IsScalar())
        Value(map.source(), kv.first, map.key(), line).fail("keys must be plain words");
      const std::string name = kv.first.Scalar();
      Value child(map.source(), kv.second, child_key(map.key(), name), line);
      if (std::find(known.begin(), known.end(), name) == known.end())
        child.fail("unknown key (expected " + one_of(std::vector<std::string_view>(known)) + ")");
      if (get(name)) child.fail("duplicate key");
      entries_.emplace_back(name, std::move(child));
    }
  }

  // nullptr when the key is absent: the caller keeps the default.
  [[nodiscard]] const Value* get(std::string_view name) const {
    for (const auto& [n, v] : entries_)
      if (n == name) return &v;
    return nullptr;
  }

  [[nodiscard]] const Value& need(std::string_view name) const {
    if (const Value* v = get(name)) return *v;
    Value(map_.source(), YAML::Node(), child_key(map_.key(), name), map_.line())
        .fail("required key is missing");
  }

 private:
  Value map_;
  std::vector<std::pair<std::string, Value>> entries_;
};

std::vector<Value> items_of(const Value& v) {
  if (v.node().IsNull()) v.fail("expected a list, got an empty value (write [] for an empty list)");
  if (!v.node().IsSequence()) v.fail("expected a list, got " + v.describe());
  std::vector<Value> out;
  for (const YAML::Node& item : v.node()) {
    const std::string key = v.key() + "[" + std::to_string(out.size()) + "]";
    out.emplace_back(v.source(), item, key, line_of(item, v.line()));
  }
  return out;
}

std::string scalar_of(const Value& v, std::string_view expected) {
  if (!v.node().IsScalar()) v.fail("expected " + std::string(expected) + ", got " + v.describe());
  return v.node().Scalar();
}

bool all_digits(std::string_view text) {
  return !text.empty() && text.find_first_not_of("0123456789") == std::string_view::npos;
}

// Plain decimal digits only (no sign, spaces, hex or fraction); nullopt also on overflow.
std::optional<uint64_t> parse_digits(std::string_view text) {
  if (!all_digits(text)) return std::nullopt;
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return n;
}

uint64_t read_uint(const Value& v, uint64_t min, uint64_t max) {
  const std::string text = scalar_of(v, "a non-negative integer");
  if (!all_digits(text)) v.fail("expected a non-negative integer, got " + quote(text));
  auto n = parse_digits(text);
  if (!n || *n > max) v.fail("must be at most " + std::to_string(max) + ", got " + text);
  if (*n < min) v.fail("must be at least " + std::to_string(min) + ", got " + text);
  return *n;
}

uint32_t read_u32(const Value& v, uint32_t min) {
  return uint32_t(read_uint(v, min, std::numeric_limits<uint32_t>::max()));
}

uint64_t read_size(const Value& v, uint64_t min) {
  const std::string text = scalar_of(v, "a size");
  auto n = parse_size(text);
  if (!n) v.fail("expected a size in bytes, optionally with k, M or G, got " + quote(text));
  if (*n < min) v.fail("must be at least " + std::to_string(min) + " bytes, got " + text);
  return *n;
}

Seconds read_duration(const Value& v, Seconds min) {
  const std::string text = scalar_of(v, "a duration");
  auto d = parse_duration(text);
  if (!d) v.fail("expected a duration like 90s, 5m, 1h or 5d, got " + quote(text));
  if (*d < min) v.fail("must be at least " + std::to_string(min.count()) + "s, got " + text);
  return *d;
}

// One of a fixed set of words, spelt exactly.
std::string read_word(const Value& v, const std::vector<std::string_view>& words) {
  const std::string text = scalar_of(v, one_of(words));
  if (std::find(words.begin(), words.end(), text) == words.end())
    v.fail("expected " + one_of(words) + ", got " + quote(text));
  return text;
}

uint16_t read_port(const Value& v) { return uint16_t(read_uint(v, 1, 65535)); }

// Host name syntax of RFC 1035 §2.3.1 as relaxed by RFC 1123 §2.1: labels of letters,
// digits and hyphens, 1..63 octets, not starting or ending with a hyphen; 253 in all.
// Returns what is wrong, or nullopt.
std::optional<std::string> domain_problem(std::string_view d) {
  if (d.empty()) return "it is empty";
  if (d.size() > 253) return "longer than 253 characters";
  size_t start = 0;
  while (true) {
    const size_t dot = d.find('.', start);
    const std::string_view label =
        d.substr(start, dot == std::string_view::npos ? dot : dot - start);
    if (label.empty()) return "empty label";
    if (label.size() > 63) return "label longer than 63 characters";
    if (label.front() == '-' || label.back() == '-') return "label starts or ends with a hyphen";
    for (char c : label) {
      if (static_cast<unsigned char>(c) >= 0x80)
        return "non-ASCII characters are not allowed (write the xn-- form)";
      const bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) return "character " + quote(std::string_view(&c, 1)) + " is not allowed";
    }
    if (dot == std::string_view::npos) return std::nullopt;
    start = dot + 1;
  }
}

std::string read_domain(const Value& v) {
  const std::string text = scalar_of(v, "a domain name");
  std::string d = canonical_domain(text);
  if (auto why = domain_problem(d)) v.fail("not a valid domain name " + quote(text) + ": " + *why);
  return d;
}

// Relative paths are taken from the config file's directory, so a config and the files it
// names can move together; the result is absolute so a later chdir cannot change it.
TlsLevel read_tls_level(const Value& v) {
  const std::string w = read_word(v, {"none", "may", "encrypt", "verify", "dane"});
  return w == "none"      ? TlsLevel::None
         : w == "may"     ? TlsLevel::May
         : w == "encrypt" ? TlsLevel::Encrypt
         : w == "verify"  ? TlsLevel::Verify
                          : TlsLevel::Dane;
}

std::string resolve_path(const Value& v, const std::string& text) {
  if (text.empty()) v.fail("expected a path, got an empty string");
  fs::path p = fs::path(text).is_absolute() ? fs::path(text) : v.source().dir / text;
  std::error_code ec;
  p = fs::absolute(p, ec);
  if (ec) v.fail("cannot make " + quote(text) + " absolute: " + ec.message());
  p = p.lexically_normal();
  if (!p.has_filename() && p.has_relative_path()) p = p.parent_path();  // drop a trailing '/'
  return p.string();
}

// ---- sections -----------------------------------------------------------------------

std::string default_hostname(const Value& root) {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0)
    root.fail("hostname: not set and the system host name is unavailable: " + errno_text(errno));
  std::string d = canonical_domain(buf);
  if (auto why = domain_problem(d))
    root.fail("hostname: not set and the system host name " + quote(buf) +
              " is not a valid domain name (" + *why + "); set it here");
  return d;
}

std::vector<Listen> read_listen(const Value& v) {
  std::vector<Listen> out;
  for (const Value& item : items_of(v)) {
    const Fields f(item, {"address", "tls", "auth"});
    const Value& a = f.need("address");
    const std::string text = scalar_of(a, "an address like 127.0.0.1:25 or [::1]:25");
    auto ep = Endpoint::parse(text);
    if (!ep) a.fail("expected an address like 127.0.0.1:25 or [::1]:25, got " + quote(text));
    if (ep->port == 0) a.fail("port must be between 1 and 65535, got " + quote(text));
    for (const Listen& l : out)
      if (l.address.str() == ep->str()) a.fail("duplicate listen address " + ep->str());
    Listen l{*ep};
    if (auto* x = f.get("tls")) l.implicit_tls = read_word(*x, {"starttls", "implicit"}) == "implicit";
    if (auto* x = f.get("auth")) l.auth_required = read_word(*x, {"required", "optional"}) == "required";
    out.push_back(std::move(l));
  }
  if (out.empty()) v.fail("must list at least one address");
  return out;
}

// A recipients entry is a local part ("alice") or a full address in this domain
// ("alice@other.example"). Returns what is wrong, or nullopt.
std::optional<std::string> recipient_problem(std::string_view entry, const std::string& domain) {
  if (entry.empty()) return "empty recipient";
  for (char c : entry)
    if (c == ' ' || c == '\t' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      return "recipient " + quote(entry) + " contains a space or control character";
  const size_t at = entry.rfind('@');
  if (at == std::string_view::npos) return std::nullopt;
  if (at == 0) return "recipient " + quote(entry) + " has an empty local part";
  if (canonical_domain(entry.substr(at + 1)) != domain)
    return "recipient " + quote(entry) + " is not in domain " + domain;
  return std::nullopt;
}

// The stored form: lower case, and a full address's domain canonical like the domain's
// own name, so the relay check can compare strings.
std::string normal_recipient(std::string_view entry) {
  const size_t at = entry.rfind('@');
  if (at == std::string_view::npos) return to_lower(entry);
  return to_lower(entry.substr(0, at)) + "@" + canonical_domain(entry.substr(at + 1));
}

std::set<std::string> read_recipients_list(const Value& v, const std::string& domain) {
  std::set<std::string> out;
  for (const Value& item : items_of(v)) {
    const std::string text = scalar_of(item, "a local part or address");
    if (auto why = recipient_problem(text, domain)) item.fail(*why);
    out.insert(normal_recipient(text));
  }
  return out;
}

// One entry per line; '#' at the start of a line or after a blank starts a comment
// (a '#' inside a local part is legal, RFC 5322 §3.2.3 atext).
std::set<std::string> read_recipients_file(const Value& v, const std::string& domain) {
  const std::string path = resolve_path(v, scalar_of(v, "a path"));
  if (!v.source().read_files) return {};
  std::string why;
  auto text = read_whole_file(path, why);
  if (!text) v.fail("cannot read " + path + ": " + why);
  std::set<std::string> out;
  size_t pos = 0;
  for (int lineno = 1; pos < text->size(); ++lineno) {
    size_t eol = text->find('\n', pos);
    if (eol == std::string::npos) eol = text->size();
    std::string_view line(text->data() + pos, eol - pos);
    pos = eol + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    for (size_t i = 0; i < line.size(); ++i)
      if (line[i] == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
        line = line.substr(0, i);
        break;
      }
    line = trim(line);
    if (line.empty()) continue;
    if (auto problem = recipient_problem(line, domain))
      v.fail(path + ":" + std::to_string(lineno) + ": " + *problem);
    out.insert(normal_recipient(line));
  }
  return out;
}

RelayDomain read_relay_domain(const Value& item) {
  if (item.node().IsScalar()) return RelayDomain{read_domain(item), std::nullopt, {}};
  if (!item.node().IsMap())
    item.fail("expected a domain name or a map with name and recipients, got " + item.describe());
  const Fields f(item, {"name", "recipients", "recipients_file"});
  RelayDomain d{read_domain(f.need("name")), std::nullopt, {}};
  const Value* list = f.get("recipients");
  const Value* file = f.get("recipients_file");
  if (list && file) item.fail("give recipients or recipients_file, not both");
  if (list) d.recipients = read_recipients_list(*list, d.name);
  if (file) {
    d.recipients_file = resolve_path(*file, scalar_of(*file, "a path"));
    d.recipients = read_recipients_file(*file, d.name);
  }
  return d;
}

Relay read_relay(const Value* v) {
  Relay r;
  r.networks = {*Cidr::parse("127.0.0.0/8"), *Cidr::parse("::1/128")};
  if (!v) return r;
  const Fields f(*v, {"networks", "domains"});
  if (const Value* nets = f.get("networks")) {
    r.networks.clear();
    for (const Value& item : items_of(*nets)) {
      const std::string text = scalar_of(item, "a network like 10.0.0.0/8");
      auto cidr = Cidr::parse(text);
      if (!cidr)
        item.fail("expected a network like 10.0.0.0/8 or 2001:db8::/32, got " + quote(text));
      r.networks.push_back(*cidr);
    }
  }
  if (const Value* domains = f.get("domains")) {
    for (const Value& item : items_of(*domains)) {
      RelayDomain d = read_relay_domain(item);
      for (const RelayDomain& seen : r.domains)
        if (seen.name == d.name) item.fail("duplicate domain " + d.name);
      r.domains.push_back(std::move(d));
    }
  }
  return r;
}

// postmaster@ the hostname's parent domain (relay.example.net → postmaster@example.net):
// tern has no mailbox of its own to receive it. A name too short to have a parent domain
// keeps postmaster@hostname.
std::string default_postmaster(const std::string& hostname) {
  const size_t dot = hostname.find('.');
  if (dot != std::string::npos && hostname.find('.', dot + 1) != std::string::npos)
    return "postmaster@" + hostname.substr(dot + 1);
  return "postmaster@" + hostname;
}

std::string read_postmaster(const Value& v) {
  const std::string text = scalar_of(v, "an address");
  const size_t at = text.rfind('@');
  if (at == std::string::npos || at == 0 || at + 1 == text.size())
    v.fail("expected an address like postmaster@example.net, got " + quote(text));
  for (char c : text)
    if (c == ' ' || c == '\t' || static_cast<unsigned char>(c) < 0x20 || c == 0x7f)
      v.fail("address contains a space or control character: " + quote(text));
  return text;
}

void read_limits(const Value* v, Limits& out) {
  if (!v) return;
  const Fields f(
      *v, {"max_message_size", "max_recipients", "max_connections", "max_connections_per_client",
           "relay_networks_per_client_limit", "max_errors", "max_received_headers", "max_line_length",
           "long_lines", "bare_newlines"});
  // Zero is refused where it would make the server refuse everything.
  if (auto* x = f.get("max_message_size")) out.max_message_size = read_size(*x, 1);
  if (auto* x = f.get("max_recipients")) out.max_recipients = read_u32(*x, 1);
  if (auto* x = f.get("max_connections")) out.max_connections = read_u32(*x, 1);
  if (auto* x = f.get("max_connections_per_client"))
    out.max_connections_per_client = read_u32(*x, 1);
  if (auto* x = f.get("relay_networks_per_client_limit"))
    out.per_client_limit_for_relay = read_word(*x, {"exempt", "apply"}) == "apply";
  if (auto* x = f.get("max_errors")) out.max_errors = read_u32(*x, 0);
  if (auto* x = f.get("max_received_headers")) out.max_received_headers = read_u32(*x, 1);
  if (auto* x = f.get("max_line_length")) out.max_line_length = read_u32(*x, 1);
  if (auto* x = f.get("long_lines"))
    out.long_lines = read_word(*x, {"accept", "reject"}) == "accept" ? LongLinePolicy::Accept
                                                                     : LongLinePolicy::Reject;
  if (auto* x = f.get("bare_newlines"))
    out.bare_newlines = read_word(*x, {"reject", "normalize"}) == "reject"
                            ? BareNewlinePolicy::Reject
                            : BareNewlinePolicy::Normalize;
}

void read_timeouts(const Value* v, Timeouts& out) {
  if (!v) return;
  const Fields f(*v, {"command", "data", "shutdown"});
  if (auto* x = f.get("command")) out.command = read_duration(*x, Seconds(1));
  if (auto* x = f.get("data")) out.data = read_duration(*x, Seconds(1));
  if (auto* x = f.get("shutdown")) out.shutdown = read_duration(*x, Seconds(0));
}

double read_factor(const Value& v) {
  const std::string text = scalar_of(v, "a number");
  double d = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), d);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(d))
    v.fail("expected a number, got " + quote(text));
  if (d < 1.0) v.fail("must be at least 1, got " + text);
  return d;
}

void read_retry(const Value& v, Retry& out) {
  const Fields f(v, {"initial", "max", "factor"});
  if (auto* x = f.get("initial")) out.initial = read_duration(*x, Seconds(1));
  if (auto* x = f.get("max")) out.max = read_duration(*x, Seconds(1));
  if (auto* x = f.get("factor")) out.factor = read_factor(*x);
  if (out.max < out.initial) {
    const Value* blame = f.get("max") ? f.get("max") : &v;
    blame->fail("max (" + std::to_string(out.max.count()) + "s) is less than initial (" +
                std::to_string(out.initial.count()) + "s)");
  }
}

void read_client_timeouts(const Value& v, ClientTimeouts& out) {
  const Fields f(v, {"connect", "greeting", "helo", "mail", "rcpt", "data", "data_block",
                     "data_end", "quit"});
  auto set = [&](const char* name, Seconds& field) {
    if (auto* x = f.get(name)) field = read_duration(*x, Seconds(1));
  };
  set("connect", out.connect);
  set("greeting", out.greeting);
  set("helo", out.helo);
  set("mail", out.mail);
  set("rcpt", out.rcpt);
  set("data", out.data);
  set("data_block", out.data_block);
  set("data_end", out.data_end);
  set("quit", out.quit);
}

void read_delivery(const Value* v, Delivery& out) {
  if (!v) return;
  const Fields f(*v, {"port", "retry", "max_queue_time", "max_in_flight", "max_per_destination",
                      "max_mx_hosts", "max_addresses", "address_family", "prefer_ipv6",
                      "external_addresses", "source_address", "timeouts", "delay_warning", "double_bounce",
                      "tls", "tls_ca_file", "tls_policy"});
  if (auto* x = f.get("tls")) out.tls = read_tls_level(*x);
  if (auto* x = f.get("tls_ca_file")) out.tls_ca_file = resolve_path(*x, scalar_of(*x, "a path"));
  if (auto* x = f.get("tls_policy")) {
    if (!x->node().IsMap()) x->fail("expected a map of domain: none|may|encrypt|verify, got " + x->describe());
    for (const auto& kv : x->node()) {
      const std::string name = kv.first.IsScalar() ? kv.first.Scalar() : "";
      const int line = line_of(kv.first, x->line());
      const Value key_v(x->source(), kv.first, child_key(x->key(), name), line);
      const std::string domain = canonical_domain(name);
      if (auto why = domain_problem(domain)) key_v.fail("not a domain name: " + *why);
      if (out.tls_policy.count(domain)) key_v.fail("duplicate domain");
      out.tls_policy.emplace(domain, read_tls_level(Value(x->source(), kv.second, key_v.key(), line)));
    }
  }
  if (auto* x = f.get("delay_warning")) {
    // "0" (no unit) is accepted here: it reads as "off", not as an ambiguous amount.
    out.delay_warning = x->node().IsScalar() && x->node().Scalar() == "0" ? Seconds(0) : read_duration(*x, Seconds(0));
  }
  if (auto* x = f.get("double_bounce"))
    out.double_bounce_to_postmaster = read_word(*x, {"drop", "postmaster"}) == "postmaster";
  if (auto* x = f.get("port")) out.port = read_port(*x);
  if (auto* x = f.get("retry")) read_retry(*x, out.retry);
  if (auto* x = f.get("max_queue_time")) out.max_queue_time = read_duration(*x, Seconds(1));
  if (auto* x = f.get("max_in_flight")) out.max_in_flight = read_u32(*x, 1);
  if (auto* x = f.get("max_per_destination")) out.max_per_destination = read_u32(*x, 1);
  if (auto* x = f.get("max_mx_hosts")) out.max_mx_hosts = read_u32(*x, 1);
  if (auto* x = f.get("max_addresses")) out.max_addresses = read_u32(*x, 1);
  if (auto* x = f.get("address_family")) {
    const std::string w = read_word(*x, {"any", "ipv4", "ipv6"});
    out.address_family = w == "ipv4" ? AddressFamily::Ipv4 : w == "ipv6" ? AddressFamily::Ipv6
                                                                         : AddressFamily::Any;
  }
  if (auto* x = f.get("prefer_ipv6"))
    out.prefer_ipv6 = read_word(*x, {"true", "false", "yes", "no"}) == "true" ||
                      x->node().Scalar() == "yes";
  if (auto* x = f.get("external_addresses")) {
    for (const Value& item : items_of(*x)) {
      const std::string text = scalar_of(item, "an IP address");
      auto a = IpAddress::parse(text);
      if (!a) item.fail("expected an IP address, got " + quote(text));
      out.external_addresses.push_back(*a);
    }
  }
  if (auto* x = f.get("source_address")) {
    // One IPv4 and/or one IPv6 address outbound connections are made from (a string, or a
    // list of at most one of each family).
    std::vector<Value> items = x->node().IsSequence() ? items_of(*x) : std::vector<Value>{*x};
    for (const Value& item : items) {
      const std::string text = scalar_of(item, "an IP address");
      auto a = IpAddress::parse(text);
      if (!a) item.fail("expected an IP address, got " + quote(text));
      for (const auto& b : out.source_addresses)
        if (b.v6 == a->v6) item.fail("at most one IPv4 and one IPv6 source address");
      out.source_addresses.push_back(*a);
    }
  }
  if (auto* x = f.get("timeouts")) read_client_timeouts(*x, out.timeouts);
}

// The password of a smarthost route, from a file only tern may read (never inline in the
// config, which is world-readable by default). One line; a trailing newline is dropped.
std::string read_password_file(const Value& v, const std::string& path) {
  if (!v.source().read_files) return {};
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) v.fail(path + ": " + errno_text(errno));
  if (st.st_mode & (S_IRWXG | S_IRWXO)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", unsigned(st.st_mode & 0777));
    v.fail(path + ": a password file must be readable only by its owner (mode " + mode + "); chmod 600");
  }
  std::string why;
  auto text = read_whole_file(path, why);
  if (!text) v.fail(path + ": cannot read: " + why);
  while (!text->empty() && (text->back() == '\n' || text->back() == '\r')) text->pop_back();
  if (text->empty()) v.fail(path + ": the password file is empty");
  if (text->find_first_of("\r\n") != std::string::npos || text->find('\0') != std::string::npos)
    v.fail(path + ": the password file must hold one line");
  return *text;
}

// The map form of a route: next_hop plus TLS and credentials.
void read_route_map(const Value& val, Route& r, std::string& next_hop, const Value*& hop_value,
                    std::vector<std::string>& warnings) {
  const Fields f(val, {"next_hop", "tls", "tls_ca_file", "implicit_tls", "auth"});
  hop_value = &f.need("next_hop");
  next_hop = scalar_of(*hop_value, "a next hop \"host[:port]\"");
  if (auto* x = f.get("tls")) r.tls = read_tls_level(*x);
  if (auto* x = f.get("tls_ca_file")) r.tls_ca_file = resolve_path(*x, scalar_of(*x, "a path"));
  if (auto* x = f.get("implicit_tls")) r.implicit_tls = read_word(*x, {"true", "false"}) == "true";
  if (auto* x = f.get("auth")) {
    const Fields a(*x, {"username", "password_file"});
    RouteAuth auth;
    auth.username = scalar_of(a.need("username"), "a user name");
    if (auth.username.empty() || auth.username.find_first_of(std::string("\0\r\n", 3)) != std::string::npos)
      a.need("username").fail("a user name must be one non-empty line");
    const Value& pf = a.need("password_file");
    auth.password_file = resolve_path(pf, scalar_of(pf, "a path"));
    auth.password = read_password_file(pf, auth.password_file);
    r.auth = std::move(auth);
    // Credentials are never sent in plaintext, and only to a peer that proved who it is
    // unless the operator explicitly settles for encryption alone.
    if (!r.tls) r.tls = TlsLevel::Verify;
    if (*r.tls == TlsLevel::None || *r.tls == TlsLevel::May)
      f.need("tls").fail("a route with auth needs tls: verify (or encrypt): credentials are never sent in plaintext");
    if (*r.tls == TlsLevel::Encrypt)
      warnings.push_back(val.key() + ": tls: encrypt with auth: the smarthost's certificate is not checked, so a "
                         "man in the middle could collect the password; prefer tls: verify");
  }
  if (r.implicit_tls && r.tls && *r.tls == TlsLevel::None)
    f.need("tls").fail("implicit_tls: true contradicts tls: none");
}

// routes: {domain: "host[:port]" | "[v6addr]:port" | "[addr]" | {next_hop: ..., tls: ...}}
// — the next hop replaces MX.
std::map<std::string, Route> read_routes(const Value* v, std::vector<std::string>& warnings) {
  std::map<std::string, Route> out;
  if (!v || v->node().IsNull()) return out;
  if (!v->node().IsMap()) v->fail("expected a map of domain: next hop, got " + v->describe());
  for (const auto& kv : v->node()) {
    const int line = line_of(kv.first, v->line());
    const std::string name = kv.first.IsScalar() ? kv.first.Scalar() : "";
    const Value key_v(v->source(), kv.first, child_key(v->key(), name), line);
    const Value val(v->source(), kv.second, child_key(v->key(), name), line);
    std::string domain = "*";
    if (name != "*") {
      domain = canonical_domain(name);
      if (auto why = domain_problem(domain)) key_v.fail("not a domain name or \"*\": " + *why);
    }
    if (out.count(domain)) key_v.fail("duplicate route");
    Route r;
    std::string text;
    const Value* hop = &val;
    if (val.node().IsMap()) read_route_map(val, r, text, hop, warnings);
    else text = scalar_of(val, "a next hop \"host[:port]\" or a map with next_hop");
    const Value& val_hop = *hop;
    std::string_view host = text;
    std::string_view port;
    bool had_colon = false;
    if (!host.empty() && host.front() == '[') {
      const size_t close = host.find(']');
      if (close == std::string_view::npos) val_hop.fail("missing ] in " + quote(text));
      port = host.substr(close + 1);
      host = host.substr(1, close - 1);
      if (!port.empty() && port.front() != ':') val_hop.fail("expected :port after ] in " + quote(text));
      had_colon = !port.empty();
      if (had_colon) port.remove_prefix(1);
      if (!IpAddress::parse(host)) val_hop.fail("not an IP address inside []: " + quote(text));
    } else {
      const size_t colon = host.rfind(':');
      if (colon != std::string_view::npos) {
        had_colon = true;
        port = host.substr(colon + 1);
        host = host.substr(0, colon);
      }
      if (!IpAddress::parse(host)) {
        if (auto why = domain_problem(canonical_domain(host)))
          val_hop.fail("bad next-hop host " + quote(text) + ": " + *why);
      }
    }
    if (had_colon && port.empty()) val_hop.fail("empty port in " + quote(text));
    if (!port.empty()) {
      auto n = parse_digits(port);
      if (!n || *n < 1 || *n > 65535) val_hop.fail("bad port in " + quote(text));
      r.port = uint16_t(*n);
    }
    r.host = IpAddress::parse(host) ? std::string(host) : canonical_domain(host);
    out.emplace(domain, std::move(r));
  }
  return out;
}

void read_control(const Value* v, Control& out, const std::string& queue_dir) {
  out.socket = queue_dir + "/control.sock";
  if (!v) return;
  const Fields f(*v, {"socket", "group"});
  if (auto* x = f.get("socket")) out.socket = resolve_path(*x, scalar_of(*x, "a path"));
  if (auto* x = f.get("group")) out.group = scalar_of(*x, "a group name");
}

// auth: the users file is only named here; its lines are checked by ternd (auth/users.cpp),
// which --check runs too, so every error still names file:line.
void read_auth(const Value* v, Auth& out) {
  if (!v) return;
  const Fields f(*v, {"users_file", "show_user", "verifiers"});
  if (auto* x = f.get("users_file")) {
    const std::string text = scalar_of(*x, "a path");
    if (!text.empty()) out.users_file = resolve_path(*x, text);  // "" = AUTH off, the default
  }
  if (auto* x = f.get("show_user")) {
    const std::string w = read_word(*x, {"true", "false", "yes", "no"});
    out.show_user = w == "true" || w == "yes";
  }
  if (auto* x = f.get("verifiers")) out.verifiers = uint32_t(read_uint(*x, 1, 64));
}

// "192.0.2.1", "192.0.2.1@5353", "2001:db8::1@53": the address is everything before the
// last '@', so IPv6 needs no brackets.
void read_dns(const Value* v, Dns& out) {
  if (!v) return;
  const Fields f(*v, {"forwarders", "timeout", "trust_anchor"});
  if (auto* x = f.get("timeout")) out.timeout = read_duration(*x, Seconds(1));
  if (auto* x = f.get("trust_anchor")) {
    const std::string text = scalar_of(*x, "a path or none");
    out.trust_anchor = text == "none" ? std::string() : resolve_path(*x, text);
    // libunbound reads the file at start (and fails there on a bad one); --check says so first.
    if (!out.trust_anchor.empty() && x->source().read_files && ::access(out.trust_anchor.c_str(), R_OK) != 0)
      x->fail("cannot read the trust anchor " + quote(out.trust_anchor) + ": " + std::strerror(errno));
  }
  if (const Value* fw = f.get("forwarders")) {
    for (const Value& item : items_of(*fw)) {
      const std::string text = scalar_of(item, "an address or address@port");
      const size_t at = text.rfind('@');
      const std::string_view addr = std::string_view(text).substr(0, at);
      std::optional<uint64_t> port;
      if (at != std::string::npos) port = parse_digits(std::string_view(text).substr(at + 1));
      const bool port_ok = at == std::string::npos || (port && *port >= 1 && *port <= 65535);
      if (!IpAddress::parse(addr) || !port_ok)
        item.fail("expected an IP address, optionally with @port, got " + quote(text));
      out.forwarders.push_back(text);
    }
  }
}

// mta_sts: the CA file is opened here (when files are read), so --check reports a missing
// or unreadable one with its line instead of every policy fetch failing later.
void read_mta_sts(const Value* v, MtaSts& out) {
  if (!v) return;
  const Fields f(*v, {"enabled", "cache_dir", "ca_file", "https_port", "timeout"});
  if (auto* x = f.get("enabled")) {
    const std::string w = read_word(*x, {"true", "false", "yes", "no"});
    out.enabled = w == "true" || w == "yes";
  }
  if (auto* x = f.get("cache_dir")) {
    const std::string text = scalar_of(*x, "a path");
    if (text.empty()) x->fail("expected a directory path, got an empty value");
    out.cache_dir = resolve_path(*x, text);
  }
  if (auto* x = f.get("ca_file")) {
    const std::string text = scalar_of(*x, "a path");
    if (!text.empty()) {
      out.ca_file = resolve_path(*x, text);
      if (x->source().read_files && ::access(out.ca_file.c_str(), R_OK) != 0)
        x->fail(out.ca_file + ": " + errno_text(errno));
    }
  }
  if (auto* x = f.get("https_port")) out.https_port = read_port(*x);
  if (auto* x = f.get("timeout")) {
    out.timeout = read_duration(*x, Seconds(1));
    if (out.timeout > Seconds(300)) x->fail("must be at most 300s (a policy fetch holds up delivery)");
  }
}

Config read_config(const Source& src, const YAML::Node& doc) {
  const Value root(src, doc, "", line_of(doc, 1));
  const Fields f(root, {"hostname", "listen", "queue_dir", "queue_min_free", "relay", "postmaster",
                        "log_level", "limits", "timeouts", "delivery", "routes", "dns",
                        "control", "tls", "metrics", "log_format", "user", "auth", "submit", "mta_sts"});
  Config cfg;
  cfg.source_path = src.path;
  const Value* host = f.get("hostname");
  cfg.hostname = host ? read_domain(*host) : default_hostname(root);
  cfg.listen = {Listen{*Endpoint::parse("127.0.0.1:25")}};
  if (auto* x = f.get("listen")) cfg.listen = read_listen(*x);
  const Value& queue_dir = f.need("queue_dir");
  cfg.queue_dir = resolve_path(queue_dir, scalar_of(queue_dir, "a path"));
  if (auto* x = f.get("queue_min_free")) cfg.queue_min_free = read_size(*x, 0);
  cfg.relay = read_relay(f.get("relay"));
  const Value* postmaster = f.get("postmaster");
  cfg.postmaster = postmaster ? read_postmaster(*postmaster) : default_postmaster(cfg.hostname);
  if (auto* x = f.get("user")) {
    cfg.user = scalar_of(*x, "a user name");
    if (cfg.user.empty() || cfg.user.find_first_of(" \t:/") != std::string::npos) x->fail("not a user name: " + quote(cfg.user));
  }
  if (auto* x = f.get("log_format")) cfg.log_json = read_word(*x, {"text", "json"}) == "json";
  if (auto* x = f.get("log_level"))
    cfg.log_level = read_word(*x, {"trace", "debug", "info", "warn", "error"});
  read_limits(f.get("limits"), cfg.limits);
  read_timeouts(f.get("timeouts"), cfg.timeouts);
  read_delivery(f.get("delivery"), cfg.delivery);
  cfg.routes = read_routes(f.get("routes"), cfg.warnings);
  if (auto* x = f.get("tls")) {
    const Fields t(*x, {"cert", "key"});
    const Value& cert = t.need("cert");
    const Value& key = t.need("key");
    cfg.tls.cert = resolve_path(cert, scalar_of(cert, "a path"));
    cfg.tls.key = resolve_path(key, scalar_of(key, "a path"));
  }
  if (auto* x = f.get("metrics")) {
    const Fields m(*x, {"listen"});
    const Value& a = m.need("listen");
    const std::string text = scalar_of(a, "an address like 127.0.0.1:9187");
    auto ep = Endpoint::parse(text);
    if (!ep || ep->port == 0) a.fail("expected an address like 127.0.0.1:9187, got " + quote(text));
    cfg.metrics_listen = *ep;
  }
  for (const auto& l : cfg.listen)
    if (l.implicit_tls && cfg.tls.cert.empty())
      f.need("listen").fail("listener " + l.address.str() + " has tls: implicit but no tls: cert/key is configured");
  read_dns(f.get("dns"), cfg.dns);
  // The default anchor comes with dns-root-data; without it tern still runs, unvalidated.
  if (cfg.dns.trust_anchor == Dns{}.trust_anchor && src.read_files && ::access(cfg.dns.trust_anchor.c_str(), R_OK) != 0) {
    cfg.warnings.push_back("dns.trust_anchor: " + cfg.dns.trust_anchor +
                           " is missing (install dns-root-data): DNSSEC validation and DANE are off");
    cfg.dns.trust_anchor.clear();
  }
  read_mta_sts(f.get("mta_sts"), cfg.mta_sts);
  read_control(f.get("control"), cfg.control, cfg.queue_dir);
  read_auth(f.get("auth"), cfg.auth);
  if (const Value* lv = f.get("listen"); lv && cfg.auth.users_file.empty())
    for (const Listen& l : cfg.listen)
      if (l.auth_required)
        lv->fail("listener " + l.address.str() + " has auth: required but auth.users_file is not set");
  // AUTH is offered only inside TLS: without a certificate the users file is never used.
  if (!cfg.auth.users_file.empty() && cfg.tls.cert.empty())
    cfg.warnings.push_back("auth.users_file: no tls: cert/key is configured, so AUTH is never offered "
                           "(it needs TLS first)");
  if (auto* x = f.get("submit")) {
    const Fields s(*x, {"socket", "maildrop"});
    if (auto* y = s.get("socket")) cfg.submit.socket = resolve_path(*y, scalar_of(*y, "a path"));
    if (auto* y = s.get("maildrop")) cfg.submit.maildrop = resolve_path(*y, scalar_of(*y, "a path"));
  }
  // tern keeps no mailboxes: mail for postmaster@<hostname> would be rewritten to itself and
  // then fail as a loop (5.4.6) unless a route sends that domain elsewhere.
  if (postmaster) {
    const std::string domain = canonical_domain(cfg.postmaster.substr(cfg.postmaster.rfind('@') + 1));
    if (domain == canonical_domain(cfg.hostname) && !cfg.routes.count(domain))
      postmaster->fail("tern keeps no mailboxes, so " + cfg.postmaster +
                       " would loop back to this server; give an address at another domain (or a route for " +
                       domain + ")");
  }
  return cfg;
}

// Plain digits times `mult`, refusing anything above `max`.
std::optional<uint64_t> scaled(std::string_view digits, uint64_t mult, uint64_t max) {
  auto n = parse_digits(digits);
  if (!n || *n > max / mult) return std::nullopt;
  return *n * mult;
}

}  // namespace

std::vector<std::string> Config::reread_files() const {
  std::vector<std::string> files;
  auto add = [&](const std::string& f) {
    if (!f.empty() && std::find(files.begin(), files.end(), f) == files.end()) files.push_back(f);
  };
  add(tls.cert);
  add(tls.key);
  add(auth.users_file);
  add(delivery.tls_ca_file);
  for (const auto& d : relay.domains) add(d.recipients_file);
  for (const auto& [_, r] : routes) {
    add(r.tls_ca_file);
    if (r.auth) add(r.auth->password_file);
  }
  return files;
}

const char* to_string(TlsLevel level) noexcept {
  switch (level) {
    case TlsLevel::None: return "none";
    case TlsLevel::May: return "may";
    case TlsLevel::Encrypt: return "encrypt";
    case TlsLevel::Verify: return "verify";
    case TlsLevel::Dane: return "dane";
  }
  return "?";
}

std::optional<Seconds> parse_duration(std::string_view text) {
  // The unit is mandatory: a bare "300" could mean seconds or milliseconds to a reader.
  static constexpr std::pair<char, uint64_t> kUnits[] = {
      {'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}};
  if (text.empty()) return std::nullopt;
  for (const auto& [unit, mult] : kUnits) {
    if (text.back() != unit) continue;
    auto n = scaled(text.substr(0, text.size() - 1), mult, kMaxDurationSeconds);
    if (!n) return std::nullopt;
    return Seconds(static_cast<Seconds::rep>(*n));
  }
  return std::nullopt;
}

std::optional<uint64_t> parse_size(std::string_view text) {
  static constexpr std::pair<char, uint64_t> kUnits[] = {{'k', 1ull << 10}, {'K', 1ull << 10},
                                                         {'m', 1ull << 20}, {'M', 1ull << 20},
                                                         {'g', 1ull << 30}, {'G', 1ull << 30}};
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  for (const auto& [unit, mult] : kUnits)
    if (!text.empty() && text.back() == unit)
      return scaled(text.substr(0, text.size() - 1), mult, kMax);
  return scaled(text, 1, kMax);
}

Result<Config> load_string(const std::string& text, const std::string& path, const LoadOptions& opts) {
  const size_t slash = path.rfind('/');
  const Source src{path,
                   slash == std::string::npos ? fs::path(".")
                   : slash == 0               ? fs::path("/")
                                              : fs::path(path.substr(0, slash)),
                   opts.read_files};
  try {
    std::vector<YAML::Node> docs = YAML::LoadAll(text);
    if (docs.size() > 1)
      Value(src, docs[1], "", line_of(docs[1], 1)).fail("only one YAML document is allowed");
    return read_config(src, docs.empty() ? YAML::Node() : docs.front());
  } catch (const ConfigError& e) {
    return Error::perm(e.message);
  } catch (const YAML::Exception& e) {
    const std::string where =
        e.mark.line >= 0 ? path + ":" + std::to_string(e.mark.line + 1) : path;
    return Error::perm(where + ": invalid YAML: " + e.msg);
  } catch (const std::exception& e) {
    return Error::perm(path + ": " + e.what());
  } catch (...) {
    return Error::perm(path + ": unexpected error while loading the configuration");
  }
}

Result<Config> load_file(const std::string& path, const LoadOptions& opts) {
  std::string why;
  auto text = read_whole_file(path, why);
  if (!text) return Error::perm(path + ": cannot read: " + why);
  return load_string(*text, path, opts);
}

}  // namespace tern::config
