// Unit tests for queue records (codec) and ids.
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>

#include "queue/codec.hpp"
#include "queue/crc32c.hpp"
#include "queue/queue_id.hpp"

using namespace tern::queue;

namespace {
Envelope sample() {
  Envelope e;
  e.id = encode_id(1764066538123456);
  e.arrival_us = 1764066538123456;
  e.client_address = "127.0.0.1";
  e.client_port = 50312;
  e.client_helo = "client with spaces\tand tab";
  e.client_relay = true;
  e.protocol = "ESMTP";
  e.sender = "\"odd sender\"@example.net";
  e.mail_params = {"BODY=8BITMIME", "SIZE=1234"};
  Recipient a;
  a.address = "bob@partner.example";
  Recipient b;
  b.address = "hostmaster@example.net";
  b.original = "postmaster";
  b.params = {"NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;x%y@z"};
  e.recipients = {a, b};
  return e;
}
}  // namespace

TEST_CASE("codec: header round trip") {
  const Envelope e = sample();
  const std::string data = "Subject: hi\r\n\r\nbody\r\n";
  std::string file = encode_header(e, data.size()) + data;
  auto p = parse_header(file);
  REQUIRE(p.ok());
  const Envelope& d = p->envelope;
  CHECK(d.id == e.id);
  CHECK(d.arrival_us == e.arrival_us);
  CHECK(d.client_address == e.client_address);
  CHECK(d.client_port == e.client_port);
  CHECK(d.client_helo == e.client_helo);
  CHECK(d.client_relay);
  CHECK(d.protocol == "ESMTP");
  CHECK(d.sender == e.sender);
  CHECK(d.mail_params == e.mail_params);
  REQUIRE(d.recipients.size() == 2);
  CHECK(d.recipients[1].address == "hostmaster@example.net");
  CHECK(d.recipients[1].original == "postmaster");
  CHECK(d.recipients[1].params == e.recipients[1].params);
  CHECK(p->data_size == data.size());
  CHECK(file.substr(p->header_length) == data);
  // Records stay one per line: no raw space/tab in token fields.
  CHECK(file.find("sender <\"odd%20sender\"@example.net>\n") != std::string::npos);
}

TEST_CASE("codec: a bounce names the message and recipients it reports") {
  Envelope e = sample();
  e.notice_for = "1K130000000";
  e.notice_rcpts = {0, 3};
  auto p = parse_header(encode_header(e, 0));
  REQUIRE(p.ok());
  CHECK(p->envelope.notice_for == "1K130000000");
  CHECK(p->envelope.notice_rcpts == std::vector<size_t>{0, 3});
  CHECK_FALSE(parse_header("TERN-QUEUE 1\nid X\nsender <>\nrcpt <a@b>\nnotice-for X 1,,2\ndata-size 00000000000000000000\ndata\n").ok());
}

TEST_CASE("codec: null sender and data-size patching") {
  Envelope e = sample();
  e.sender.clear();
  std::string h = encode_header(e, 0);
  CHECK(h.find("sender <>\n") != std::string::npos);
  const size_t at = data_size_offset(h);
  h.replace(at, kDataSizeDigits, format_data_size(42));
  auto p = parse_header(h + std::string(42, 'x'));
  REQUIRE(p.ok());
  CHECK(p->envelope.sender.empty());
  CHECK(p->data_size == 42);
}

TEST_CASE("codec: status records, last wins, torn tail ignored") {
  Envelope e = sample();
  std::string trailer = encode_status(0, RcptState::Deferred, 10, "mx[192.0.2.1]:25", "451 4.3.0 try later") +
                        encode_status(0, RcptState::Delivered, 20, "mx[192.0.2.1]:25", "250 ok") +
                        encode_status(1, RcptState::Failed, 30, "", "550 5.1.1 no such user") +
                        encode_delay_warned(25) +
                        "status 1 delivered 40 - torn";  // no newline: a crash mid-append
  REQUIRE(apply_status_records(e, trailer).ok());
  CHECK(e.recipients[0].state == RcptState::Delivered);
  CHECK(e.recipients[0].last_reply == "250 ok");
  CHECK(e.recipients[1].state == RcptState::Failed);
  CHECK(e.recipients[1].last_reply == "550 5.1.1 no such user");
  CHECK(e.recipients[1].updated_us == 30);
  CHECK(e.recipients[0].last_relay == "mx[192.0.2.1]:25");
  CHECK(e.recipients[1].last_relay.empty());
  CHECK(e.recipients[0].attempts == 1);
  CHECK(e.delay_warned_us == 25);
  Envelope f = sample();
  CHECK_FALSE(apply_status_records(f, "status 9 delivered 1 - x\n").ok());
  CHECK_FALSE(apply_status_records(f, "delay-warned soon\n").ok());
  CHECK_FALSE(apply_status_records(f, "Garbage!\n").ok());  // not a record key at all
  CHECK_FALSE(apply_status_records(f, "\n").ok());
}

TEST_CASE("codec: status-code records carry the outcome's code and source with the status") {
  Envelope e = sample();
  std::string trailer = encode_status(0, RcptState::Deferred, 10, "", "No host could be reached: a[192.0.2.1]:25") +
                        encode_status_code(0, "4.4.1", false) +
                        encode_status(1, RcptState::Failed, 30, "mx[192.0.2.1]:25", "MAIL: 550 5.7.1 refused") +
                        encode_status_code(1, "5.7.1", true);
  REQUIRE(apply_status_records(e, trailer).ok());
  CHECK(e.recipients[0].last_status == "4.4.1");
  CHECK_FALSE(e.recipients[0].last_remote);
  CHECK(e.recipients[1].last_status == "5.7.1");
  CHECK(e.recipients[1].last_remote);
  // A later status without its code (an older writer) does not keep the stale code.
  REQUIRE(apply_status_records(e, encode_status(0, RcptState::Deferred, 40, "", "451 4.3.2 later")).ok());
  CHECK(e.recipients[0].last_status.empty());
  Envelope f = sample();
  CHECK_FALSE(apply_status_records(f, "status-code 0 4.4.1 somewhere\n").ok());
  CHECK_FALSE(apply_status_records(f, "status-code 9 4.4.1 local\n").ok());
}

TEST_CASE("codec: malformed headers are refused") {
  const Envelope e = sample();
  const std::string good = encode_header(e, 0);
  CHECK_FALSE(parse_header("TERN-QUEUE 2\n").ok());
  CHECK_FALSE(parse_header("TERN-QUEUE x\n").ok());
  CHECK_FALSE(parse_header(good.substr(0, good.size() - 5)).ok());  // no data line
  // Version 1 knows every record: an unknown one is damage.
  std::string unknown = good;
  unknown.replace(0, kMagic.size(), "TERN-QUEUE 1");
  unknown.insert(unknown.find("sender"), "frobnicate 1\n");
  CHECK_FALSE(parse_header(unknown).ok());
  std::string bad_key = good;
  bad_key.insert(bad_key.find("sender"), "Frob!nicate 1\n");
  CHECK_FALSE(parse_header(bad_key).ok());
  std::string no_rcpt = good;
  while (no_rcpt.find("rcpt ") != std::string::npos) {
    size_t a = no_rcpt.find("rcpt ");
    no_rcpt.erase(a, no_rcpt.find('\n', a) - a + 1);
  }
  CHECK_FALSE(parse_header(no_rcpt).ok());
}

TEST_CASE("codec: escaping round trip") {
  const std::string raw = "a b%c\r\n\x01\x7f\xC3\xB6";
  CHECK(unescape(escape_token(raw)).value() == raw);
  CHECK(unescape(escape_text(raw)).value() == raw);
  CHECK(escape_token(raw).find(' ') == std::string::npos);
  CHECK_FALSE(unescape("%G1").ok());
  CHECK_FALSE(unescape("%4").ok());
}

TEST_CASE("ids: fixed length, sortable, strictly increasing") {
  IdGenerator g;
  std::string prev = g.next(1000);
  CHECK(prev.size() == 11);
  CHECK(valid_id(prev));
  for (uint64_t t : {1000ull, 999ull, 1001ull, 5000000ull, 1764066538123456ull}) {
    std::string id = g.next(t);
    CHECK(id > prev);
    prev = id;
  }
  CHECK(encode_id(1) < encode_id(2));
  CHECK(encode_id(31) < encode_id(32));
  CHECK_FALSE(valid_id("0123456789I"));
  CHECK_FALSE(valid_id("short"));
}

// Golden: a queue file exactly as queue-format.md describes it (tests/golden/queue_file.ref).
TEST_CASE("codec: golden queue file, written and read") {
  Envelope e;
  e.id = "1K130000000";
  e.arrival_us = 1764066538123456;
  e.client_address = "192.0.2.7";
  e.client_port = 50312;
  e.client_helo = "client.example";
  e.protocol = "ESMTP";
  e.sender = "alice@sender.example";
  e.mail_params = {"BODY=8BITMIME", "ENVID=env+2B42"};
  Recipient a;
  a.address = "bob@partner.example";
  a.params = {"NOTIFY=FAILURE,DELAY"};
  Recipient b;
  b.address = "hostmaster@example.net";
  b.original = "postmaster";
  e.recipients = {a, b};
  const std::string data = "Subject: hi\r\n\r\nbody\r\n";
  const std::string header = encode_header(e, data.size());
  const std::string file =
      header + data + encode_end(crc32c(crc32c(0, data), header)) +
      encode_status(0, RcptState::Deferred, 1764066600000000, "mx1.partner.example[192.0.2.25]:25",
                    "451 4.2.2 Mailbox full") +
      encode_status(1, RcptState::Failed, 1764066601000000, "", "5.1.2 Domain example.net does not exist (NXDOMAIN)") +
      encode_delay_warned(1764081000000000);
  std::ifstream f(std::string(TERN_SOURCE_DIR) + "/tests/golden/queue_file.ref", std::ios::binary);
  REQUIRE(f.good());
  const std::string ref((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  CHECK(file == ref);

  auto p = parse_header(ref);
  REQUIRE(p.ok());
  CHECK(ref.substr(p->header_length, p->data_size) == data);
  Envelope got = p->envelope;
  const std::string_view trailer = std::string_view(ref).substr(p->header_length + p->data_size);
  REQUIRE(parse_end(trailer) == crc32c(crc32c(0, data), ref.substr(0, p->header_length)));
  REQUIRE(apply_status_records(got, trailer.substr(kEndRecordLength)).ok());
  CHECK(got.recipients[0].state == RcptState::Deferred);
  CHECK(got.recipients[0].last_relay == "mx1.partner.example[192.0.2.25]:25");
  CHECK(got.recipients[0].attempts == 1);
  CHECK(got.recipients[1].state == RcptState::Failed);
  CHECK(got.recipients[1].last_relay.empty());
  CHECK(got.delay_warned_us == 1764081000000000);
}

TEST_CASE("codec: every field survives a write and a read (protocol, orig=-like params, relay '-')") {
  Envelope e = sample();
  e.protocol = "ODD PROTO%";
  e.recipients[0].params = {"orig=<x@y>", "NOTIFY=NEVER"};
  auto p = parse_header(encode_header(e, 0));
  REQUIRE(p.ok());
  CHECK(p->envelope.protocol == e.protocol);
  CHECK(p->envelope.recipients[0].original.empty());
  CHECK(p->envelope.recipients[0].params == e.recipients[0].params);
  REQUIRE(apply_status_records(p->envelope, encode_status(0, RcptState::Deferred, 7, "-", "451 x")).ok());
  CHECK(p->envelope.recipients[0].last_relay == "-");
}

TEST_CASE("format evolution: version 1 and 2 files read as before, new files are version 3") {
  const Envelope e = sample();
  std::string v3 = encode_header(e, 0);
  CHECK(v3.starts_with("TERN-QUEUE 3\n"));
  std::string v1 = v3, v2 = v3;
  v1.replace(0, kMagic.size(), "TERN-QUEUE 1");
  v2.replace(0, kMagic.size(), "TERN-QUEUE 2");
  auto p1 = parse_header(v1), p2 = parse_header(v2), p3 = parse_header(v3);
  REQUIRE(p1.ok());
  REQUIRE(p2.ok());
  REQUIRE(p3.ok());
  CHECK(p1->version == 1);
  CHECK(p2->version == 2);
  CHECK(p3->version == 3);
  CHECK(p1->envelope.recipients.size() == 2);
  CHECK(p1->envelope.sender == p2->envelope.sender);
  CHECK(p1->unknown_must_understand.empty());
  CHECK(p3->unknown_must_understand.empty());
}

TEST_CASE("codec: the closing record and its CRC-32C") {
  // The standard check value of CRC-32C, and streaming across any split.
  CHECK(crc32c(0, "123456789") == 0xE3069283u);
  CHECK(crc32c(0, "") == 0u);
  const std::string text = "The quick brown fox jumps over the lazy dog, 0123456789 times over.";
  for (size_t cut = 0; cut <= text.size(); ++cut)
    CHECK(crc32c(crc32c(0, std::string_view(text).substr(0, cut)), std::string_view(text).substr(cut)) ==
          crc32c(0, text));
  const std::string end = encode_end(0x0A1B2C3Du);
  CHECK(end == "end 0A1B2C3D\n");
  CHECK(end.size() == kEndRecordLength);
  CHECK(parse_end(end + "status 0 delivered 1 - 250\n") == 0x0A1B2C3Du);
  // What startup must not take for a closing record: nothing, a torn one, lower case, data.
  CHECK_FALSE(parse_end("").has_value());
  CHECK_FALSE(parse_end("end 0A1B2C3D").has_value());
  CHECK_FALSE(parse_end("end 0a1b2c3d\n").has_value());
  CHECK_FALSE(parse_end("end 0A1B2C3G\n").has_value());
  CHECK_FALSE(parse_end("Received: from x\r\n").has_value());
  CHECK_FALSE(parse_end(std::string("end 0A1B\0C3D\n", 13)).has_value());
}

TEST_CASE("format evolution: unknown optional records are skipped, must-understand ones reported") {
  const Envelope e = sample();
  std::string h = encode_header(e, 0);
  h.insert(h.find("sender"), "future-note some value\n");
  auto p = parse_header(h);
  REQUIRE(p.ok());
  CHECK(p->unknown_must_understand.empty());
  CHECK(p->envelope.sender == e.sender);

  std::string mu = encode_header(e, 0);
  mu.insert(mu.find("sender"), "!migrated 1764066540000000 elsewhere\n");
  p = parse_header(mu);
  REQUIRE(p.ok());
  CHECK(p->unknown_must_understand == "!migrated");

  // A newer format version as a whole needs a newer reader.
  p = parse_header("TERN-QUEUE 4\nwhatever comes next\n");
  REQUIRE(p.ok());
  CHECK(p->unknown_must_understand == "TERN-QUEUE 4");

  Envelope t = sample();
  std::string seen;
  REQUIRE(apply_status_records(t, "future-note x\n" + encode_status(0, RcptState::Delivered, 5, "", "250 ok"),
                               &seen).ok());
  CHECK(seen.empty());
  CHECK(t.recipients[0].state == RcptState::Delivered);
  Envelope u = sample();
  REQUIRE(apply_status_records(u, "!migrated 9 to-x\n" + encode_status(0, RcptState::Delivered, 5, "", "250"),
                               &seen).ok());
  CHECK(seen == "!migrated");
  // Without a place to report it, an unknown must-understand record is an error.
  Envelope w = sample();
  auto st = apply_status_records(w, "!migrated 9\n");
  REQUIRE_FALSE(st.ok());
  CHECK(st.error().kind == tern::ErrorKind::Perm);
}

TEST_CASE("format evolution: held, released and deleted records") {
  Envelope e = sample();
  REQUIRE(apply_status_records(e, encode_held(10)).ok());
  CHECK(e.held);
  CHECK_FALSE(e.deleted);
  REQUIRE(apply_status_records(e, encode_released(11)).ok());
  CHECK_FALSE(e.held);
  REQUIRE(apply_status_records(e, encode_held(12) + encode_deleted(13)).ok());
  CHECK(e.held);
  CHECK(e.deleted);
  CHECK(encode_held(10) == "!held 10\n");
  CHECK(encode_released(11) == "!released 11\n");
  CHECK(encode_deleted(13) == "!deleted 13\n");
  Envelope f = sample();
  CHECK_FALSE(apply_status_records(f, "!held\n").ok());
  CHECK_FALSE(apply_status_records(f, "!deleted soon\n").ok());
}
