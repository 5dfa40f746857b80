// io::WorkerPool: jobs run off the loop thread, completions on it, and the bound refuses
// work when every worker is busy and the wait queue is full.
#include <doctest/doctest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "io/loop.hpp"
#include "io/worker_pool.hpp"

using namespace tern;

namespace {
// A gate the jobs wait at until the test opens it.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  void wait() {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return open; });
  }
  void release() {
    {
      std::lock_guard lock(mu);
      open = true;
    }
    cv.notify_all();
  }
};

// Turns the loop until `pred` holds (generous: jobs run on real threads).
template <typename P>
bool run_until(io::Loop& loop, P pred) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!pred()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    loop.run_nowait();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}
}  // namespace

TEST_CASE("worker pool: jobs off the loop thread, completions on it") {
  io::Loop loop;
  io::WorkerPool pool(loop, 2, 4);
  CHECK(pool.threads() == 2);
  const auto loop_thread = std::this_thread::get_id();
  std::atomic<int> off_loop{0};
  int done = 0;
  bool done_on_loop = true;
  for (int i = 0; i < 6; ++i) {
    REQUIRE(pool.submit([&] { off_loop += std::this_thread::get_id() != loop_thread; },
                        [&] {
                          ++done;
                          done_on_loop &= std::this_thread::get_id() == loop_thread;
                        }));
  }
  REQUIRE(run_until(loop, [&] { return done == 6; }));
  CHECK(off_loop == 6);
  CHECK(done_on_loop);
}

TEST_CASE("worker pool: full when every worker is busy and the queue is full") {
  io::Loop loop;
  Gate gate;
  std::atomic<int> started{0};
  int done = 0;
  {
    io::WorkerPool pool(loop, 2, 1);
    const auto job = [&] {
      ++started;
      gate.wait();
    };
    REQUIRE(pool.submit(job, [&] { ++done; }));
    REQUIRE(pool.submit(job, [&] { ++done; }));
    // Both workers busy once they have picked their jobs up.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (started < 2 && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    REQUIRE(started == 2);
    CHECK(pool.submit(job, [&] { ++done; }));          // waits in the queue
    CHECK_FALSE(pool.submit(job, [&] { ++done; }));    // no room: refused, never runs
    gate.release();
    REQUIRE(run_until(loop, [&] { return done == 3; }));
    CHECK(started == 3);
    CHECK(pool.submit([] {}, [&] { ++done; }));  // room again
    REQUIRE(run_until(loop, [&] { return done == 4; }));
  }
  // The pool is gone: its async handle closes with the loop's next turn, nothing else runs.
  loop.run_nowait();
  CHECK(done == 4);
}
