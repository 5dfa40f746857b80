// Unit tests for the queue store (src/queue/store.cpp) on a real loop and a scratch
// directory: commit outcomes, status appends, recovery.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <algorithm>
#include <functional>
#include <optional>
#include <iterator>

#include "common/clock.hpp"
#include "io/loop.hpp"
#include "common/limits.hpp"
#include "queue/codec.hpp"
#include "queue/crc32c.hpp"
#include "queue/queue_id.hpp"
#include "queue/store.hpp"

using namespace tern;
using namespace tern::queue;

namespace {

// A scratch queue_dir removed when the test ends.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    char tmpl[] = "/tmp/tern-store-test-XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    path = p;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  [[nodiscard]] std::string q() const { return path + "/queue"; }
};

// A scratch queue, a loop and a manual clock: what every test here starts from.
struct Fixture {
  ScratchDir d;
  io::Loop loop;
  ManualClock clock{1764066538123456};
  // Opens the store (creating the directory tree on first use).
  std::unique_ptr<Store> open() {
    auto s = Store::open(loop, d.q(), clock);
    REQUIRE(s.ok());
    return std::move(s.value());
  }
  // Creates the directory tree, so that files can be placed before the real open.
  void create_tree() { open()->close(); }
};

// Runs the loop until `done()` holds; gives up (and fails) after a bounded number of ticks.
void run_until(io::Loop& loop, const std::function<bool()>& done) {
  io::Timer tick(loop);
  int ticks = 0;
  bool gave_up = false;
  tick.start(0, 2, [&] {
    if (done()) return loop.stop();
    if (++ticks > 10000) {
      gave_up = true;
      loop.stop();
    }
  });
  loop.run();
  tick.stop();
  CHECK_FALSE(gave_up);
}

Envelope envelope(size_t rcpts = 1) {
  Envelope e;
  e.arrival_us = 1764066538123456;
  e.client_address = "127.0.0.1";
  e.protocol = "ESMTP";
  e.sender = "a@example.net";
  for (size_t i = 0; i < rcpts; ++i) {
    Recipient r;
    r.address = "r" + std::to_string(i) + "@partner.example";
    e.recipients.push_back(r);
  }
  return e;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

// Commits one message and returns its id.
std::string commit_one(io::Loop& loop, Store& store, const std::string& body, size_t rcpts = 1) {
  auto in = store.begin(envelope(rcpts));
  in->append(body);
  std::optional<CommitStatus> got;
  in->commit([&](CommitStatus st) { got = st; });
  run_until(loop, [&] { return got.has_value(); });
  REQUIRE(got == CommitStatus::Committed);
  return in->id();
}

}  // namespace

TEST_CASE("store: commit after abort answers IoError instead of never calling back") {
  Fixture f;
  auto& loop = f.loop;
  auto store = f.open();
  auto in = store->begin(envelope());
  in->append("Subject: x\r\n\r\nbody\r\n");
  in->abort();
  std::optional<CommitStatus> got;
  int calls = 0;
  in->commit([&](CommitStatus st) {
    got = st;
    ++calls;
  });
  run_until(loop, [&] { return got.has_value(); });
  CHECK(got == CommitStatus::IoError);
  CHECK(calls == 1);
  CHECK(std::filesystem::is_empty(f.d.q() + "/msg"));
  store->close();
}

TEST_CASE("store: status appends to one message are serialised, in call order, none lost") {
  Fixture f;
  auto& loop = f.loop;
  auto store = f.open();
  const std::string id = commit_one(loop, *store, "Subject: x\r\n\r\nbody\r\n", 4);
  // Many appends issued at once, as concurrent delivery transactions do: each record must
  // land whole, in the order asked, and every caller must hear back exactly once.
  constexpr int kAppends = 300;
  int answered = 0, failed = 0;
  std::vector<int> order;
  for (int i = 0; i < kAppends; ++i) {
    const std::string rec = encode_status(size_t(i % 4), RcptState::Deferred, i, "mx[192.0.2.1]:25",
                                          "451 4.3.0 attempt " + std::to_string(i));
    store->append_status(id, rec, [&, i](Status st) {
      ++answered;
      if (!st) ++failed;
      order.push_back(i);
    });
  }
  run_until(loop, [&] { return answered == kAppends; });
  CHECK(failed == 0);
  const std::string file = slurp(f.d.q() + "/msg/" + id);
  auto p = parse_header(file);
  REQUIRE(p.ok());
  std::string trailer = file.substr(p->header_length + p->data_size);
  // The closing record comes first (format 3), then the appended records.
  REQUIRE(parse_end(trailer).has_value());
  trailer.erase(0, kEndRecordLength);
  size_t pos = 0;
  int expect = 0;
  bool in_order = true;
  while (pos < trailer.size()) {
    const size_t nl = trailer.find('\n', pos);
    REQUIRE(nl != std::string::npos);
    const std::string line = trailer.substr(pos, nl - pos);
    if (!line.ends_with(" attempt " + std::to_string(expect))) in_order = false;
    ++expect;
    pos = nl + 1;
  }
  CHECK(expect == kAppends);
  CHECK(in_order);
  for (size_t i = 0; i < order.size(); ++i) CHECK(order[i] == int(i));
  REQUIRE(apply_status_records(p->envelope, trailer).ok());
  CHECK(p->envelope.recipients[0].attempts == kAppends / 4);
  store->close();
}

namespace {
// Writes a committed message straight into msg/ as an older or newer tern would have.
std::string write_file(const std::string& q, const std::string& id, const std::string& magic,
                       const std::string& extra_header, const std::string& trailer) {
  Envelope e = envelope(2);
  e.id = id;
  const std::string data = "Subject: t\r\n\r\nbody\r\n";
  std::string h = encode_header(e, data.size());
  h.replace(0, kMagic.size(), magic);
  h.insert(h.find("sender"), extra_header);
  std::ofstream(q + "/msg/" + id, std::ios::binary) << h << data << trailer;
  return id;
}
bool exists(const std::string& p) { return ::access(p.c_str(), F_OK) == 0; }
}  // namespace

TEST_CASE("recovery: must-understand records leave the file untouched; deleted files are removed") {
  Fixture f;
  f.create_tree();
  const std::string q = f.d.q();
  const std::string v1 = write_file(q, encode_id(1000), "TERN-QUEUE 1", "", "");
  const std::string optional = write_file(q, encode_id(2000), "TERN-QUEUE 2", "future-note x\n",
                                          "another-note y\n" + encode_status(0, RcptState::Delivered, 1, "", "250"));
  const std::string mu_head = write_file(q, encode_id(3000), "TERN-QUEUE 2", "!migrated 5 x\n", "");
  // The torn last line would be cut off in a file this version may act on; here it must stay.
  const std::string mu_tail_text = "!frozen 7\nstatus 0 delivered 8 - torn";
  const std::string mu_tail = write_file(q, encode_id(4000), "TERN-QUEUE 2", "", mu_tail_text);
  const std::string newer = encode_id(5000);
  std::ofstream(q + "/msg/" + newer, std::ios::binary) << "TERN-QUEUE 4\nnew things\n";
  const std::string deleted = write_file(q, encode_id(6000), "TERN-QUEUE 2", "", encode_deleted(9));
  const std::string held = write_file(q, encode_id(7000), "TERN-QUEUE 1", "", encode_held(9));
  // Exported to an archive, and a crash before the unlink: never loaded again.
  const std::string exported = write_file(q, encode_id(8000), "TERN-QUEUE 2", "", encode_held(8) + encode_exported(9));
  const std::string mu_before = slurp(q + "/msg/" + mu_tail);

  auto store = f.open();
  auto r = store->recover();
  REQUIRE(r.ok());
  CHECK(r->left_untouched == 3);
  CHECK(r->deleted_removed == 1);
  CHECK(r->exported_removed == 1);
  CHECK(r->corrupt_moved == 0);
  REQUIRE(r->messages.size() == 3);
  CHECK(r->messages[0].id == v1);
  CHECK(r->messages[1].id == optional);
  CHECK(r->messages[1].recipients[0].state == RcptState::Delivered);
  CHECK(r->messages[2].id == held);
  CHECK(r->messages[2].held);
  for (const auto& id : {mu_head, mu_tail, newer}) {
    CHECK(exists(q + "/msg/" + id));
    CHECK_FALSE(exists(q + "/corrupt/" + id));
  }
  CHECK(slurp(q + "/msg/" + mu_tail) == mu_before);
  CHECK_FALSE(exists(q + "/msg/" + deleted));
  CHECK_FALSE(exists(q + "/corrupt/" + deleted));
  CHECK_FALSE(exists(q + "/msg/" + exported));
  CHECK_FALSE(exists(q + "/corrupt/" + exported));
  store->close();
}

TEST_CASE("recovery: recover_async hands out every message in order, then the counts") {
  Fixture f;
  auto& loop = f.loop;
  f.create_tree();
  // More files than one chunk, plus one of each kind that is not loaded.
  const size_t n = Store::kRecoveryChunk * 2 + 17;
  for (size_t i = 0; i < n; ++i) write_file(f.d.q(), encode_id(1000 + i), "TERN-QUEUE 2", "", "");
  write_file(f.d.q(), encode_id(900), "TERN-QUEUE 2", "", encode_deleted(1));
  write_file(f.d.q(), encode_id(901), "TERN-QUEUE 2", "!migrated 1\n", "");
  std::ofstream(f.d.q() + "/msg/" + encode_id(902), std::ios::binary) << "not a queue file\n";
  std::ofstream(f.d.q() + "/tmp/" + encode_id(903), std::ios::binary) << "partial";

  auto store = f.open();
  std::vector<std::string> ids;
  size_t batches = 0;
  bool sizes_match = true;
  std::optional<Result<RecoveryStats>> done;
  std::optional<size_t> listed;
  bool listed_first = true;
  store->recover_async(
      [&](size_t files) {
        listed_first = batches == 0 && !done;
        listed = files;
      },
      [&](std::vector<Envelope>&& msgs, std::vector<uint64_t>&& sizes) {
        ++batches;
        listed_first &= listed.has_value();
        sizes_match &= sizes.size() == msgs.size();
        for (auto& m : msgs) ids.push_back(m.id);
      },
      [&](Result<RecoveryStats> st) { done.emplace(std::move(st)); });
  run_until(loop, [&] { return done.has_value(); });
  REQUIRE(done->ok());
  // Told the listing (every name in msg/, before any is read) ahead of every batch.
  CHECK(listed == n + 3);
  CHECK(listed_first);
  CHECK((*done)->messages == n);
  CHECK((*done)->deleted_removed == 1);
  CHECK((*done)->left_untouched == 1);
  CHECK((*done)->corrupt_moved == 1);
  CHECK((*done)->leftovers_removed == 1);
  CHECK(batches >= 3);
  CHECK(sizes_match);
  REQUIRE(ids.size() == n);
  CHECK(std::is_sorted(ids.begin(), ids.end()));
  CHECK(ids.front() == encode_id(1000));
  CHECK(exists(f.d.q() + "/corrupt/" + encode_id(902)));
  store->close();
}

namespace {
// A version-3 file as the store writes it: header, data, closing record (CRC-32C of the data
// then the header), then `trailer`. `crc_delta` spoils the CRC.
std::string write_v3(const std::string& q, const std::string& id, const std::string& data,
                     const std::string& trailer, uint32_t crc_delta = 0) {
  Envelope e = envelope(1);
  e.id = id;
  const std::string h = encode_header(e, data.size());
  std::ofstream(q + "/msg/" + id, std::ios::binary)
      << h << data << encode_end(crc32c(crc32c(0, data), h) ^ crc_delta) << trailer;
  return id;
}
}  // namespace

TEST_CASE("store: a committed file is version 3 and closed by a record whose CRC covers data and header") {
  Fixture f;
  auto& loop = f.loop;
  auto store = f.open();
  // One small message (one write, one fdatasync) and one spanning several spool chunks (data
  // made durable before its closing record): both closed correctly.
  const std::string small = "Subject: s\r\n\r\nsmall\r\n";
  std::string large = "Subject: l\r\n\r\n";
  while (large.size() < 3 * limits::kSpoolChunk) large += std::string(998, 'x') + "\r\n";
  for (const std::string* body : std::initializer_list<const std::string*>{&small, &large}) {
    auto in = store->begin(envelope());
    in->append(*body);
    std::optional<CommitStatus> got;
    in->commit([&](CommitStatus st) { got = st; });
    run_until(loop, [&] { return got.has_value(); });
    REQUIRE(got == CommitStatus::Committed);
    const std::string file = slurp(f.d.q() + "/msg/" + in->id());
    CHECK(file.starts_with("TERN-QUEUE 3\n"));
    auto p = parse_header(file);
    REQUIRE(p.ok());
    REQUIRE(p->data_size == body->size());
    CHECK((file.substr(p->header_length, p->data_size) == *body));
    const std::string_view trailer = std::string_view(file).substr(p->header_length + p->data_size);
    CHECK(trailer.size() == kEndRecordLength);
    CHECK(parse_end(trailer) ==
          crc32c(crc32c(0, std::string_view(file).substr(p->header_length, p->data_size)),
                 std::string_view(file).substr(0, p->header_length)));
  }
  CHECK(std::filesystem::is_empty(f.d.q() + "/tmp"));
  store->close();
  store.reset();
  // And startup reads both back.
  auto again = f.open();
  auto r = again->recover();
  REQUIRE(r.ok());
  CHECK(r->messages.size() == 2);
  CHECK(r->sizes == std::vector<uint64_t>{small.size(), large.size()});
  CHECK(r->corrupt_moved == 0);
  again->close();
}

TEST_CASE("store: a message being received is in msg/ without its closing record until commit") {
  Fixture f;
  auto& loop = f.loop;
  auto store = f.open();
  auto in = store->begin(envelope());
  in->append("Subject: x\r\n\r\nbody\r\n");
  const std::string path = f.d.q() + "/msg/" + in->id();
  run_until(loop, [&] { return exists(path) && store->commits_in_flight() == 0; });
  auto p = parse_header(slurp(path));
  REQUIRE(p.ok());
  CHECK(p->data_size == 0);  // the placeholder: not complete, so startup would remove it
  CHECK_FALSE(parse_end(slurp(path).substr(p->header_length)).has_value());
  // An aborted message leaves nothing behind.
  in->abort();
  run_until(loop, [&] { return !exists(path); });
  store->close();
}

TEST_CASE("recovery: unfinished version-3 files are removed, other files without a valid closing record set aside") {
  Fixture f;
  f.create_tree();
  const std::string q = f.d.q();
  const std::string data = "Subject: t\r\n\r\nbody\r\n";
  const std::string good = write_v3(q, encode_id(1000), data, encode_status(0, RcptState::Deferred, 5, "", "451 x"));
  // Crashes while the message was received (never acknowledged): the create only (placeholder
  // data-size, maybe some data), an empty file, a torn header.
  Envelope e = envelope(1);
  e.id = encode_id(2000);
  std::ofstream(q + "/msg/" + e.id, std::ios::binary) << encode_header(e, 0) << data.substr(0, 7);
  const std::string created_only = e.id;
  const std::string empty = encode_id(2100);
  std::ofstream(q + "/msg/" + empty, std::ios::binary) << "";
  e.id = encode_id(2200);
  const std::string torn_header = e.id;
  std::ofstream(q + "/msg/" + e.id, std::ios::binary) << encode_header(e, 0).substr(0, 40);
  // A real data-size but no valid record: a crash in the last write, or a damaged file that
  // was acknowledged: set aside, never deleted.
  e.id = encode_id(3000);
  std::ofstream(q + "/msg/" + e.id, std::ios::binary) << encode_header(e, data.size()) << data;
  const std::string no_record = e.id;
  e.id = encode_id(4000);
  std::ofstream(q + "/msg/" + e.id, std::ios::binary) << encode_header(e, data.size()) << data << "end 12";
  const std::string torn_record = e.id;
  e.id = encode_id(4500);
  std::ofstream(q + "/msg/" + e.id, std::ios::binary) << encode_header(e, data.size() + 50) << data;
  const std::string short_data = e.id;
  const std::string bad_crc = write_v3(q, encode_id(5000), data, "", 1);
  // A version-2 file needs no closing record (it was renamed into msg/ complete).
  const std::string v2 = write_file(q, encode_id(6000), "TERN-QUEUE 2", "", "");
  // Neither does an older file's torn header count as unfinished: it is set aside.
  const std::string v2_torn = encode_id(6100);
  std::ofstream(q + "/msg/" + v2_torn, std::ios::binary) << "TERN-QUEUE 2\nid " << v2_torn << "\n";

  auto store = f.open();
  auto r = store->recover();
  REQUIRE(r.ok());
  REQUIRE(r->messages.size() == 2);
  CHECK(r->messages[0].id == good);
  CHECK(r->messages[0].recipients[0].state == RcptState::Deferred);
  CHECK(r->sizes[0] == data.size());
  CHECK(r->messages[1].id == v2);
  CHECK(r->leftovers_removed == 3);
  CHECK(r->corrupt_moved == 5);
  for (const auto& id : {created_only, empty, torn_header}) {
    CHECK_FALSE(exists(q + "/msg/" + id));
    CHECK_FALSE(exists(q + "/corrupt/" + id));
  }
  for (const auto& id : {no_record, torn_record, short_data, bad_crc, v2_torn}) {
    CHECK_FALSE(exists(q + "/msg/" + id));
    CHECK(exists(q + "/corrupt/" + id));
  }
  store->close();
}

TEST_CASE("recovery: a torn status append after the closing record is cut off, the record kept") {
  Fixture f;
  f.create_tree();
  const std::string q = f.d.q();
  const std::string data = "Subject: t\r\n\r\nbody\r\n";
  const std::string whole = encode_status(0, RcptState::Deferred, 5, "", "451 x");
  const std::string id = write_v3(q, encode_id(1000), data, whole + "status 0 deliv");
  auto store = f.open();
  auto r = store->recover();
  REQUIRE(r.ok());
  REQUIRE(r->messages.size() == 1);
  CHECK(r->messages[0].recipients[0].attempts == 1);
  const std::string file = slurp(q + "/msg/" + id);
  CHECK(file.ends_with(whole));
  auto p = parse_header(file);
  REQUIRE(p.ok());
  CHECK(parse_end(file.substr(p->header_length + p->data_size)).has_value());
  store->close();
}

TEST_CASE("recovery: close() stops a recovery under way; done reports it once the chunks in flight are back") {
  Fixture f;
  auto& loop = f.loop;
  f.create_tree();
  const size_t n = Store::kRecoveryChunk * 8;
  for (size_t i = 0; i < n; ++i) write_file(f.d.q(), encode_id(1000 + i), "TERN-QUEUE 2", "", "");
  auto store = f.open();
  size_t seen = 0, after_done = 0;
  std::optional<Result<RecoveryStats>> done;
  store->recover_async([&](size_t) { store->close(); },  // a stop signal right after the listing
                       [&](std::vector<Envelope>&& msgs, std::vector<uint64_t>&&) {
                         seen += msgs.size();
                         if (done) ++after_done;
                       },
                       [&](Result<RecoveryStats> st) { done.emplace(std::move(st)); });
  run_until(loop, [&] { return done.has_value(); });
  REQUIRE_FALSE(done->ok());
  CHECK(seen < n);  // not every chunk was read
  CHECK(after_done == 0);
  // Nothing was lost: every file is still in msg/ for the next start.
  size_t files = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(f.d.q() + "/msg")) ++files;
  CHECK(files == n);
}

TEST_CASE("store: committing messages leaves no descriptor open") {
  Fixture f;
  auto& loop = f.loop;
  auto store = f.open();
  auto open_fds = [] {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
    return n;
  };
  commit_one(loop, *store, "Subject: warm-up\r\n\r\nbody\r\n");  // the loop's own descriptors
  const size_t before = open_fds();
  for (int i = 0; i < 50; ++i) commit_one(loop, *store, "Subject: x\r\n\r\nbody " + std::to_string(i) + "\r\n");
  auto in = store->begin(envelope());  // and one aborted after its create
  in->append("Subject: gone\r\n\r\n");
  const std::string path = f.d.q() + "/msg/" + in->id();
  run_until(loop, [&] { return exists(path); });
  in.reset();
  run_until(loop, [&] { return !exists(path); });
  CHECK(open_fds() <= before);
  store->close();
}
