// Prometheus text exposition (format 0.0.4) of tern's counters and gauges, and the pure
// part of the metrics endpoint: judging one HTTP request. The names match `ternctl stats`.
#pragma once

#include <string>
#include <string_view>

#include "common/stats.hpp"

namespace tern::metrics {

std::string exposition(const Counters& c, const Gauges& g);

// What to answer to the bytes a client sent so far: NeedMore until the request head is
// complete; then 200 for "GET /metrics", 404 for another path, 405 for another method, 400
// for anything malformed or a head over kMaxRequest.
inline constexpr size_t kMaxRequest = 8 * 1024;
enum class Verdict { NeedMore, Ok, BadRequest, NotFound, MethodNotAllowed };
Verdict judge_request(std::string_view head);

// The whole HTTP/1.0 response for a verdict (Connection: close).
std::string response(Verdict v, const std::string& body);

}  // namespace tern::metrics
