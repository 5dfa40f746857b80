// Fakes for unit tests of the stateful middle: a manual alarm driven with the ManualClock,
// an in-memory queue (records appended, removals), and a notice sink.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "bounce/notices.hpp"
#include "common/alarm.hpp"
#include "common/clock.hpp"
#include "qmgr/files.hpp"

namespace tern::fake {

// Fires when the test advances the clock past its setting.
class ManualAlarm : public Alarm {
 public:
  explicit ManualAlarm(const ManualClock& clock) : clock_(clock) {}
  void set(int64_t at_us, std::function<void()> cb) override {
    at_ = at_us;
    cb_ = std::move(cb);
  }
  void cancel() override { cb_ = nullptr; }
  [[nodiscard]] bool armed() const { return bool(cb_); }
  [[nodiscard]] int64_t at() const { return at_; }
  // Runs the alarm if due; true if it ran.
  bool poll() {
    if (!cb_ || clock_.now_us() < at_) return false;
    auto f = std::exchange(cb_, nullptr);
    f();
    return true;
  }

 private:
  const ManualClock& clock_;
  int64_t at_ = 0;
  std::function<void()> cb_;
};

// Records what the manager writes; completes each write at once (or holds them when
// `hold` is set, so a test can interleave them).
class Files final : public qmgr::QueueFiles {
 public:
  void append_status(const std::string& id, std::string records, std::function<void(Status)> done) override {
    appended[id] += records;
    ++appends;
    if (hold) return held.push_back([done, fail = fail_next] { done(fail ? Status(Error::temp("disk")) : ok_status()); });
    done(ok_status());
  }
  void remove(const std::string& id, std::function<void(Status)> done) override {
    if (fail_remove) {
      fail_remove = false;
      return done(Error::temp("remove failed: Input/output error"));
    }
    removed.push_back(id);
    done(ok_status());
  }
  [[nodiscard]] std::string path_of(const std::string& id) const override { return "/queue/msg/" + id; }
  void release_all() {
    auto h = std::move(held);
    held.clear();
    for (auto& f : h) f();
  }
  std::map<std::string, std::string> appended;
  std::vector<std::string> removed;
  size_t appends = 0;
  bool hold = false;
  bool fail_next = false;
  bool fail_remove = false;  // the next removal fails
  std::vector<std::function<void()>> held;
};

class Notices final : public bounce::Notices {
 public:
  struct Sent {
    std::string msg_id;
    bounce::NoticeKind kind;
    std::vector<size_t> idx;
  };
  void send(const queue::Envelope& env, bounce::NoticeKind kind, const std::vector<size_t>& idx,
            std::function<void(bool)> done) override {
    sent.push_back({env.id, kind, idx});
    if (ok) done(true);
    else done(false);
  }
  [[nodiscard]] size_t count(bounce::NoticeKind k) const {
    size_t n = 0;
    for (const auto& s : sent) n += s.kind == k;
    return n;
  }
  std::vector<Sent> sent;
  bool ok = true;
};

}  // namespace tern::fake
