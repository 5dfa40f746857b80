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
#include "io/transport.hpp"

namespace tern::io {

class Stream final : public Transport {
 public:
  ~Stream() override;  // closes the socket if still open
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;

  // Starts an outbound TCP connection, from `source` when given (bound before connecting;
  // port chosen by the kernel). `done` gets 0 or a negative errno, on the loop thread,
  // unless the Stream was closed or destroyed first (that cancels it).
  static std::unique_ptr<Stream> connect(Loop& loop, const Endpoint& to, const IpAddress* source,
                                         std::function<void(int)> done);
  static std::unique_ptr<Stream> connect(Loop& loop, const Endpoint& to, std::function<void(int)> done) {
    return connect(loop, to, nullptr, std::move(done));
  }

  void set_events(Events ev) override;
  void start_read() override;
  void stop_read() override;
  using Transport::write;
  bool write(std::string&& data) override;
  [[nodiscard]] bool insert_filter(std::unique_ptr<Filter> f) override;
  void close_after_flush() override;
  void close() override;
  [[nodiscard]] const Endpoint& peer() const noexcept override { return peer_; }
  [[nodiscard]] size_t queued_bytes() const noexcept override;
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
