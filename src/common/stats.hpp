// Counters since start, for `ternctl stats` (and metrics). Each field has one writer: the
// queue manager counts deliveries, the SMTP server counts rejections and connections, the
// store's commit callback counts received messages. Single-threaded (the loop).
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>

namespace tern {

// A fixed-bucket histogram (Prometheus semantics: each bucket counts observations <= its
// bound; the last, +Inf, counts all).
struct Histogram {
  static constexpr std::array<double, 12> kBounds = {0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400};
  std::array<uint64_t, kBounds.size()> buckets{};  // cumulative counts per bound
  uint64_t count = 0;
  double sum = 0;
  void observe(double v) {
    ++count;
    sum += v;
    for (size_t i = 0; i < kBounds.size(); ++i)
      if (v <= kBounds[i]) ++buckets[i];
  }
};

struct Counters {
  uint64_t received = 0;         // messages queued from clients (notices not counted)
  uint64_t delivered = 0;        // recipients delivered
  uint64_t deferred = 0;         // recipient attempts that ended deferred
  uint64_t bounced = 0;          // recipients failed for good (expired included)
  uint64_t expired = 0;          // of those, past delivery.max_queue_time
  std::map<std::string, uint64_t> rejected;  // SMTP refusals by reply ("550 5.7.1")
  uint64_t connections_in = 0;   // inbound connections accepted
  uint64_t connections_out = 0;  // outbound connections opened
  Histogram delivery_delay;      // seconds from arrival to delivery, per recipient delivered
};

// Gauges, read when asked.
struct Gauges {
  uint64_t queue = 0;             // messages queued
  uint64_t held = 0;
  int64_t oldest_age_s = 0;       // age of the oldest queued message
  uint64_t connections_in = 0;    // open now
  uint64_t connections_out = 0;
  int64_t uptime_s = 0;
};

}  // namespace tern
