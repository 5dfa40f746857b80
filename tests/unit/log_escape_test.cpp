// Unit tests for log escaping and the strict UTF-8 decoder (common/log_escape).
#include <doctest/doctest.h>

#include <string>

#include "common/log_escape.hpp"

using namespace tern;

TEST_CASE("log_safe: control characters cannot end or forge a log line") {
  CHECK(log_safe("FOO bar") == "FOO bar");
  CHECK(log_safe("a\r\nFAKE: line") == "a\\r\\nFAKE: line");
  CHECK(log_safe("\x1b[2J\x07") == "\\x1b[2J\\x07");
  CHECK(log_safe(std::string("a\0b", 3)) == "a\\x00b");
  CHECK(log_safe("\x7f\t") == "\\x7f\\t");
  // The escape character itself is escaped, so an escaped form cannot be faked.
  CHECK(log_safe("\\x1b") == "\\\\x1b");
}

TEST_CASE("log_safe: invalid UTF-8 becomes \\xNN, valid printable UTF-8 stays") {
  CHECK(log_safe("r\xc3\xbc" "ck") == "r\xc3\xbc" "ck");
  CHECK(log_safe("\xe2\x82\xac \xf0\x9f\x93\xa7") == "\xe2\x82\xac \xf0\x9f\x93\xa7");
  CHECK(log_safe("\xff\xfe") == "\\xff\\xfe");
  CHECK(log_safe("\xc3") == "\\xc3");                 // truncated
  CHECK(log_safe("\xc0\xaf") == "\\xc0\\xaf");        // overlong '/'
  CHECK(log_safe("\xed\xa0\x80") == "\\xed\\xa0\\x80");  // surrogate U+D800
  // C1 controls (CSI) and bidirectional overrides are valid UTF-8 but still escaped.
  CHECK(log_safe("\xc2\x9b" "31m") == "\\u009b31m");
  CHECK(log_safe("a\xe2\x80\xae" "b") == "a\\u202eb");
  CHECK(log_safe("\xe2\x80\xa8") == "\\u2028");
}

TEST_CASE("utf8: strict RFC 3629 decoding") {
  CHECK(utf8_char_length("a") == 1);
  CHECK(utf8_char_length("\xc3\xbc") == 2);
  CHECK(utf8_char_length("\xe2\x82\xac") == 3);
  CHECK(utf8_char_length("\xf4\x8f\xbf\xbf") == 4);  // U+10FFFF, the last code point
  CHECK(utf8_char_length("") == 0);
  CHECK(utf8_char_length("\x80") == 0);              // lone continuation byte
  CHECK(utf8_char_length("\xc1\xbf") == 0);          // overlong 2-byte
  CHECK(utf8_char_length("\xe0\x80\xaf") == 0);      // overlong 3-byte '/'
  CHECK(utf8_char_length("\xe0\x9f\xbf") == 0);      // overlong 3-byte
  CHECK(utf8_char_length("\xf0\x8f\xbf\xbf") == 0);  // overlong 4-byte
  CHECK(utf8_char_length("\xed\xa0\x80") == 0);      // U+D800 surrogate
  CHECK(utf8_char_length("\xed\xbf\xbf") == 0);      // U+DFFF surrogate
  CHECK(utf8_char_length("\xed\x9f\xbf") == 3);      // U+D7FF is fine
  CHECK(utf8_char_length("\xf4\x90\x80\x80") == 0);  // U+110000
  CHECK(utf8_char_length("\xf5\x80\x80\x80") == 0);
  CHECK(utf8_char_length("\xe2\x82") == 0);          // truncated
  CHECK(utf8_char_length("\xe2\x28\xa1") == 0);      // bad continuation
  CHECK(valid_utf8("r\xc3\xbc" "ck@b\xc3\xbc" "cher.example"));
  CHECK_FALSE(valid_utf8("ok\xe0\x80\xaf"));
}
