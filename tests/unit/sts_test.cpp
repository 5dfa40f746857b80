// Unit tests for src/sts: the policy parser (RFC 8461 §3.2) with every malformed shape, the
// TXT record rules (§3.1), MX pattern matching (§4.1), the cache file codec, the use/fetch
// decisions on a ManualClock, the cache directory on disk, and the TLS plan under a policy.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "config/config.hpp"
#include "delivery/tls_policy.hpp"
#include "dns/rdata.hpp"
#include "sts/cache_entry.hpp"
#include "sts/disk.hpp"
#include "sts/policy.hpp"
#include "temp_dir.hpp"

using namespace tern;
using namespace tern::sts;

namespace {
constexpr int64_t kSec = 1000000;

const char* kGood =
    "version: STSv1\n"
    "mode: enforce\n"
    "mx: mail.example.com\n"
    "mx: *.example.net\n"
    "mx: backupmx.example.com\n"
    "max_age: 604800\n";

Entry entry(const std::string& id, int64_t fetched_us, int64_t max_age, Mode mode = Mode::Enforce) {
  Entry e;
  e.domain = "example.com";
  e.id = id;
  e.fetched_us = fetched_us;
  e.policy.mode = mode;
  e.policy.max_age = max_age;
  e.policy.mx = {"mx.example.com"};
  e.text = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: " + std::to_string(max_age) + "\n";
  return e;
}
}  // namespace

TEST_CASE("sts: a well-formed policy, LF and CRLF") {
  for (std::string text : {std::string(kGood), std::string()}) {
    if (text.empty()) {
      for (char c : std::string(kGood)) {
        if (c == '\n') text += '\r';
        text += c;
      }
    }
    auto p = parse_policy(text);
    REQUIRE(p.ok());
    CHECK(p->mode == Mode::Enforce);
    CHECK(p->max_age == 604800);
    CHECK(p->mx == std::vector<std::string>{"mail.example.com", "*.example.net", "backupmx.example.com"});
  }
}

TEST_CASE("sts: policy details that are allowed") {
  // No final newline, blanks after the colon and at the end, unknown keys, upper-case
  // pattern (stored lower case), mode testing, the largest max_age.
  auto p = parse_policy("version:STSv1\nmode:   testing  \nmx: MX.Example.COM\nfoo_bar: some value here\nmax_age: 31557600");
  REQUIRE(p.ok());
  CHECK(p->mode == Mode::Testing);
  CHECK(p->max_age == 31557600);
  CHECK(p->mx == std::vector<std::string>{"mx.example.com"});
  // mode none needs no mx.
  auto none = parse_policy("version: STSv1\nmode: none\nmax_age: 86400\n");
  REQUIRE(none.ok());
  CHECK(none->mode == Mode::None);
  // Trailing blank lines.
  CHECK(parse_policy(std::string(kGood) + "\n\n").ok());
}

TEST_CASE("sts: malformed policies are refused with a reason") {
  const std::string base = "version: STSv1\nmode: enforce\nmx: mx.example.com\nmax_age: 86400\n";
  struct Case {
    std::string text;
    std::string why;
  };
  const std::vector<Case> cases = {
      {"", "no version"},
      {"mode: enforce\nmx: mx.example.com\nmax_age: 86400\n", "no version"},
      {"version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n", "unsupported version"},
      {"version: STSv1\nmx: a.example\nmax_age: 1\n", "no mode"},
      {"version: STSv1\nmode: enforcing\nmx: a.example\nmax_age: 1\n", "unknown mode"},
      {"version: STSv1\nmode: enforce\nmx: a.example\n", "no max_age"},
      {"version: STSv1\nmode: enforce\nmax_age: 1\n", "no mx"},
      {"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", "exceeds"},
      {"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 12345678901\n", "1 to 10 digits"},
      {"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -5\n", "not a number"},
      {"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1d\n", "not a number"},
      {"version: STSv1\nmode: enforce\nmx: a.*.example\nmax_age: 1\n", "'*'"},
      {"version: STSv1\nmode: enforce\nmx: *example.com\nmax_age: 1\n", "'*'"},
      {"version: STSv1\nmode: enforce\nmx: *.*.example.com\nmax_age: 1\n", "'*'"},
      {"version: STSv1\nmode: enforce\nmx: 192.0.2.1\nmax_age: 1\n", "IP address"},
      {"version: STSv1\nmode: enforce\nmx: [192.0.2.1]\nmax_age: 1\n", "character"},
      {"version: STSv1\nmode: enforce\nmx: a..example\nmax_age: 1\n", "label"},
      {"version: STSv1\nmode: enforce\nmx:\nmax_age: 1\n", "no name"},
      {"version: STSv1\nmode: enforce\nmx: a_b.example\nmax_age: 1\n", "character"},
      {"version: STSv1\nversion: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n", "duplicate version"},
      {"version: STSv1\nmode: enforce\nmode: testing\nmx: a.example\nmax_age: 1\n", "duplicate mode"},
      {"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nmax_age: 2\n", "duplicate max_age"},
      {"version: STSv1\rmode: enforce\nmx: a.example\nmax_age: 1\n", "carriage return"},
      {"version: STSv1\n\nmode: enforce\nmx: a.example\nmax_age: 1\n", "blank line"},
      {"version STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n", "no ':'"},
      {"version : STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n", "bad key"},
      {"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n_x: y\n", "bad key"},
      {"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nx:\n", "bad value"},
      {"version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\nx: a\x01z\n", "bad value"},
      {std::string(kMaxPolicySize + 1, 'a'), "64 KiB"},
  };
  for (const auto& c : cases) {
    CAPTURE(c.text);
    auto p = parse_policy(c.text);
    REQUIRE_FALSE(p.ok());
    CHECK(p.error().message.find(c.why) != std::string::npos);
  }
  CHECK(parse_policy(base).ok());  // the cases above differ from a valid policy in one way
}

TEST_CASE("sts: TXT records") {
  auto found = parse_txt({"v=STSv1; id=20160831085700Z;"});
  CHECK(found.found);
  CHECK(found.id == "20160831085700Z");
  CHECK(parse_txt({"v=STSv1;id=abc"}).id == "abc");
  CHECK(parse_txt({"v=STSv1; id=abc; ext=val ue"}).found == false);  // blanks inside a field
  CHECK(parse_txt({"v=STSv1 ; id=abc ; ext-1=value"}).found);
  // Other TXT records are someone else's and ignored.
  auto mixed = parse_txt({"v=spf1 -all", "v=STSv1; id=x1", "hello"});
  CHECK(mixed.found);
  CHECK(mixed.id == "x1");
  // Exactly one record, else no policy.
  auto two = parse_txt({"v=STSv1; id=a", "v=STSv1; id=b"});
  CHECK_FALSE(two.found);
  CHECK(two.reason.find("exactly one") != std::string::npos);
  CHECK_FALSE(parse_txt({}).found);
  CHECK_FALSE(parse_txt({"v=spf1 -all"}).found);
  // Case-sensitive version, a missing or malformed id.
  CHECK_FALSE(parse_txt({"v=stsv1; id=a"}).found);
  CHECK_FALSE(parse_txt({"v=STSv1"}).found);
  CHECK_FALSE(parse_txt({"v=STSv1;"}).found);
  CHECK_FALSE(parse_txt({"v=STSv1; id="}).found);
  CHECK_FALSE(parse_txt({"v=STSv1; id=abc-def"}).found);
  CHECK_FALSE(parse_txt({"v=STSv1; id=" + std::string(33, 'a')}).found);
  CHECK(parse_txt({"v=STSv1; id=" + std::string(32, 'a')}).found);
  CHECK_FALSE(parse_txt({"v=STSv1; id=a; id=b"}).found);
  CHECK_FALSE(parse_txt({"v=STSv1; id=a; noequals"}).found);
  CHECK_FALSE(parse_txt({"v=STSv1; id=a; x==y"}).found);
}

TEST_CASE("sts: TXT rdata joins its character-strings") {
  const std::vector<uint8_t> rd = {7, 'v', '=', 'S', 'T', 'S', 'v', '1', 5, ';', 'i', 'd', '=', '1'};
  auto t = dns::parse_txt_rdata(rd);
  REQUIRE(t.ok());
  CHECK(*t == "v=STSv1;id=1");
  const std::vector<uint8_t> overrun = {7, 'v', '='};
  CHECK_FALSE(dns::parse_txt_rdata(overrun).ok());
  CHECK_FALSE(dns::parse_txt_rdata({}).ok());
  const std::vector<uint8_t> empty_string = {0};
  CHECK(dns::parse_txt_rdata(empty_string).ok());
}

TEST_CASE("sts: MX pattern matching (§4.1)") {
  CHECK(pattern_matches("mail.example.com", "mail.example.com"));
  CHECK(pattern_matches("mail.example.com", "MAIL.Example.com."));
  CHECK_FALSE(pattern_matches("mail.example.com", "mail2.example.com"));
  CHECK(pattern_matches("*.example.com", "mx1.example.com"));
  CHECK_FALSE(pattern_matches("*.example.com", "a.b.example.com"));  // one label only
  CHECK_FALSE(pattern_matches("*.example.com", "example.com"));
  CHECK_FALSE(pattern_matches("*.example.com", ".example.com"));
  CHECK_FALSE(pattern_matches("*.example.com", "mx1.example.com.evil"));
  Policy p;
  p.mx = {"mx.example.com", "*.example.net"};
  CHECK(mx_matches(p, "a.example.net"));
  CHECK(mx_matches(p, "mx.example.com"));
  CHECK_FALSE(mx_matches(p, "other.example.org"));
}

TEST_CASE("sts: cache file codec") {
  Entry e = entry("id1", 1700000000 * kSec, 86400);
  const std::string file = encode_entry(e);
  CHECK(file.starts_with("tern-mta-sts 1\ndomain: example.com\nid: id1\nfetched: 1700000000\n\n"));
  auto back = decode_entry(file);
  REQUIRE(back.ok());
  CHECK(back->domain == "example.com");
  CHECK(back->id == "id1");
  CHECK(back->fetched_us == 1700000000 * kSec);
  CHECK(back->policy.max_age == 86400);
  CHECK(back->policy.mx == e.policy.mx);
  CHECK(back->text == e.text);
  CHECK_FALSE(decode_entry("junk").ok());
  CHECK_FALSE(decode_entry("tern-mta-sts 1\ndomain: example.com\nid: x\n\n" + e.text).ok());  // no fetched
  CHECK_FALSE(decode_entry("tern-mta-sts 2\ndomain: a\nid: x\nfetched: 1\n\n" + e.text).ok());
  CHECK_FALSE(decode_entry("tern-mta-sts 1\ndomain: a\nid: x\nfetched: 1\n\nversion: STSv9\n").ok());
  CHECK(file_name_for("mail.example.com") == "mail.example.com");
  CHECK(file_name_for("../etc").empty());
  CHECK(file_name_for("a/b").empty());
  CHECK(file_name_for(".hidden").empty());
  CHECK(file_name_for("").empty());
}

TEST_CASE("sts: when a cached policy is used, fetched again or dropped (ManualClock)") {
  ManualClock clock(1800000000 * kSec);
  const Timing t;  // refresh a day before expiry, retry a failed fetch after 5 minutes
  const int64_t week = 7 * 86400;
  const Entry e = entry("id1", clock.now_us(), week);

  // Nothing cached: a TXT record means fetch; no record or a failed lookup means no policy.
  CHECK(decide(nullptr, TxtState::Found, "id1", clock.now_us(), 0, t).action == Action::Fetch);
  CHECK(decide(nullptr, TxtState::Absent, "", clock.now_us(), 0, t).action == Action::None);
  CHECK(decide(nullptr, TxtState::Failed, "", clock.now_us(), 0, t).action == Action::None);

  // Cached, same id: used, no refresh yet.
  auto d = decide(&e, TxtState::Found, "id1", clock.now_us(), 0, t);
  CHECK(d.action == Action::Use);
  CHECK_FALSE(d.refresh);
  // A new id: fetched again.
  CHECK(decide(&e, TxtState::Found, "id2", clock.now_us(), 0, t).action == Action::Fetch);
  // The TXT record gone, or DNS failing: the cached policy stays in force.
  CHECK(decide(&e, TxtState::Absent, "", clock.now_us(), 0, t).action == Action::Use);
  CHECK(decide(&e, TxtState::Failed, "", clock.now_us(), 0, t).action == Action::Use);

  // Within a day of expiry: used, and refreshed in the background.
  clock.advance_us((week - 86400) * kSec);
  d = decide(&e, TxtState::Found, "id1", clock.now_us(), 0, t);
  CHECK(d.action == Action::Use);
  CHECK(d.refresh);
  // ... but not again right after a failed refresh.
  d = decide(&e, TxtState::Found, "id1", clock.now_us(), clock.now_us() - 10 * kSec, t);
  CHECK(d.action == Action::Use);
  CHECK_FALSE(d.refresh);

  // Expired: no longer used; fetched when the record is there.
  clock.advance_us(86400 * kSec);
  CHECK_FALSE(e.valid_at(clock.now_us()));
  CHECK(decide(&e, TxtState::Found, "id1", clock.now_us(), 0, t).action == Action::Fetch);
  CHECK(decide(&e, TxtState::Absent, "", clock.now_us(), 0, t).action == Action::None);
  // A fetch that failed a minute ago is not retried for every message.
  CHECK(decide(&e, TxtState::Found, "id1", clock.now_us(), clock.now_us() - 60 * kSec, t).action ==
        Action::None);
  CHECK(decide(&e, TxtState::Found, "id1", clock.now_us(), clock.now_us() - 301 * kSec, t).action ==
        Action::Fetch);
}

TEST_CASE("sts: a short-lived policy is refreshed in its last quarter, not on every use") {
  ManualClock clock(1800000000 * kSec);
  const Entry day = entry("id1", clock.now_us(), 86400);
  CHECK_FALSE(decide(&day, TxtState::Found, "id1", clock.now_us(), 0, Timing{}).refresh);
  clock.advance_us(18 * 3600 * kSec - 1);
  CHECK_FALSE(decide(&day, TxtState::Found, "id1", clock.now_us(), 0, Timing{}).refresh);
  clock.advance_us(1);
  CHECK(decide(&day, TxtState::Found, "id1", clock.now_us(), 0, Timing{}).refresh);
}

TEST_CASE("sts: the sweep refreshes a policy in use before it expires, and no other") {
  ManualClock clock(1800000000 * kSec);
  const Timing t;
  const Entry week = entry("id1", clock.now_us(), 7 * 86400);
  const int64_t used = clock.now_us() + 3600 * kSec;
  CHECK_FALSE(refresh_due(week, used, clock.now_us() + 2 * 86400 * kSec, 0, t));  // not near expiry yet
  clock.advance_us(6 * 86400 * kSec + 1);                                           // in its last day
  CHECK(refresh_due(week, used, clock.now_us(), 0, t));
  CHECK_FALSE(refresh_due(week, 0, clock.now_us(), 0, t));                   // no mail since the fetch
  CHECK_FALSE(refresh_due(week, used, clock.now_us(), clock.now_us() - kSec, t));  // a fetch just failed
  clock.advance_us(86400 * kSec);
  CHECK_FALSE(refresh_due(week, used, clock.now_us(), 0, t));  // expired: the next message fetches
}

TEST_CASE("sts: after a fetch, a failure falls back to the cached policy while it is valid") {
  ManualClock clock(1800000000 * kSec);
  const Entry old = entry("id1", clock.now_us(), 3600);
  const Entry fresh = entry("id2", clock.now_us(), 3600);
  CHECK(after_fetch(&fresh, &old, clock.now_us()) == &fresh);
  CHECK(after_fetch(nullptr, &old, clock.now_us()) == &old);
  CHECK(after_fetch(nullptr, nullptr, clock.now_us()) == nullptr);
  clock.advance_us(3600 * kSec);
  CHECK(after_fetch(nullptr, &old, clock.now_us()) == nullptr);
}

TEST_CASE("sts: cache directory: atomic writes, read back, leftovers removed") {
  test::TempDir tmp;
  const std::string dir = (tmp.path / "sts").string();
  auto empty = read_cache_dir(dir);  // created when missing
  REQUIRE(empty.ok());
  CHECK(empty->empty());
  CHECK(std::filesystem::is_directory(dir));
  const Entry e = entry("id1", 1700000000 * kSec, 86400);
  REQUIRE(write_cache_file(dir, "example.com", encode_entry(e)).ok());
  REQUIRE(write_cache_file(dir, "example.com", encode_entry(entry("id2", 1700000000 * kSec, 86400))).ok());
  std::ofstream(dir + "/example.org,new") << "half-written";
  auto files = read_cache_dir(dir);
  REQUIRE(files.ok());
  REQUIRE(files->size() == 1);
  CHECK(files->at(0).name == "example.com");
  auto back = decode_entry(files->at(0).contents);
  REQUIRE(back.ok());
  CHECK(back->id == "id2");
  CHECK_FALSE(std::filesystem::exists(dir + "/example.org,new"));
}

TEST_CASE("sts: the TLS plan and the MX hosts under a policy") {
  config::Delivery d;
  d.tls = config::TlsLevel::May;
  d.tls_ca_file = "/ca.pem";
  scheduler::Destination dest;
  dest.domain = "example.com";
  dest.key = "example.com";
  delivery::StsPlan enforce{Mode::Enforce, {"*.example.com"}, "id1"};
  delivery::StsPlan testing{Mode::Testing, {"*.example.com"}, "id1"};

  auto plan = delivery::plan_tls(dest, d, {});
  delivery::apply_sts(plan, enforce, dest, d);
  CHECK(plan.level == config::TlsLevel::Verify);
  CHECK(plan.ca_file == "/ca.pem");
  // §4.2: the MX host's name, whatever the DNSSEC state of the MX answer.
  CHECK(delivery::verify_names(plan, "mx1.example.com", false) == std::vector<std::string>{"mx1.example.com"});

  plan = delivery::plan_tls(dest, d, {});
  delivery::apply_sts(plan, testing, dest, d);
  CHECK(plan.level == config::TlsLevel::May);  // delivered as under may
  CHECK(delivery::verify_names(plan, "mx1.example.com", false) == std::vector<std::string>{"mx1.example.com"});

  // An explicit per-domain tls_policy is the operator's word.
  d.tls_policy["example.com"] = config::TlsLevel::Encrypt;
  plan = delivery::plan_tls(dest, d, {});
  delivery::apply_sts(plan, enforce, dest, d);
  CHECK(plan.level == config::TlsLevel::Encrypt);
  d.tls_policy.clear();

  // No policy: nothing changes.
  plan = delivery::plan_tls(dest, d, {});
  delivery::apply_sts(plan, delivery::StsPlan{}, dest, d);
  CHECK(plan.level == config::TlsLevel::May);
  CHECK_FALSE(plan.host_name);

  std::vector<dns::MxHost> hosts = {{10, "mx1.example.com", {}}, {20, "backup.other.example", {}},
                                    {30, "mx2.example.com", {}}};
  std::vector<std::string> mismatched;
  auto kept = delivery::sts_filter_hosts(hosts, enforce, mismatched);
  REQUIRE(kept.size() == 2);
  CHECK(kept[0].name == "mx1.example.com");
  CHECK(kept[1].name == "mx2.example.com");
  CHECK(mismatched == std::vector<std::string>{"backup.other.example"});
  mismatched.clear();
  CHECK(delivery::sts_filter_hosts(hosts, testing, mismatched).size() == 3);
  CHECK(mismatched == std::vector<std::string>{"backup.other.example"});
  mismatched.clear();
  CHECK(delivery::sts_filter_hosts(hosts, delivery::StsPlan{}, mismatched).size() == 3);
  CHECK(mismatched.empty());
}

TEST_CASE("sts: mta_sts configuration keys") {
  const std::string base = "queue_dir: /q\nhostname: h.example\n";
  auto def = config::load_string(base, "/etc/tern/tern.yaml");
  REQUIRE(def.ok());
  CHECK_FALSE(def->mta_sts.enabled);
  CHECK(def->mta_sts.cache_dir == "/var/lib/tern/sts");
  CHECK(def->mta_sts.ca_file.empty());
  CHECK(def->mta_sts.https_port == 443);
  CHECK(def->mta_sts.timeout == config::Seconds(10));

  test::TempDir tmp;
  const std::string ca = (tmp.path / "ca.pem").string();
  std::ofstream(ca) << "not checked here\n";
  auto c = config::load_string(base + "mta_sts:\n  enabled: true\n  cache_dir: sts\n  ca_file: " + ca +
                                   "\n  https_port: 8443\n  timeout: 3s\n",
                               "/etc/tern/tern.yaml");
  REQUIRE(c.ok());
  CHECK(c->mta_sts.enabled);
  CHECK(c->mta_sts.cache_dir == "/etc/tern/sts");  // relative to the config file
  CHECK(c->mta_sts.ca_file == ca);
  CHECK(c->mta_sts.https_port == 8443);
  CHECK(c->mta_sts.timeout == config::Seconds(3));

  struct Bad {
    std::string yaml, why;
  };
  for (const Bad& b : std::vector<Bad>{{"mta_sts:\n  enabled: maybe\n", "mta_sts.enabled"},
                                       {"mta_sts:\n  cache_dir: \"\"\n", "mta_sts.cache_dir"},
                                       {"mta_sts:\n  ca_file: " + ca + ".missing\n", "mta_sts.ca_file"},
                                       {"mta_sts:\n  https_port: 0\n", "mta_sts.https_port"},
                                       {"mta_sts:\n  timeout: 10m\n", "at most 300s"},
                                       {"mta_sts:\n  enable: true\n", "unknown key"}}) {
    CAPTURE(b.yaml);
    auto r = config::load_string(base + b.yaml, "/etc/tern/tern.yaml");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().message.find(b.why) != std::string::npos);
  }
}
