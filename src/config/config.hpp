// tern's typed configuration: every key, its default, and the loader that turns a YAML
// file into it. The only component that includes yaml-cpp. Every error names file:line and key.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/net.hpp"
#include "common/result.hpp"

namespace tern::config {

using Seconds = std::chrono::seconds;

struct RelayDomain {
  std::string name;  // canonical: lower case, no trailing dot
  // Empty optional: any recipient accepted. Otherwise the accepted local parts
  // (lower-cased) and full addresses (lower-cased) from `recipients` / `recipients_file`.
  std::optional<std::set<std::string>> recipients;
  std::string recipients_file;  // absolute; empty when the list is inline or absent
};

struct Relay {
  std::vector<Cidr> networks;       // clients that may relay to any domain
  std::vector<RelayDomain> domains; // accepted from anyone
};

// What to do with a text line longer than RFC 5321's 1000 octets (§4.5.3.1.6).
enum class LongLinePolicy { Accept, Reject };
// What to do with a bare CR or bare LF inside DATA (SMTP smuggling defence).
enum class BareNewlinePolicy { Reject, Normalize };

struct Limits {
  uint64_t max_message_size = 36700160;       // bytes, announced in EHLO SIZE
  uint32_t max_recipients = 1000;             // per message; 452 4.5.3 past it
  uint32_t max_connections = 10000;           // total inbound
  uint32_t max_connections_per_client = 50;   // per client IP address
  // Clients in relay.networks are exempt from max_connections_per_client unless this is set
  // (limits.relay_networks_per_client_limit: apply); a local application may open many.
  bool per_client_limit_for_relay = false;
  uint32_t max_errors = 10;                   // per session, then 421 and close
  uint32_t max_received_headers = 50;         // loop detection, RFC 5321 §6.3
  uint32_t max_line_length = 1000;            // text line limit the policy applies to
  LongLinePolicy long_lines = LongLinePolicy::Accept;
  BareNewlinePolicy bare_newlines = BareNewlinePolicy::Reject;
};

// RFC 5321 §4.5.3.2 server-side timeouts.
struct Timeouts {
  Seconds command{300};   // waiting for the next command
  Seconds data{180};      // waiting for the next data block
  Seconds shutdown{30};   // how long SIGTERM lets transactions in flight finish
};

struct Retry {
  Seconds initial{300};
  Seconds max{3600};
  double factor = 2.0;
};

// SMTP client timeouts, RFC 5321 §4.5.3.2.
struct ClientTimeouts {
  Seconds connect{30};
  Seconds greeting{300};   // §4.5.3.2.1 initial 220
  Seconds helo{300};
  Seconds mail{300};       // §4.5.3.2.2
  Seconds rcpt{300};       // §4.5.3.2.3
  Seconds data{120};       // §4.5.3.2.4 DATA initiation
  Seconds data_block{180}; // §4.5.3.2.5
  Seconds data_end{600};   // §4.5.3.2.6
  Seconds quit{60};
};

enum class AddressFamily { Any, Ipv4, Ipv6 };

// Outbound TLS: none (never STARTTLS), may (when offered; a failed handshake is retried in
// plaintext), encrypt (required, any certificate), verify (required, certificate checked
// against the CA file and the names of the destination), dane (RFC 7672: hosts with secure
// TLSA records get TLS authenticated by them, hosts with a secure proof of none get `may`,
// hosts whose TLSA lookup failed or was bogus are not used).
enum class TlsLevel { None, May, Encrypt, Verify, Dane };
[[nodiscard]] const char* to_string(TlsLevel level) noexcept;

struct Delivery {
  uint16_t port = 25;
  Retry retry;
  Seconds max_queue_time{5 * 86400};
  uint32_t max_in_flight = 100;          // outbound connections at once, overall
  uint32_t max_per_destination = 10;     // outbound connections per destination
  uint32_t max_mx_hosts = 10;            // MX hosts considered per attempt
  uint32_t max_addresses = 20;           // addresses tried per attempt
  AddressFamily address_family = AddressFamily::Any;
  bool prefer_ipv6 = false;              // with Any: which family is tried first
  std::vector<IpAddress> external_addresses;  // also "me" for the MX self rule (NAT, LB)
  std::vector<IpAddress> source_addresses;    // outbound connections from (≤ 1 per family)
  ClientTimeouts timeouts;
  Seconds delay_warning{4 * 3600};       // warn the sender once after this; 0 = never
  bool double_bounce_to_postmaster = false;  // an undeliverable bounce goes to postmaster
  TlsLevel tls = TlsLevel::May;
  std::string tls_ca_file;                    // empty: the system store
  std::map<std::string, TlsLevel> tls_policy; // per recipient domain (canonical)
};

// Credentials for a smarthost (RFC 4954 AUTH, client side).
struct RouteAuth {
  std::string username;
  std::string password_file;
  std::string password;  // read from password_file at load; never logged
};

// A fixed next hop for a domain ("*" = every other domain: a smarthost).
struct Route {
  std::string host;    // a name (resolved by A/AAAA) or an IP address literal
  uint16_t port = 0;   // 0 = delivery.port
  std::optional<TlsLevel> tls;  // unset: delivery.tls, or verify with auth
  std::string tls_ca_file;      // empty: delivery.tls_ca_file
  bool implicit_tls = false;    // TLS from the first byte (port 465, RFC 8314)
  std::optional<RouteAuth> auth;
};

struct Dns {
  std::vector<std::string> forwarders;  // "addr" or "addr@port"; empty = system resolver
  Seconds timeout{30};                  // per query, on top of libunbound's own retries
  // DNSSEC trust anchor (a zone-format DS or DNSKEY file); empty ("none") = no validation,
  // every answer insecure, DANE off.
  std::string trust_anchor = "/usr/share/dns/root.key";
};

// MTA-STS (RFC 8461): recipient domains' published policies, applied to delivery by MX.
struct MtaSts {
  bool enabled = false;
  std::string cache_dir = "/var/lib/tern/sts";  // one file per domain, survives restarts
  std::string ca_file;        // verifies the HTTPS policy fetch; empty: the system store
  uint16_t https_port = 443;  // of mta-sts.DOMAIN; another port only for tests and labs
  Seconds timeout{10};        // per policy fetch (connect and transfer)
};

// The admin control socket ternctl talks to.
struct Control {
  std::string socket;  // default: <queue_dir>/control.sock
  std::string group;   // members may use ternctl besides root; empty = root only
};

// Local submission (tern-sendmail): the socket every local user may connect to (mode 0666,
// apart from the admin control socket) and the maildrop used while ternd is down.
struct Submit {
  std::string socket = "/run/tern/submit.sock";
  std::string maildrop = "/var/spool/tern-maildrop";
};

struct Listen {
  Endpoint address;
  bool implicit_tls = false;  // tls: implicit — TLS from the first byte (RFC 8314)
  // auth: required (a submission port): MAIL is refused with 530 5.7.0 until AUTH succeeds,
  // even from relay.networks.
  bool auth_required = false;
};

// The server certificate; STARTTLS is offered on plain listeners once set.
struct Tls {
  std::string cert;  // PEM chain, leaf first; empty: no TLS
  std::string key;
};

// SMTP AUTH (RFC 4954) for clients that submit or relay: offered after TLS only.
struct Auth {
  std::string users_file;  // "name:crypt-hash" lines; empty = AUTH not offered
  bool show_user = false;  // put the authenticated name into Received:
  uint32_t verifiers = 2;  // threads that check passwords (off the loop; a restart applies it)
};

struct Config {
  std::string source_path;  // the file this was loaded from
  std::string hostname;     // default: the system host name
  std::string user;         // started as root: drop to this user (empty: stay)
  std::vector<Listen> listen;
  Tls tls;
  std::string queue_dir;    // absolute after loading (relative paths resolve against the file's dir)
  uint64_t queue_min_free = 100ull * 1024 * 1024;  // bytes; MAIL gets 452 4.3.1 below it
  Relay relay;
  std::string postmaster;   // default: postmaster@<hostname>... see loader
  Limits limits;
  Timeouts timeouts;
  Delivery delivery;
  std::map<std::string, Route> routes;  // key: canonical domain or "*"
  Dns dns;
  MtaSts mta_sts;
  Control control;
  Submit submit;
  std::optional<Endpoint> metrics_listen;  // metrics.listen: Prometheus endpoint; off when unset
  Auth auth;
  std::string log_level = "info";  // trace, debug, info, warn, error
  bool log_json = false;           // log_format: json (one JSON object per line)
  std::vector<std::string> warnings;  // valid but risky settings, logged at start and reload
  // Every file SIGHUP reads again (certificates, keys, CA files, users, recipients and
  // password files): after the drop to `user:` that user must be able to read them.
  [[nodiscard]] std::vector<std::string> reread_files() const;
};

struct LoadOptions {
  // false: files the configuration names (recipient lists, password files) are not opened,
  // and what they hold stays empty. ternctl and tern-sendmail load this way: they run as
  // users who cannot read those files and need none of them.
  bool read_files = true;
};

// Loads and validates a config file. On failure the error message is a single line
// "PATH:LINE: KEY: what is wrong".
Result<Config> load_file(const std::string& path, const LoadOptions& opts = {});
// Same, from text (used by tests); `path` only names the source in errors and anchors
// relative paths.
Result<Config> load_string(const std::string& text, const std::string& path, const LoadOptions& opts = {});

// Parses "90s", "5m", "1h", "5d" (an integer and one unit).
std::optional<Seconds> parse_duration(std::string_view text);
// Parses "1048576", "100k", "100M", "1G" (binary multiples).
std::optional<uint64_t> parse_size(std::string_view text);

}  // namespace tern::config
