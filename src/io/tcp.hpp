// TCP listeners and connections over libuv streams.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/net.hpp"
#include "common/result.hpp"
#include "io/loop.hpp"

namespace tern::io {

class TcpConnection {
 public:
  struct Callbacks {
    std::function<void(std::string_view)> on_data;
    std::function<void(int err)> on_end;  // EOF (0) or a read error (negative errno)
  };

  ~TcpConnection();  // closes the socket if still open
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;

  void set_callbacks(Callbacks cb);
  void start_read();
  void stop_read();
  void write(std::string_view data);
  // Sends what is queued, then closes. No callback fires after close() or close_after_flush().
  void close_after_flush();
  void close();
  [[nodiscard]] const Endpoint& peer() const noexcept { return peer_; }
  [[nodiscard]] size_t queued_bytes() const noexcept;

 private:
  friend class TcpListener;
  struct Handle;
  explicit TcpConnection(Handle* h, Endpoint peer) : h_(h), peer_(peer) {}
  Handle* h_;
  Endpoint peer_;
};

class TcpListener {
 public:
  using OnAccept = std::function<void(std::unique_ptr<TcpConnection>)>;
  static Result<std::unique_ptr<TcpListener>> listen(Loop& loop, const Endpoint& at,
                                                      OnAccept on_accept);
  ~TcpListener();
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;
  [[nodiscard]] const Endpoint& address() const noexcept { return at_; }

 private:
  struct Handle;
  TcpListener(Handle* h, Endpoint at) : h_(h), at_(at) {}
  Handle* h_;
  Endpoint at_;
};

}  // namespace tern::io
