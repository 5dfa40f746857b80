// Unit tests for the config loader: values and defaults, and every error it reports, with
// the file, line and key each error must name.
#include "config/config.hpp"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/strings.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace tern;
using namespace tern::config;
using namespace std::chrono_literals;
using tern::test::TempDir;

namespace {

// Loads `text` expecting failure; returns the message after checking it is a single
// permanent-error line.
std::string error_of(const std::string& text, const std::string& path = "t.yaml") {
  auto r = load_string(text, path);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == ErrorKind::Perm);
  CHECK(r.error().message.find('\n') == std::string::npos);
  return r.error().message;
}

// Lines 1 and 2 of most error-test documents, so the lines under test start at 3 and no
// test depends on the machine's host name.
const std::string kHead = "queue_dir: /q\nhostname: mx.example\n";

std::string cidrs(const std::vector<Cidr>& v) {
  std::string out;
  for (const Cidr& c : v) out += c.str() + " ";
  return out;
}

}  // namespace

TEST_CASE("config: parse_duration accepts an integer and one unit") {
  CHECK(parse_duration("0s") == 0s);
  CHECK(parse_duration("90s") == 90s);
  CHECK(parse_duration("5m") == 300s);
  CHECK(parse_duration("1h") == 3600s);
  CHECK(parse_duration("5d") == Seconds(5 * 86400));
  CHECK(parse_duration("007m") == 420s);
  CHECK(parse_duration("9223372036s") == Seconds(9223372036));
}

TEST_CASE("config: parse_duration rejects everything else") {
  for (const char* bad : {"",
                          "0",
                          "300",
                          "s",
                          "m",
                          "5x",
                          "5 m",
                          " 5m",
                          "5m ",
                          "5mm",
                          "-5m",
                          "+5m",
                          "5M",
                          "5S",
                          "1.5h",
                          "5ms",
                          "0x10s",
                          "5 ",
                          "1h30m",
                          "99999999999999999999s",
                          "9223372037s",
                          "106751992d"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_duration(bad).has_value());
  }
}

TEST_CASE("config: parse_size accepts bytes and binary k/M/G") {
  CHECK(parse_size("0") == 0u);
  CHECK(parse_size("1048576") == 1048576u);
  CHECK(parse_size("100k") == 102400u);
  CHECK(parse_size("100K") == 102400u);
  CHECK(parse_size("1m") == 1048576u);
  CHECK(parse_size("100M") == 100ull * 1024 * 1024);
  CHECK(parse_size("1G") == 1ull << 30);
  CHECK(parse_size("16g") == 16ull << 30);
  CHECK(parse_size("18446744073709551615") == UINT64_MAX);
  CHECK(parse_size("17179869183G") == 17179869183ull << 30);
}

TEST_CASE("config: parse_size rejects everything else") {
  for (const char* bad :
       {"", "k", "M", "1.5M", "1MB", "1 M", " 1", "1 ", "-1", "+1", "1T", "1kk", "0x10", "1e6",
        "18446744073709551616", "17179869184G", "18014398509481984k"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_size(bad).has_value());
  }
}

TEST_CASE("config: a full config round-trips into the struct") {
  TempDir dir;
  dir.write("lists/big.txt",
            "# accepted at big.example\n"
            "\n"
            "Carol\r\n"
            "  dave@BIG.example.  # trailing comment\n"
            "a#b\n");
  const std::string path = dir.write("etc/tern.yaml", R"(
hostname: Relay.Example.NET.
listen:
  - address: 127.0.0.1:2525
  - address: "[::1]:2526"
queue_dir: ../spool//tern/
queue_min_free: 2G
relay:
  networks: [10.0.0.0/8, "2001:db8::/32", 192.0.2.7]
  domains:
    - Partner.Example
    - name: other.example
      recipients: [Alice, bob@Other.Example]
    - name: big.example
      recipients_file: ../lists/big.txt
postmaster: hostmaster@example.net
log_level: debug
limits:
  max_message_size: 10M
  max_recipients: 100
  max_connections: 500
  max_connections_per_client: 5
  max_errors: 0
  max_received_headers: 30
  max_line_length: 998
  long_lines: reject
  bare_newlines: normalize
timeouts:
  command: 10m
  data: 90s
  shutdown: 0s
delivery:
  port: 2525
  retry: {initial: 1m, max: 2h, factor: 1.5}
  max_queue_time: 3d
dns:
  forwarders: ["127.0.0.1@5353", "::1", 192.0.2.53]
)");
  auto r = load_file(path);
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  const Config& c = *r;
  CHECK(c.source_path == path);
  CHECK(c.hostname == "relay.example.net");
  REQUIRE(c.listen.size() == 2);
  CHECK(c.listen[0].address.str() == "127.0.0.1:2525");
  CHECK(c.listen[1].address.str() == "[::1]:2526");
  CHECK(c.queue_dir == (dir.path / "spool/tern").string());
  CHECK(c.queue_min_free == 2ull << 30);
  CHECK(cidrs(c.relay.networks) == "10.0.0.0/8 2001:db8::/32 192.0.2.7/32 ");
  REQUIRE(c.relay.domains.size() == 3);
  CHECK(c.relay.domains[0].name == "partner.example");
  CHECK_FALSE(c.relay.domains[0].recipients.has_value());
  CHECK(c.relay.domains[1].name == "other.example");
  CHECK(c.relay.domains[1].recipients == std::set<std::string>{"alice", "bob@other.example"});
  CHECK(c.relay.domains[2].name == "big.example");
  CHECK(c.relay.domains[2].recipients == std::set<std::string>{"carol", "dave@big.example", "a#b"});
  CHECK(c.postmaster == "hostmaster@example.net");
  CHECK(c.log_level == "debug");
  CHECK(c.limits.max_message_size == 10u << 20);
  CHECK(c.limits.max_recipients == 100);
  CHECK(c.limits.max_connections == 500);
  CHECK(c.limits.max_connections_per_client == 5);
  CHECK(c.limits.max_errors == 0);
  CHECK(c.limits.max_received_headers == 30);
  CHECK(c.limits.max_line_length == 998);
  CHECK(c.limits.long_lines == LongLinePolicy::Reject);
  CHECK(c.limits.bare_newlines == BareNewlinePolicy::Normalize);
  CHECK(c.timeouts.command == 600s);
  CHECK(c.timeouts.data == 90s);
  CHECK(c.timeouts.shutdown == 0s);
  CHECK(c.delivery.port == 2525);
  CHECK(c.delivery.retry.initial == 60s);
  CHECK(c.delivery.retry.max == 7200s);
  CHECK(c.delivery.retry.factor == 1.5);
  CHECK(c.delivery.max_queue_time == Seconds(3 * 86400));
  CHECK(c.dns.forwarders == std::vector<std::string>{"127.0.0.1@5353", "::1", "192.0.2.53"});
}

TEST_CASE("config: absent keys take their defaults") {
  auto r = load_string("queue_dir: /var/spool/tern\n", "/etc/tern/tern.yaml");
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  const Config& c = *r;
  const Config d;  // the struct's own defaults
  char host[256] = {};
  REQUIRE(::gethostname(host, sizeof host - 1) == 0);
  CHECK(c.source_path == "/etc/tern/tern.yaml");
  CHECK(c.hostname == canonical_domain(host));
  REQUIRE(c.listen.size() == 1);
  CHECK(c.listen[0].address.str() == "127.0.0.1:25");
  CHECK(c.queue_dir == "/var/spool/tern");
  CHECK(c.queue_min_free == 100ull << 20);
  CHECK(cidrs(c.relay.networks) == "127.0.0.0/8 ::1/128 ");
  CHECK(c.relay.domains.empty());
  const size_t dot = c.hostname.find('.');
  const bool parent = dot != std::string::npos && c.hostname.find('.', dot + 1) != std::string::npos;
  CHECK(c.postmaster == "postmaster@" + (parent ? c.hostname.substr(dot + 1) : c.hostname));
  CHECK(c.log_level == "info");
  CHECK(c.limits.max_message_size == 36700160u);
  CHECK(c.limits.max_recipients == d.limits.max_recipients);
  CHECK(c.limits.max_connections == d.limits.max_connections);
  CHECK(c.limits.max_connections_per_client == d.limits.max_connections_per_client);
  CHECK(c.limits.max_errors == d.limits.max_errors);
  CHECK(c.limits.max_received_headers == d.limits.max_received_headers);
  CHECK(c.limits.max_line_length == d.limits.max_line_length);
  CHECK(c.limits.long_lines == LongLinePolicy::Accept);
  CHECK(c.limits.bare_newlines == BareNewlinePolicy::Reject);
  CHECK(c.timeouts.command == 300s);
  CHECK(c.timeouts.data == 180s);
  CHECK(c.timeouts.shutdown == 30s);
  CHECK(c.delivery.port == 25);
  CHECK(c.delivery.retry.initial == 300s);
  CHECK(c.delivery.retry.max == 3600s);
  CHECK(c.delivery.retry.factor == 2.0);
  CHECK(c.delivery.max_queue_time == Seconds(5 * 86400));
  CHECK(c.dns.forwarders.empty());
}

TEST_CASE("config: empty sections keep defaults; partial sections keep the rest") {
  auto r = load_string(kHead + "limits:\ntimeouts:\n  data: 1m\ndelivery:\n  retry:\n", "t.yaml");
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  CHECK(r->limits.max_errors == 10);
  CHECK(r->timeouts.data == 60s);
  CHECK(r->timeouts.command == 300s);
  CHECK(r->delivery.retry.max == 3600s);
}

TEST_CASE("config: relative paths resolve against the config file's directory") {
  SUBCASE("path with a directory") {
    auto r = load_string("queue_dir: ../var/queue\n", "/srv/tern/config/tern.yaml");
    REQUIRE_MESSAGE(r.ok(), r.error().message);
    CHECK(r->queue_dir == "/srv/tern/var/queue");
  }
  SUBCASE("file in the root directory") {
    auto r = load_string("queue_dir: q\n", "/tern.yaml");
    REQUIRE_MESSAGE(r.ok(), r.error().message);
    CHECK(r->queue_dir == "/q");
  }
  SUBCASE("bare file name: the current directory") {
    auto r = load_string("queue_dir: q\n", "tern.yaml");
    REQUIRE_MESSAGE(r.ok(), r.error().message);
    CHECK(r->queue_dir == (fs::current_path() / "q").string());
  }
  SUBCASE("relative directory: made absolute") {
    auto r = load_string("queue_dir: ./q/\n", "etc/tern.yaml");
    REQUIRE_MESSAGE(r.ok(), r.error().message);
    CHECK(r->queue_dir == (fs::current_path() / "etc/q").string());
  }
}

TEST_CASE("config: unknown keys are errors at every level") {
  // The list names every top-level key; its start and one entry are enough to pin the shape.
  const std::string top = error_of(kHead + "log_levle: info\n");
  CHECK(top.starts_with("t.yaml:3: log_levle: unknown key (expected hostname, listen, queue_dir, "));
  CHECK(top.find(" log_level, ") != std::string::npos);
  CHECK(error_of(kHead + "limits:\n  max_errors: 5\n  max_errrors: 5\n")
            .rfind("t.yaml:5: limits.max_errrors: unknown key (expected max_message_size,", 0) ==
        0);
  CHECK(error_of(kHead + "delivery:\n  retry:\n    inital: 1m\n") ==
        "t.yaml:5: delivery.retry.inital: unknown key (expected initial, max or factor)");
  CHECK(error_of(kHead + "listen:\n  - address: 127.0.0.1:25\n    port: 25\n") ==
        "t.yaml:5: listen[0].port: unknown key (expected address, tls or auth)");
  CHECK(error_of(kHead + "relay:\n  domains:\n    - name: a.example\n      recipient: [x]\n") ==
        "t.yaml:6: relay.domains[0].recipient: unknown key "
        "(expected name, recipients or recipients_file)");
}

TEST_CASE("config: duplicate keys are errors") {
  CHECK(error_of(kHead + "log_level: info\nlog_level: debug\n") ==
        "t.yaml:4: log_level: duplicate key");
}

TEST_CASE("config: wrong types are errors") {
  CHECK(error_of(kHead + "limits:\n  max_errors: ten\n") ==
        "t.yaml:4: limits.max_errors: expected a non-negative integer, got \"ten\"");
  CHECK(error_of(kHead + "limits:\n  max_errors: -1\n") ==
        "t.yaml:4: limits.max_errors: expected a non-negative integer, got \"-1\"");
  CHECK(error_of(kHead + "limits:\n  max_errors: 1.5\n") ==
        "t.yaml:4: limits.max_errors: expected a non-negative integer, got \"1.5\"");
  CHECK(error_of(kHead + "limits:\n  max_errors: {a: 1}\n") ==
        "t.yaml:4: limits.max_errors: expected a non-negative integer, got a map");
  CHECK(error_of(kHead + "limits:\n  max_errors:\n") ==
        "t.yaml:4: limits.max_errors: expected a non-negative integer, got an empty value");
  CHECK(error_of(kHead + "limits:\n  max_recipients: 4294967296\n") ==
        "t.yaml:4: limits.max_recipients: must be at most 4294967295, got 4294967296");
  CHECK(error_of(kHead + "limits:\n  max_connections: 0\n") ==
        "t.yaml:4: limits.max_connections: must be at least 1, got 0");
  CHECK(error_of(kHead + "limits: [1, 2]\n") ==
        "t.yaml:3: limits: expected a map of keys, got a list");
  CHECK(error_of(kHead + "hostname2: x\n").find("t.yaml:3: hostname2: unknown key") == 0);
  CHECK(error_of("queue_dir: [a]\n") == "t.yaml:1: queue_dir: expected a path, got a list");
  CHECK(error_of(kHead + "listen: 127.0.0.1:25\n") ==
        "t.yaml:3: listen: expected a list, got \"127.0.0.1:25\"");
  CHECK(error_of(kHead + "relay:\n  networks:\n") ==
        "t.yaml:4: relay.networks: expected a list, got an empty value "
        "(write [] for an empty list)");
  CHECK(error_of(kHead + "delivery:\n  port: 0\n") ==
        "t.yaml:4: delivery.port: must be at least 1, got 0");
  CHECK(error_of(kHead + "delivery:\n  port: 65536\n") ==
        "t.yaml:4: delivery.port: must be at most 65535, got 65536");
  CHECK(error_of(kHead + "delivery:\n  retry: {factor: 0.5}\n") ==
        "t.yaml:4: delivery.retry.factor: must be at least 1, got 0.5");
  CHECK(error_of(kHead + "delivery:\n  retry: {factor: two}\n") ==
        "t.yaml:4: delivery.retry.factor: expected a number, got \"two\"");
  CHECK(error_of(kHead + "delivery:\n  retry: {factor: .nan}\n") ==
        "t.yaml:4: delivery.retry.factor: expected a number, got \".nan\"");
  CHECK(error_of("- a\n- b\n") == "t.yaml:1: expected a map of keys, got a list");
  CHECK(error_of("just text\n") == "t.yaml:1: expected a map of keys, got \"just text\"");
}

TEST_CASE("config: bad durations and sizes are errors") {
  CHECK(error_of(kHead + "timeouts:\n  command: 300\n") ==
        "t.yaml:4: timeouts.command: expected a duration like 90s, 5m, 1h or 5d, got \"300\"");
  CHECK(error_of(kHead + "timeouts:\n  data: 0\n") ==
        "t.yaml:4: timeouts.data: expected a duration like 90s, 5m, 1h or 5d, got \"0\"");
  CHECK(error_of(kHead + "timeouts:\n  data: 0s\n") ==
        "t.yaml:4: timeouts.data: must be at least 1s, got 0s");
  CHECK(error_of(kHead + "delivery:\n  max_queue_time: 5 days\n") ==
        "t.yaml:4: delivery.max_queue_time: expected a duration like 90s, 5m, 1h or 5d, "
        "got \"5 days\"");
  CHECK(error_of(kHead + "delivery:\n  retry:\n    initial: 2h\n    max: 1h\n") ==
        "t.yaml:6: delivery.retry.max: max (3600s) is less than initial (7200s)");
  CHECK(error_of(kHead + "delivery:\n  retry:\n    initial: 2h\n") ==
        "t.yaml:4: delivery.retry: max (3600s) is less than initial (7200s)");
  CHECK(error_of(kHead + "queue_min_free: 100MB\n") ==
        "t.yaml:3: queue_min_free: expected a size in bytes, optionally with k, M or G, "
        "got \"100MB\"");
  CHECK(error_of(kHead + "limits:\n  max_message_size: 0\n") ==
        "t.yaml:4: limits.max_message_size: must be at least 1 bytes, got 0");
  CHECK(error_of(kHead + "limits:\n  max_message_size: 99999999999G\n") ==
        "t.yaml:4: limits.max_message_size: expected a size in bytes, optionally with k, M or "
        "G, got \"99999999999G\"");
}

TEST_CASE("config: bad networks and addresses are errors") {
  CHECK(error_of(kHead + "relay:\n  networks:\n    - 10.0.0.0/8\n    - 10.0.0.0/33\n") ==
        "t.yaml:6: relay.networks[1]: expected a network like 10.0.0.0/8 or 2001:db8::/32, "
        "got \"10.0.0.0/33\"");
  CHECK(error_of(kHead + "relay:\n  networks: [localhost]\n") ==
        "t.yaml:4: relay.networks[0]: expected a network like 10.0.0.0/8 or 2001:db8::/32, "
        "got \"localhost\"");
  CHECK(error_of(kHead + "listen:\n  - address: ::1:25\n") ==
        "t.yaml:4: listen[0].address: expected an address like 127.0.0.1:25 or [::1]:25, "
        "got \"::1:25\"");
  CHECK(error_of(kHead + "listen:\n  - address: mail.example:25\n") ==
        "t.yaml:4: listen[0].address: expected an address like 127.0.0.1:25 or [::1]:25, "
        "got \"mail.example:25\"");
  CHECK(error_of(kHead + "listen:\n  - address: 127.0.0.1:0\n") ==
        "t.yaml:4: listen[0].address: port must be between 1 and 65535, got \"127.0.0.1:0\"");
  CHECK(error_of(kHead + "listen:\n  - address: 127.0.0.1:25\n  - address: 127.0.0.1:25\n") ==
        "t.yaml:5: listen[1].address: duplicate listen address 127.0.0.1:25");
  CHECK(error_of(kHead + "listen:\n  - {}\n") ==
        "t.yaml:4: listen[0].address: required key is missing");
  CHECK(error_of(kHead + "listen: []\n") == "t.yaml:3: listen: must list at least one address");
  CHECK(error_of(kHead + "dns:\n  forwarders: [\"127.0.0.1@0\"]\n") ==
        "t.yaml:4: dns.forwarders[0]: expected an IP address, optionally with @port, "
        "got \"127.0.0.1@0\"");
  CHECK(error_of(kHead + "dns:\n  forwarders: [resolver.example]\n") ==
        "t.yaml:4: dns.forwarders[0]: expected an IP address, optionally with @port, "
        "got \"resolver.example\"");
  CHECK(error_of(kHead + "postmaster: root\n") ==
        "t.yaml:3: postmaster: expected an address like postmaster@example.net, got \"root\"");
}

TEST_CASE("config: bad domain names are errors") {
  CHECK(error_of("queue_dir: /q\nhostname: mail_1.example\n") ==
        "t.yaml:2: hostname: not a valid domain name \"mail_1.example\": "
        "character \"_\" is not allowed");
  CHECK(error_of("queue_dir: /q\nhostname: a..example\n") ==
        "t.yaml:2: hostname: not a valid domain name \"a..example\": empty label");
  CHECK(error_of("queue_dir: /q\nhostname: \"\"\n") ==
        "t.yaml:2: hostname: not a valid domain name \"\": it is empty");
  CHECK(error_of("queue_dir: /q\nhostname: -a.example\n") ==
        "t.yaml:2: hostname: not a valid domain name \"-a.example\": "
        "label starts or ends with a hyphen");
  CHECK(error_of("queue_dir: /q\nhostname: " + std::string(64, 'a') + ".example\n")
            .find("t.yaml:2: hostname: not a valid domain name") == 0);
  CHECK(error_of("queue_dir: /q\nhostname: bücher.example\n") ==
        "t.yaml:2: hostname: not a valid domain name \"bücher.example\": "
        "non-ASCII characters are not allowed (write the xn-- form)");
  CHECK(error_of(kHead + "relay:\n  domains:\n    - ok.example\n    - bad domain.example\n") ==
        "t.yaml:6: relay.domains[1]: not a valid domain name \"bad domain.example\": "
        "character \" \" is not allowed");
  CHECK(error_of(kHead + "relay:\n  domains:\n    - name: x..example\n") ==
        "t.yaml:5: relay.domains[0].name: not a valid domain name \"x..example\": empty label");
  CHECK(error_of(kHead + "relay:\n  domains: [a.example, A.Example.]\n") ==
        "t.yaml:4: relay.domains[1]: duplicate domain a.example");
  CHECK(error_of(kHead + "relay:\n  domains:\n    - [a.example]\n") ==
        "t.yaml:5: relay.domains[0]: expected a domain name or a map with name and "
        "recipients, got a list");
  CHECK(error_of(kHead + "relay:\n  domains:\n    - recipients: [a]\n") ==
        "t.yaml:5: relay.domains[0].name: required key is missing");
}

TEST_CASE("config: recipients errors") {
  TempDir dir;
  dir.write("r.txt", "alice\n");
  const std::string path = (dir.path / "t.yaml").string();
  const std::string base = kHead + "relay:\n  domains:\n    - name: a.example\n";

  SUBCASE("recipients and recipients_file together") {
    CHECK(error_of(base + "      recipients: [x]\n      recipients_file: r.txt\n", path) ==
          path + ":5: relay.domains[0]: give recipients or recipients_file, not both");
  }
  SUBCASE("unreadable recipients_file") {
    const std::string missing = (dir.path / "nope.txt").string();
    CHECK(error_of(base + "      recipients_file: nope.txt\n", path) ==
          path + ":6: relay.domains[0].recipients_file: cannot read " + missing +
              ": No such file or directory");
  }
  SUBCASE("recipients_file is a directory") {
    CHECK(error_of(base + "      recipients_file: .\n", path) ==
          path + ":6: relay.domains[0].recipients_file: cannot read " + dir.path.string() +
              ": Is a directory");
  }
  SUBCASE("bad entry in recipients_file names its own line") {
    const std::string file = dir.write("bad.txt", "# list\nalice\nbob smith\n");
    CHECK(error_of(base + "      recipients_file: bad.txt\n", path) ==
          path + ":6: relay.domains[0].recipients_file: " + file +
              ":3: recipient \"bob smith\" contains a space or control character");
  }
  SUBCASE("inline address in another domain") {
    CHECK(error_of(base + "      recipients: [alice, bob@b.example]\n", path) ==
          path +
              ":6: relay.domains[0].recipients[1]: recipient \"bob@b.example\" is not in "
              "domain a.example");
  }
  SUBCASE("inline recipients of the wrong type") {
    CHECK(error_of(base + "      recipients: alice\n", path) ==
          path + ":6: relay.domains[0].recipients: expected a list, got \"alice\"");
  }
}

TEST_CASE("config: bad log_level and enum values are errors") {
  CHECK(error_of(kHead + "log_level: verbose\n") ==
        "t.yaml:3: log_level: expected trace, debug, info, warn or error, got \"verbose\"");
  CHECK(error_of(kHead + "log_level: INFO\n") ==
        "t.yaml:3: log_level: expected trace, debug, info, warn or error, got \"INFO\"");
  CHECK(error_of(kHead + "limits:\n  long_lines: truncate\n") ==
        "t.yaml:4: limits.long_lines: expected accept or reject, got \"truncate\"");
  CHECK(error_of(kHead + "limits:\n  bare_newlines: yes\n") ==
        "t.yaml:4: limits.bare_newlines: expected reject or normalize, got \"yes\"");
}

TEST_CASE("config: missing queue_dir is an error") {
  CHECK(error_of("hostname: mx.example\n") == "t.yaml:1: queue_dir: required key is missing");
  CHECK(error_of("") == "t.yaml:1: queue_dir: required key is missing");
  CHECK(error_of("queue_dir: \"\"\n") ==
        "t.yaml:1: queue_dir: expected a path, got an empty string");
}

TEST_CASE("config: YAML syntax errors name the file and line") {
  const std::string msg = error_of(kHead + "limits:\n  max_errors: [1, 2\n");
  CHECK(msg.rfind("t.yaml:", 0) == 0);
  CHECK(msg.find(": invalid YAML: ") != std::string::npos);
  CHECK(error_of(kHead + "limits:\n  max_errors: 1\n bad: 2\n")
            .rfind("t.yaml:5: invalid YAML: ", 0) == 0);
  CHECK(error_of(kHead + "a: *nowhere\n").rfind("t.yaml:3: invalid YAML: ", 0) == 0);
  CHECK(error_of(kHead + "---\nqueue_dir: /r\n") == "t.yaml:4: only one YAML document is allowed");
}

TEST_CASE("config: load_file reports an unreadable file") {
  TempDir dir;
  const std::string missing = (dir.path / "missing.yaml").string();
  auto r = load_file(missing);
  REQUIRE_FALSE(r.ok());
  CHECK(r.error().kind == ErrorKind::Perm);
  CHECK(r.error().message == missing + ": cannot read: No such file or directory");
  auto d = load_file(dir.path.string());
  REQUIRE_FALSE(d.ok());
  CHECK(d.error().message == dir.path.string() + ": cannot read: Is a directory");
}

TEST_CASE("config: load_file anchors relative paths at the file's directory") {
  TempDir dir;
  const std::string path = dir.write("conf/t.yaml", kHead + "limits:\n  max_errors: x\n");
  CHECK(load_file(path).error().message ==
        path + ":4: limits.max_errors: expected a non-negative integer, got \"x\"");
  const std::string good = dir.write("conf/ok.yaml", "queue_dir: ../queue\nhostname: h.example\n");
  auto r = load_file(good);
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  CHECK(r->queue_dir == (dir.path / "queue").string());
}

TEST_CASE("config: the shipped tern.yaml loads and documents the real defaults") {
  const std::string path = std::string(TERN_SOURCE_DIR) + "/config/tern.yaml";
  auto r = load_file(path);
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  const Config& c = *r;
  const Config d;
  CHECK(c.queue_dir == "/var/spool/tern");
  REQUIRE(c.listen.size() == 1);
  CHECK(c.listen[0].address.str() == "127.0.0.1:25");
  CHECK(c.queue_min_free == d.queue_min_free);
  CHECK(cidrs(c.relay.networks) == "127.0.0.0/8 ::1/128 ");
  CHECK(c.log_level == d.log_level);
  CHECK(c.limits.max_message_size == d.limits.max_message_size);
  CHECK(c.limits.max_recipients == d.limits.max_recipients);
  CHECK(c.limits.max_connections == d.limits.max_connections);
  CHECK(c.limits.max_connections_per_client == d.limits.max_connections_per_client);
  CHECK(c.limits.max_errors == d.limits.max_errors);
  CHECK(c.limits.max_received_headers == d.limits.max_received_headers);
  CHECK(c.limits.max_line_length == d.limits.max_line_length);
  CHECK(c.limits.long_lines == d.limits.long_lines);
  CHECK(c.limits.bare_newlines == d.limits.bare_newlines);
  CHECK(c.timeouts.command == d.timeouts.command);
  CHECK(c.timeouts.data == d.timeouts.data);
  CHECK(c.timeouts.shutdown == d.timeouts.shutdown);
  CHECK(c.delivery.port == d.delivery.port);
  CHECK(c.delivery.retry.initial == d.delivery.retry.initial);
  CHECK(c.delivery.retry.max == d.delivery.retry.max);
  CHECK(c.delivery.retry.factor == d.delivery.retry.factor);
  CHECK(c.delivery.max_queue_time == d.delivery.max_queue_time);
  CHECK(c.delivery.max_in_flight == d.delivery.max_in_flight);
  CHECK(c.delivery.max_per_destination == d.delivery.max_per_destination);
  CHECK(c.delivery.max_mx_hosts == d.delivery.max_mx_hosts);
  CHECK(c.delivery.max_addresses == d.delivery.max_addresses);
  CHECK(c.delivery.address_family == d.delivery.address_family);
  CHECK(c.delivery.prefer_ipv6 == d.delivery.prefer_ipv6);
  CHECK(c.delivery.external_addresses.empty());
  const auto& t = c.delivery.timeouts;
  const auto& dt = d.delivery.timeouts;
  CHECK((t.connect == dt.connect && t.greeting == dt.greeting && t.helo == dt.helo && t.mail == dt.mail &&
         t.rcpt == dt.rcpt && t.data == dt.data && t.data_block == dt.data_block &&
         t.data_end == dt.data_end && t.quit == dt.quit));
  CHECK(c.routes.empty());
  CHECK(c.dns.forwarders == d.dns.forwarders);
  CHECK(c.dns.timeout == d.dns.timeout);
  CHECK(c.control.socket == "/var/spool/tern/control.sock");
  CHECK(c.control.group.empty());
  CHECK(c.auth.users_file == d.auth.users_file);
  CHECK(c.auth.show_user == d.auth.show_user);
  CHECK(c.auth.verifiers == d.auth.verifiers);
}

TEST_CASE("config: postmaster must not be a mailbox of tern itself") {
  auto loop = load_string("queue_dir: /q\nhostname: relay.example.net\npostmaster: postmaster@Relay.Example.Net\n", "t.yaml");
  REQUIRE_FALSE(loop.ok());
  CHECK(loop.error().message.find("t.yaml:3: postmaster: tern keeps no mailboxes") == 0);
  auto routed = load_string(
      "queue_dir: /q\nhostname: relay.example.net\npostmaster: pm@relay.example.net\nroutes: {relay.example.net: \"10.0.0.1\"}\n",
      "t.yaml");
  CHECK(routed.ok());
  auto dflt = load_string("queue_dir: /q\nhostname: relay.example.net\n", "t.yaml");
  REQUIRE(dflt.ok());
  CHECK(dflt->postmaster == "postmaster@example.net");
}

TEST_CASE("config: routes") {
  auto r = load_string(R"(queue_dir: /q
delivery: {port: 2525}
routes:
  Partner.Example.: "primary.partner.example:25"
  v6.example: "[::1]:26"
  lit.example: "[192.0.2.1]"
  "*": "127.0.0.1:10026"
  bare.example: mx.bare.example
)", "t.yaml");
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  CHECK(r->routes.at("partner.example").host == "primary.partner.example");
  CHECK(r->routes.at("partner.example").port == 25);
  CHECK(r->routes.at("v6.example").host == "::1");
  CHECK(r->routes.at("v6.example").port == 26);
  CHECK(r->routes.at("lit.example").host == "192.0.2.1");
  CHECK(r->routes.at("lit.example").port == 0);
  CHECK(r->routes.at("*").host == "127.0.0.1");
  CHECK(r->routes.at("bare.example").port == 0);
  auto err = [](const std::string& body) {
    auto x = load_string("queue_dir: /q\nroutes:\n" + body, "t.yaml");
    return x.ok() ? std::string("ok") : x.error().message;
  };
  CHECK(err("  a.example: \"host:\"\n").find("t.yaml:3: routes.a.example: empty port") == 0);
  CHECK(err("  a.example: \"host:99999\"\n").find("bad port") != std::string::npos);
  CHECK(err("  a.example: \"[::1\"\n").find("missing ]") != std::string::npos);
  CHECK(err("  a.example: \"-bad-:25\"\n").find("bad next-hop host") != std::string::npos);
  CHECK(err("  \"not a domain\": \"h:25\"\n").find("not a domain name") != std::string::npos);
  CHECK(err("  a.example: [1, 2]\n").find("routes.a.example") != std::string::npos);
}

TEST_CASE("config: delivery and control extras") {
  auto r = load_string(R"(queue_dir: /q
delivery:
  max_in_flight: 7
  address_family: ipv6
  prefer_ipv6: true
  external_addresses: [192.0.2.7, "2001:db8::7"]
  timeouts: {connect: 5s, data_end: 1m}
dns: {timeout: 4s}
control: {socket: ctl.sock, group: root}
)", "/etc/tern/t.yaml");
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  CHECK(r->delivery.max_in_flight == 7);
  CHECK(r->delivery.address_family == AddressFamily::Ipv6);
  CHECK(r->delivery.prefer_ipv6);
  CHECK(r->delivery.external_addresses.size() == 2);
  CHECK(r->delivery.timeouts.connect.count() == 5);
  CHECK(r->delivery.timeouts.data_end.count() == 60);
  CHECK(r->dns.timeout.count() == 4);
  CHECK(r->control.socket == "/etc/tern/ctl.sock");
  CHECK(r->control.group == "root");
  auto bad = load_string("queue_dir: /q\ndelivery:\n  external_addresses: [nope]\n", "t.yaml");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("t.yaml:3: delivery.external_addresses[0]") == 0);
  auto badt = load_string("queue_dir: /q\ndelivery:\n  timeouts: {conect: 5s}\n", "t.yaml");
  REQUIRE_FALSE(badt.ok());
  CHECK(badt.error().message.find("unknown key") != std::string::npos);
}

TEST_CASE("config: the shipped dev.yaml loads") {
  const std::string path = std::string(TERN_SOURCE_DIR) + "/config/dev.yaml";
  auto r = load_file(path);
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  CHECK(r->hostname == "tern.dev.localhost");
  REQUIRE(r->listen.size() == 1);
  CHECK(r->listen[0].address.str() == "127.0.0.1:2525");
  CHECK(r->queue_dir == (fs::path(TERN_SOURCE_DIR) / "var/queue").lexically_normal().string());
  CHECK(cidrs(r->relay.networks) == "127.0.0.0/8 ::1/128 ");
  CHECK(r->relay.domains.empty());
  CHECK(r->postmaster == "root@localhost");
  CHECK(r->log_level == "info");
  // Local submission stays under the repository too (no system paths for a dev run).
  CHECK(r->submit.socket == (fs::path(TERN_SOURCE_DIR) / "var/submit.sock").lexically_normal().string());
  CHECK(r->submit.maildrop == (fs::path(TERN_SOURCE_DIR) / "var/maildrop").lexically_normal().string());
}

TEST_CASE("config: TLS keys, the map form of routes and smarthost credentials") {
  TempDir dir;
  const std::string secret = dir.write("smarthost.secret", "pass word\n");
  ::chmod(secret.c_str(), 0600);
  auto ok = load_string(kHead +
                            "tls:\n  cert: c.pem\n  key: k.pem\n"
                            "listen:\n  - address: 127.0.0.1:25\n  - address: 127.0.0.1:465\n    tls: implicit\n"
                            "delivery:\n  tls: encrypt\n  tls_ca_file: ca.pem\n  tls_policy:\n    Bank.Example.: verify\n"
                            "routes:\n  \"*\":\n    next_hop: smtp.provider.example:587\n    auth:\n"
                            "      username: app@example.net\n      password_file: " + secret + "\n"
                            "  other.example: \"10.0.0.1\"\n",
                        dir.path.string() + "/t.yaml");
  REQUIRE(ok.ok());
  const Config& c = *ok;
  CHECK(c.tls.cert == (dir.path / "c.pem").string());
  CHECK(c.listen[1].implicit_tls);
  CHECK_FALSE(c.listen[0].implicit_tls);
  CHECK(c.delivery.tls == TlsLevel::Encrypt);
  CHECK(c.delivery.tls_ca_file == (dir.path / "ca.pem").string());
  CHECK(c.delivery.tls_policy.at("bank.example") == TlsLevel::Verify);
  const Route& smart = c.routes.at("*");
  CHECK(smart.host == "smtp.provider.example");
  CHECK(smart.port == 587);
  CHECK(smart.tls == TlsLevel::Verify);  // the default with credentials
  REQUIRE(smart.auth.has_value());
  CHECK(smart.auth->password == "pass word");
  CHECK_FALSE(c.routes.at("other.example").tls.has_value());
  CHECK(c.warnings.empty());

  // Credentials are never sent in plaintext; encrypt is allowed with a warning.
  const std::string base = kHead + "routes:\n  \"*\":\n    next_hop: smtp.provider.example:587\n";
  const std::string creds = "    auth:\n      username: u\n      password_file: " + secret + "\n";
  CHECK(error_of(base + "    tls: may\n" + creds).find("needs tls: verify") != std::string::npos);
  auto enc = load_string(base + "    tls: encrypt\n" + creds, "t.yaml");
  REQUIRE(enc.ok());
  REQUIRE(enc->warnings.size() == 1);
  CHECK(enc->warnings[0].find("man in the middle") != std::string::npos);
  ::chmod(secret.c_str(), 0640);
  CHECK(error_of(base + creds).find("readable only by its owner") != std::string::npos);
  CHECK(error_of(kHead + "routes:\n  \"*\":\n    tls: verify\n").find("routes.*.next_hop: required key is missing") != std::string::npos);
  CHECK(error_of(kHead + "listen:\n  - address: 127.0.0.1:465\n    tls: implicit\n").find("no tls: cert/key") !=
        std::string::npos);
  CHECK(error_of(kHead + "delivery:\n  tls: maybe\n") ==
        "t.yaml:4: delivery.tls: expected none, may, encrypt, verify or dane, got \"maybe\"");
  CHECK(error_of(kHead + "tls:\n  cert: c.pem\n").find("tls.key: required key is missing") != std::string::npos);
}

TEST_CASE("config: auth keys and auth: required listeners") {
  auto d = load_string(kHead, "t.yaml");
  REQUIRE(d.ok());
  CHECK(d->auth.users_file.empty());
  CHECK_FALSE(d->auth.show_user);
  CHECK(d->auth.verifiers == 2);
  CHECK_FALSE(d->listen.at(0).auth_required);

  auto r = load_string(kHead +
                           "listen:\n  - address: 127.0.0.1:25\n  - address: 127.0.0.1:587\n    auth: required\n"
                           "  - address: 127.0.0.1:2525\n    auth: optional\n"
                           "auth:\n  users_file: users\n  show_user: true\n  verifiers: 4\n",
                       "/etc/tern/tern.yaml");
  REQUIRE_MESSAGE(r.ok(), r.error().message);
  CHECK(r->auth.users_file == "/etc/tern/users");
  CHECK(r->auth.show_user);
  CHECK(r->auth.verifiers == 4);
  REQUIRE(r->warnings.size() == 1);  // users but no certificate: AUTH could never be offered
  CHECK(r->warnings[0].find("AUTH is never offered") != std::string::npos);
  REQUIRE(r->listen.size() == 3);
  CHECK_FALSE(r->listen[0].auth_required);
  CHECK(r->listen[1].auth_required);
  CHECK_FALSE(r->listen[2].auth_required);

  CHECK(error_of(kHead + "listen:\n  - address: 127.0.0.1:587\n    auth: yes\n") ==
        "t.yaml:5: listen[0].auth: expected required or optional, got \"yes\"");
  CHECK(error_of(kHead + "listen:\n  - address: 127.0.0.1:587\n    auth: required\n")
            .find("has auth: required but auth.users_file is not set") != std::string::npos);
  CHECK(error_of(kHead + "auth:\n  verifiers: 0\n").rfind("t.yaml:4: auth.verifiers: must be at least 1", 0) == 0);
  CHECK(error_of(kHead + "auth:\n  user_file: x\n").rfind("t.yaml:4: auth.user_file: unknown key", 0) == 0);
}

TEST_CASE("config: dane as a TLS level and the DNSSEC trust anchor") {
  TempDir dir;
  const std::string anchor = dir.write("anchor.key", "zone.example. IN DS 1 13 2 ab\n");
  auto ok = load_string(kHead + "delivery:\n  tls: dane\n  tls_policy:\n    partner.example: verify\n"
                                "dns:\n  trust_anchor: anchor.key\n",
                        dir.path.string() + "/t.yaml");
  REQUIRE(ok.ok());
  CHECK(ok->delivery.tls == TlsLevel::Dane);
  CHECK(std::string(to_string(TlsLevel::Dane)) == "dane");
  CHECK(ok->dns.trust_anchor == anchor);

  auto none = load_string(kHead + "dns:\n  trust_anchor: none\n", dir.path.string() + "/t.yaml");
  REQUIRE(none.ok());
  CHECK(none->dns.trust_anchor.empty());

  auto missing = load_string(kHead + "dns:\n  trust_anchor: nowhere.key\n", dir.path.string() + "/t.yaml");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message.find("trust anchor") != std::string::npos);

  auto bad = load_string(kHead + "delivery:\n  tls: danish\n", dir.path.string() + "/t.yaml");
  CHECK_FALSE(bad.ok());
}
