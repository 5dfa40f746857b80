// Queue listing format.
#include "admin/format.hpp"

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

}  // namespace tern::admin
