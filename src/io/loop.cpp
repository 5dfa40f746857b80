// libuv loop, thread-pool work, timers and signals.
#include "io/loop.hpp"

#include <sys/resource.h>
#include <uv.h>

#include <cstdlib>
#include <spdlog/spdlog.h>

#include "io/guarded.hpp"

namespace tern::io {

namespace {
struct Work {
  uv_work_t req{};
  std::function<void()> work;
  std::function<void()> done;
};
}  // namespace

Loop::Loop() : loop_(new uv_loop_t) { uv_loop_init(loop_); }

Loop::~Loop() {
  // Let pending close callbacks run, then release the loop.
  uv_run(loop_, UV_RUN_NOWAIT);
  if (uv_loop_close(loop_) != 0) {
    uv_walk(loop_, [](uv_handle_t* h, void*) {
      if (!uv_is_closing(h)) uv_close(h, nullptr);
    }, nullptr);
    uv_run(loop_, UV_RUN_DEFAULT);
    uv_loop_close(loop_);
  }
  delete loop_;
}

void Loop::run() { uv_run(loop_, UV_RUN_DEFAULT); }
bool Loop::run_nowait() { return uv_run(loop_, UV_RUN_NOWAIT) != 0; }
void Loop::run_once() { uv_run(loop_, UV_RUN_ONCE); }

void Loop::stop() { uv_stop(loop_); }

void Loop::queue_work(std::function<void()> work, std::function<void()> done) {
  auto* w = new Work;
  w->req.data = w;
  w->work = std::move(work);
  w->done = std::move(done);
  int rc = uv_queue_work(
      loop_, &w->req,
      [](uv_work_t* r) { guarded("thread-pool work", [&] { static_cast<Work*>(r->data)->work(); }); },
      [](uv_work_t* r, int) {
        auto* w = static_cast<Work*>(r->data);
        guarded("work completion", [&] { w->done(); });
        delete w;
      });
  if (rc != 0) {
    spdlog::critical("bug: uv_queue_work failed: {}", uv_strerror(rc));
    std::abort();
  }
}

struct Timer::Handle {
  uv_timer_t t{};
  std::function<void()> cb;
};

Timer::Timer(Loop& loop) : h_(new Handle) {
  uv_timer_init(loop.raw(), &h_->t);
  h_->t.data = h_;
}

Timer::~Timer() {
  uv_timer_stop(&h_->t);
  h_->cb = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&h_->t),
           [](uv_handle_t* h) { delete static_cast<Handle*>(h->data); });
}

void Timer::start(uint64_t timeout_ms, uint64_t repeat_ms, std::function<void()> cb) {
  h_->cb = std::move(cb);
  uv_timer_start(&h_->t, [](uv_timer_t* t) {
    auto* h = static_cast<Handle*>(t->data);
    if (h->cb) guarded("timer", [&] { auto cb = h->cb; cb(); });
  }, timeout_ms, repeat_ms);
}

void Timer::stop() { uv_timer_stop(&h_->t); }

struct DirWatch::Handle {
  uv_fs_event_t e{};
  std::function<void()> cb;
};

DirWatch::DirWatch(Loop& loop) : h_(new Handle) {
  uv_fs_event_init(loop.raw(), &h_->e);
  h_->e.data = h_;
}

DirWatch::~DirWatch() {
  uv_fs_event_stop(&h_->e);
  h_->cb = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&h_->e), [](uv_handle_t* h) { delete static_cast<Handle*>(h->data); });
}

std::string DirWatch::start(const std::string& dir, std::function<void()> cb) {
  h_->cb = std::move(cb);
  const int rc = uv_fs_event_start(
      &h_->e,
      [](uv_fs_event_t* e, const char*, int, int) {
        auto* h = static_cast<Handle*>(e->data);
        if (h->cb) guarded("dir watch", [&] { auto cb = h->cb; cb(); });
      },
      dir.c_str(), 0);
  return rc == 0 ? std::string() : std::string(uv_strerror(rc));
}

struct Signal::Handle {
  uv_signal_t s{};
  std::function<void()> cb;
};

Signal::Signal(Loop& loop, int signum, std::function<void()> cb) : h_(new Handle) {
  uv_signal_init(loop.raw(), &h_->s);
  h_->s.data = h_;
  h_->cb = std::move(cb);
  uv_signal_start(&h_->s, [](uv_signal_t* s, int) {
    auto* h = static_cast<Handle*>(s->data);
    guarded("signal", [&] { h->cb(); });
  }, signum);
}

Signal::~Signal() {
  uv_signal_stop(&h_->s);
  uv_close(reinterpret_cast<uv_handle_t*>(&h_->s),
           [](uv_handle_t* h) { delete static_cast<Handle*>(h->data); });
}

uint64_t raise_fd_limit() {
  struct rlimit rl {};
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur;
}

}  // namespace tern::io

namespace tern::io {

struct Poll::Handle {
  uv_poll_t p{};
  std::function<void()> cb;
};

Poll::Poll(Loop& loop, int fd, std::function<void()> cb) : h_(new Handle) {
  h_->cb = std::move(cb);
  uv_poll_init(loop.raw(), &h_->p, fd);
  h_->p.data = h_;
  uv_poll_start(&h_->p, UV_READABLE, [](uv_poll_t* p, int, int) {
    auto* h = static_cast<Handle*>(p->data);
    guarded("poll", [&] { auto cb = h->cb; cb(); });
  });
}

Poll::~Poll() {
  uv_poll_stop(&h_->p);
  h_->cb = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&h_->p),
           [](uv_handle_t* h) { delete static_cast<Handle*>(h->data); });
}

}  // namespace tern::io
