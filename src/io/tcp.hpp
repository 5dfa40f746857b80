// Byte streams over libuv: TCP (listen, accept, connect) and Unix-domain sockets (listen,
// accept, peer credentials). One Stream class serves both.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "common/net.hpp"
#include "common/result.hpp"
#include "io/loop.hpp"

namespace tern::io {

class Stream {
 public:
  struct Callbacks {
    std::function<void(std::string_view)> on_data;
    std::function<void(int err)> on_end;  // EOF (0) or a read error (negative errno)
  };

  ~Stream();  // closes the socket if still open
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Starts an outbound TCP connection. `done` gets 0 or a negative errno, on the loop
  // thread, unless the Stream was closed or destroyed first (that cancels it).
  static std::unique_ptr<Stream> connect(Loop& loop, const Endpoint& to, std::function<void(int)> done);

  void set_callbacks(Callbacks cb);
  void start_read();
  void stop_read();
  void write(std::string_view data);
  // Same, taking ownership: a large message body is queued without another copy.
  void write(std::string&& data);
  // Sends what is queued, then closes. No callback fires after close() or close_after_flush().
  void close_after_flush();
  void close();
  [[nodiscard]] const Endpoint& peer() const noexcept { return peer_; }
  [[nodiscard]] size_t queued_bytes() const noexcept;
  // Unix sockets only: the peer's credentials (SO_PEERCRED).
  [[nodiscard]] bool peer_credentials(uid_t& uid, gid_t& gid) const;

  struct Handle;

 private:
  friend class TcpListener;
  friend class UnixListener;
  explicit Stream(Handle* h, Endpoint peer) : h_(h), peer_(peer) {}
  Handle* h_;
  Endpoint peer_;
};

class TcpListener {
 public:
  using OnAccept = std::function<void(std::unique_ptr<Stream>)>;
  static Result<std::unique_ptr<TcpListener>> listen(Loop& loop, const Endpoint& at, OnAccept on_accept);
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

class UnixListener {
 public:
  using OnAccept = std::function<void(std::unique_ptr<Stream>)>;
  // Binds `path` (a stale socket file is replaced) with file mode `mode` and group `gid`
  // (-1: unchanged).
  static Result<std::unique_ptr<UnixListener>> listen(Loop& loop, const std::string& path, int mode,
                                                      gid_t gid, OnAccept on_accept);
  ~UnixListener();
  UnixListener(const UnixListener&) = delete;
  UnixListener& operator=(const UnixListener&) = delete;

 private:
  struct Handle;
  UnixListener(Handle* h, std::string path) : h_(h), path_(std::move(path)) {}
  Handle* h_;
  std::string path_;
};

}  // namespace tern::io
