// What `ternctl queue` prints: one line per queued message. Pure, so the shape is unit-tested.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/stats.hpp"
#include "qmgr/manager.hpp"

namespace tern::admin {

// "2d3h", "4m10s", "7s".
std::string short_duration(int64_t seconds);

// ID age=4m10s size=407 from=<a@b.example> next=in 1m2s to=<x@y.example>:deferred "451 4.2.2 full" ...
std::string format_queue_line(const qmgr::QueueEntry& e, int64_t now_us);

// `ternctl queue --json`: one JSON array of messages (id, arrival, size, sender, held,
// recipients with address, state, attempts, next_attempt, last_reply).
std::string format_queue_json(const std::vector<qmgr::QueueEntry>& entries, int64_t now_us);

// `ternctl show`: the envelope, each recipient's history, the header section (and the body).
// `file` is the whole queue file (or its beginning when the body is not wanted).
std::string format_show(const queue::Envelope& env, std::string_view file, bool body);

// One line per message an operator command touched: "ID: held" or "ID: no such message".
std::string format_admin_results(const std::vector<qmgr::AdminResult>& results);

// `ternctl stats`: "name value" lines, or one JSON object.
std::string format_stats(const Counters& c, const Gauges& g, bool json);

}  // namespace tern::admin
