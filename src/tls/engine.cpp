// The memory-driven TLS engine. OpenSSL reads and writes through a BIO of our own that
// points, for the length of one call, at the bytes just received and at the string the
// caller will send: no socket, and no buffer kept between calls (an idle connection holds
// only the SSL object, its record buffers released).
#include "tls/engine.hpp"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cstring>
#include <mutex>

#include "common/strings.hpp"
#include "tls/context_impl.hpp"
#include "tls/openssl_util.hpp"

namespace tern::tls {

std::string openssl_error() {
  std::string out;
  while (const unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    // "error:0A000086:SSL routines::certificate verify failed" → keep the reason part.
    const char* reason = ERR_reason_error_string(e);
    out += reason ? reason : buf;
  }
  return out.empty() ? "unknown TLS error" : out;
}

namespace {

// The window the BIO sees during one engine call.
struct Window {
  std::string_view in;
  std::string* out = nullptr;
};

int bio_read(BIO* b, char* buf, int len) {
  auto* w = static_cast<Window*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (w->in.empty()) {
    BIO_set_retry_read(b);  // more is coming from the socket later
    return -1;
  }
  const size_t n = std::min(w->in.size(), size_t(len));
  std::memcpy(buf, w->in.data(), n);
  w->in.remove_prefix(n);
  return int(n);
}

int bio_write(BIO* b, const char* buf, int len) {
  auto* w = static_cast<Window*>(BIO_get_data(b));
  BIO_clear_retry_flags(b);
  if (!w->out) {
    BIO_set_retry_write(b);
    return -1;
  }
  w->out->append(buf, size_t(len));
  return len;
}

long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

BIO_METHOD* window_method() {
  static BIO_METHOD* method = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    method = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tern window");
    BIO_meth_set_read(method, bio_read);
    BIO_meth_set_write(method, bio_write);
    BIO_meth_set_ctrl(method, bio_ctrl);
    BIO_meth_set_create(method, [](BIO* b) {
      BIO_set_init(b, 1);
      return 1;
    });
  });
  return method;
}

}  // namespace

struct Engine::Impl {
  SSL* ssl = nullptr;
  Window window;
  bool client = false;
  bool dane = false;  // TLSA records were given: only they can authenticate the peer
  ~Impl() { SSL_free(ssl); }  // frees the BIO too

  // Points the BIO at this call's bytes; cleared on scope exit so nothing dangles.
  struct Use {
    Impl& i;
    Use(Impl& impl, std::string_view in, std::string* out) : i(impl) { i.window = {in, out}; }
    ~Use() { i.window = {}; }
  };
};

Engine::Engine(std::unique_ptr<Impl> impl, std::shared_ptr<Info> info)
    : impl_(std::move(impl)), info_(std::move(info)) {}
Engine::~Engine() = default;

namespace {
std::unique_ptr<Engine::Impl> make_impl(SSL_CTX* ctx, bool client) {
  ERR_clear_error();
  auto impl = std::make_unique<Engine::Impl>();
  impl->client = client;
  impl->ssl = SSL_new(ctx);
  if (!impl->ssl) return nullptr;
  BIO* bio = BIO_new(window_method());
  if (!bio) return nullptr;
  BIO_set_data(bio, &impl->window);
  // One BIO for both sides: SSL_set_bio takes a single reference then (SSL_set_bio(3)), so
  // no extra BIO_up_ref, or every engine leaks its BIO (found by ASan, scenario 71).
  SSL_set_bio(impl->ssl, bio, bio);
  return impl;
}
}  // namespace

std::unique_ptr<Engine> Engine::server(std::shared_ptr<const ServerContext> ctx, std::shared_ptr<Info> info) {
  auto impl = make_impl(ctx->impl_->ctx, false);
  if (!impl) return nullptr;
  SSL_set_accept_state(impl->ssl);
  std::unique_ptr<Engine> e(new Engine(std::move(impl), std::move(info)));
  e->keep_ = std::move(ctx);
  return e;
}

std::unique_ptr<Engine> Engine::client(std::shared_ptr<const ClientContext> ctx, const ClientOptions& opts,
                                       std::shared_ptr<Info> info) {
  auto impl = make_impl(ctx->impl_->ctx, true);
  if (!impl) return nullptr;
  SSL* ssl = impl->ssl;
  SSL_set_connect_state(ssl);
  if (!opts.sni.empty()) SSL_set_tlsext_host_name(ssl, opts.sni.c_str());
  // Verification never aborts the handshake: the caller reads `verified` and decides by
  // its policy (opportunistic TLS still encrypts to a peer it cannot authenticate).
  SSL_set_verify(ssl, SSL_VERIFY_NONE, nullptr);
  if (!opts.dane.empty()) {
    // The base domain is the DANE-TA reference name (set as the verify host by OpenSSL).
    if (SSL_dane_enable(ssl, opts.dane_base.empty() ? nullptr : opts.dane_base.c_str()) <= 0) return nullptr;
    impl->dane = true;
    // RFC 7672 §3.1.1: a DANE-EE(3) match authenticates the key itself, whatever names the
    // certificate carries.
    SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    int usable = 0;
    for (const auto& t : opts.dane) {
      // 0: a record OpenSSL cannot use (skipped); < 0: malformed. Neither is fatal: the
      // caller filtered already, and with no record added verification simply fails.
      if (SSL_dane_tlsa_add(ssl, t.usage, t.selector, t.mtype, t.data.data(), t.data.size()) > 0) ++usable;
    }
    ERR_clear_error();
    if (usable == 0) info->verify_error = "no usable TLSA record";
  } else if (!opts.names.empty()) {
    SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    bool first = true;
    for (const auto& n : opts.names) {
      // A leading '.' makes OpenSSL accept any subdomain of the rest (X509_check_host).
      if (first ? SSL_set1_host(ssl, n.c_str()) != 1 : SSL_add1_host(ssl, n.c_str()) != 1) return nullptr;
      first = false;
    }
  }
  std::unique_ptr<Engine> e(new Engine(std::move(impl), std::move(info)));
  e->keep_ = std::move(ctx);
  return e;
}

bool Engine::fail(const char* during) {
  failed_ = true;
  if (info_->error.empty()) info_->error = std::string(during) + ": " + openssl_error();
  return false;
}

bool Engine::start(std::string& wire) {
  if (!impl_->client) return true;
  Impl::Use use(*impl_, {}, &wire);
  return handshake();  // the ClientHello
}

// Advances the handshake with whatever the window holds. True unless it failed.
bool Engine::handshake() {
  ERR_clear_error();
  const int rc = SSL_do_handshake(impl_->ssl);
  if (rc != 1) {
    const int err = SSL_get_error(impl_->ssl, rc);
    if (err == SSL_ERROR_WANT_READ) return true;
    return fail("handshake");
  }
  SSL* ssl = impl_->ssl;
  Info& i = *info_;
  i.done = true;
  i.version = SSL_get_version(ssl);
  i.cipher = SSL_get_cipher_name(ssl);
  i.bits = SSL_get_cipher_bits(ssl, nullptr);
  if (impl_->client) {
    X509* peer = SSL_get0_peer_certificate(ssl);
    if (peer) {
      char subject[256] = {};
      X509_NAME_oneline(X509_get_subject_name(peer), subject, sizeof subject);
      i.peer_subject = subject;
    }
    const long vr = SSL_get_verify_result(ssl);
    i.verified = peer && vr == X509_V_OK && i.verify_error.empty();
    if (!peer) i.verify_error = "no peer certificate";
    else if (vr != X509_V_OK && i.verify_error.empty()) i.verify_error = X509_verify_cert_error_string(vr);
    if (i.verified) {
      i.verified_by = "pkix";
      uint8_t usage = 0, selector = 0, mtype = 0;
      const unsigned char* data = nullptr;
      size_t dlen = 0;
      // ≥ 0 only when DANE was enabled and a TLSA record matched (the chain depth).
      if (SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, &data, &dlen) >= 0) {
        i.verified_by = usage == 3 ? "dane-ee" : "dane-ta";
        i.dane_match = std::to_string(usage) + " " + std::to_string(selector) + " " + std::to_string(mtype) + " " +
                       hex_lower(std::span<const uint8_t>(data, dlen), 32);
      } else if (impl_->dane) {
        // Under DANE only a TLSA match authenticates (OpenSSL would not report success
        // otherwise; kept as a guard).
        i.verified = false;
        i.verified_by.clear();
        i.verify_error = "no TLSA record matched";
      }
    }
  }
  ready_ = true;
  // Plaintext the application wrote before the handshake finished goes out now.
  if (!pending_.empty()) return write_plain(std::exchange(pending_, {}));
  return true;
}

bool Engine::from_wire(std::string_view in, std::string& plain, std::string& wire) {
  if (failed_) return false;
  Impl::Use use(*impl_, in, &wire);
  if (!info_->done) {
    if (!handshake()) return false;
    if (!info_->done) return true;
  }
  // Everything the window still holds is records: decrypt until OpenSSL wants more.
  char buf[16 * 1024];
  for (;;) {
    ERR_clear_error();
    const int n = SSL_read(impl_->ssl, buf, sizeof buf);
    if (n > 0) {
      plain.append(buf, size_t(n));
      continue;
    }
    const int err = SSL_get_error(impl_->ssl, n);
    if (err == SSL_ERROR_WANT_READ) return true;
    if (err == SSL_ERROR_ZERO_RETURN) return true;  // close_notify: TCP's end follows
    return fail("read");
  }
}

bool Engine::to_wire(std::string_view plain, std::string& wire) {
  if (failed_) return false;
  if (!info_->done) {
    pending_.append(plain);  // an implicit-TLS greeting, before the client's hello arrived
    return true;
  }
  Impl::Use use(*impl_, {}, &wire);
  return write_plain(plain);
}

// Encrypts into the window's output (set by the caller).
bool Engine::write_plain(std::string_view plain) {
  while (!plain.empty()) {
    ERR_clear_error();
    const int chunk = int(std::min<size_t>(plain.size(), 1 << 30));
    const int n = SSL_write(impl_->ssl, plain.data(), chunk);
    if (n <= 0) return fail("write");
    plain.remove_prefix(size_t(n));
  }
  return true;
}

}  // namespace tern::tls
