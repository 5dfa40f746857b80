// A small, bounded set of tern's own worker threads for slow CPU-bound jobs (password
// hashing), apart from libuv's thread pool where the queue's writes and fsyncs run: a flood
// of such jobs can then never delay a commit. Completions run back on the loop thread.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

#include "io/loop.hpp"

namespace tern::io {

class WorkerPool {
 public:
  // `threads` workers (at least 1); besides the jobs running, at most `max_queued` wait.
  WorkerPool(Loop& loop, unsigned threads, size_t max_queued);
  // Stops the workers (a running job finishes first) and drops completions not yet run.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Runs `work` on a worker, then `done` on the loop thread. False, and neither runs, when
  // every worker is busy and the wait queue is full: the caller answers "try later".
  [[nodiscard]] bool submit(std::function<void()> work, std::function<void()> done);

  [[nodiscard]] size_t threads() const noexcept { return threads_.size(); }

 private:
  struct Shared;
  struct Async;
  void run_worker();

  std::shared_ptr<Shared> s_;
  Async* async_;  // owned by libuv until its close callback has run
  std::vector<std::thread> threads_;
};

}  // namespace tern::io
