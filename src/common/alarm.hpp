// A one-shot wake-up at an absolute time, as an interface: the scheduler and the queue
// manager run on io::ClockAlarm in ternd and on a manual alarm in unit tests, so retry,
// expiry and warning rules are tested in milliseconds on a manual clock.
#pragma once

#include <cstdint>
#include <functional>

namespace tern {

class Alarm {
 public:
  virtual ~Alarm() = default;
  // Replaces any earlier setting: `cb` runs once, on the loop, at or after `at_us`
  // (the owner's Clock). Never runs inside set().
  virtual void set(int64_t at_us, std::function<void()> cb) = 0;
  virtual void cancel() = 0;
};

}  // namespace tern
