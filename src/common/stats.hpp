// Counters since start, for `ternctl stats` (and metrics). Each field has one writer: the
// queue manager counts deliveries, the SMTP server counts rejections and connections, the
// store's commit callback counts received messages. Single-threaded (the loop).
#pragma once

#include <cstdint>
#include <map>
#include <string>

namespace tern {

struct Counters {
  uint64_t received = 0;         // messages queued from clients (notices not counted)
  uint64_t delivered = 0;        // recipients delivered
  uint64_t deferred = 0;         // recipient attempts that ended deferred
  uint64_t bounced = 0;          // recipients failed for good (expired included)
  uint64_t expired = 0;          // of those, past delivery.max_queue_time
  std::map<std::string, uint64_t> rejected;  // SMTP refusals by reply ("550 5.7.1")
  uint64_t connections_in = 0;   // inbound connections accepted
  uint64_t connections_out = 0;  // outbound connections opened
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
