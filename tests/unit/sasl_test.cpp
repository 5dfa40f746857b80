// Unit tests for smtp/sasl (the AUTH argument, PLAIN and LOGIN exchanges) and the strict
// base64 they rely on.
#include <doctest/doctest.h>

#include <string>

#include "smtp/base64.hpp"
#include "smtp/sasl.hpp"

using namespace tern::smtp::sasl;
using tern::smtp::base64_decode;
using tern::smtp::base64_encode;
using namespace std::string_literals;

TEST_CASE("sasl: base64 round trip over every length and byte") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += char(i);
  for (size_t n = 0; n <= all.size(); ++n) {
    const std::string in = all.substr(all.size() - n);
    const std::string enc = base64_encode(in);
    CHECK(enc.size() % 4 == 0);
    const auto dec = base64_decode(enc);
    REQUIRE(dec.has_value());
    CHECK(*dec == in);
  }
  // RFC 4648 §10 test vectors.
  CHECK(base64_encode("") == "");
  CHECK(base64_encode("f") == "Zg==");
  CHECK(base64_encode("fo") == "Zm8=");
  CHECK(base64_encode("foo") == "Zm9v");
  CHECK(base64_encode("foobar") == "Zm9vYmFy");
  CHECK(base64_decode("Zm9vYg==").value() == "foob");
}

TEST_CASE("sasl: base64 decoding is strict") {
  CHECK_FALSE(base64_decode("Zm9").has_value());       // not a multiple of 4
  CHECK_FALSE(base64_decode("Zm9v YmFy").has_value()); // whitespace
  CHECK_FALSE(base64_decode("Zm9v\r\n").has_value());
  CHECK_FALSE(base64_decode("Zm-v").has_value());      // URL alphabet
  CHECK_FALSE(base64_decode("Zg=v").has_value());      // data after padding
  CHECK_FALSE(base64_decode("Z===").has_value());      // too much padding
  CHECK_FALSE(base64_decode("====").has_value());
  CHECK_FALSE(base64_decode("Zg==Zg==").has_value());  // padding before the end
  CHECK_FALSE(base64_decode("Zh==").has_value());      // non-zero pad bits
  CHECK_FALSE(base64_decode("Zm9=").has_value());
  CHECK(base64_decode("Zm8=").value() == "fo");
  CHECK(base64_decode("").value().empty());
}

TEST_CASE("sasl: PLAIN message fields (RFC 4616)") {
  auto c = parse_plain("\0alice\0secret"s);
  REQUIRE(c.has_value());
  CHECK(c->user == "alice");
  CHECK(c->password == "secret");
  auto same = parse_plain("alice\0alice\0pw"s);
  REQUIRE(same.has_value());
  CHECK(same->user == "alice");
  CHECK_FALSE(parse_plain("bob\0alice\0pw"s).has_value());   // proxy authorization
  CHECK_FALSE(parse_plain("\0alice\0"s).has_value());        // empty password
  CHECK_FALSE(parse_plain("\0\0pw"s).has_value());           // empty user
  CHECK_FALSE(parse_plain("alice\0pw"s).has_value());        // one NUL
  CHECK_FALSE(parse_plain("\0alice\0pw\0x"s).has_value());   // a NUL in the password
  CHECK_FALSE(parse_plain("").has_value());
  CHECK(parse_plain("\0"s + std::string(255, 'u') + "\0"s + std::string(255, 'p')).has_value());
  CHECK_FALSE(parse_plain("\0"s + std::string(256, 'u') + "\0pw"s).has_value());
  CHECK_FALSE(parse_plain("\0u\0"s + std::string(256, 'p')).has_value());
}

TEST_CASE("sasl: AUTH PLAIN with and without an initial response") {
  Exchange ex;
  Step s = ex.begin("PLAIN " + sasl_plain_response("alice", "secret"));
  REQUIRE(s.kind == Step::Kind::Done);
  CHECK(s.credentials.user == "alice");
  CHECK(s.credentials.password == "secret");

  Exchange ex2;
  s = ex2.begin("plain");
  REQUIRE(s.kind == Step::Kind::Challenge);
  CHECK(s.challenge.empty());  // "334 " with nothing after it
  s = ex2.respond(sasl_plain_response("bob", "pw"));
  REQUIRE(s.kind == Step::Kind::Done);
  CHECK(s.credentials.user == "bob");

  // "=" is an empty initial response: a PLAIN message cannot be empty.
  Exchange ex3;
  s = ex3.begin("PLAIN =");
  CHECK(s.kind == Step::Kind::Failed);
  CHECK(s.failure == Failure::Malformed);
}

TEST_CASE("sasl: AUTH LOGIN takes the user name, then the password") {
  Exchange ex;
  Step s = ex.begin("LOGIN");
  REQUIRE(s.kind == Step::Kind::Challenge);
  CHECK(base64_decode(s.challenge).value() == "Username:");
  s = ex.respond(base64_encode("carol"));
  REQUIRE(s.kind == Step::Kind::Challenge);
  CHECK(base64_decode(s.challenge).value() == "Password:");
  s = ex.respond(base64_encode("pw 1"));
  REQUIRE(s.kind == Step::Kind::Done);
  CHECK(s.credentials.user == "carol");
  CHECK(s.credentials.password == "pw 1");

  Exchange ex2;  // the user name as initial response
  s = ex2.begin("LOGIN " + base64_encode("dave"));
  REQUIRE(s.kind == Step::Kind::Challenge);
  CHECK(base64_decode(s.challenge).value() == "Password:");
  s = ex2.respond(base64_encode("x"));
  REQUIRE(s.kind == Step::Kind::Done);
  CHECK(s.credentials.user == "dave");

  Exchange ex3;
  s = ex3.begin("LOGIN");
  s = ex3.respond("");  // an empty user name
  CHECK(s.kind == Step::Kind::Failed);
  CHECK(s.failure == Failure::Malformed);
}

TEST_CASE("sasl: cancel, bad base64, syntax and unknown mechanisms") {
  Exchange ex;
  REQUIRE(ex.begin("LOGIN").kind == Step::Kind::Challenge);
  Step s = ex.respond("*");
  CHECK(s.kind == Step::Kind::Failed);
  CHECK(s.failure == Failure::Cancelled);
  // The exchange is over: a further line is not taken as a response.
  CHECK(ex.respond(base64_encode("x")).failure == Failure::Syntax);

  Exchange ex2;
  REQUIRE(ex2.begin("PLAIN").kind == Step::Kind::Challenge);
  s = ex2.respond("not base64!");
  CHECK(s.failure == Failure::BadBase64);

  CHECK(Exchange().begin("PLAIN *").failure == Failure::Cancelled);
  CHECK(Exchange().begin("PLAIN AGFsaWNl!").failure == Failure::BadBase64);
  CHECK(Exchange().begin("").failure == Failure::Syntax);
  CHECK(Exchange().begin("PLAIN a b").failure == Failure::Syntax);
  CHECK(Exchange().begin("PLAIN  AAAA").failure == Failure::Syntax);
  CHECK(Exchange().begin("PL@IN").failure == Failure::Syntax);
  CHECK(Exchange().begin("CRAM-MD5").failure == Failure::UnknownMechanism);
  CHECK(Exchange().begin("XOAUTH2 abcd").failure == Failure::UnknownMechanism);
}

TEST_CASE("sasl: the client's PLAIN response") {
  CHECK(sasl_plain_response("user", "pass") == "AHVzZXIAcGFzcw==");
  auto c = parse_plain(base64_decode(sasl_plain_response("u@example.net", "p:w")).value());
  REQUIRE(c.has_value());
  CHECK(c->user == "u@example.net");
  CHECK(c->password == "p:w");
}
