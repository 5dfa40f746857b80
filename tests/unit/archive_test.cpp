// Unit tests for export archives (queue/archive.cpp), the queue-file records behind them
// (origin, !history, !exported) and the export/import command lines.
#include <doctest/doctest.h>

#include <fstream>
#include <iterator>
#include <random>

#include "admin/command.hpp"
#include "queue/archive.hpp"
#include "queue/codec.hpp"
#include "queue/crc32c.hpp"
#include "queue/queue_id.hpp"

using namespace tern::queue;

namespace {

constexpr int64_t kArrival = 1764066538123456;

// A version-3 queue file as the store writes it: header, data, closing record, then `trailer`.
std::string queue_file(const Envelope& e, const std::string& data, const std::string& trailer,
                       const std::vector<std::string>& history = {}) {
  const std::string header = encode_header(e, data.size(), history);
  return header + data + encode_end(crc32c(crc32c(0, data), header)) + trailer;
}

Envelope two_recipients() {
  Envelope e;
  e.id = encode_id(kArrival);
  e.arrival_us = kArrival;
  e.client_address = "192.0.2.7";
  e.client_port = 40000;
  e.client_helo = "client.example";
  e.protocol = "ESMTP";
  e.sender = "alice@client.example";
  e.mail_params = {"RET=HDRS", "ENVID=abc"};
  Recipient a, b;
  a.address = "u1@drain.example";
  a.params = {"NOTIFY=FAILURE,DELAY"};
  b.address = "w@partial.example";
  e.recipients = {a, b};
  return e;
}

// Deferred twice and a delivered recipient, the operator's hold and release, a delay
// warning, and a torn last line.
std::string history_trailer() {
  return encode_status(0, RcptState::Deferred, kArrival + 1000000, "", "4.4.1 No host could be reached") +
         encode_status_code(0, "4.4.1", false) +
         encode_status(1, RcptState::Delivered, kArrival + 1100000, "mx.partial.example[127.0.0.4]:25",
                       "250 2.0.0 OK") +
         encode_held(kArrival + 1200000) + encode_released(kArrival + 1300000) +
         encode_delay_warned(kArrival + 1400000) +
         encode_status(0, RcptState::Deferred, kArrival + 2000000, "mx.drain.example[127.0.0.2]:25",
                       "451 4.2.0 try later") +
         "status 1 deli";  // torn
}

const std::string kData = "Received: from client.example\r\nSubject: one\r\n\r\nfirst body\r\n";

std::string sample_archive(size_t n, bool held = false) {
  std::string a = encode_archive_head({"node-a.example", kArrival + 5000000});
  for (size_t i = 0; i < n; ++i) {
    Envelope e = two_recipients();
    e.id = encode_id(uint64_t(kArrival) + i);
    auto entry = entry_from_queue_file(queue_file(e, kData, history_trailer()), "node-a.example", held, 77);
    REQUIRE(entry.ok());
    a += encode_archive_entry(*entry);
  }
  return a + encode_archive_end(n);
}

}  // namespace

TEST_CASE("archive: round trip keeps envelope, state, history, arrival and body") {
  const std::string archive = sample_archive(2, true);
  auto parsed = parse_archive(archive);
  REQUIRE(parsed.ok());
  CHECK(parsed->head.host == "node-a.example");
  CHECK(parsed->head.created_us == kArrival + 5000000);
  REQUIRE(parsed->entries.size() == 2);
  REQUIRE(parsed->entries[0].ok());
  const ArchiveEntry& e = parsed->entries[0].value();
  CHECK(e.origin_host == "node-a.example");
  CHECK(e.origin_id == encode_id(kArrival));
  CHECK(e.held);
  CHECK(e.next_attempt_us == 77);
  // The operator's records and the torn line are not in the archive.
  CHECK(e.queue_file.find("!held") == std::string::npos);
  CHECK(e.queue_file.find("!released") == std::string::npos);
  CHECK(e.queue_file.ends_with("451 4.2.0 try later\n"));

  auto m = decode_archive_entry(e, kArrival + 9000000);
  REQUIRE(m.ok());
  const Envelope& env = m->env;
  CHECK(env.id == encode_id(kArrival));
  CHECK(env.arrival_us == kArrival);
  CHECK(env.sender == "alice@client.example");
  CHECK(env.mail_params == std::vector<std::string>{"RET=HDRS", "ENVID=abc"});
  REQUIRE(env.recipients.size() == 2);
  CHECK(env.recipients[0].params == std::vector<std::string>{"NOTIFY=FAILURE,DELAY"});
  CHECK(env.recipients[0].state == RcptState::Deferred);
  CHECK(env.recipients[0].attempts == 2);
  CHECK(env.recipients[0].last_reply == "451 4.2.0 try later");
  CHECK(env.recipients[0].updated_us == kArrival + 2000000);
  CHECK(env.recipients[1].state == RcptState::Delivered);
  CHECK(env.delay_warned_us == kArrival + 1400000);
  CHECK(env.held);
  CHECK(env.origin == "node-a.example " + encode_id(kArrival));
  CHECK(m->data == kData);
  // Carried: every state record in order, then the hold.
  REQUIRE(m->history.size() == 6);
  CHECK(m->history[0].starts_with("status 0 deferred"));
  CHECK(m->history[1] == "status-code 0 4.4.1 local");
  CHECK(m->history[3].starts_with("delay-warned "));
  CHECK(m->history[5] == "!held " + std::to_string(kArrival + 9000000));
}

TEST_CASE("archive: the new queue file carries origin and history in its header") {
  auto parsed = parse_archive(sample_archive(1));
  REQUIRE(parsed.ok());
  auto m = decode_archive_entry(parsed->entries[0].value(), kArrival + 9000000);
  REQUIRE(m.ok());
  Envelope fresh = m->env;
  fresh.id = "1K1NEWID0AB";
  const std::string file = queue_file(fresh, m->data, "", m->history);
  CHECK(file.find("\norigin node-a.example " + encode_id(kArrival) + "\n") != std::string::npos);
  auto p = parse_header(file);
  REQUIRE(p.ok());
  CHECK(p->unknown_must_understand.empty());
  CHECK(p->envelope.origin == "node-a.example " + encode_id(kArrival));
  CHECK(p->envelope.recipients[0].attempts == 2);
  CHECK(p->envelope.recipients[1].state == RcptState::Delivered);
  CHECK(p->envelope.delay_warned_us == kArrival + 1400000);
  CHECK(!p->envelope.held);
  CHECK(p->history.size() == 5);
  // A file imported once is exported again with its history (and a new origin).
  auto again = entry_from_queue_file(file, "node-b.example", false, 0);
  REQUIRE(again.ok());
  auto m2 = decode_archive_entry(again.value(), 1);
  REQUIRE(m2.ok());
  CHECK(m2->env.recipients[0].attempts == 2);
  CHECK(m2->history.size() == 5);
  CHECK(m2->env.origin == "node-b.example 1K1NEWID0AB");
}

TEST_CASE("codec: !history records: what they may hold, and an older reader's view") {
  Envelope e = two_recipients();
  const std::string data = "x\r\n";
  // A must-understand record it does not know inside a history: the file is left alone.
  auto p = parse_header(queue_file(e, data, "", {"!frobnicate 1"}));
  REQUIRE(p.ok());
  CHECK(p->unknown_must_understand == "!history !frobnicate");
  // Records that would change what may be done with the file are not history.
  CHECK(!parse_header(queue_file(e, data, "", {"!deleted 1"})).ok());
  CHECK(!parse_header(queue_file(e, data, "", {"!exported 1"})).ok());
  // A history naming a recipient the file does not have is malformed.
  CHECK(!parse_header(queue_file(e, data, "", {"status 9 delivered 1 - ok"})).ok());
  // An optional record inside is skipped.
  auto q = parse_header(queue_file(e, data, "", {"some-note 1", "status 1 delivered 5 - ok"}));
  REQUIRE(q.ok());
  CHECK(q->envelope.recipients[1].state == RcptState::Delivered);
}

TEST_CASE("codec: !exported is a must-understand operator record") {
  Envelope e = two_recipients();
  const std::string trailer = encode_exported(kArrival + 3);
  CHECK(trailer == "!exported " + std::to_string(kArrival + 3) + "\n");
  CHECK(apply_status_records(e, trailer).ok());
  CHECK(e.exported);
  const auto h = history_of(trailer);
  REQUIRE(h.size() == 1);
  CHECK(h[0].what == "exported");
  // A file already exported (or deleted) is never put into an archive again.
  CHECK(!entry_from_queue_file(queue_file(two_recipients(), kData, trailer), "a.example", false, 0).ok());
  CHECK(!entry_from_queue_file(queue_file(two_recipients(), kData, encode_deleted(1)), "a.example", false, 0).ok());
}

TEST_CASE("archive: a queue file that does not check out is not exported") {
  const std::string good = queue_file(two_recipients(), kData, "");
  CHECK(entry_from_queue_file(good, "a.example", false, 0).ok());
  std::string flipped = good;
  flipped[flipped.find("first body")] = 'F';  // the closing record no longer matches
  CHECK(!entry_from_queue_file(flipped, "a.example", false, 0).ok());
  CHECK(!entry_from_queue_file(good.substr(0, good.size() - 5), "a.example", false, 0).ok());
  CHECK(!entry_from_queue_file(good + "!newer-record 1\n", "a.example", false, 0).ok());
}

TEST_CASE("archive: truncated anywhere, it is refused cleanly") {
  const std::string archive = sample_archive(2);
  for (size_t n = 0; n < archive.size(); ++n) {
    auto p = parse_archive(std::string_view(archive).substr(0, n));
    CHECK_MESSAGE(!p.ok(), "prefix of " << n << " bytes accepted");
  }
  CHECK(parse_archive(archive).ok());
  CHECK(!parse_archive(archive + "x").ok());                        // bytes after the end line
  CHECK(!parse_archive(sample_archive(0) + encode_archive_end(0)).ok());
}

TEST_CASE("archive: framing, counts and versions") {
  CHECK(!parse_archive("TERN-ARCHIVE 2\nhost a\ncreated 1\nend 0\n").ok());
  CHECK(!parse_archive("TERN-QUEUE 3\nhost a\ncreated 1\nend 0\n").ok());
  CHECK(parse_archive("TERN-ARCHIVE 1\nhost a\ncreated 1\nend 0\n").ok());
  CHECK(!parse_archive("TERN-ARCHIVE 1\nhost a b\ncreated 1\nend 0\n").ok());
  CHECK(!parse_archive("TERN-ARCHIVE 1\nhost a\ncreated 1\nend 1\n").ok());
  CHECK(!parse_archive("TERN-ARCHIVE 1\nhost a\ncreated 1\nmessage 99999999999999999999999 00000000\n").ok());
  CHECK(!parse_archive("TERN-ARCHIVE 1\nhost a\ncreated 1\nmessage 3 0000000g\nabc\nend 1\n").ok());
  // A frame whose length is wrong puts the next line out of step: refused.
  std::string a = sample_archive(1);
  const size_t at = a.find("message ") + 8;
  a[at] = char(a[at] == '9' ? '1' : a[at] + 1);
  CHECK(!parse_archive(a).ok());
  CHECK(parse_archive_frame("message 12 0000ABCD").ok());
  CHECK(parse_archive_frame("end 3")->count == 3);
  CHECK(!parse_archive_frame("message 12 0000abcd").ok());
  CHECK(!parse_archive_frame("message -1 0000ABCD").ok());
}

TEST_CASE("archive: a damaged message is refused alone, by its checksum") {
  std::string a = sample_archive(3);
  const size_t second = a.find("first body", a.find("first body") + 1);
  a[second] = 'X';
  auto p = parse_archive(a);
  REQUIRE(p.ok());
  REQUIRE(p->entries.size() == 3);
  CHECK(p->entries[0].ok());
  CHECK(!p->entries[1].ok());
  CHECK(p->entries[1].error().message == "checksum mismatch");
  CHECK(p->entries[2].ok());
}

TEST_CASE("archive: entries are untrusted input") {
  auto entry = [](std::string origin, std::string file) {
    return parse_archive_entry("origin " + origin + "\nheld no\nnext-attempt 0\nqueue-file\n" + file);
  };
  const std::string file = queue_file(two_recipients(), kData, "");
  REQUIRE(entry("a.example " + encode_id(kArrival), file).ok());
  CHECK(!entry("a.example", file).ok());
  CHECK(!entry("a.example ../../etc", file).ok());
  CHECK(!entry("a%20b.example " + encode_id(kArrival), file).ok());
  CHECK(!entry(std::string(300, 'h') + " " + encode_id(kArrival), file).ok());
  CHECK(!parse_archive_entry("origin a.example ID\nheld maybe\nnext-attempt 0\nqueue-file\n").ok());
  CHECK(!parse_archive_entry("origin a.example ID\nheld no\nqueue-file\n").ok());
  // The origin must be the file's own id; the file must parse and check out.
  auto other = entry("a.example 0000000000X", file);
  REQUIRE(other.ok());
  CHECK(!decode_archive_entry(*other, 0).ok());
  auto broken = entry("a.example " + encode_id(kArrival), file.substr(0, file.size() / 2));
  REQUIRE(broken.ok());
  CHECK(!decode_archive_entry(*broken, 0).ok());
  auto newer = entry("a.example " + encode_id(kArrival), file + "!newer 1\n");
  REQUIRE(newer.ok());
  auto refused = decode_archive_entry(*newer, 0);
  REQUIRE(!refused.ok());
  CHECK(refused.error().message.find("newer tern") != std::string::npos);
}

TEST_CASE("archive: random damage never crashes and never passes a changed message") {
  const std::string archive = sample_archive(3);
  std::mt19937_64 rng(20261129);
  for (int round = 0; round < 3000; ++round) {
    std::string a = archive;
    const int edits = 1 + int(rng() % 4);
    for (int k = 0; k < edits; ++k) {
      const size_t at = size_t(rng() % a.size());
      switch (rng() % 3) {
        case 0: a[at] = char(rng() & 0xff); break;
        case 1: a.erase(at, 1 + size_t(rng() % 8)); break;
        default: a.insert(at, 1, char(rng() & 0xff)); break;
      }
    }
    auto p = parse_archive(a);
    if (!p.ok()) continue;
    for (const auto& e : p->entries) {
      if (!e.ok()) continue;
      // What passes its checksum is byte for byte what was written, so it decodes.
      auto m = decode_archive_entry(*e, 0);
      CHECK(m.ok());
      if (m.ok()) CHECK(m->data == kData);
    }
  }
}

TEST_CASE("control: export and import command lines") {
  using tern::admin::parse_control;
  using V = tern::admin::ControlCommand::Verb;
  auto e = parse_control("export --all /var/lib/tern/drain.archive");
  REQUIRE(e.ok());
  CHECK(e->verb == V::Export);
  CHECK(e->selector.all);
  CHECK(e->path == "/var/lib/tern/drain.archive");
  auto ids = parse_control("export 1K1DH43WNJ6 1K1DH43WNJ7 /tmp/a");
  REQUIRE(ids.ok());
  CHECK(ids->selector.ids.size() == 2);
  CHECK(ids->path == "/tmp/a");
  auto d = parse_control("export --domain Drain.Example /tmp/a");
  REQUIRE(d.ok());
  CHECK(d->selector.domain == "drain.example");
  auto i = parse_control("import /tmp/a");
  REQUIRE(i.ok());
  CHECK(i->verb == V::Import);
  CHECK(i->path == "/tmp/a");
  CHECK(!parse_control("export /tmp/a").ok());           // nothing selected
  CHECK(!parse_control("export --all").ok());            // no file
  CHECK(!parse_control("export --all /tmp/a /tmp/b").ok());
  CHECK(!parse_control("export --all relative.archive").ok());
  CHECK(!parse_control("import").ok());
  CHECK(!parse_control("import relative.archive").ok());
  CHECK(!parse_control("import --all /tmp/a").ok());
  CHECK(!parse_control("import /tmp/a 1K1DH43WNJ6").ok());
  CHECK(!parse_control("hold 1K1DH43WNJ6 /tmp/a").ok());  // paths only for export/import
}

TEST_CASE("archive: the archive in the fuzz corpus (written by hand from queue-format.md) reads") {
  std::ifstream f(std::string(TERN_SOURCE_DIR) + "/tests/fuzz/corpus/archive/archive_one", std::ios::binary);
  const std::string text{std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
  auto p = parse_archive(text);
  REQUIRE(p.ok());
  REQUIRE(p->entries.size() == 1);
  REQUIRE(p->entries[0].ok());
  auto m = decode_archive_entry(*p->entries[0], 5);
  REQUIRE(m.ok());
  CHECK(m->env.origin == "node-a.example 1K1DS8JFM6N");
  CHECK(m->env.held);  // the entry says so (an earlier import's !history !held is not carried)
  CHECK(m->env.recipients[0].state == tern::queue::RcptState::Deferred);
  CHECK(m->env.recipients[0].attempts == 1);
  CHECK(m->env.recipients[1].state == tern::queue::RcptState::Delivered);
  CHECK(m->history.size() == 4);  // status, status-code, status, !held
  CHECK(m->data == "Subject: x\r\n\r\nbody\r\n");
}
