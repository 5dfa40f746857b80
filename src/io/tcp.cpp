// Streams over libuv: accept, connect, read into one shared buffer, try-write then queued
// write, close. TCP and Unix-domain handles share one Handle type.
#include "io/tcp.hpp"

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include <cstring>
#include <spdlog/spdlog.h>
#include <utility>

namespace tern::io {

namespace {

constexpr uint64_t kFlushDeadlineMs = 30 * 1000;

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

struct Stream::Handle {
  union {
    uv_tcp_t tcp;
    uv_pipe_t pipe;
  };
  Transport::Events cb;
  std::unique_ptr<Filter> filter;  // stacked mid-stream (TLS): sees every later byte
  std::function<void(int)> on_connect;
  bool want_drain = false;         // a write() returned false: fire on_drain when empty
  bool closing = false;
  bool later_pending = false;  // an immediate connect error is still to be reported
  bool closed = false;         // libuv has released the handle
  uv_timer_t* deadline = nullptr;  // bounds close_after_flush() against a peer that never reads

  static void release(Handle* h) {
    if (h->later_pending) h->closed = true;  // the pending report frees it
    else delete h;
  }

  Handle() { std::memset(static_cast<void*>(&tcp), 0, sizeof(uv_pipe_t) > sizeof(uv_tcp_t) ? sizeof(uv_pipe_t) : sizeof(uv_tcp_t)); }
  uv_stream_t* stream() { return reinterpret_cast<uv_stream_t*>(&tcp); }
  void close() {
    if (closing) return;
    closing = true;
    cb = {};
    on_connect = nullptr;
    filter.reset();
    if (deadline) {
      uv_timer_stop(deadline);
      uv_close(reinterpret_cast<uv_handle_t*>(deadline), [](uv_handle_t* t) { delete reinterpret_cast<uv_timer_t*>(t); });
      deadline = nullptr;
    }
    uv_close(reinterpret_cast<uv_handle_t*>(&tcp),
             [](uv_handle_t* h) { release(static_cast<Handle*>(h->data)); });
  }
};

Stream::~Stream() { close(); }

std::unique_ptr<Stream> Stream::connect(Loop& loop, const Endpoint& to, const IpAddress* source,
                                       std::function<void(int)> done) {
  auto* h = new Handle;
  uv_tcp_init(loop.raw(), &h->tcp);
  h->tcp.data = h;
  h->on_connect = std::move(done);
  std::unique_ptr<Stream> s(new Stream(h, to));
  auto* req = new uv_connect_t;
  req->data = h;
  sockaddr_storage ss = sockaddr_of(to);
  int rc = 0;
  if (source) {
    // delivery.source_address: the kernel picks the port, we pick the address.
    sockaddr_storage from = sockaddr_of(Endpoint{*source, 0});
    rc = uv_tcp_bind(&h->tcp, reinterpret_cast<sockaddr*>(&from), 0);
  }
  if (rc == 0) rc = uv_tcp_connect(req, &h->tcp, reinterpret_cast<sockaddr*>(&ss), [](uv_connect_t* r, int status) {
    auto* h = static_cast<Handle*>(r->data);
    delete r;
    if (h->closing) return;
    if (status == 0) uv_tcp_nodelay(&h->tcp, 1);
    if (auto f = std::exchange(h->on_connect, nullptr)) f(status);
  });
  if (rc != 0) {
    delete req;
    // Report asynchronously like every other outcome (never inside connect()).
    struct Later {
      uv_timer_t t{};
      Handle* h;
      int rc;
    };
    auto* later = new Later{{}, h, rc};
    h->later_pending = true;
    uv_timer_init(loop.raw(), &later->t);
    later->t.data = later;
    uv_timer_start(&later->t, [](uv_timer_t* t) {
      auto* l = static_cast<Later*>(t->data);
      Handle* h = l->h;
      h->later_pending = false;
      if (h->closed) delete h;
      else if (!h->closing)
        if (auto f = std::exchange(h->on_connect, nullptr)) f(l->rc);
      uv_close(reinterpret_cast<uv_handle_t*>(t), [](uv_handle_t* x) { delete static_cast<Later*>(x->data); });
    }, 0, 0);
  }
  return s;
}

void Stream::set_events(Events ev) {
  if (h_) h_->cb = std::move(ev);
}

namespace {

// Writes raw bytes to the socket: try_write first, the rest queued. True when nothing is
// left queued afterwards. `owner`: the connection's own write (it gets a drain event when
// false is returned); a filter's handshake bytes are not.
bool raw_write(Stream::Handle* h, uv_stream_t* stream, std::string&& data, bool owner);

}  // namespace

void Stream::start_read() {
  if (!h_) return;
  uv_read_start(
      h_->stream(),
      [](uv_handle_t*, size_t, uv_buf_t* buf) { *buf = uv_buf_init(g_read_buffer, sizeof g_read_buffer); },
      [](uv_stream_t* s, ssize_t n, const uv_buf_t* buf) {
        auto* h = static_cast<Handle*>(s->data);
        if (h->closing) return;
        // Copies: the owner may close (and clear the callbacks) from inside the call.
        if (n > 0) {
          std::string_view in(buf->base, size_t(n));
          if (!h->filter) {
            if (auto f = h->cb.on_data) f(in);
            return;
          }
          std::string plain, wire;
          const bool ok = h->filter->from_wire(in, plain, wire);
          if (!wire.empty()) raw_write(h, s, std::move(wire), false);
          // The owner learns of the finished handshake before it sees the bytes that follow.
          if (h->filter->take_ready())
            if (auto f = h->cb.on_ready) f();
          if (h->closing) return;
          if (!plain.empty())
            if (auto f = h->cb.on_data) f(plain);
          if (!ok && !h->closing) {
            uv_read_stop(s);
            if (auto f = h->cb.on_end) f(-EPROTO);
          }
        } else if (n < 0) {
          uv_read_stop(s);
          if (auto f = h->cb.on_end) f(n == UV_EOF ? 0 : int(n));
        }
      });
}

void Stream::stop_read() {
  if (h_) uv_read_stop(h_->stream());
}

namespace {

bool raw_write(Stream::Handle* h, uv_stream_t* stream, std::string&& data, bool owner) {
  if (data.empty()) return stream->write_queue_size == 0;
  size_t sent = 0;
  if (stream->write_queue_size == 0) {
    uv_buf_t b = uv_buf_init(data.data(), unsigned(data.size()));
    int n = uv_try_write(stream, &b, 1);
    if (n == int(data.size())) return true;
    if (n > 0) sent = size_t(n);
    else if (n != UV_EAGAIN) return false;  // the read side will report the broken connection
  }
  auto* w = new WriteReq;
  w->data = std::move(data);
  uv_buf_t b = uv_buf_init(w->data.data() + sent, unsigned(w->data.size() - sent));
  w->req.data = w;
  const int rc = uv_write(&w->req, stream, &b, 1, [](uv_write_t* r, int) {
    uv_stream_t* s = r->handle;
    delete static_cast<WriteReq*>(r->data);
    auto* h = static_cast<Stream::Handle*>(s->data);
    if (h->closing || !h->want_drain || s->write_queue_size != 0) return;
    h->want_drain = false;
    if (auto f = h->cb.on_drain) f();
  });
  if (rc != 0) {
    delete w;
    return false;  // broken: no drain will come, the read side reports the end
  }
  if (owner) h->want_drain = true;
  return false;
}

}  // namespace

bool Stream::write(std::string&& data) {
  if (!h_) return true;
  if (h_->filter) {
    std::string wire;
    // A filter that cannot encode has failed for good: the read side ends the transport
    // (the TLS engine reports its error there); nothing is queued, so no drain follows.
    if (!h_->filter->to_wire(data, wire)) return true;
    return raw_write(h_, h_->stream(), std::move(wire), true);
  }
  return raw_write(h_, h_->stream(), std::move(data), true);
}

bool Stream::insert_filter(std::unique_ptr<Filter> f) {
  if (!h_) return false;
  std::string wire;
  if (!f->start(wire)) return false;
  h_->filter = std::move(f);
  if (!wire.empty()) raw_write(h_, h_->stream(), std::move(wire), false);
  return true;
}

size_t Stream::queued_bytes() const noexcept { return h_ ? h_->stream()->write_queue_size : 0; }

bool Stream::peer_credentials(uid_t& uid, gid_t& gid) const {
  if (!h_) return false;
  uv_os_fd_t fd;
  if (uv_fileno(reinterpret_cast<uv_handle_t*>(&h_->tcp), &fd) != 0) return false;
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) return false;
  uid = cred.uid;
  gid = cred.gid;
  return true;
}

// After close_after_flush() or close() the facade forgets its handle: the handle lives on
// only until libuv's callbacks have released it.
void Stream::close_after_flush() {
  if (!h_) return;
  Handle* h = std::exchange(h_, nullptr);
  h->cb = {};
  auto* stream = h->stream();
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
    return;
  }
  // A peer that stops reading would keep the descriptor forever: give the flush a deadline.
  h->deadline = new uv_timer_t;
  uv_timer_init(stream->loop, h->deadline);
  h->deadline->data = h;
  uv_timer_start(h->deadline, [](uv_timer_t* t) { static_cast<Handle*>(t->data)->close(); }, kFlushDeadlineMs, 0);
}

void Stream::close() {
  if (h_) std::exchange(h_, nullptr)->close();
}

// The listener accepts by itself (accept4 on a polled socket) instead of through uv_listen:
// libuv answers EMFILE/ENFILE by silently accepting and closing the waiting connections,
// which left running out of descriptors without a trace. Here a failed accept is logged
// (rate-limited) and accepting pauses briefly, so waiting clients stay in the backlog.
namespace {
constexpr int kListenBacklog = 1024;
constexpr int kAcceptsPerWakeup = 64;          // then other events get their turn
constexpr uint64_t kAcceptPauseMs = 100;       // after EMFILE/ENFILE, before trying again
constexpr uint64_t kAcceptLogEveryMs = 10000;  // at most one accept-failure line per 10 s
}  // namespace

struct TcpListener::Handle {
  uv_poll_t poll{};
  uv_timer_t pause{};
  int fd = -1;
  int open_handles = 0;  // poll and pause timer: the struct is freed when both have closed
  Endpoint at;
  OnAccept on_accept;
  uint64_t failures = 0;        // accept failures not yet logged
  int last_errno = 0;
  uint64_t last_log_ms = 0;
  bool logged_once = false;

  static void closed(uv_handle_t* x) {
    auto* h = static_cast<Handle*>(x->data);
    if (--h->open_handles == 0) {
      if (h->fd >= 0) ::close(h->fd);
      delete h;
    }
  }
  void close() {
    on_accept = nullptr;
    uv_poll_stop(&poll);
    uv_timer_stop(&pause);
    uv_close(reinterpret_cast<uv_handle_t*>(&poll), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&pause), closed);
  }

  // Counts a failed accept; logs the count at most once per kAcceptLogEveryMs.
  void note_failure(int err) {
    ++failures;
    last_errno = err;
    const uint64_t now = uv_now(poll.loop);
    if (logged_once && now - last_log_ms < kAcceptLogEveryMs) return;
    struct rlimit rl {};
    ::getrlimit(RLIMIT_NOFILE, &rl);
    spdlog::error("listener: {}: cannot accept connections: {} ({} time(s) since the last report; "
                  "open-files limit {}): clients wait in the backlog or are refused",
                  at.str(), std::strerror(last_errno), failures, uint64_t(rl.rlim_cur));
    failures = 0;
    logged_once = true;
    last_log_ms = now;
  }

  void accept_some() {
    for (int i = 0; i < kAcceptsPerWakeup && on_accept; ++i) {
      sockaddr_storage peer{};
      socklen_t len = sizeof peer;
      int cfd = ::accept4(fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (cfd < 0) {
        const int e = errno;
        if (e == EAGAIN || e == EWOULDBLOCK) return;
        if (e == EINTR || e == ECONNABORTED || e == EPROTO) continue;  // that client only
        note_failure(e);
        // Out of descriptors or memory: stop polling (the socket would stay readable and
        // spin the loop) and try again shortly.
        uv_poll_stop(&poll);
        uv_timer_start(&pause, [](uv_timer_t* t) {
          auto* h = static_cast<Handle*>(t->data);
          h->start_polling();
        }, kAcceptPauseMs, 0);
        return;
      }
      auto* ch = new Stream::Handle;
      uv_tcp_init(poll.loop, &ch->tcp);
      ch->tcp.data = ch;
      if (uv_tcp_open(&ch->tcp, cfd) != 0) {
        ::close(cfd);
        ch->close();
        continue;
      }
      uv_tcp_nodelay(&ch->tcp, 1);
      std::unique_ptr<Stream> conn(new Stream(ch, endpoint_of(peer)));
      auto cb = on_accept;  // the callback may destroy the listener
      cb(std::move(conn));
    }
  }

  void start_polling() {
    uv_poll_start(&poll, UV_READABLE, [](uv_poll_t* p, int status, int) {
      auto* h = static_cast<Handle*>(p->data);
      if (status < 0) {
        h->note_failure(-status);
        return;
      }
      try {
        h->accept_some();
      } catch (const std::exception& e) {  // never unwind through libuv
        spdlog::critical("bug: exception escaped the listener: {}", e.what());
        std::abort();
      }
    });
  }
};

Result<std::unique_ptr<TcpListener>> TcpListener::listen(Loop& loop, const Endpoint& at, OnAccept on_accept) {
  const int family = at.address.v6 ? AF_INET6 : AF_INET;
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  auto fail = [&](const char* what) -> Result<std::unique_ptr<TcpListener>> {
    const int e = errno;
    if (fd >= 0) ::close(fd);
    return Error::perm(std::string(what) + " " + at.str() + ": " + uv_strerror(-e));  // libuv's wording, as before
  };
  if (fd < 0) return fail("cannot create a socket for");
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (at.address.v6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  sockaddr_storage ss = sockaddr_of(at);
  const socklen_t len = at.address.v6 ? sizeof(sockaddr_in6) : sizeof(sockaddr_in);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&ss), len) != 0) return fail("cannot bind");
  if (::listen(fd, kListenBacklog) != 0) return fail("cannot listen on");
  auto* h = new Handle;
  h->fd = fd;
  h->at = at;
  h->on_accept = std::move(on_accept);
  uv_poll_init_socket(loop.raw(), &h->poll, fd);
  uv_timer_init(loop.raw(), &h->pause);
  h->poll.data = h;
  h->pause.data = h;
  h->open_handles = 2;
  h->start_polling();
  return std::unique_ptr<TcpListener>(new TcpListener(h, at));
}

TcpListener::~TcpListener() { h_->close(); }

struct UnixListener::Handle {
  uv_pipe_t pipe{};
  OnAccept on_accept;
};

Result<std::unique_ptr<UnixListener>> UnixListener::listen(Loop& loop, const std::string& path, int mode,
                                                           gid_t gid, OnAccept on_accept) {
  auto* h = new Handle;
  h->on_accept = std::move(on_accept);
  uv_pipe_init(loop.raw(), &h->pipe, 0);
  h->pipe.data = h;
  auto fail = [&](const std::string& what) -> Result<std::unique_ptr<UnixListener>> {
    uv_close(reinterpret_cast<uv_handle_t*>(&h->pipe), [](uv_handle_t* x) { delete static_cast<Handle*>(x->data); });
    return Error::perm(what);
  };
  ::unlink(path.c_str());  // a stale socket from a previous run
  if (int rc = uv_pipe_bind(&h->pipe, path.c_str()); rc != 0)
    return fail("cannot bind control socket " + path + ": " + uv_strerror(rc));
  if (::chmod(path.c_str(), mode_t(mode)) != 0)
    return fail("cannot chmod control socket " + path + ": " + std::strerror(errno));
  if (gid != gid_t(-1) && ::chown(path.c_str(), uid_t(-1), gid) != 0)
    return fail("cannot chown control socket " + path + ": " + std::strerror(errno));
  int rc = uv_listen(reinterpret_cast<uv_stream_t*>(&h->pipe), 64, [](uv_stream_t* server, int status) {
    auto* lh = static_cast<Handle*>(server->data);
    if (status < 0) return;
    auto* ch = new Stream::Handle;
    uv_pipe_init(server->loop, &ch->pipe, 0);
    ch->pipe.data = ch;
    if (uv_accept(server, ch->stream()) != 0) {
      ch->close();
      return;
    }
    std::unique_ptr<Stream> conn(new Stream(ch, Endpoint{}));
    lh->on_accept(std::move(conn));
  });
  if (rc != 0) return fail("cannot listen on control socket " + path + ": " + uv_strerror(rc));
  return std::unique_ptr<UnixListener>(new UnixListener(h, path));
}

UnixListener::~UnixListener() {
  h_->on_accept = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&h_->pipe), [](uv_handle_t* x) { delete static_cast<Handle*>(x->data); });
  ::unlink(path_.c_str());
}

}  // namespace tern::io
