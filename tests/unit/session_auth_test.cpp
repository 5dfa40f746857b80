// Unit tests for SMTP AUTH in the inbound session (RFC 4954): offered only after TLS, the
// PLAIN and LOGIN exchanges, the reply codes, the wait for the verifier, relaying after AUTH,
// auth: required listeners, and the failure limit. Plus the server's per-address delay.
#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "server/auth_throttle.hpp"
#include "server/session.hpp"
#include "smtp/base64.hpp"
#include "smtp/sasl.hpp"

using namespace tern;
using namespace tern::server;
using tern::smtp::base64_encode;
using tern::smtp::sasl::sasl_plain_response;

namespace {

// Records verification requests; the test answers them through on_auth_result.
struct AuthHost : SessionHost {
  bool verifier_free = true;
  std::vector<smtp::sasl::Credentials> asked;
  std::vector<queue::Envelope> begun;
  std::string data;
  std::vector<std::string> logged;
  std::vector<std::string> counted;
  void count_reject(int code, std::string_view enhanced) override {
    counted.push_back(std::to_string(code) + " " + std::string(enhanced));
  }
  bool verify_credentials(const smtp::sasl::Credentials& c) override {
    if (!verifier_free) return false;
    asked.push_back(c);
    return true;
  }
  void log_event(std::string_view what) override { logged.emplace_back(what); }
  bool queue_has_room(uint64_t) override { return true; }
  std::string begin_message(const queue::Envelope& env) override {
    begun.push_back(env);
    return "AUTHTEST" + std::to_string(begun.size());
  }
  void message_data(std::string_view c) override { data.append(c); }
  void commit_message() override {}
  void abort_message() override {}
  int64_t now_us() override { return 1764066538000000; }
  [[nodiscard]] bool logged_anywhere(std::string_view text) const {
    for (const auto& l : logged)
      if (l.find(text) != std::string::npos) return true;
    return false;
  }
};

struct Options {
  const char* ip = "192.0.2.7";  // outside relay.networks
  bool users_file = true;
  bool show_user = false;
  bool auth_required = false;
  bool tls = true;
};

struct AuthHarness {
  AuthHost host;
  std::unique_ptr<Session> s;
  explicit AuthHarness(Options o = {}) {
    config::Config c;
    c.hostname = "mx.example.net";
    c.postmaster = "hostmaster@example.net";
    c.relay.networks = {*Cidr::parse("127.0.0.0/8")};
    c.relay.domains = {config::RelayDomain{"local.example", std::nullopt, {}}};
    c.limits.max_errors = 20;
    auto settings = std::make_shared<const SessionSettings>(
        SessionSettings{c.hostname, c.limits, RelayPolicy(c), true, o.users_file, o.show_user});
    const auto addr = *IpAddress::parse(o.ip);
    s = std::make_unique<Session>(
        settings, ClientInfo{addr, 4000, settings->policy.client_may_relay(addr), false, o.auth_required}, host);
    s->start();
    (void)s->take_output();
    if (o.tls) s->on_tls_started(TlsSummary{"TLSv1.3", "TLS_AES_256_GCM_SHA384", 256});
  }
  std::string send(std::string_view in) {
    s->feed(in);
    return s->take_output();
  }
  std::string answer(AuthOutcome o) {
    s->on_auth_result(o);
    return s->take_output();
  }
  // EHLO, then a successful AUTH PLAIN as `user`.
  void login(const std::string& user = "alice") {
    send("EHLO c.example\r\n");
    REQUIRE(send("AUTH PLAIN " + sasl_plain_response(user, "pw") + "\r\n").empty());
    REQUIRE(answer(AuthOutcome::Accepted) == "235 2.7.0 Authentication successful\r\n");
  }
};

}  // namespace

TEST_CASE("auth: offered in EHLO only after TLS, and only with a users file") {
  AuthHarness plain({.tls = false});
  CHECK(plain.send("EHLO c\r\n").find("AUTH") == std::string::npos);
  CHECK(plain.send("AUTH PLAIN " + sasl_plain_response("a", "b") + "\r\n") ==
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n");
  CHECK(plain.host.asked.empty());

  AuthHarness tls;
  const std::string ehlo = tls.send("EHLO c\r\n");
  CHECK(ehlo.find("250-CHUNKING\r\n") != std::string::npos);
  CHECK(ehlo.ends_with("250 AUTH PLAIN LOGIN\r\n"));

  CHECK(plain.send("HELP\r\n").find("AUTH") == std::string::npos);
  CHECK(tls.send("HELP\r\n").ends_with(" AUTH\r\n"));

  AuthHarness off({.users_file = false});
  CHECK(off.send("EHLO c\r\n").find("AUTH") == std::string::npos);
  CHECK(off.send("AUTH PLAIN\r\n").starts_with("502 5.5.1"));
}

TEST_CASE("auth: STARTTLS, then EHLO again offers AUTH (RFC 3207 4.2, RFC 4954 4)") {
  AuthHarness h({.tls = false});
  const std::string before = h.send("EHLO c\r\n");
  CHECK(before.ends_with("250 STARTTLS\r\n"));
  CHECK(before.find("AUTH") == std::string::npos);
  CHECK(h.send("STARTTLS\r\n").starts_with("220 2.0.0"));
  h.s->on_tls_started(TlsSummary{"TLSv1.3", "TLS_AES_128_GCM_SHA256", 128});
  CHECK(h.send("AUTH PLAIN\r\n").starts_with("503 5.5.1"));  // the greeting is forgotten
  const std::string after = h.send("EHLO c\r\n");
  CHECK(after.find("STARTTLS") == std::string::npos);
  CHECK(after.find("250-CHUNKING\r\n") != std::string::npos);
  CHECK(after.ends_with("250 AUTH PLAIN LOGIN\r\n"));
  CHECK(h.send("AUTH PLAIN " + sasl_plain_response("a", "b") + "\r\n").empty());
  CHECK(h.answer(AuthOutcome::Accepted).starts_with("235 2.7.0"));
  h.send("MAIL FROM:<a@example.org>\r\nRCPT TO:<x@far.example>\r\nDATA\r\n");
  h.send("Subject: s\r\n\r\nbody\r\n.\r\n");
  REQUIRE(h.host.begun.size() == 1);
  CHECK(h.host.begun[0].protocol == "ESMTPSA");  // RFC 3848
}

TEST_CASE("auth: PLAIN with an initial response waits for the verifier, then 235") {
  AuthHarness h;
  h.send("EHLO c\r\n");
  CHECK(h.send("AUTH PLAIN " + sasl_plain_response("alice", "s3cret") + "\r\n").empty());
  REQUIRE(h.host.asked.size() == 1);
  CHECK(h.host.asked[0].user == "alice");
  CHECK(h.host.asked[0].password == "s3cret");
  CHECK(h.s->state() == Session::State::WaitAuth);
  CHECK_FALSE(h.s->wants_input());
  CHECK_FALSE(h.s->authenticated());
  CHECK(h.answer(AuthOutcome::Accepted) == "235 2.7.0 Authentication successful\r\n");
  CHECK(h.s->authenticated());
  CHECK(h.s->authenticated_user() == "alice");
  CHECK(h.host.logged_anywhere("auth ok: user=alice"));
  // RFC 4954 §4: once authenticated, AUTH again is 503.
  CHECK(h.send("AUTH PLAIN " + sasl_plain_response("bob", "x") + "\r\n").starts_with("503 5.5.1"));
  CHECK(h.host.asked.size() == 1);
  // A late or repeated answer changes nothing.
  CHECK(h.answer(AuthOutcome::Rejected).empty());
  CHECK(h.s->authenticated());
}

TEST_CASE("auth: PLAIN without, and LOGIN with and without, an initial response") {
  AuthHarness h;
  h.send("EHLO c\r\n");
  CHECK(h.send("AUTH PLAIN\r\n") == "334 \r\n");
  CHECK(h.s->state() == Session::State::Auth);
  CHECK(h.send(sasl_plain_response("bob", "pw") + "\r\n").empty());
  REQUIRE(h.host.asked.size() == 1);
  CHECK(h.host.asked[0].user == "bob");
  CHECK(h.answer(AuthOutcome::Rejected) == "535 5.7.8 Authentication credentials invalid\r\n");

  CHECK(h.send("AUTH LOGIN\r\n") == "334 VXNlcm5hbWU6\r\n");
  CHECK(h.send(base64_encode("carol") + "\r\n") == "334 UGFzc3dvcmQ6\r\n");
  CHECK(h.send(base64_encode("pw") + "\r\n").empty());
  REQUIRE(h.host.asked.size() == 2);
  CHECK(h.host.asked[1].user == "carol");
  CHECK(h.answer(AuthOutcome::Rejected).starts_with("535 5.7.8"));

  CHECK(h.send("AUTH LOGIN " + base64_encode("dave") + "\r\n") == "334 UGFzc3dvcmQ6\r\n");
  CHECK(h.send(base64_encode("pw") + "\r\n").empty());
  REQUIRE(h.host.asked.size() == 3);
  CHECK(h.host.asked[2].user == "dave");
  CHECK(h.answer(AuthOutcome::Accepted).starts_with("235 2.7.0"));
  CHECK(h.s->authenticated_user() == "dave");
}

TEST_CASE("auth: cancel, bad base64, malformed PLAIN, unknown mechanism, syntax") {
  AuthHarness h;
  h.send("EHLO c\r\n");
  CHECK(h.send("AUTH LOGIN\r\n").starts_with("334 "));
  CHECK(h.send("*\r\n") == "501 5.7.0 Authentication cancelled\r\n");
  CHECK(h.s->state() == Session::State::Greeted);
  CHECK(h.send("AUTH PLAIN\r\n") == "334 \r\n");
  CHECK(h.send("%%%%\r\n") == "501 5.5.2 Cannot decode response\r\n");
  CHECK(h.send("AUTH PLAIN AGFsaWNl\r\n") == "501 5.5.2 Malformed authentication exchange\r\n");
  CHECK(h.send("AUTH PLAIN =\r\n") == "501 5.5.2 Malformed authentication exchange\r\n");
  CHECK(h.send("AUTH CRAM-MD5\r\n") == "504 5.5.4 Unrecognized authentication type\r\n");
  CHECK(h.send("AUTH\r\n").starts_with("501 5.5.4"));
  CHECK(h.host.asked.empty());
  // After all that the session still takes commands.
  CHECK(h.send("NOOP\r\n") == "250 2.0.0 Ok\r\n");
}

TEST_CASE("auth: sequencing: EHLO first, never inside a mail transaction") {
  AuthHarness h;
  CHECK(h.send("AUTH PLAIN " + sasl_plain_response("a", "b") + "\r\n").starts_with("503 5.5.1"));
  h.send("HELO c\r\n");
  CHECK(h.send("AUTH PLAIN\r\n").starts_with("503 5.5.1"));  // HELO is not ESMTP
  h.send("EHLO c\r\n");
  CHECK(h.send("MAIL FROM:<a@b.example>\r\n").starts_with("250"));
  CHECK(h.send("AUTH PLAIN\r\n") == "503 5.5.1 Error: AUTH not allowed during a mail transaction\r\n");
  CHECK(h.send("RSET\r\n").starts_with("250"));
  CHECK(h.send("AUTH PLAIN\r\n") == "334 \r\n");
}

TEST_CASE("auth: busy verifiers and an unreadable users file answer 454 4.7.0") {
  AuthHarness h;
  h.send("EHLO c\r\n");
  h.host.verifier_free = false;
  CHECK(h.send("AUTH PLAIN " + sasl_plain_response("a", "b") + "\r\n") ==
        "454 4.7.0 Temporary authentication failure, try again later\r\n");
  CHECK(h.s->state() == Session::State::Greeted);
  h.host.verifier_free = true;
  CHECK(h.send("AUTH PLAIN " + sasl_plain_response("a", "b") + "\r\n").empty());
  CHECK(h.answer(AuthOutcome::TempFail) == "454 4.7.0 Temporary authentication failure, try again later\r\n");
  CHECK_FALSE(h.s->authenticated());
}

TEST_CASE("auth: three failures close the connection with 421; failures logged without the password") {
  AuthHarness h;
  h.send("EHLO c\r\n");
  for (int i = 1; i <= 3; ++i) {
    CAPTURE(i);
    CHECK(h.send("AUTH PLAIN " + sasl_plain_response("mallory", "guess-" + std::to_string(i)) + "\r\n").empty());
    const std::string out = h.answer(AuthOutcome::Rejected);
    CHECK(out.starts_with("535 5.7.8 Authentication credentials invalid\r\n"));
    if (i < 3) CHECK_FALSE(h.s->closed());
    else CHECK(out.ends_with("421 4.7.0 mx.example.net Error: too many failed authentication attempts\r\n"));
  }
  CHECK(h.s->closed());
  CHECK(std::count(h.host.counted.begin(), h.host.counted.end(), "535 5.7.8") == 3);  // ternctl stats
  CHECK(h.host.logged_anywhere("auth failed: user=mallory"));
  CHECK_FALSE(h.host.logged_anywhere("guess"));
  CHECK_FALSE(h.host.logged_anywhere(base64_encode("guess-1").substr(0, 8)));
}

TEST_CASE("auth: a refused SASL response is logged as AUTH ***, never as the client sent it") {
  AuthHarness h;
  h.send("EHLO c\r\n");
  h.send("AUTH LOGIN\r\n");
  h.send(base64_encode("u") + "\r\n");
  const std::string secret = base64_encode(std::string("\0pw", 3));  // decodes to a NUL: refused
  CHECK(h.send(secret + "\r\n").starts_with("501 5.5.2"));
  CHECK(h.host.logged_anywhere("AUTH ***"));
  CHECK_FALSE(h.host.logged_anywhere(secret));
}

TEST_CASE("auth: an over-long SASL response ends the exchange") {
  AuthHarness h;
  h.send("EHLO c\r\n");
  CHECK(h.send("AUTH PLAIN\r\n") == "334 \r\n");
  CHECK(h.send(std::string(5000, 'A') + "\r\n").starts_with("500 5.5.2"));
  CHECK(h.s->state() == Session::State::Greeted);
  CHECK(h.send("NOOP\r\n") == "250 2.0.0 Ok\r\n");
}

TEST_CASE("auth: an outside client relays only after AUTH") {
  AuthHarness h;
  h.send("EHLO c\r\n");
  h.send("MAIL FROM:<app@example.org>\r\n");
  CHECK(h.send("RCPT TO:<x@far.example>\r\n").starts_with("550 5.7.1 Relay access denied"));
  h.send("RSET\r\n");
  REQUIRE(h.send("AUTH PLAIN " + sasl_plain_response("app", "pw") + "\r\n").empty());
  REQUIRE(h.answer(AuthOutcome::Accepted).starts_with("235"));
  CHECK(h.send("MAIL FROM:<app@example.org>\r\n") == "250 2.1.0 Ok\r\n");
  CHECK(h.send("RCPT TO:<x@far.example>\r\n") == "250 2.1.5 Ok\r\n");
  CHECK(h.send("DATA\r\n").starts_with("354"));
  h.send("Subject: s\r\n\r\nbody\r\n.\r\n");
  REQUIRE(h.host.begun.size() == 1);
  // RFC 3848: the A of AUTH closes the protocol name; an authenticated client is our own.
  CHECK(h.host.begun[0].protocol == "ESMTPSA");
  CHECK(h.host.begun[0].client_relay);
  CHECK(h.host.data.find("with " + h.host.begun[0].protocol + " id AUTHTEST1") != std::string::npos);
  CHECK(h.host.data.find("app") == std::string::npos);  // the name stays out of Received:
  CHECK(h.host.data.find("Message-ID: <AUTHTEST1@mx.example.net>") != std::string::npos);
}

TEST_CASE("auth: show_user puts the authenticated name into Received:") {
  AuthHarness h({.show_user = true});
  h.login("submitter");
  h.send("MAIL FROM:<a@example.org> SMTPUTF8\r\nRCPT TO:<x@far.example>\r\nDATA\r\n");
  h.send("Subject: s\r\n\r\nbody\r\n.\r\n");
  CHECK(h.host.data.find("\t(authenticated user submitter)\r\n") != std::string::npos);
  REQUIRE(h.host.begun.size() == 1);
  CHECK(h.host.begun[0].protocol == "UTF8SMTPSA");  // RFC 6531 3.7.4.1
}

TEST_CASE("auth: an auth: required listener refuses MAIL before AUTH, even from relay.networks") {
  AuthHarness h({.ip = "127.0.0.1", .auth_required = true});
  h.send("EHLO c\r\n");
  CHECK(h.send("MAIL FROM:<a@example.org>\r\n") == "530 5.7.0 Authentication required\r\n");
  REQUIRE(h.send("AUTH PLAIN " + sasl_plain_response("app", "pw") + "\r\n").empty());
  REQUIRE(h.answer(AuthOutcome::Accepted).starts_with("235"));
  CHECK(h.send("MAIL FROM:<a@example.org>\r\n") == "250 2.1.0 Ok\r\n");
}

TEST_CASE("auth: commands pipelined behind the credentials are answered after the verdict") {
  AuthHarness h;
  h.send("EHLO c\r\n");
  CHECK(h.send("AUTH PLAIN " + sasl_plain_response("app", "pw") + "\r\nMAIL FROM:<a@example.org>\r\n").empty());
  CHECK(h.answer(AuthOutcome::Accepted) == "235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n");
}

TEST_CASE("auth throttle: the delay doubles per failure, is capped, decays and is per address") {
  AuthThrottle t(3);
  const auto a = *IpAddress::parse("192.0.2.1");
  const auto b = *IpAddress::parse("192.0.2.2");
  constexpr int64_t kMin = 60'000'000;
  int64_t now = 1'000'000'000;
  CHECK(t.failure(a, now) == AuthThrottle::kBaseDelayUs);
  CHECK(t.failure(a, now) == 2 * AuthThrottle::kBaseDelayUs);
  CHECK(t.failure(a, now) == 4 * AuthThrottle::kBaseDelayUs);
  CHECK(t.failure(b, now) == AuthThrottle::kBaseDelayUs);  // another address starts afresh
  for (int i = 0; i < 20; ++i) (void)t.failure(a, now);
  CHECK(t.failure(a, now) == AuthThrottle::kMaxDelayUs);
  // Two idle minutes forgive two failures from an address that had only three.
  const auto c = *IpAddress::parse("192.0.2.3");
  (void)t.failure(c, now), (void)t.failure(c, now), (void)t.failure(c, now);
  CHECK(t.failure(c, now + 2 * kMin) == 2 * AuthThrottle::kBaseDelayUs);
  // An IPv6 /64 counts as one client.
  const auto v6a = *IpAddress::parse("2001:db8:1:2::1");
  const auto v6b = *IpAddress::parse("2001:db8:1:2:ffff::9");
  (void)t.failure(v6a, now);
  CHECK(t.failure(v6b, now) == 2 * AuthThrottle::kBaseDelayUs);
  CHECK(t.tracked() <= 3);  // bounded: the least recent entries made room
}
