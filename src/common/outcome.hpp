// The result of one delivery attempt for one recipient, classified once where it happens
// (delivery/outcome.cpp) and read field by field by the queue manager, the status records
// and the DSN builder: nothing parses a status code back out of a text.
#pragma once

#include <string>

namespace tern {

enum class Fate {
  Delivered,  // the next hop took it (2xx after the data)
  Deferred,   // try again later
  Failed,     // never: bounce it
  RetryNow,   // 452 too many recipients after some were taken: a new transaction at once
};

struct Outcome {
  Fate fate = Fate::Deferred;
  std::string status;       // RFC 3463 enhanced status code, e.g. "4.4.1"
  std::string text;         // the remote reply, or tern's own reason, for logs and DSNs
  bool remote = false;      // `text` is an SMTP reply from the next hop (DSN "smtp;")
  std::string relay;        // "host[addr]:port" of the host that answered; "" when none did
  bool dsn_passed = false;  // the next hop took the RFC 3461 parameters (it reports now)
  // How the connection that decided it was protected, for the log: "tls=TLSv1.3
  // cipher=... verified=pkix|dane-ee|dane-ta|no", "tls=none"; empty when no connection was made.
  std::string tls;

  [[nodiscard]] bool answered() const noexcept { return !relay.empty(); }
  static Outcome make(Fate f, std::string status, std::string text, bool remote = false) {
    Outcome o;
    o.fate = f;
    o.status = std::move(status);
    o.text = std::move(text);
    o.remote = remote;
    return o;
  }
};

const char* to_string(Fate f) noexcept;

}  // namespace tern
