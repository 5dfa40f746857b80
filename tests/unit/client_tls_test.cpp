// Unit tests for the client side of STARTTLS and AUTH (the pure session), the per-destination
// TLS plan, and base64.
#include <doctest/doctest.h>

#include "delivery/client_session.hpp"
#include "delivery/tls_policy.hpp"
#include "smtp/base64.hpp"

using namespace tern;
using namespace tern::delivery;

namespace {
ClientSession greeted(ClientSecurity sec) {
  ClientSession s("tern.example.net", std::move(sec));
  s.feed("220 mx.example ESMTP\r\n");
  CHECK(s.take_output() == "EHLO tern.example.net\r\n");
  return s;
}
ClientSecurity may() {
  ClientSecurity s;
  s.starttls = true;
  return s;
}
}  // namespace

TEST_CASE("client TLS: STARTTLS alone, one reply, then EHLO again with capabilities forgotten") {
  auto s = greeted(may());
  s.feed("250-mx.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n");
  CHECK(s.take_output() == "STARTTLS\r\n");
  CHECK_FALSE(s.wants_tls());
  s.feed("220 2.0.0 go ahead\r\n");
  CHECK(s.wants_tls());
  CHECK(s.take_output().empty());  // nothing is said before the handshake
  s.on_tls_started();
  CHECK(s.tls_active());
  CHECK_FALSE(s.capabilities().pipelining);
  CHECK(s.take_output() == "EHLO tern.example.net\r\n");
  s.feed("250-mx.example\r\n250 8BITMIME\r\n");  // inside TLS: STARTTLS not offered again
  CHECK(s.ready());
  CHECK(s.take_output().empty());
}

TEST_CASE("client TLS: bytes after the 220 to STARTTLS are an injection") {
  auto s = greeted(may());
  s.feed("250-mx.example\r\n250 STARTTLS\r\n");
  (void)s.take_output();
  s.feed("220 go\r\n250 x\r\n");
  REQUIRE(s.setup_failure().has_value());
  CHECK(s.setup_failure()->tls_failure);
  CHECK(s.setup_failure()->status == "4.7.0");
  CHECK(s.setup_failure()->why.find("injection") != std::string::npos);
  CHECK(s.closed());
  CHECK(s.take_output().empty());  // not even QUIT in plaintext
  // A partial line after the 220 counts as well.
  auto p = greeted(may());
  p.feed("250-mx.example\r\n250 STARTTLS\r\n");
  (void)p.take_output();
  p.feed("220 go\r\n25");
  CHECK(p.setup_failure().has_value());
}

TEST_CASE("client TLS: may goes on in plaintext when STARTTLS is absent or refused; encrypt does not") {
  auto none = greeted(may());
  none.feed("250 mx.example\r\n");
  CHECK(none.ready());
  auto refused = greeted(may());
  refused.feed("250-mx.example\r\n250 STARTTLS\r\n");
  (void)refused.take_output();
  refused.feed("454 4.7.0 TLS not available\r\n");
  CHECK(refused.ready());

  ClientSecurity enc = may();
  enc.require_tls = true;
  auto strict = greeted(enc);
  strict.feed("250 mx.example\r\n");
  REQUIRE(strict.setup_failure().has_value());
  CHECK(strict.setup_failure()->status == "4.7.4");
  auto strict2 = greeted(enc);
  strict2.feed("250-mx.example\r\n250 STARTTLS\r\n");
  (void)strict2.take_output();
  strict2.feed("454 4.7.0 TLS not available\r\n");
  REQUIRE(strict2.setup_failure().has_value());
  CHECK(strict2.setup_failure()->tls_failure);
}

TEST_CASE("client AUTH: PLAIN preferred, LOGIN when alone, never before TLS, 535 defers") {
  ClientSecurity sec = may();
  sec.require_tls = true;
  sec.auth = ClientSecurity::Credentials{"user@example.net", "pw"};
  auto s = greeted(sec);
  s.feed("250-mx.example\r\n250-AUTH PLAIN LOGIN\r\n250 STARTTLS\r\n");
  CHECK(s.take_output() == "STARTTLS\r\n");  // no AUTH in plaintext even though offered
  s.feed("220 go\r\n");
  s.on_tls_started();
  (void)s.take_output();
  s.feed("250-mx.example\r\n250 AUTH LOGIN PLAIN\r\n");
  const std::string plain = s.take_output();
  CHECK(plain == "AUTH PLAIN " + smtp::base64_encode(std::string("\0user@example.net\0pw", 20)) + "\r\n");
  s.feed("235 2.7.0 ok\r\n");
  CHECK(s.ready());
  CHECK(s.authenticated());

  ClientSecurity imp = sec;
  imp.tls_active = true;  // implicit TLS
  auto l = greeted(imp);
  l.feed("250-mx.example\r\n250 AUTH LOGIN\r\n");
  CHECK(l.take_output() == "AUTH LOGIN\r\n");
  l.feed("334 VXNlcm5hbWU6\r\n");
  CHECK(l.take_output() == smtp::base64_encode("user@example.net") + "\r\n");
  l.feed("334 UGFzc3dvcmQ6\r\n");
  CHECK(l.take_output() == smtp::base64_encode("pw") + "\r\n");
  l.feed("535 5.7.8 bad\r\n");
  REQUIRE(l.setup_failure().has_value());
  CHECK(l.setup_failure()->status == "4.7.8");
  CHECK(l.setup_failure()->why.find("pw") == std::string::npos);
  CHECK(l.setup_failure()->why.find("535 5.7.8 bad") != std::string::npos);

  auto none = greeted(imp);
  none.feed("250 mx.example\r\n");
  REQUIRE(none.setup_failure().has_value());
  CHECK(none.setup_failure()->why.find("neither AUTH PLAIN nor AUTH LOGIN") != std::string::npos);
}

TEST_CASE("tls plan: levels, names, routes and credentials") {
  config::Delivery d;
  d.tls = config::TlsLevel::May;
  d.tls_ca_file = "/ca.pem";
  d.tls_policy["bank.example"] = config::TlsLevel::Verify;
  std::map<std::string, config::Route> routes;
  config::Route smart;
  smart.host = "smtp.provider.example";
  smart.tls = config::TlsLevel::Verify;
  smart.tls_ca_file = "/provider.pem";
  smart.auth = config::RouteAuth{"app", "/secret", "pw"};
  routes["*"] = smart;

  scheduler::Destination bank{"mx:bank.example", false, "bank.example", "", 0};
  auto p = plan_tls(bank, d, {});
  CHECK(p.level == config::TlsLevel::Verify);
  CHECK(p.ca_file == "/ca.pem");
  CHECK(verify_names(p, "mx1.bank.example", false) == std::vector<std::string>{"bank.example", ".bank.example"});
  // The MX host's own name only when DNSSEC vouched for the MX answer.
  CHECK(verify_names(p, "mx.hoster.example", true) ==
        std::vector<std::string>{"bank.example", ".bank.example", "mx.hoster.example"});
  auto sec = session_security(p, false);
  CHECK(sec.starttls);
  CHECK(sec.require_tls);

  scheduler::Destination other{"mx:other.example", false, "other.example", "", 0};
  auto m = plan_tls(other, d, {});
  CHECK(m.level == config::TlsLevel::May);
  CHECK_FALSE(session_security(m, false).require_tls);
  CHECK_FALSE(session_security(m, true).starttls);  // the plaintext retry

  scheduler::Destination route{"route:smtp.provider.example:587", true, "any.example", "smtp.provider.example", 587};
  auto r = plan_tls(route, d, routes);
  CHECK(r.level == config::TlsLevel::Verify);
  CHECK(r.ca_file == "/provider.pem");
  REQUIRE(r.auth.has_value());
  CHECK(r.auth->username == "app");
  CHECK(verify_names(r, "smtp.provider.example", false) == std::vector<std::string>{"smtp.provider.example"});
  CHECK(session_security(r, true).require_tls);  // credentials: never plaintext

  config::Delivery none;
  none.tls = config::TlsLevel::None;
  auto n = session_security(plan_tls(other, none, {}), false);
  CHECK_FALSE(n.starttls);
}

TEST_CASE("base64: round trips and strict decoding") {
  CHECK(smtp::base64_encode("") == "");
  CHECK(smtp::base64_encode("f") == "Zg==");
  CHECK(smtp::base64_encode("fo") == "Zm8=");
  CHECK(smtp::base64_encode("foo") == "Zm9v");
  CHECK(smtp::base64_encode(std::string("\0a\0b", 4)) == "AGEAYg==");
  for (std::string s : {"", "a", "ab", "abc", "abcd", "\xff\xfe\x00 z"}) CHECK(smtp::base64_decode(smtp::base64_encode(s)) == s);
  CHECK_FALSE(smtp::base64_decode("Zg=").has_value());
  CHECK_FALSE(smtp::base64_decode("Z===").has_value());
  CHECK_FALSE(smtp::base64_decode("Zm9v Zg==").has_value());
  CHECK_FALSE(smtp::base64_decode("Zh==").has_value());  // non-zero padding bits
  CHECK_FALSE(smtp::base64_decode("Zg==Zm9v").has_value());
  CHECK_FALSE(smtp::base64_decode("Zm9*").has_value());
}
