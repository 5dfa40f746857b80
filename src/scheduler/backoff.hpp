// Retry timing: exponential backoff with jitter. Pure.
#pragma once

#include <algorithm>
#include <chrono>
#include <cmath>

#include "config/config.hpp"

namespace tern::scheduler {

// Wait before attempt `attempts`+1 after `attempts` failures (attempts >= 1):
// min(initial × factor^(attempts−1), max), then scaled by a jitter factor in [0.9, 1.1]
// taken from `unit` (a uniform draw in [0, 1)), so that mail deferred together does not
// come back all at once. Never less than one second.
inline std::chrono::seconds retry_delay(const config::Retry& r, unsigned attempts, double unit) {
  const double base = double(r.initial.count()) *
                      std::pow(r.factor, double(std::max(1u, attempts) - 1));
  const double capped = std::min(base, double(r.max.count()));
  const double jittered = capped * (0.9 + 0.2 * std::clamp(unit, 0.0, 1.0));
  return std::chrono::seconds(std::max<long long>(1, std::llround(jittered)));
}

}  // namespace tern::scheduler
