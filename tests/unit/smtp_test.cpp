// Unit tests for the pure SMTP layer: addresses, commands, parameters, replies, DATA codec.
#include <doctest/doctest.h>

#include "smtp/address.hpp"
#include "smtp/command.hpp"
#include "smtp/data_decoder.hpp"
#include "smtp/dsn_params.hpp"
#include "smtp/headers.hpp"
#include "smtp/reply.hpp"
#include "smtp/reply_parser.hpp"

using namespace tern::smtp;

TEST_CASE("address: mailbox forms") {
  auto p = parse_path("<alice@example.net> SIZE=10", true, false, false);
  REQUIRE(p.ok());
  CHECK(p->address.local == "alice");
  CHECK(p->address.domain == "example.net");
  CHECK(p->address.mailbox() == "alice@example.net");
  CHECK(p->rest == " SIZE=10");

  auto q = parse_path(R"(<"john \"q\" doe"@example.net>)", false, false, false);
  REQUIRE(q.ok());
  CHECK(q->address.local == R"("john \"q\" doe")");

  auto n = parse_path("<>", true, false, false);
  REQUIRE(n.ok());
  CHECK(n->address.null);
  CHECK_FALSE(parse_path("<>", false, false, false).ok());

  auto lit = parse_path("<u@[127.0.0.1]>", false, false, false);
  REQUIRE(lit.ok());
  CHECK(lit->address.literal);
  CHECK(parse_path("<u@[IPv6:::1]>", false, false, false).ok());
  CHECK_FALSE(parse_path("<u@[999.0.0.1]>", false, false, false).ok());

  auto dot = parse_path("<u@Example.NET.>", false, false, false);
  REQUIRE(dot.ok());
  CHECK(dot->address.domain == "Example.NET.");
}

TEST_CASE("address: source routes are parsed and kept apart from the final mailbox") {
  auto p = parse_path("<@partner.example,@b.example:u@victim.example>", false, false, false);
  REQUIRE(p.ok());
  CHECK(p->address.source_route.size() == 2);
  CHECK(p->address.domain == "victim.example");
  CHECK_FALSE(parse_path("<@partner.example u@victim.example>", false, false, false).ok());
}

TEST_CASE("address: postmaster without a domain only where allowed") {
  auto p = parse_path("<Postmaster>", false, true, false);
  REQUIRE(p.ok());
  CHECK(p->address.bare_postmaster());
  CHECK_FALSE(parse_path("<postmaster>", false, false, false).ok());
  CHECK_FALSE(parse_path("<bob>", false, true, false).ok());
}

TEST_CASE("address: malformed input is refused") {
  for (const char* bad : {"alice@example.net", "<alice@example.net", "<alice>", "<@x>", "<a..b@x.org>",
                          "<.a@x.org>", "<a.@x.org>", "<a@-x.org>", "<a@x-.org>", "<a@x..org>",
                          "<a b@x.org>", "<a@x.org", "<\"unterminated@x.org>", "<a@>", "<@a:>"}) {
    CAPTURE(bad);
    CHECK_FALSE(parse_path(bad, true, true, false).ok());
  }
}

TEST_CASE("address: UTF-8 needs SMTPUTF8") {
  const char* utf8 = "<j\xC3\xB6rg@b\xC3\xBC" "cher.example>";
  CHECK_FALSE(parse_path(utf8, false, false, false).ok());
  auto p = parse_path(utf8, false, false, true);
  REQUIRE(p.ok());
  CHECK(p->address.utf8);
  // Malformed UTF-8 is refused even with SMTPUTF8.
  CHECK_FALSE(parse_path("<j\xC3@x.example>", false, false, true).ok());
}

TEST_CASE("address: UTF-8 is validated strictly (RFC 3629) in local parts and domain labels") {
  for (const char* bad : {
           "<\xE0\x80\xAF@example.org>",           // overlong '/' (the attack run's address)
           "<\xC0\xAF@example.org>",                // overlong 2-byte
           "<a\xED\xA0\x80@example.org>",          // surrogate U+D800
           "<a\xF4\x90\x80\x80@example.org>",     // above U+10FFFF
           "<a@b\xE0\x80\xAF" "cher.example>",     // overlong in a domain label
           "<a@b\xED\xBF\xBF" "cher.example>",     // surrogate in a domain label
           "<a@\xF5\x80\x80\x80.example>",
           "<\"q\xE0\x80\xAF\"@example.org>",      // inside a quoted local part
       }) {
    CAPTURE(bad);
    CHECK_FALSE(parse_path(bad, true, false, true).ok());
  }
  CHECK(parse_path("<a\xF4\x8F\xBF\xBF@b\xED\x9F\xBF.example>", true, false, true).ok());
  CHECK_FALSE(valid_domain("b\xE0\x80\xAF" "cher.example", true));
  CHECK(valid_domain("b\xC3\xBC" "cher.example", true));
  // ESMTP parameter values may carry UTF-8 under SMTPUTF8 (RFC 6531 3.3), but well-formed only.
  CHECK(parse_params(" ORCPT=utf-8;r\xC3\xBC" "ck@example.org", true).ok());
  CHECK_FALSE(parse_params(" ORCPT=utf-8;r\xE0\x80\xAF@example.org", true).ok());
}

TEST_CASE("command: verbs are case-insensitive, arguments trimmed") {
  auto c = parse_command("mail FROM:<a@b.c>  ");
  CHECK(c.verb == Verb::Mail);
  CHECK(c.arg == "FROM:<a@b.c>");
  CHECK(parse_command("EhLo x").verb == Verb::Ehlo);
  CHECK(parse_command("DATA").arg.empty());
  CHECK(parse_command("FROBNICATE").verb == Verb::Unknown);
  CHECK(parse_command("").verb == Verb::Unknown);
  CHECK(parse_command("STARTTLS").verb == Verb::Starttls);
}

TEST_CASE("command: FROM:/TO: prefix with optional space") {
  CHECK(strip_prefix("FROM:<a@b.c>", "FROM:").value() == "<a@b.c>");
  CHECK(strip_prefix("from: <a@b.c>", "FROM:").value() == "<a@b.c>");
  CHECK_FALSE(strip_prefix("FROM <a@b.c>", "FROM:").has_value());
}

TEST_CASE("params: keyword and value syntax") {
  auto p = parse_params(" SIZE=1000  body=8BITMIME SMTPUTF8", false);
  REQUIRE(p.ok());
  REQUIRE(p->size() == 3);
  CHECK((*p)[0].keyword == "SIZE");
  CHECK((*p)[0].value.value() == "1000");
  CHECK((*p)[1].keyword == "BODY");
  CHECK_FALSE((*p)[2].value.has_value());
  CHECK_FALSE(parse_params(" SIZE=", false).ok());
  CHECK_FALSE(parse_params(" -X=1", false).ok());
  CHECK_FALSE(parse_params(" X=a=b", false).ok());
  CHECK_FALSE(parse_params(" X=\xC3\xB6", false).ok());
  CHECK(parse_params(" X=\xC3\xB6", true).ok());
}

TEST_CASE("reply: single and multi-line") {
  CHECK(reply(250, "2.1.0", "Ok") == "250 2.1.0 Ok\r\n");
  CHECK(reply(354, "", "Go") == "354 Go\r\n");
  CHECK(reply_lines(250, {"a", "b", "c"}) == "250-a\r\n250-b\r\n250 c\r\n");
}

namespace {
struct Decoded {
  std::string content;
  size_t consumed = 0;
  bool done = false;
  bool bare = false;
  bool long_line = false;
};
Decoded decode(std::string_view in, bool normalize = false, size_t chunk = 0) {
  DataDecoder d({normalize, 1000});
  Decoded r;
  if (chunk == 0) chunk = in.size() ? in.size() : 1;
  size_t pos = 0;
  while (pos < in.size() && !r.done) {
    auto piece = in.substr(pos, chunk);
    auto step = d.feed(piece, r.content);
    pos += step.consumed;
    r.done = step.done;
    if (!step.done) CHECK(step.consumed == piece.size());
  }
  r.consumed = pos;
  r.bare = d.saw_bare_newline();
  r.long_line = d.saw_long_line();
  return r;
}
}  // namespace

TEST_CASE("data: terminator, unstuffing and trailing input") {
  const std::string in = "Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n";
  for (size_t chunk : {0, 1, 2, 3, 7}) {
    CAPTURE(chunk);
    auto r = decode(in, false, chunk);
    CHECK(r.done);
    CHECK(r.content == "Subject: x\r\n\r\n.leading dot\r\n");
    CHECK(in.substr(r.consumed) == "QUIT\r\n");
    CHECK_FALSE(r.bare);
  }
  auto empty = decode(".\r\n");
  CHECK(empty.done);
  CHECK(empty.content.empty());
}

TEST_CASE("data: bare LF and bare CR never end the data") {
  for (const char* smuggle : {"a\n.\nMAIL FROM:<x@y>\r\n", "a\r\n.\nMAIL\r\n", "a\n.\r\nMAIL\r\n",
                              "a\r.\r\nMAIL\r\n", "a\r\n.\rMAIL\r\n", "a\r\n.\r\r\nMAIL\r\n"}) {
    CAPTURE(smuggle);
    for (bool normalize : {false, true}) {
      std::string in = std::string(smuggle) + "tail\r\n.\r\n";
      auto r = decode(in, normalize);
      CHECK(r.done);
      CHECK(r.consumed == in.size());  // only the real CRLF.CRLF ended it
      CHECK(r.bare);
      if (normalize) {
        // Stored content has no bare CR or LF left.
        for (size_t i = 0; i < r.content.size(); ++i) {
          if (r.content[i] == '\n') CHECK((i > 0 && r.content[i - 1] == '\r'));
          if (r.content[i] == '\r') CHECK((i + 1 < r.content.size() && r.content[i + 1] == '\n'));
        }
      }
    }
  }
}

TEST_CASE("data: long lines are flagged, not cut") {
  std::string line(998, 'x');
  CHECK_FALSE(decode(line + "\r\n.\r\n").long_line);
  auto r = decode(line + "y\r\n.\r\n");
  CHECK(r.long_line);
  CHECK(r.content.size() == 1001);
}

TEST_CASE("headers: counting Received and spotting Message-ID/Date") {
  const std::string block =
      "Received: from a\r\n\tby b\r\nreceived: x\r\nMessage-Id: <1@x>\r\nSubject: Date: no\r\n\r\n";
  auto s = scan_headers(block);
  CHECK(s.received == 2);
  CHECK(s.has_message_id);
  CHECK_FALSE(s.has_date);
  CHECK(header_block_length(block + "body") == block.size());
  CHECK(header_block_length("\r\nbody") == 2);
  CHECK(header_block_length("Subject: x\r\n") == std::string::npos);
}

TEST_CASE("orcpt: xtext-encoded UTF-8 and RFC 6533 utf-8 forms decode to one internal form") {
  const std::string ruck = "r\xC3\xBC" "ck@example.org";
  // Postfix: rfc822 type with the UTF-8 octets xtext-encoded.
  auto a = parse_orcpt("rfc822;r+C3+BCck@example.org");
  REQUIRE(a.ok());
  // RFC 6533: utf-8-addr-unitext (raw UTF-8, under SMTPUTF8) and utf-8-addr-xtext.
  auto b = parse_orcpt("utf-8;r\xC3\xBC" "ck@example.org");
  REQUIRE(b.ok());
  auto c = parse_orcpt("UTF-8;r\\x{FC}ck@example.org");
  REQUIRE(c.ok());
  auto d = parse_orcpt("utf-8;r+C3+BCck@example.org");
  REQUIRE(d.ok());
  for (const auto* o : {&*a, &*b, &*c, &*d}) {
    CHECK(o->address == ruck);
    // Stored and passed on as pure ASCII any DSN-capable next hop accepts.
    CHECK(format_orcpt(*o) == "utf-8;r\\x{FC}ck@example.org");
  }
  CHECK(b->addr_type == "utf-8");
  CHECK(parse_orcpt("utf-8;\\x{1F4E7}@x.example")->address == "\xF0\x9F\x93\xA7@x.example");
  CHECK(format_orcpt(*parse_orcpt("utf-8;\xF0\x9F\x93\xA7@x.example")) == "utf-8;\\x{1F4E7}@x.example");
  // ASCII addresses go on as rfc822 + xtext, whatever type they came with.
  CHECK(format_orcpt(*parse_orcpt("RFC822;a+2Bb@example.org")) == "rfc822;a+2Bb@example.org");
  CHECK(format_orcpt(*parse_orcpt("utf-8;a\\x{2B}b@example.org")) == "rfc822;a+2Bb@example.org");
  // The utf-8 form escapes '+', '=', '\', SP and controls.
  CHECK(format_orcpt({"utf-8", "\xC3\xBC+=\\ \x01@x"}) == "utf-8;\\x{FC}\\x{2B}\\x{3D}\\x{5C}\\x{20}\\x{01}@x");
}

TEST_CASE("orcpt: unusual values are accepted, only broken syntax is refused") {
  // Non-printable decoded content and unknown address types are not the client's error.
  auto ctl = parse_orcpt("rfc822;a+01b@example.org");
  REQUIRE(ctl.ok());
  CHECK(format_orcpt(*ctl) == "rfc822;a+01b@example.org");
  auto latin1 = parse_orcpt("rfc822;r+FCck@example.org");  // 8-bit, not UTF-8
  REQUIRE(latin1.ok());
  CHECK(format_orcpt(*latin1) == "rfc822;r+FCck@example.org");
  auto x400 = parse_orcpt("x400;/C+3DDE/S+3DMueller+20Hans");
  REQUIRE(x400.ok());
  CHECK(x400->address == "/C=DE/S=Mueller Hans");
  CHECK(format_orcpt(*x400) == "x400;/C+3DDE/S+3DMueller+20Hans");
  CHECK(parse_orcpt(std::string("rfc822;") + std::string(600, 'a') + "@x").ok());
  // Broken syntax still gets a 501.
  CHECK_FALSE(parse_orcpt("rfc822;a+4@x").ok());
  CHECK_FALSE(parse_orcpt("rfc822;a+zz@x").ok());
  CHECK_FALSE(parse_orcpt("utf-8;a\\x{}@x").ok());
  CHECK_FALSE(parse_orcpt("utf-8;a\\x{D800}@x").ok());
  CHECK_FALSE(parse_orcpt("utf-8;a\\x{110000}@x").ok());
  CHECK_FALSE(parse_orcpt("utf-8;a\\x{FC@x").ok());
  CHECK_FALSE(parse_orcpt("utf-8;r\xE0\x80\xAF@x").ok());
  CHECK_FALSE(parse_orcpt("rfc822;").ok());
  CHECK_FALSE(parse_orcpt(";a@x").ok());
}

TEST_CASE("reply parser: the line cap applies to complete lines too") {
  std::vector<Reply> out;
  // 4096 octets of text is the limit; a longer line is refused whether or not its LF
  // arrived in the same read.
  ReplyParser ok;
  REQUIRE(ok.feed("250 " + std::string(4092, 'a') + "\r\n", out).ok());
  CHECK(out.size() == 1);
  ReplyParser whole;
  CHECK_FALSE(whole.feed("250 " + std::string(5000, 'a') + "\r\n", out).ok());
  ReplyParser multi;
  CHECK_FALSE(multi.feed("250-" + std::string(5000, 'a') + "\r\n250 ok\r\n", out).ok());
  ReplyParser split;
  REQUIRE(split.feed("250 " + std::string(4000, 'a'), out).ok());
  CHECK_FALSE(split.feed(std::string(1000, 'a') + "\r\n", out).ok());
  // A malformed line is quoted in the error (which is logged) with its controls escaped.
  ReplyParser bad;
  auto st = bad.feed("\x1b[2Jhello\r\n", out);
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().message == "malformed reply line: \\x1b[2Jhello");
}

TEST_CASE("headers: the end of the header block is found incrementally, each octet once") {
  // 200 KiB of header fields arriving one octet at a time: the old full rescan per read
  // looked at ~20 G octets; the incremental search at most 4 per appended octet.
  std::string field = "X-Filler: " + std::string(60, 'f') + "\r\n";
  std::string block;
  while (block.size() < 200 * 1024) block += field;
  const std::string message = block + "\r\nbody\r\n";
  HeaderEnd end;
  std::string buf;
  size_t found = std::string::npos, calls = 0;
  for (char c : message) {
    buf += c;
    ++calls;
    found = end.find(buf);
    if (found != std::string::npos) break;
  }
  CHECK(found == block.size() + 2);
  CHECK(found == header_block_length(message));
  CHECK(end.examined() <= 4 * calls);
  // The terminator split at every position across two appends, and no header at all.
  for (size_t cut = 1; cut < 8; ++cut) {
    const std::string m = "A: b\r\n\r\nbody";
    HeaderEnd e;
    CHECK(e.find(m.substr(0, cut)) == std::string::npos);
    CHECK(e.find(m) == 8);
  }
  HeaderEnd none;
  CHECK(none.find("\r") == std::string::npos);
  CHECK(none.find("\r\nbody") == 2);
}
