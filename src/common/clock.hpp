// Time as an interface, so protocol and queue code can be driven by a manual clock in tests.
#pragma once

#include <chrono>
#include <cstdint>

namespace tern {

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock microseconds since the Unix epoch.
  [[nodiscard]] virtual int64_t now_us() const = 0;
};

class SystemClock final : public Clock {
 public:
  [[nodiscard]] int64_t now_us() const override {
    using namespace std::chrono;
    return duration_cast<microseconds>(system_clock::now().time_since_epoch()).count();
  }
};

class ManualClock final : public Clock {
 public:
  explicit ManualClock(int64_t t) : t_(t) {}
  [[nodiscard]] int64_t now_us() const override { return t_; }
  void advance_us(int64_t d) { t_ += d; }

 private:
  int64_t t_;
};

}  // namespace tern
