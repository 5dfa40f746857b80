// The event loop and its primitives. io/ is the only includer of uv.h: everything else sees
// these small classes. Each handle lives on the heap until libuv's close callback has run,
// and no exception crosses a libuv callback.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "common/net.hpp"
#include "common/result.hpp"

struct uv_loop_s;

namespace tern::io {

class Loop {
 public:
  Loop();
  ~Loop();
  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  void run();
  // One non-blocking turn (tests drive the loop by hand): true while work is pending.
  bool run_nowait();
  // One blocking turn: waits for at least one event and handles it.
  void run_once();
  void stop();
  [[nodiscard]] uv_loop_s* raw() const noexcept { return loop_; }

  // Runs `work` on libuv's thread pool, then `done` back on the loop thread.
  void queue_work(std::function<void()> work, std::function<void()> done);

 private:
  uv_loop_s* loop_;
};

// A one-shot or repeating timer. close() (or the destructor) releases it safely.
class Timer {
 public:
  explicit Timer(Loop& loop);
  ~Timer();
  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;
  void start(uint64_t timeout_ms, uint64_t repeat_ms, std::function<void()> cb);
  void stop();

 private:
  struct Handle;
  Handle* h_;
};

// Calls back on the loop thread when something in a directory changes (inotify through
// uv_fs_event: a file created, renamed, or its mode changed). Events are hints: the caller
// rescans rather than trusting names, and keeps a slow timer in case events are lost.
class DirWatch {
 public:
  explicit DirWatch(Loop& loop);
  ~DirWatch();
  DirWatch(const DirWatch&) = delete;
  DirWatch& operator=(const DirWatch&) = delete;
  // Empty, or why the watch could not start (no inotify, too many watches, no directory).
  std::string start(const std::string& dir, std::function<void()> cb);

 private:
  struct Handle;
  Handle* h_;
};

// Delivers a POSIX signal as a callback on the loop thread.
class Signal {
 public:
  Signal(Loop& loop, int signum, std::function<void()> cb);
  ~Signal();
  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;

 private:
  struct Handle;
  Handle* h_;
};

// Raises RLIMIT_NOFILE to its hard limit; returns the new soft limit.
uint64_t raise_fd_limit();

}  // namespace tern::io

namespace tern::io {

// Calls `cb` on the loop thread whenever `fd` is readable (used for libunbound's socket).
class Poll {
 public:
  Poll(Loop& loop, int fd, std::function<void()> cb);
  ~Poll();
  Poll(const Poll&) = delete;
  Poll& operator=(const Poll&) = delete;

 private:
  struct Handle;
  Handle* h_;
};

}  // namespace tern::io

#include "common/alarm.hpp"
#include "common/clock.hpp"

namespace tern::io {

// An Alarm on the loop's timer, reading absolute times from `clock`.
class ClockAlarm final : public Alarm {
 public:
  ClockAlarm(Loop& loop, const Clock& clock) : timer_(loop), clock_(clock) {}
  void set(int64_t at_us, std::function<void()> cb) override {
    const int64_t delay_us = at_us - clock_.now_us();
    timer_.start(delay_us <= 0 ? 0 : uint64_t((delay_us + 999) / 1000), 0, std::move(cb));
  }
  void cancel() override { timer_.stop(); }

 private:
  Timer timer_;
  const Clock& clock_;
};

}  // namespace tern::io
