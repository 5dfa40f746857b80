// Unit tests for the JSON shape of tern's log lines.
#include <doctest/doctest.h>

#include "common/log_format.hpp"

using namespace tern;

TEST_CASE("json logs: component, key=value fields (bracketed and quoted values), the message kept") {
  const std::string j = json_log_line(
      "2026-11-29T10:00:00.000Z", "info",
      "delivery: id=1K1DF9FEK0T to=<u@x.example> relay=mx.x.example[192.0.2.1]:25 tls=TLSv1.3 "
      "delay=0.1s dsn=2.0.0 status=sent (250 2.0.0 OK)");
  CHECK(j.starts_with("{\"ts\":\"2026-11-29T10:00:00.000Z\",\"level\":\"info\",\"component\":\"delivery\","));
  CHECK(j.find("\"id\":\"1K1DF9FEK0T\"") != std::string::npos);
  CHECK(j.find("\"to\":\"u@x.example\"") != std::string::npos);
  CHECK(j.find("\"relay\":\"mx.x.example[192.0.2.1]:25\"") != std::string::npos);
  CHECK(j.find("\"status\":\"sent\"") != std::string::npos);
  CHECK(j.find("\"msg\":\"id=1K1DF9FEK0T") != std::string::npos);
  CHECK(j.ends_with("(250 2.0.0 OK)\"}"));
  // No component word, quotes and control characters in the text, duplicate and reserved keys.
  const std::string k = json_log_line("", "warning", "bad \"x\"\x01 level=9 a=1 a=2");
  CHECK(k.find("\"ts\"") == std::string::npos);
  CHECK(k.find("\"component\"") == std::string::npos);
  CHECK(k.find("\"a\":\"1\"") != std::string::npos);
  CHECK(k.find("\"a\":\"2\"") == std::string::npos);
  CHECK(k.find("\"level\":\"9\"") == std::string::npos);
  CHECK(k.find("\\u0001") != std::string::npos);
}
