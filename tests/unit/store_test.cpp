// Unit tests for the queue store (src/queue/store.cpp) on a real loop and a scratch
// directory: commit outcomes, status appends, recovery.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "common/clock.hpp"
#include "io/loop.hpp"
#include "queue/codec.hpp"
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
  ScratchDir d;
  io::Loop loop;
  ManualClock clock(1764066538123456);
  auto store = Store::open(loop, d.q(), clock);
  REQUIRE(store.ok());
  auto in = (*store)->begin(envelope());
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
  CHECK(std::filesystem::is_empty(d.q() + "/msg"));
  (*store)->close();
}

TEST_CASE("store: status appends to one message are serialised, in call order, none lost") {
  ScratchDir d;
  io::Loop loop;
  ManualClock clock(1764066538123456);
  auto store = Store::open(loop, d.q(), clock);
  REQUIRE(store.ok());
  const std::string id = commit_one(loop, **store, "Subject: x\r\n\r\nbody\r\n", 4);
  // Many appends issued at once, as concurrent delivery transactions do: each record must
  // land whole, in the order asked, and every caller must hear back exactly once.
  constexpr int kAppends = 300;
  int answered = 0, failed = 0;
  std::vector<int> order;
  for (int i = 0; i < kAppends; ++i) {
    const std::string rec = encode_status(size_t(i % 4), RcptState::Deferred, i, "mx[192.0.2.1]:25",
                                          "451 4.3.0 attempt " + std::to_string(i));
    (*store)->append_status(id, rec, [&, i](Status st) {
      ++answered;
      if (!st) ++failed;
      order.push_back(i);
    });
  }
  run_until(loop, [&] { return answered == kAppends; });
  CHECK(failed == 0);
  const std::string file = slurp(d.q() + "/msg/" + id);
  auto p = parse_header(file);
  REQUIRE(p.ok());
  const std::string trailer = file.substr(p->header_length + p->data_size);
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
  (*store)->close();
}
