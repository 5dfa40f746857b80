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
