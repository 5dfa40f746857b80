// Prometheus text format and request judging for the metrics endpoint.
#include "metrics/exposition.hpp"

#include <cstdio>

namespace tern::metrics {

namespace {
std::string num(double v, const char* format = "%.17g") {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

// Label values escape backslash, quote and newline (the exposition format's rules).
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out += '\\', out += c;
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void metric(std::string& out, const char* name, const char* type, const char* help) {
  out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}
}  // namespace

std::string exposition(const Counters& c, const Gauges& g) {
  std::string o;
  metric(o, "tern_messages_received_total", "counter", "Messages queued from clients.");
  o += "tern_messages_received_total " + std::to_string(c.received) + "\n";
  metric(o, "tern_deliveries_total", "counter", "Recipient delivery outcomes.");
  o += "tern_deliveries_total{status=\"sent\"} " + std::to_string(c.delivered) + "\n";
  o += "tern_deliveries_total{status=\"deferred\"} " + std::to_string(c.deferred) + "\n";
  o += "tern_deliveries_total{status=\"bounced\"} " + std::to_string(c.bounced) + "\n";
  metric(o, "tern_expired_total", "counter", "Recipients bounced after delivery.max_queue_time.");
  o += "tern_expired_total " + std::to_string(c.expired) + "\n";
  metric(o, "tern_smtp_rejects_total", "counter", "SMTP refusals by reply code.");
  for (const auto& [why, n] : c.rejected)
    o += "tern_smtp_rejects_total{reason=\"" + label(why) + "\"} " + std::to_string(n) + "\n";
  metric(o, "tern_connections_total", "counter", "Connections accepted (in) and opened (out).");
  o += "tern_connections_total{direction=\"in\"} " + std::to_string(c.connections_in) + "\n";
  o += "tern_connections_total{direction=\"out\"} " + std::to_string(c.connections_out) + "\n";
  metric(o, "tern_queue_messages", "gauge", "Messages in the queue.");
  o += "tern_queue_messages " + std::to_string(g.queue) + "\n";
  metric(o, "tern_queue_held_messages", "gauge", "Messages held by an operator.");
  o += "tern_queue_held_messages " + std::to_string(g.held) + "\n";
  metric(o, "tern_queue_oldest_seconds", "gauge", "Age of the oldest queued message.");
  o += "tern_queue_oldest_seconds " + std::to_string(g.oldest_age_s) + "\n";
  metric(o, "tern_connections", "gauge", "Connections open now.");
  o += "tern_connections{direction=\"in\"} " + std::to_string(g.connections_in) + "\n";
  o += "tern_connections{direction=\"out\"} " + std::to_string(g.connections_out) + "\n";
  metric(o, "tern_uptime_seconds", "gauge", "Seconds since ternd started.");
  o += "tern_uptime_seconds " + std::to_string(g.uptime_s) + "\n";
  metric(o, "tern_delivery_delay_seconds", "histogram", "Time from arrival to delivery, per recipient.");
  const auto& h = c.delivery_delay;
  for (size_t i = 0; i < Histogram::kBounds.size(); ++i)
    o += "tern_delivery_delay_seconds_bucket{le=\"" + num(Histogram::kBounds[i], "%g") + "\"} " + std::to_string(h.buckets[i]) +
         "\n";
  o += "tern_delivery_delay_seconds_bucket{le=\"+Inf\"} " + std::to_string(h.count) + "\n";
  o += "tern_delivery_delay_seconds_sum " + num(h.sum) + "\n";
  o += "tern_delivery_delay_seconds_count " + std::to_string(h.count) + "\n";
  return o;
}

Verdict judge_request(std::string_view head) {
  const size_t end = head.find("\r\n\r\n");
  const size_t lf_end = head.find("\n\n");
  if (end == std::string_view::npos && lf_end == std::string_view::npos)
    return head.size() > kMaxRequest ? Verdict::BadRequest : Verdict::NeedMore;
  if (std::min(end, lf_end) > kMaxRequest) return Verdict::BadRequest;
  const size_t eol = head.find_first_of("\r\n");
  const std::string_view line = head.substr(0, eol);
  // METHOD SP TARGET SP HTTP/1.x
  const size_t a = line.find(' ');
  const size_t b = a == std::string_view::npos ? a : line.find(' ', a + 1);
  if (a == std::string_view::npos || b == std::string_view::npos || line.find(' ', b + 1) != std::string_view::npos)
    return Verdict::BadRequest;
  const std::string_view method = line.substr(0, a), target = line.substr(a + 1, b - a - 1),
                         version = line.substr(b + 1);
  if (version != "HTTP/1.0" && version != "HTTP/1.1") return Verdict::BadRequest;
  for (char ch : method)
    if (ch < 'A' || ch > 'Z') return Verdict::BadRequest;
  if (method != "GET") return Verdict::MethodNotAllowed;
  if (target != "/metrics" && !target.starts_with("/metrics?")) return Verdict::NotFound;
  return Verdict::Ok;
}

std::string response(Verdict v, const std::string& body) {
  const char* status = v == Verdict::Ok                 ? "200 OK"
                       : v == Verdict::NotFound         ? "404 Not Found"
                       : v == Verdict::MethodNotAllowed ? "405 Method Not Allowed"
                                                        : "400 Bad Request";
  const std::string text = v == Verdict::Ok ? body : std::string(status) + "\n";
  std::string out = std::string("HTTP/1.0 ") + status + "\r\n";
  out += v == Verdict::Ok ? "Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n" : "Content-Type: text/plain\r\n";
  if (v == Verdict::MethodNotAllowed) out += "Allow: GET\r\n";
  out += "Content-Length: " + std::to_string(text.size()) + "\r\nConnection: close\r\n\r\n" + text;
  return out;
}

}  // namespace tern::metrics
