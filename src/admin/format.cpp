// Queue listing format.
#include "admin/format.hpp"

#include "common/date.hpp"
#include "common/json.hpp"
#include "queue/codec.hpp"

namespace tern::admin {

std::string short_duration(int64_t s) {
  if (s < 0) s = 0;
  const int64_t d = s / 86400, h = s % 86400 / 3600, m = s % 3600 / 60, sec = s % 60;
  if (d) return std::to_string(d) + "d" + std::to_string(h) + "h";
  if (h) return std::to_string(h) + "h" + std::to_string(m) + "m";
  if (m) return std::to_string(m) + "m" + std::to_string(sec) + "s";
  return std::to_string(sec) + "s";
}

std::string format_queue_line(const qmgr::QueueEntry& e, int64_t now_us) {
  std::string line = e.env.id;
  line += " age=" + short_duration((now_us - e.env.arrival_us) / 1000000);
  line += " size=" + std::to_string(e.size);
  line += " from=<" + e.env.sender + ">";
  if (e.next_attempt_us) line += " next=in " + short_duration((e.next_attempt_us - now_us + 999999) / 1000000);
  else line += " next=none";
  for (const auto& r : e.env.recipients) {
    line += " to=<" + r.address + ">:" + queue::to_string(r.state);
    if (!r.last_reply.empty()) {
      // tern's own reasons carry their status code in a field: shown in front, as a
      // remote reply shows its own.
      std::string reply = (!r.last_remote && !r.last_status.empty() ? r.last_status + " " : "") + r.last_reply;
      for (char& c : reply)
        if (c == '"' || static_cast<unsigned char>(c) < 0x20) c = '\'';
      line += " \"" + reply + "\"";
    }
  }
  return line;
}

namespace {
// The operator's view of a recipient state: failed-notified is failed (its bounce is out).
const char* public_state(queue::RcptState s) {
  switch (s) {
    case queue::RcptState::Pending: return "pending";
    case queue::RcptState::Delivered: return "delivered";
    case queue::RcptState::Deferred: return "deferred";
    case queue::RcptState::Failed:
    case queue::RcptState::FailedNotified: return "failed";
  }
  return "pending";
}

std::string reply_text(const queue::Recipient& r) {
  if (r.last_reply.empty()) return {};
  return (!r.last_remote && !r.last_status.empty() ? r.last_status + " " : "") + r.last_reply;
}
}  // namespace

std::string format_queue_json(const std::vector<qmgr::QueueEntry>& entries, int64_t now_us) {
  (void)now_us;
  std::string out = "[";
  for (size_t i = 0; i < entries.size(); ++i) {
    const auto& e = entries[i];
    out += i ? ",\n" : "\n";
    out += "{\"id\":" + json_string(e.env.id) + ",\"arrival\":" + json_string(rfc3339(e.env.arrival_us)) +
           ",\"size\":" + std::to_string(e.size) + ",\"sender\":" + json_string(e.env.sender) +
           ",\"held\":" + (e.env.held ? "true" : "false") + ",\"recipients\":[";
    for (size_t k = 0; k < e.env.recipients.size(); ++k) {
      const auto& r = e.env.recipients[k];
      const bool open = r.state == queue::RcptState::Pending || r.state == queue::RcptState::Deferred;
      out += k ? "," : "";
      out += "{\"address\":" + json_string(r.address) + ",\"state\":\"" + public_state(r.state) +
             "\",\"attempts\":" + std::to_string(r.attempts) + ",\"next_attempt\":" +
             (open && e.next_attempt_us ? json_string(rfc3339(e.next_attempt_us)) : std::string("null")) +
             ",\"last_reply\":" + (r.last_reply.empty() ? std::string("null") : json_string(reply_text(r))) + "}";
    }
    out += "]}";
  }
  out += entries.empty() ? "]\n" : "\n]\n";
  return out;
}

std::string format_show(const queue::Envelope& env, std::string_view file, bool body) {
  std::string out;
  out += "id: " + env.id + "\n";
  out += "arrival: " + rfc3339(env.arrival_us) + "\n";
  out += "sender: <" + env.sender + ">\n";
  out += "client: [" + env.client_address + "]:" + std::to_string(env.client_port) + " helo=" + env.client_helo +
         " protocol=" + env.protocol + (env.client_relay ? " relay=yes" : "") + "\n";
  if (env.held) out += "held: yes\n";
  if (const size_t sp = env.origin.find(' '); sp != std::string::npos)
    out += "imported: from " + env.origin.substr(0, sp) + ", queue id " + env.origin.substr(sp + 1) + " there\n";
  for (const auto& p : env.mail_params) out += "mail-param: " + p + "\n";
  auto parsed = queue::parse_header(file);
  std::vector<queue::HistoryEvent> history;
  std::string_view data;
  if (parsed) {
    const size_t start = parsed->header_length;
    const size_t end = std::min<size_t>(file.size(), start + parsed->data_size);
    if (start <= file.size()) data = file.substr(start, end - start);
    // An imported message's history from the node it came from first, then this node's.
    std::string carried;
    for (const auto& h : parsed->history) carried.append(h).push_back('\n');
    history = queue::history_of(carried);
    if (start + parsed->data_size <= file.size()) {
      auto here = queue::history_of(file.substr(start + parsed->data_size));
      history.insert(history.end(), here.begin(), here.end());
    }
  }
  for (size_t i = 0; i < env.recipients.size(); ++i) {
    const auto& r = env.recipients[i];
    out += "recipient: <" + r.address + "> state=" + public_state(r.state) + " attempts=" + std::to_string(r.attempts) +
           "\n";
    for (const auto& h : history) {
      if (h.rcpt != long(i)) continue;
      out += "  " + rfc3339(h.time_us) + " " + h.what + " relay=" + (h.relay.empty() ? "none" : h.relay);
      if (!h.reply.empty()) out += " reply=\"" + h.reply + "\"";
      out += "\n";
    }
  }
  for (const auto& h : history)
    if (h.rcpt < 0) out += "event: " + rfc3339(h.time_us) + " " + h.what + "\n";
  // The header section: up to the first empty line.
  size_t hend = data.find("\r\n\r\n");
  const std::string_view headers = hend == std::string_view::npos ? data : data.substr(0, hend + 2);
  out += "\n";
  out.append(headers);
  if (body && hend != std::string_view::npos) {
    out += "\r\n";
    out.append(data.substr(hend + 4));
  }
  return out;
}

std::string format_admin_results(const std::vector<qmgr::AdminResult>& results) {
  std::string out;
  for (const auto& r : results) out += r.id + ": " + (r.error.empty() ? r.done : r.error) + "\n";
  return out;
}

std::string format_stats(const Counters& c, const Gauges& g, bool json) {
  std::vector<std::pair<std::string, std::string>> f = {
      {"received", std::to_string(c.received)},
      {"delivered", std::to_string(c.delivered)},
      {"deferred", std::to_string(c.deferred)},
      {"bounced", std::to_string(c.bounced)},
      {"expired", std::to_string(c.expired)},
      {"connections_in_total", std::to_string(c.connections_in)},
      {"connections_out_total", std::to_string(c.connections_out)},
      {"queue", std::to_string(g.queue)},
      {"held", std::to_string(g.held)},
      {"oldest_age_seconds", std::to_string(g.oldest_age_s)},
      {"connections_in", std::to_string(g.connections_in)},
      {"connections_out", std::to_string(g.connections_out)},
      {"uptime_seconds", std::to_string(g.uptime_s)},
  };
  uint64_t rejected = 0;
  for (const auto& [why, n] : c.rejected) rejected += n;
  std::string out;
  if (!json) {
    for (const auto& [k, v] : f) out += k + " " + v + "\n";
    out += "rejected " + std::to_string(rejected) + "\n";
    for (const auto& [why, n] : c.rejected) out += "rejected[" + why + "] " + std::to_string(n) + "\n";
    return out;
  }
  out = "{";
  for (const auto& [k, v] : f) out += json_string(k) + ":" + v + ",";
  out += "\"rejected\":" + std::to_string(rejected) + ",\"rejected_by_reason\":{";
  bool first = true;
  for (const auto& [why, n] : c.rejected) {
    out += (first ? "" : ",") + json_string(why) + ":" + std::to_string(n);
    first = false;
  }
  return out + "}}\n";
}

}  // namespace tern::admin
