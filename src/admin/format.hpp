// What `ternctl queue` prints: one line per queued message. Pure, so the shape is unit-tested.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "qmgr/manager.hpp"

namespace tern::admin {

// "2d3h", "4m10s", "7s".
std::string short_duration(int64_t seconds);

// ID age=4m10s size=407 from=<a@b.example> next=in 1m2s to=<x@y.example>:deferred "451 4.2.2 full" ...
std::string format_queue_line(const qmgr::QueueEntry& e, int64_t now_us);

}  // namespace tern::admin
