// Unit tests for the DSN extension's parameters and the DSN message builder.
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>

#include "bounce/dsn.hpp"
#include "smtp/header_section.hpp"
#include "smtp/dsn_params.hpp"

using namespace tern;

TEST_CASE("dsn: xtext round trip and errors") {
  CHECK(smtp::xtext_decode("a+2Bb+3Dc").value() == "a+b=c");
  CHECK(smtp::xtext_encode("a+b=c d") == "a+2Bb+3Dc+20d");
  CHECK(smtp::xtext_decode(smtp::xtext_encode("x\x01\xC3\xB6")).value() == "x\x01\xC3\xB6");
  CHECK_FALSE(smtp::xtext_decode("a+2").ok());
  CHECK_FALSE(smtp::xtext_decode("a+zz").ok());
  CHECK_FALSE(smtp::xtext_decode("a+2b").ok());  // hex digits are upper case (RFC 3461 §4)
  CHECK_FALSE(smtp::xtext_decode("a=b").ok());
}

TEST_CASE("dsn: NOTIFY, RET, ENVID, ORCPT") {
  auto n = smtp::parse_notify("success,DELAY");
  REQUIRE(n.ok());
  CHECK(n->success);
  CHECK(n->delay);
  CHECK_FALSE(n->failure);
  CHECK_FALSE(n->wants_failure());
  CHECK(n->wants_success());
  CHECK(smtp::parse_notify("NEVER")->never);
  CHECK_FALSE(smtp::parse_notify("NEVER,FAILURE").ok());
  CHECK_FALSE(smtp::parse_notify("SOMETIMES").ok());
  CHECK_FALSE(smtp::parse_notify("").ok());
  smtp::Notify none;
  CHECK(none.wants_failure());
  CHECK(none.wants_delay());
  CHECK_FALSE(none.wants_success());
  CHECK(smtp::parse_ret("hdrs").value() == smtp::Ret::Hdrs);
  CHECK_FALSE(smtp::parse_ret("ALL").ok());
  CHECK(smtp::parse_envid("QQ+2B1").value() == "QQ+1");
  CHECK_FALSE(smtp::parse_envid(std::string(101, 'a')).ok());
  auto o = smtp::parse_orcpt("rfc822;x+2By@example.org");
  REQUIRE(o.ok());
  CHECK(o->addr_type == "rfc822");
  CHECK(o->address == "x+y@example.org");
  CHECK_FALSE(smtp::parse_orcpt("x@example.org").ok());
  CHECK_FALSE(smtp::parse_orcpt("rfc822;").ok());
  auto md = smtp::message_dsn({"BODY=8BITMIME", "RET=FULL", "ENVID=abc"});
  CHECK(md.ret == smtp::Ret::Full);
  CHECK(md.envid == "abc");
  auto rd = smtp::rcpt_dsn({"NOTIFY=NEVER", "ORCPT=rfc822;a@b.example"});
  CHECK(rd.notify.never);
  CHECK_FALSE(rd.notify.wants_failure());
  CHECK(rd.orcpt->address == "a@b.example");
}

namespace {
bounce::Report sample(bounce::Action a) {
  bounce::Report r;
  r.reporting_mta = "relay.example.net";
  r.to = "alice@sender.example";
  r.queue_id = "1K130000000";
  r.notice_id = "1K130000000.1";
  r.envid = "env-42";
  r.arrival_us = 1764066538000000;
  r.now_us = 1764066600000000;
  r.original = "Subject: hello\r\nFrom: alice@sender.example\r\n\r\nbody line\r\n";
  bounce::RcptReport x;
  x.final_recipient = "bob@dest.example";
  x.orcpt = smtp::Orcpt{"rfc822", "Bob@Dest.Example"};
  x.action = a;
  x.status = a == bounce::Action::Failed ? "5.1.1" : a == bounce::Action::Delayed ? "4.4.1" : "2.0.0";
  x.remote_mta = "mx1.dest.example";
  x.diagnostic = "550 5.1.1 <bob@dest.example>: no such user";
  x.last_attempt_us = 1764066590000000;
  x.will_retry_until_us = 1764498538000000;
  r.rcpts.push_back(x);
  return r;
}
bool has(const std::string& hay, const std::string& needle) { return hay.find(needle) != std::string::npos; }
}  // namespace

TEST_CASE("dsn: a failure report has every field RFC 3464 asks for") {
  const std::string m = bounce::build(sample(bounce::Action::Failed));
  CHECK(has(m, "From: Mail Delivery System <MAILER-DAEMON@relay.example.net>\r\n"));
  CHECK(has(m, "To: <alice@sender.example>\r\n"));
  CHECK(has(m, "Auto-Submitted: auto-replied\r\n"));
  CHECK(has(m, "MIME-Version: 1.0\r\n"));
  CHECK(has(m, "Content-Type: multipart/report; report-type=delivery-status;"));
  CHECK(has(m, "Content-Type: message/delivery-status\r\n"));
  CHECK(has(m, "Reporting-MTA: dns; relay.example.net\r\n"));
  CHECK(has(m, "Original-Envelope-Id: env-42\r\n"));
  CHECK(has(m, "Arrival-Date: "));
  CHECK(has(m, "Final-Recipient: rfc822; bob@dest.example\r\n"));
  CHECK(has(m, "Original-Recipient: rfc822;Bob@Dest.Example\r\n"));
  CHECK(has(m, "Action: failed\r\nStatus: 5.1.1\r\n"));
  CHECK(has(m, "Remote-MTA: dns; mx1.dest.example\r\n"));
  CHECK(has(m, "Diagnostic-Code: smtp; 550 5.1.1 <bob@dest.example>: no such user\r\n"));
  CHECK(has(m, "Last-Attempt-Date: "));
  CHECK_FALSE(has(m, "Will-Retry-Until"));
  CHECK(has(m, "Content-Type: text/rfc822-headers\r\n\r\nSubject: hello\r\nFrom: alice@sender.example\r\n"));
  CHECK_FALSE(has(m, "body line"));
  // Every line ends in CRLF: no bare LF.
  for (size_t i = 0; i < m.size(); ++i)
    if (m[i] == '\n') REQUIRE((i > 0 && m[i - 1] == '\r'));
  CHECK(m.ends_with("--\r\n"));
}

TEST_CASE("dsn: RET=FULL, delays, relays and SMTPUTF8 types") {
  auto full = sample(bounce::Action::Failed);
  full.return_full = true;
  const std::string f = bounce::build(full);
  CHECK(has(f, "Content-Type: message/rfc822\r\n"));
  CHECK(has(f, "body line"));
  const std::string d = bounce::build(sample(bounce::Action::Delayed));
  CHECK(has(d, "Action: delayed\r\nStatus: 4.4.1\r\n"));
  CHECK(has(d, "Will-Retry-Until: "));
  CHECK(has(d, "Subject: Delayed Mail"));
  const std::string r = bounce::build(sample(bounce::Action::Relayed));
  CHECK(has(r, "Action: relayed\r\n"));
  auto u = sample(bounce::Action::Failed);
  u.utf8 = true;
  u.rcpts[0].final_recipient = "b\xC3\xB6" "b@dest.example";
  const std::string g = bounce::build(u);
  CHECK(has(g, "Content-Type: message/global-delivery-status\r\n"));
  CHECK(has(g, "Content-Type: message/global-headers\r\n"));
  CHECK(has(g, "Final-Recipient: utf-8; b\xC3\xB6" "b@dest.example\r\n"));
}

TEST_CASE("dsn: Diagnostic-Code types") {
  auto r = sample(bounce::Action::Failed);
  r.rcpts[0].diagnostic = "MAIL: 550 5.7.1 Sender refused";
  CHECK(has(bounce::build(r), "Diagnostic-Code: smtp; 550 5.7.1 Sender refused\r\n"));
  r.rcpts[0].diagnostic = "5.1.10 Domain does not accept mail (null MX, RFC 7505)";
  CHECK(has(bounce::build(r), "Diagnostic-Code: X-tern; 5.1.10 Domain does not accept mail"));
}

TEST_CASE("dsn: status codes from replies") {
  CHECK(bounce::status_of("550 5.1.1 no", "5.0.0") == "5.1.1");
  CHECK(bounce::status_of("MAIL: 550 5.7.1 no", "5.0.0") == "5.7.1");
  CHECK(bounce::status_of("5.4.7 Delivery time expired; last attempt: 451 4.4.1 x", "5.0.0") == "5.4.7");
  CHECK(bounce::status_of("550 no code", "5.0.0") == "5.0.0");
}

// Golden: the whole failure notice, byte for byte (tests/golden/dsn_failure.ref, reviewed
// against RFC 3464 §2 and RFC 6522 §3). A deliberate format change updates the file.
TEST_CASE("dsn: golden failure notice") {
  bounce::Report r = sample(bounce::Action::Failed);
  r.notice_id = "1K130000000.1764066600000000";
  r.original = "Subject: hello\r\nFrom: alice@sender.example\r\nTo: bob@dest.example\r\n\r\nbody line\r\n";
  r.rcpts[0].diagnostic = "550 5.1.1 <bob@dest.example>: Recipient address rejected";
  std::ifstream f(std::string(TERN_SOURCE_DIR) + "/tests/golden/dsn_failure.ref", std::ios::binary);
  REQUIRE(f.good());
  const std::string ref((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(bounce::build(r) == ref);
}

TEST_CASE("dsn: the recorded kind of reply decides the Diagnostic-Code type") {
  auto r = sample(bounce::Action::Failed);
  r.rcpts[0].diagnostic = "DATA: 554 transaction failed";
  r.rcpts[0].remote_reply = true;
  CHECK(has(bounce::build(r), "Diagnostic-Code: smtp; 554 transaction failed\r\n"));
  r.rcpts[0].diagnostic = "No host could be reached: a[192.0.2.1]:25: connect failed";
  r.rcpts[0].remote_reply = false;
  CHECK(has(bounce::build(r), "Diagnostic-Code: X-tern; No host could be reached"));
}

TEST_CASE("dsn: a headers-only notice of a message without a blank line returns only its header fields") {
  auto r = sample(bounce::Action::Failed);
  r.original = "Subject: hello\r\nFrom: alice@sender.example\r\nthis is body text, not a header\r\nsecret line\r\n";
  const std::string m = bounce::build(r);
  CHECK(has(m, "Subject: hello\r\n"));
  CHECK_FALSE(has(m, "this is body text"));
  CHECK_FALSE(has(m, "secret line"));
  bool complete = false;
  CHECK(smtp::header_section_length("Subject: a\r\n folded\r\n\r\nbody", complete) == 23);
  CHECK(complete);
  CHECK(smtp::header_section_length("Subject: a\r\nnot a header\r\n", complete) == 12);
  CHECK(complete);
  CHECK(smtp::header_section_length("Subject: a\r\nX-Partial", complete) == 12);
  CHECK_FALSE(complete);
}

TEST_CASE("dsn: an unusual ORCPT reaches the report encoded, never raw") {
  auto r = sample(bounce::Action::Failed);
  r.rcpts[0].orcpt = smtp::Orcpt{"rfc822", std::string("ctl\x01x@dest.example")};
  const std::string m = bounce::build(r);
  CHECK_FALSE(has(m, std::string("\x01")));
  CHECK(has(m, "Original-Recipient: rfc822;ctl+01x@dest.example\r\n"));
  r.rcpts[0].orcpt = smtp::Orcpt{"utf-8", "r\xc3\xbc" "ck@dest.example"};
  CHECK(has(bounce::build(r), "Original-Recipient: utf-8;r\\x{FC}ck@dest.example\r\n"));  // not a global DSN
  r.utf8 = true;
  CHECK(has(bounce::build(r), "Original-Recipient: utf-8;r\xc3\xbc" "ck@dest.example\r\n"));
}
