// TCP over libuv: accept, read into one shared buffer, try-write then queued write, close.
#include "io/tcp.hpp"

#include <netinet/in.h>
#include <uv.h>

#include <cstring>
#include <utility>
#include <spdlog/spdlog.h>

namespace tern::io {

namespace {

// Reads are handed to their owner synchronously, so one buffer serves every connection:
// idle connections cost no read buffer at all.
char g_read_buffer[64 * 1024];

Endpoint endpoint_of(const sockaddr_storage& ss) {
  Endpoint e;
  if (ss.ss_family == AF_INET6) {
    const auto* s6 = reinterpret_cast<const sockaddr_in6*>(&ss);
    e.address.v6 = true;
    std::memcpy(e.address.bytes.data(), &s6->sin6_addr, 16);
    e.port = ntohs(s6->sin6_port);
    e.address = e.address.unmapped();
  } else if (ss.ss_family == AF_INET) {
    const auto* s4 = reinterpret_cast<const sockaddr_in*>(&ss);
    std::memcpy(e.address.bytes.data(), &s4->sin_addr, 4);
    e.port = ntohs(s4->sin_port);
  }
  return e;
}

sockaddr_storage sockaddr_of(const Endpoint& e) {
  sockaddr_storage ss{};
  if (e.address.v6) {
    auto* s6 = reinterpret_cast<sockaddr_in6*>(&ss);
    s6->sin6_family = AF_INET6;
    std::memcpy(&s6->sin6_addr, e.address.bytes.data(), 16);
    s6->sin6_port = htons(e.port);
  } else {
    auto* s4 = reinterpret_cast<sockaddr_in*>(&ss);
    s4->sin_family = AF_INET;
    std::memcpy(&s4->sin_addr, e.address.bytes.data(), 4);
    s4->sin_port = htons(e.port);
  }
  return ss;
}

struct WriteReq {
  uv_write_t req{};
  std::string data;
};

}  // namespace

struct TcpConnection::Handle {
  uv_tcp_t tcp{};
  Callbacks cb;
  bool closing = false;

  void close() {
    if (closing) return;
    closing = true;
    cb = {};
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp),
             [](uv_handle_t* h) { delete static_cast<Handle*>(h->data); });
  }
};

TcpConnection::~TcpConnection() { close(); }

void TcpConnection::set_callbacks(Callbacks cb) {
  if (h_) h_->cb = std::move(cb);
}

void TcpConnection::start_read() {
  if (!h_) return;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&h_->tcp),
      [](uv_handle_t*, size_t, uv_buf_t* buf) { *buf = uv_buf_init(g_read_buffer, sizeof g_read_buffer); },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* h = static_cast<Handle*>(s->data);
        if (h->closing) return;
        // Copies: the owner may close (and clear the callbacks) from inside the call.
        if (n > 0) {
          if (auto f = h->cb.on_data) f(std::string_view(buf->base, size_t(n)));
        } else if (n < 0) {
          uv_read_stop(s);
          if (auto f = h->cb.on_end) f(n == UV_EOF ? 0 : int(n));
        }
      });
}

void TcpConnection::stop_read() {
  if (h_) uv_read_stop(reinterpret_cast<uv_stream_t*>(&h_->tcp));
}

void TcpConnection::write(std::string_view data) {
  if (!h_ || data.empty()) return;
  auto* stream = reinterpret_cast<uv_stream_t*>(&h_->tcp);
  if (stream->write_queue_size == 0) {
    uv_buf_t b = uv_buf_init(const_cast<char*>(data.data()), unsigned(data.size()));
    int n = uv_try_write(stream, &b, 1);
    if (n == int(data.size())) return;
    if (n > 0) data.remove_prefix(size_t(n));
    else if (n != UV_EAGAIN) return;  // the read side will report the broken connection
  }
  auto* w = new WriteReq;
  w->data.assign(data);
  uv_buf_t b = uv_buf_init(w->data.data(), unsigned(w->data.size()));
  w->req.data = w;
  if (uv_write(&w->req, stream, &b, 1, [](uv_write_t* r, int) { delete static_cast<WriteReq*>(r->data); }) != 0)
    delete w;
}

size_t TcpConnection::queued_bytes() const noexcept {
  return h_ ? h_->tcp.write_queue_size : 0;
}

// After close_after_flush() or close() the facade forgets its handle: the handle lives on
// only until libuv's callbacks have released it.
void TcpConnection::close_after_flush() {
  if (!h_) return;
  Handle* h = std::exchange(h_, nullptr);
  h->cb = {};
  auto* stream = reinterpret_cast<uv_stream_t*>(&h->tcp);
  if (stream->write_queue_size == 0) return h->close();
  uv_read_stop(stream);
  auto* req = new uv_shutdown_t;
  req->data = h;
  if (uv_shutdown(req, stream, [](uv_shutdown_t* r, int) {
        static_cast<Handle*>(r->data)->close();
        delete r;
      }) != 0) {
    delete req;
    h->close();
  }
}

void TcpConnection::close() {
  if (h_) std::exchange(h_, nullptr)->close();
}

struct TcpListener::Handle {
  uv_tcp_t tcp{};
  OnAccept on_accept;
};

Result<std::unique_ptr<TcpListener>> TcpListener::listen(Loop& loop, const Endpoint& at,
                                                         OnAccept on_accept) {
  auto* h = new Handle;
  h->on_accept = std::move(on_accept);
  uv_tcp_init(loop.raw(), &h->tcp);
  h->tcp.data = h;
  auto fail = [&](const char* what, int rc) -> Result<std::unique_ptr<TcpListener>> {
    uv_close(reinterpret_cast<uv_handle_t*>(&h->tcp),
             [](uv_handle_t* x) { delete static_cast<Handle*>(x->data); });
    return Error::perm(std::string(what) + " " + at.str() + ": " + uv_strerror(rc));
  };
  sockaddr_storage ss = sockaddr_of(at);
  int rc = uv_tcp_bind(&h->tcp, reinterpret_cast<sockaddr*>(&ss), at.address.v6 ? UV_TCP_IPV6ONLY : 0);
  if (rc != 0) return fail("cannot bind", rc);
  rc = uv_listen(reinterpret_cast<uv_stream_t*>(&h->tcp), 1024, [](uv_stream_t* server, int status) {
    auto* lh = static_cast<Handle*>(server->data);
    if (status < 0) {
      spdlog::warn("listener: accept failed: {}", uv_strerror(status));
      return;
    }
    auto* ch = new TcpConnection::Handle;
    uv_tcp_init(server->loop, &ch->tcp);
    ch->tcp.data = ch;
    if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&ch->tcp)) != 0) {
      ch->close();
      return;
    }
    uv_tcp_nodelay(&ch->tcp, 1);
    sockaddr_storage peer{};
    int len = sizeof peer;
    uv_tcp_getpeername(&ch->tcp, reinterpret_cast<sockaddr*>(&peer), &len);
    std::unique_ptr<TcpConnection> conn(new TcpConnection(ch, endpoint_of(peer)));
    lh->on_accept(std::move(conn));
  });
  if (rc != 0) return fail("cannot listen on", rc);
  return std::unique_ptr<TcpListener>(new TcpListener(h, at));
}

TcpListener::~TcpListener() {
  h_->on_accept = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&h_->tcp),
           [](uv_handle_t* x) { delete static_cast<Handle*>(x->data); });
}

}  // namespace tern::io
