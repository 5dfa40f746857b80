// Unit tests for the metrics endpoint's pure parts: request judging and the exposition.
#include <doctest/doctest.h>

#include "metrics/exposition.hpp"

using namespace tern;
using namespace tern::metrics;

TEST_CASE("metrics: only a well-formed GET /metrics is served") {
  CHECK(judge_request("GET /metrics HTTP/1.1\r\nHost: x\r\n") == Verdict::NeedMore);
  CHECK(judge_request("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n") == Verdict::Ok);
  CHECK(judge_request("GET /metrics HTTP/1.0\n\n") == Verdict::Ok);
  CHECK(judge_request("GET / HTTP/1.0\r\n\r\n") == Verdict::NotFound);
  CHECK(judge_request("POST /metrics HTTP/1.0\r\n\r\n") == Verdict::MethodNotAllowed);
  CHECK(judge_request("GET /metrics\r\n\r\n") == Verdict::BadRequest);
  CHECK(judge_request("GET /metrics HTTP/2\r\n\r\n") == Verdict::BadRequest);
  CHECK(judge_request("get /metrics HTTP/1.0\r\n\r\n") == Verdict::BadRequest);
  CHECK(judge_request("EHLO x\r\n\r\n") == Verdict::BadRequest);
  CHECK(judge_request(std::string(kMaxRequest + 1, 'a')) == Verdict::BadRequest);
  const std::string r = response(Verdict::MethodNotAllowed, "");
  CHECK(r.starts_with("HTTP/1.0 405 Method Not Allowed\r\n"));
  CHECK(r.find("Allow: GET\r\n") != std::string::npos);
  CHECK(r.find("Connection: close\r\n") != std::string::npos);
}

TEST_CASE("metrics: the exposition carries counters, gauges and a cumulative histogram") {
  Counters c;
  c.received = 5;
  c.delivered = 4;
  c.rejected["550 5.7.1"] = 2;
  c.delivery_delay.observe(0.05);
  c.delivery_delay.observe(2);
  c.delivery_delay.observe(100000);
  Gauges g;
  g.queue = 3;
  const std::string e = exposition(c, g);
  CHECK(e.find("tern_messages_received_total 5\n") != std::string::npos);
  CHECK(e.find("tern_deliveries_total{status=\"sent\"} 4\n") != std::string::npos);
  CHECK(e.find("tern_smtp_rejects_total{reason=\"550 5.7.1\"} 2\n") != std::string::npos);
  CHECK(e.find("tern_queue_messages 3\n") != std::string::npos);
  CHECK(e.find("tern_delivery_delay_seconds_bucket{le=\"0.1\"} 1\n") != std::string::npos);
  CHECK(e.find("tern_delivery_delay_seconds_bucket{le=\"5\"} 2\n") != std::string::npos);
  CHECK(e.find("tern_delivery_delay_seconds_bucket{le=\"+Inf\"} 3\n") != std::string::npos);
  CHECK(e.find("tern_delivery_delay_seconds_count 3\n") != std::string::npos);
  CHECK(e.find("# TYPE tern_delivery_delay_seconds histogram\n") != std::string::npos);
}
