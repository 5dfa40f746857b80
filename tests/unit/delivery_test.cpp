// Unit tests for delivery's pure parts: MX ordering and the self rule, backoff, client reply
// parsing, DATA encoding and the client session machine.
#include <doctest/doctest.h>

#include <map>
#include <set>

#include "delivery/candidates.hpp"
#include "delivery/client_session.hpp"
#include "delivery/outcome.hpp"
#include "dns/mx.hpp"
#include "scheduler/backoff.hpp"
#include "smtp/data_encoder.hpp"
#include "smtp/reply_parser.hpp"

using namespace tern;
using namespace tern::delivery;

TEST_CASE("mx: lowest preference first, equal preferences shuffled") {
  std::vector<dns::MxRecord> recs{{20, "b.example."}, {10, "A.example"}, {30, "c.example"},
                                  {20, "d.example"}};
  std::set<std::string> second_seen;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    std::mt19937_64 rng(seed);
    auto o = dns::order_mx(recs, rng, 10);
    REQUIRE(o.ok());
    REQUIRE(o->size() == 4);
    CHECK((*o)[0].name == "a.example");
    CHECK((*o)[0].preference == 10);
    CHECK((*o)[1].preference == 20);
    CHECK((*o)[2].preference == 20);
    CHECK((*o)[3].name == "c.example");
    second_seen.insert((*o)[1].name);
  }
  CHECK(second_seen.size() == 2);  // both equal-preference hosts came first sometimes
}

TEST_CASE("mx: null MX, duplicates and the host limit") {
  std::mt19937_64 rng(1);
  auto n = dns::order_mx({{0, ""}}, rng, 10);
  REQUIRE_FALSE(n.ok());
  CHECK(n.error().kind == ErrorKind::Perm);
  CHECK(n.error().status == "5.1.10");
  auto d = dns::order_mx({{10, "a.example"}, {20, "a.example"}, {30, "b.example"}}, rng, 10);
  REQUIRE(d.ok());
  CHECK(d->size() == 2);
  auto l = dns::order_mx({{10, "a.example"}, {20, "b.example"}, {30, "c.example"}}, rng, 2);
  CHECK(l->size() == 2);
}

TEST_CASE("mx: the self rule drops me and every host not better than me") {
  dns::Self me{"backup.example.net", {*IpAddress::parse("192.0.2.10")}, {}};
  std::vector<dns::MxHost> hosts{{10, "primary.partner.example", {*IpAddress::parse("192.0.2.1")}},
                                 {20, "backup.example.net", {}},
                                 {20, "other.example", {}},
                                 {30, "last.example", {}}};
  auto r = dns::apply_self_rule(hosts, me);
  REQUIRE(r.ok());
  REQUIRE(r->size() == 1);
  CHECK((*r)[0].name == "primary.partner.example");

  // By address (a NAT'd or differently named me).
  std::vector<dns::MxHost> by_addr{{5, "a.example", {}}, {10, "alias.example", {*IpAddress::parse("::ffff:192.0.2.10")}}};
  auto ra = dns::apply_self_rule(by_addr, me);
  REQUIRE(ra.ok());
  CHECK(ra->size() == 1);

  // Me as the most preferred: a loop, permanent 5.4.6.
  std::vector<dns::MxHost> first{{10, "BACKUP.example.net.", {}}, {20, "x.example", {}}};
  auto rf = dns::apply_self_rule(first, me);
  REQUIRE_FALSE(rf.ok());
  CHECK(rf.error().kind == ErrorKind::Perm);
  CHECK(rf.error().status == "5.4.6");

  // Not me: unchanged.
  std::vector<dns::MxHost> none{{10, "x.example", {*IpAddress::parse("192.0.2.2")}}};
  CHECK(dns::apply_self_rule(none, me)->size() == 1);
}

TEST_CASE("backoff: exponential, capped, jittered within 10%") {
  config::Retry r{std::chrono::seconds(300), std::chrono::seconds(3600), 2.0};
  CHECK(scheduler::retry_delay(r, 1, 0.5).count() == 300);
  CHECK(scheduler::retry_delay(r, 2, 0.5).count() == 600);
  CHECK(scheduler::retry_delay(r, 3, 0.5).count() == 1200);
  CHECK(scheduler::retry_delay(r, 5, 0.5).count() == 3600);
  CHECK(scheduler::retry_delay(r, 50, 0.5).count() == 3600);
  CHECK(scheduler::retry_delay(r, 1, 0.0).count() == 270);
  CHECK(scheduler::retry_delay(r, 1, 0.999).count() >= 329);
  config::Retry tiny{std::chrono::seconds(1), std::chrono::seconds(1), 1.0};
  CHECK(scheduler::retry_delay(tiny, 1, 0.0).count() == 1);
}

TEST_CASE("reply parser: single, multi-line, split input, enhanced codes") {
  smtp::ReplyParser p;
  std::vector<smtp::Reply> out;
  REQUIRE(p.feed("250-mx.example\r\n250-PIPELINING\r\n25", out).ok());
  CHECK(out.empty());
  REQUIRE(p.feed("0 SIZE 1000\r\n550 5.1.1 <x@y>: no such user\r\n", out).ok());
  REQUIRE(out.size() == 2);
  CHECK(out[0].code == 250);
  CHECK(out[0].lines.size() == 3);
  CHECK(out[1].enhanced == "5.1.1");
  CHECK(out[1].str() == "550 5.1.1 <x@y>: no such user");
  out.clear();
  REQUIRE(p.feed("451 4.3.0 a\r\n250 2.0.0\n220 ready\r\n", out).ok());
  CHECK(out[0].enhanced == "4.3.0");
  CHECK(out[1].enhanced == "2.0.0");
  CHECK(out[2].enhanced.empty());
  // A mismatched class is not an enhanced code.
  out.clear();
  REQUIRE(p.feed("550 4.1.1 odd\r\n", out).ok());
  CHECK(out[0].enhanced.empty());
  smtp::ReplyParser bad;
  CHECK_FALSE(bad.feed("hello\r\n", out).ok());
  smtp::ReplyParser mixed;
  CHECK_FALSE(mixed.feed("250-a\r\n251 b\r\n", out).ok());
  smtp::ReplyParser big;
  CHECK_FALSE(big.feed(std::string(5000, '2'), out).ok());
}

TEST_CASE("data encoder: dot-stuffing, CRLF and no bare newlines") {
  CHECK(smtp::encode_data("a\r\n.b\r\n..\r\n") == "a\r\n..b\r\n...\r\n.\r\n");
  CHECK(smtp::encode_data("no newline at end") == "no newline at end\r\n.\r\n");
  CHECK(smtp::encode_data("x\n.\ny\r.\rz") == "x\r\n..\r\ny\r\n..\r\nz\r\n.\r\n");
  CHECK(smtp::encode_data("") == ".\r\n");
}

namespace {
Transaction txn(std::vector<std::string> rcpts, std::string msg = "Subject: x\r\n\r\nhi\r\n") {
  Transaction t;
  t.sender = "a@example.net";
  t.rcpts = std::move(rcpts);
  t.size = msg.size();
  return t;
}
ClientSession ready_session(const char* ehlo) {
  ClientSession s("tern.example.net");
  s.feed("220 mx.example ESMTP\r\n");
  CHECK(s.take_output() == "EHLO tern.example.net\r\n");
  s.feed(ehlo);
  CHECK(s.ready());
  return s;
}
}  // namespace

TEST_CASE("client: pipelined transaction with mixed recipient verdicts") {
  auto s = ready_session("250-mx.example\r\n250-PIPELINING\r\n250-SIZE 100000\r\n250 8BITMIME\r\n");
  auto t = txn({"ok@x.example", "full@x.example", "gone@x.example", "many@x.example"});
  t.eight_bit = true;
  s.start(t);
  CHECK(s.take_output() ==
        "MAIL FROM:<a@example.net> SIZE=18 BODY=8BITMIME\r\nRCPT TO:<ok@x.example>\r\n"
        "RCPT TO:<full@x.example>\r\nRCPT TO:<gone@x.example>\r\nRCPT TO:<many@x.example>\r\nDATA\r\n");
  s.feed("250 ok\r\n250 ok\r\n451 4.2.2 full\r\n550 5.1.1 gone\r\n452 4.5.3 too many\r\n354 go\r\n");
  // The body is the driver's to stream: the session only waits for it.
  CHECK(s.wants_body());
  CHECK(s.take_output().empty());
  CHECK_FALSE(s.take_result().has_value());
  s.body_sent();
  CHECK_FALSE(s.wants_body());
  s.feed("250 2.0.0 queued\r\n");
  auto r = s.take_result();
  REQUIRE(r.has_value());
  CHECK_FALSE(r->next_host);
  CHECK(r->rcpts[0].fate == Fate::Delivered);
  CHECK(r->rcpts[0].text == "250 2.0.0 queued");
  CHECK(r->rcpts[0].status == "2.0.0");
  CHECK(r->rcpts[0].remote);
  CHECK(r->rcpts[1].status == "4.2.2");
  CHECK(r->rcpts[1].fate == Fate::Deferred);
  CHECK(r->rcpts[2].fate == Fate::Failed);
  CHECK(r->rcpts[2].text == "550 5.1.1 gone");
  CHECK(r->rcpts[2].status == "5.1.1");
  CHECK(r->rcpts[3].fate == Fate::RetryNow);
  CHECK(s.ready());
  // The connection is reused: RSET first.
  s.start(txn({"b@x.example"}));
  CHECK(s.take_output() == "RSET\r\n");
  s.feed("250 ok\r\n");
  CHECK(s.take_output().starts_with("MAIL FROM:<a@example.net>"));
}

TEST_CASE("client: without pipelining, one command per reply and no DATA if nobody accepted") {
  auto s = ready_session("250 mx.example\r\n");
  s.start(txn({"a@x.example", "b@x.example"}));
  CHECK(s.take_output() == "MAIL FROM:<a@example.net>\r\n");
  s.feed("250 ok\r\n");
  CHECK(s.take_output() == "RCPT TO:<a@x.example>\r\n");
  s.feed("550 no\r\n");
  CHECK(s.take_output() == "RCPT TO:<b@x.example>\r\n");
  s.feed("550 no\r\n");
  CHECK(s.take_output().empty());
  auto r = s.take_result();
  REQUIRE(r.has_value());
  CHECK(r->rcpts[0].fate == Fate::Failed);
  CHECK(r->rcpts[1].fate == Fate::Failed);
}

TEST_CASE("client: 4xx at MAIL means next host, 5xx fails everyone") {
  auto s = ready_session("250-mx\r\n250 PIPELINING\r\n");
  s.start(txn({"a@x.example"}));
  (void)s.take_output();
  s.feed("451 4.3.0 busy\r\n503 5.5.1 no MAIL\r\n503 5.5.1 no RCPT\r\n");
  auto r = s.take_result();
  REQUIRE(r.has_value());
  CHECK(r->next_host);
  CHECK(r->rcpts[0].fate == Fate::Deferred);
  auto p = ready_session("250-mx\r\n250 PIPELINING\r\n");
  p.start(txn({"a@x.example"}));
  p.feed("550 5.7.1 sender refused\r\n503 x\r\n503 y\r\n");
  auto pr = p.take_result();
  CHECK_FALSE(pr->next_host);
  CHECK(pr->rcpts[0].fate == Fate::Failed);
  CHECK(pr->rcpts[0].text == "MAIL: 550 5.7.1 sender refused");
  CHECK(pr->rcpts[0].status == "5.7.1");
}

TEST_CASE("client: greeting and EHLO failures; HELO fallback") {
  ClientSession busy("me");
  busy.feed("421 4.3.2 go away\r\n");
  REQUIRE(busy.setup_failure().has_value());
  CHECK(busy.closed());
  ClientSession old("me");
  old.feed("220 hi\r\n");
  (void)old.take_output();
  old.feed("502 what\r\n");
  CHECK(old.take_output() == "HELO me\r\n");
  old.feed("250 ok\r\n");
  CHECK(old.ready());
  CHECK_FALSE(old.capabilities().pipelining);
  ClientSession tempehlo("me");
  tempehlo.feed("220 hi\r\n451 later\r\n");
  CHECK(tempehlo.setup_failure().has_value());
}

TEST_CASE("client: early failures for size and SMTPUTF8") {
  auto s = ready_session("250-mx\r\n250 SIZE 10\r\n");
  s.start(txn({"a@x.example"}));
  auto r = s.take_result();
  REQUIRE(r.has_value());
  CHECK(r->rcpts[0].fate == Fate::Failed);
  CHECK(r->rcpts[0].status == "5.3.4");
  CHECK_FALSE(r->rcpts[0].remote);
  CHECK(s.take_output().empty());
  auto u = ready_session("250 mx\r\n");
  auto t = txn({"a@x.example"});
  t.smtputf8 = true;
  u.start(t);
  auto ur = u.take_result();
  CHECK(ur->rcpts[0].status == "5.6.7");
}

TEST_CASE("client: a lost connection defers, and says whether to try the next host") {
  auto s = ready_session("250-mx\r\n250 PIPELINING\r\n");
  s.start(txn({"a@x.example", "b@x.example"}));
  s.feed("250 ok\r\n550 no\r\n");
  s.on_closed("4.4.2", "connection reset");
  auto r = s.take_result();
  REQUIRE(r.has_value());
  CHECK_FALSE(r->next_host);  // one recipient was already decided
  CHECK(r->rcpts[0].fate == Fate::Failed);
  CHECK(r->rcpts[1].fate == Fate::Deferred);
  auto d = ready_session("250-mx\r\n250 PIPELINING\r\n");
  d.start(txn({"a@x.example"}));
  d.feed("250 ok\r\n250 ok\r\n354 go\r\n");
  d.body_sent();
  d.on_closed("4.4.2", "timeout");
  auto dr = d.take_result();
  CHECK(dr->rcpts[0].fate == Fate::Deferred);
  CHECK(dr->rcpts[0].status == "4.4.2");
  CHECK(dr->rcpts[0].text.find("after the data was sent") != std::string::npos);
}

TEST_CASE("mx: a route's next hop is me only at my exact endpoint") {
  dns::Self me{"relay.example.net", {*IpAddress::parse("127.0.0.1")}, {*Endpoint::parse("127.0.0.1:2525")}};
  CHECK(me.is_my_endpoint(*Endpoint::parse("127.0.0.1:2525")));
  CHECK_FALSE(me.is_my_endpoint(*Endpoint::parse("127.0.0.1:10026")));  // a local smarthost/filter
  CHECK_FALSE(me.is_my_endpoint(*Endpoint::parse("127.0.0.2:2525")));
}

TEST_CASE("client: a 452 to the first recipient is deferred, not retried at once") {
  auto s = ready_session("250-mx\r\n250 PIPELINING\r\n");
  s.start(txn({"a@x.example", "b@x.example"}));
  s.feed("250 ok\r\n452 4.5.3 too many\r\n452 4.5.3 too many\r\n554 no valid recipients\r\n");
  auto r = s.take_result();
  REQUIRE(r.has_value());
  CHECK(r->rcpts[0].fate == Fate::Deferred);
  CHECK(r->rcpts[1].fate == Fate::Deferred);
}

TEST_CASE("reply: enhanced codes are found behind prefixes") {
  CHECK(smtp::find_enhanced("MAIL: 550 5.7.1 Sender not welcome") == "5.7.1");
  CHECK(smtp::find_enhanced("mx[1.2.3.4]:25: greeting: 421 4.3.2 busy") == "4.3.2");
  CHECK(smtp::find_enhanced("5.4.7 Delivery time expired; last attempt: 451 4.4.1 x") == "5.4.7");
  CHECK(smtp::find_enhanced("250 ok 1.2.3.4").empty());
  CHECK(smtp::find_enhanced("version 5.1.").empty());
}

TEST_CASE("data encoder: streamed in pieces, the output is the same as in one go") {
  std::mt19937_64 rng(42);
  const std::string alphabet = ".\r\nab";
  for (int round = 0; round < 2000; ++round) {
    std::string msg;
    const size_t len = rng() % 60;
    for (size_t i = 0; i < len; ++i) msg += alphabet[rng() % alphabet.size()];
    smtp::DotEncoder e;
    std::string out;
    size_t pos = 0;
    while (pos < msg.size()) {
      const size_t n = 1 + rng() % 7;
      e.encode(std::string_view(msg).substr(pos, n), out);
      pos += n;
    }
    e.finish(out);
    REQUIRE(out == smtp::encode_data(msg));
  }
  smtp::DotEncoder split;  // a CRLF split across pieces is one line end, not two
  std::string out;
  split.encode("a\r", out);
  split.encode("\n.b", out);
  split.finish(out);
  CHECK(out == "a\r\n..b\r\n.\r\n");
}

TEST_CASE("candidates: self rule, family order, limits, and a route back to myself") {
  dns::Self me{"me.example.net", {*IpAddress::parse("192.0.2.10")}, {*Endpoint::parse("127.0.0.1:25")}};
  std::vector<dns::MxHost> hosts{
      {10, "a.example", {*IpAddress::parse("2001:db8::1"), *IpAddress::parse("192.0.2.1")}},
      {20, "me.example.net", {*IpAddress::parse("192.0.2.10")}},
      {30, "c.example", {*IpAddress::parse("192.0.2.3")}},
      {40, "none.example", {}}};
  auto c = candidates(hosts, me, CandidateRules{false, 25, false, 20, "x.example"});
  auto* list = std::get_if<std::vector<Candidate>>(&c);
  REQUIRE(list);
  REQUIRE(list->size() == 2);  // me and everything after me dropped
  CHECK((*list)[0].address.str() == "192.0.2.1");  // IPv4 first unless prefer_ipv6
  CHECK((*list)[1].address.str() == "2001:db8::1");
  CHECK((*list)[0].relay() == "a.example[192.0.2.1]:25");
  auto v6 = candidates(hosts, me, CandidateRules{false, 25, true, 1, "x.example"});
  REQUIRE(std::get_if<std::vector<Candidate>>(&v6));
  CHECK(std::get<std::vector<Candidate>>(v6).size() == 1);
  CHECK(std::get<std::vector<Candidate>>(v6)[0].address.str() == "2001:db8::1");
  // Me as the best MX: a loop, failed 5.4.6.
  std::vector<dns::MxHost> first{{5, "me.example.net", {*IpAddress::parse("192.0.2.10")}}, hosts[0]};
  auto loop = candidates(first, me, CandidateRules{false, 25, false, 20, "x.example"});
  REQUIRE(std::get_if<Outcome>(&loop));
  CHECK(std::get<Outcome>(loop).status == "5.4.6");
  CHECK(std::get<Outcome>(loop).fate == Fate::Failed);
  // A route to my exact endpoint.
  std::vector<dns::MxHost> route{{0, "127.0.0.1", {*IpAddress::parse("127.0.0.1")}}};
  auto r = candidates(route, me, CandidateRules{true, 25, false, 20, "x.example"});
  CHECK(std::get_if<Outcome>(&r));
  auto other_port = candidates(route, me, CandidateRules{true, 10026, false, 20, "x.example"});
  CHECK(std::get_if<std::vector<Candidate>>(&other_port));
}

TEST_CASE("outcome: replies classified once, with their status codes") {
  smtp::Reply r;
  r.code = 550;
  r.enhanced = "5.7.1";
  r.lines = {"no"};
  auto o = from_reply(r, "MAIL: ");
  CHECK(o.fate == Fate::Failed);
  CHECK(o.status == "5.7.1");
  CHECK(o.remote);
  r.code = 451;
  r.enhanced = "";
  auto t = from_reply(r, "");
  CHECK(t.fate == Fate::Deferred);
  CHECK(t.status == "4.0.0");
  r.enhanced = "5.1.1";  // a class that contradicts the reply code is not kept
  CHECK(from_reply(r, "").status == "4.0.0");
  auto u = unreachable({"a[192.0.2.1]:25: connect failed: Connection refused", "b[192.0.2.2]:25: connect timed out"});
  CHECK(u.fate == Fate::Deferred);
  CHECK(u.status == "4.4.1");
  CHECK(u.text.find("a[192.0.2.1]:25") != std::string::npos);
  CHECK(u.text.find("b[192.0.2.2]:25") != std::string::npos);
  CHECK_FALSE(u.remote);
}
