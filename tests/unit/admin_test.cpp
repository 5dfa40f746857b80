// Unit tests for the control command line, JSON escaping and the operator output shapes.
#include <doctest/doctest.h>

#include "admin/command.hpp"
#include "admin/format.hpp"
#include "common/json.hpp"
#include "queue/codec.hpp"

using namespace tern;
using namespace tern::admin;

TEST_CASE("control: command lines and their selectors") {
  auto q = parse_control("queue --json");
  REQUIRE(q.ok());
  CHECK(q->verb == ControlCommand::Verb::Queue);
  CHECK(q->json);
  auto s = parse_control("show --body 1K1DH43WNJ6");
  REQUIRE(s.ok());
  CHECK(s->body);
  CHECK(s->id == "1K1DH43WNJ6");
  auto h = parse_control("hold A1 B2");
  REQUIRE(h.ok());
  CHECK(h->selector.ids == std::vector<std::string>{"A1", "B2"});
  auto d = parse_control("delete --domain Ops.Example. --sender a@b.example");
  REQUIRE(d.ok());
  CHECK(d->selector.domain == "ops.example");
  CHECK(d->selector.sender == "a@b.example");
  auto n = parse_control("delete --sender <>");
  REQUIRE(n.ok());
  CHECK(n->selector.sender == "<>");
  auto f = parse_control("flush");
  REQUIRE(f.ok());
  CHECK_FALSE(f->has_selector());
  CHECK_FALSE(parse_control("hold").ok());          // needs a selector
  CHECK_FALSE(parse_control("hold --all X1").ok());  // ids or a filter, not both
  CHECK_FALSE(parse_control("show").ok());
  CHECK_FALSE(parse_control("show ../../etc").ok());
  CHECK_FALSE(parse_control("queue --body").ok());
  CHECK_FALSE(parse_control("delete --domain").ok());
  CHECK(parse_control("frob").error().message.find("unknown command") != std::string::npos);
}

TEST_CASE("json: strings are escaped and always valid UTF-8") {
  CHECK(json_string("a\"b\\c") == "\"a\\\"b\\\\c\"");
  CHECK(json_string("l1\r\nl2\t\x01") == "\"l1\\r\\nl2\\t\\u0001\"");
  CHECK(json_string("r\xc3\xbc" "ck") == "\"r\xc3\xbc" "ck\"");
  CHECK(json_string("bad\xff") == "\"bad\\ufffd\"");
  CHECK(json_string("\xe2\x82") == "\"\\ufffd\\ufffd\"");  // a truncated sequence
}

TEST_CASE("queue history: status and operator records in order; torn or unknown ones skipped") {
  const std::string trailer = queue::encode_status(0, queue::RcptState::Deferred, 5000000, "mx[192.0.2.1]:25", "451 4.2.0 busy") +
                              queue::encode_status_code(0, "4.2.0", true) + queue::encode_held(6000000) +
                              "future-record x\n" + queue::encode_released(7000000) +
                              queue::encode_status(0, queue::RcptState::Delivered, 8000000, "", "250 ok") + "status 0 deliv";
  const auto h = queue::history_of(trailer);
  REQUIRE(h.size() == 4);
  CHECK(h[0].what == "deferred");
  CHECK(h[0].relay == "mx[192.0.2.1]:25");
  CHECK(h[0].reply == "451 4.2.0 busy");
  CHECK(h[1].what == "held");
  CHECK(h[1].rcpt == -1);
  CHECK(h[2].what == "released");
  CHECK(h[3].what == "delivered");
  CHECK(h[3].relay.empty());
}

TEST_CASE("stats: text lines and JSON") {
  Counters c;
  c.received = 3;
  c.rejected["550 5.7.1"] = 2;
  Gauges g;
  g.queue = 1;
  const std::string text = format_stats(c, g, false);
  CHECK(text.find("received 3\n") != std::string::npos);
  CHECK(text.find("rejected 2\n") != std::string::npos);
  CHECK(text.find("rejected[550 5.7.1] 2\n") != std::string::npos);
  const std::string json = format_stats(c, g, true);
  CHECK(json.find("\"received\":3") != std::string::npos);
  CHECK(json.find("\"rejected_by_reason\":{\"550 5.7.1\":2}") != std::string::npos);
}
