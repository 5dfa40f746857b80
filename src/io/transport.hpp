// The transport interface every connection (inbound SMTP, outbound delivery, control)
// talks to: bytes in, bytes out, a drain event when the output queue empties, close, and
// a point where a byte filter (the TLS engine, for STARTTLS) is stacked mid-stream.
// io::Stream is the real implementation; unit tests drive connections with a fake.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/net.hpp"

namespace tern::io {

// A byte transformer between the socket and the connection, inserted mid-stream (after
// STARTTLS's 220) or from the first byte (implicit TLS). Pure: no sockets, no loop.
class Filter {
 public:
  virtual ~Filter() = default;
  // Bytes from the peer in. What the application should see is appended to `plain`,
  // bytes that must go back to the peer (handshake, alerts) to `wire`. False: fatal
  // error (the transport ends with -EPROTO).
  virtual bool from_wire(std::string_view in, std::string& plain, std::string& wire) = 0;
  // Application bytes out, appended to `wire`.
  virtual bool to_wire(std::string_view plain, std::string& wire) = 0;
  // Called once when the filter is inserted: bytes that must go out first (a TLS client's
  // hello). False: the filter cannot start (the transport ends with -EPROTO).
  virtual bool start(std::string& wire) {
    (void)wire;
    return true;
  }
  // True once, after the from_wire() call that completed the filter's setup (the TLS
  // handshake); the transport then fires on_ready before handing on the plain bytes.
  virtual bool take_ready() { return false; }
};

class Transport {
 public:
  struct Events {
    std::function<void(std::string_view)> on_data;
    std::function<void(int err)> on_end;  // EOF (0) or an error (negative errno)
    // The output queue became empty after a write() that returned false: the peer has
    // taken everything written so far (into the kernel's buffer). Never called from
    // inside write().
    std::function<void()> on_drain;
    // The inserted filter finished its setup (the TLS handshake is complete).
    std::function<void()> on_ready;
  };

  virtual ~Transport() = default;
  virtual void set_events(Events ev) = 0;
  virtual void start_read() = 0;
  virtual void stop_read() = 0;
  // Queues `data`. True when it all went out at once (no drain event follows); false when
  // some is still queued (on_drain fires once the queue is empty).
  virtual bool write(std::string&& data) = 0;
  bool write(std::string_view data) { return write(std::string(data)); }
  [[nodiscard]] virtual size_t queued_bytes() const noexcept = 0;
  // Every later byte in either direction passes through `f`. Bytes already read and not
  // yet handed to on_data are not re-filtered: the caller discards them (RFC 3207 §5).
  // False when the filter could not start (nothing was sent).
  [[nodiscard]] virtual bool insert_filter(std::unique_ptr<Filter> f) = 0;
  // Sends what is queued, then closes. No event fires after close() or close_after_flush().
  virtual void close_after_flush() = 0;
  virtual void close() = 0;
  [[nodiscard]] virtual const Endpoint& peer() const noexcept = 0;
};

}  // namespace tern::io
