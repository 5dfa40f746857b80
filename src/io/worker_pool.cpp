// Worker threads, their bounded queue, and completions posted to the loop with a uv_async_t.
#include "io/worker_pool.hpp"

#include <uv.h>

#include <condition_variable>
#include <deque>
#include <mutex>

#include "io/guarded.hpp"

namespace tern::io {

struct WorkerPool::Shared {
  struct Job {
    std::function<void()> work;
    std::function<void()> done;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Job> pending;
  std::vector<std::function<void()>> completed;
  size_t busy = 0;  // jobs being run
  size_t capacity = 0;  // threads + max_queued: jobs running or waiting at most
  bool stop = false;
};

struct WorkerPool::Async {
  uv_async_t h{};
  std::shared_ptr<Shared> s;
  // Jobs submitted whose completion has not run (loop thread only). The handle keeps the
  // loop alive only while there are some: an idle pool must not stop the loop from ending.
  size_t outstanding = 0;
};

WorkerPool::WorkerPool(Loop& loop, unsigned threads, size_t max_queued)
    : s_(std::make_shared<Shared>()), async_(new Async) {
  if (threads == 0) threads = 1;
  s_->capacity = threads + max_queued;
  async_->s = s_;
  async_->h.data = async_;
  uv_async_init(loop.raw(), &async_->h, [](uv_async_t* h) {
    auto* a = static_cast<Async*>(h->data);
    std::vector<std::function<void()>> done;
    {
      std::lock_guard lock(a->s->mu);
      done.swap(a->s->completed);
    }
    for (auto& d : done) {
      if (--a->outstanding == 0) uv_unref(reinterpret_cast<uv_handle_t*>(h));
      guarded("worker completion", [&] { d(); });
    }
  });
  uv_unref(reinterpret_cast<uv_handle_t*>(&async_->h));
  threads_.reserve(threads);
  for (unsigned i = 0; i < threads; ++i) threads_.emplace_back([this] { run_worker(); });
}

WorkerPool::~WorkerPool() {
  {
    std::lock_guard lock(s_->mu);
    s_->stop = true;
    s_->pending.clear();
  }
  s_->cv.notify_all();
  for (auto& t : threads_) t.join();
  {
    std::lock_guard lock(s_->mu);
    s_->completed.clear();  // they may refer to objects already gone
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&async_->h),
           [](uv_handle_t* h) { delete static_cast<Async*>(h->data); });
}

bool WorkerPool::submit(std::function<void()> work, std::function<void()> done) {
  {
    std::lock_guard lock(s_->mu);
    if (s_->stop || s_->pending.size() + s_->busy >= s_->capacity) return false;
    s_->pending.push_back({std::move(work), std::move(done)});
  }
  if (async_->outstanding++ == 0) uv_ref(reinterpret_cast<uv_handle_t*>(&async_->h));
  s_->cv.notify_one();
  return true;
}

void WorkerPool::run_worker() {
  std::unique_lock lock(s_->mu);
  for (;;) {
    s_->cv.wait(lock, [&] { return s_->stop || !s_->pending.empty(); });
    if (s_->stop) return;
    Shared::Job job = std::move(s_->pending.front());
    s_->pending.pop_front();
    ++s_->busy;
    lock.unlock();
    guarded("worker job", [&] { job.work(); });
    job.work = nullptr;  // what it captured is released on the worker
    lock.lock();
    --s_->busy;
    s_->completed.push_back(std::move(job.done));
    uv_async_send(&async_->h);
  }
}

}  // namespace tern::io
