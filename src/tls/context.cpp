// Building OpenSSL contexts from configuration: protocol floor, options, certificates.
#include "tls/context.hpp"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "tls/context_impl.hpp"
#include "tls/openssl_util.hpp"

namespace tern::tls {

namespace {

// TLS 1.2 ciphers when 1.3 is not negotiated: forward secret AEAD only. TLS 1.3's suites
// are all AEAD and keep OpenSSL's defaults.
constexpr const char* kServerCiphers12 = "ECDHE+AESGCM:ECDHE+CHACHA20:DHE+AESGCM:DHE+CHACHA20";

void common_options(SSL_CTX* ctx) {
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  // SMTP frames its own data, so a peer closing TCP without close_notify is a normal end
  // (no truncation attack is possible); renegotiation is a DoS lever with no use here.
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
  // Idle connections give their 2 × ~17 KiB record buffers back (thousands of them idle).
  SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
}

std::string describe_leaf(SSL_CTX* ctx) {
  X509* leaf = SSL_CTX_get0_certificate(ctx);
  if (!leaf) return "no certificate";
  char subject[256] = {};
  X509_NAME_oneline(X509_get_subject_name(leaf), subject, sizeof subject);
  std::string out = subject;
  if (BIO* b = BIO_new(BIO_s_mem())) {
    if (ASN1_TIME_print(b, X509_get0_notAfter(leaf)) == 1) {
      char* p = nullptr;
      const long n = BIO_get_mem_data(b, &p);
      out += ", expires " + std::string(p, size_t(n));
    }
    BIO_free(b);
  }
  return out;
}

}  // namespace

ServerContext::ServerContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ServerContext::~ServerContext() = default;

Result<std::shared_ptr<const ServerContext>> ServerContext::load(const std::string& cert_file,
                                                                 const std::string& key_file) {
  // The key is a secret: a file anyone on the host can read is refused (group-readable
  // stays allowed, Debian's ssl-cert group convention).
  struct stat st {};
  if (::stat(key_file.c_str(), &st) != 0)
    return Error::perm(key_file + ": " + std::strerror(errno));
  if (st.st_mode & (S_IROTH | S_IWOTH)) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%03o", unsigned(st.st_mode & 0777));
    return Error::perm(key_file + ": the private key is accessible to other users (mode " + mode +
                       "); chmod 600 or 640");
  }
  ERR_clear_error();
  auto impl = std::make_unique<Impl>();
  impl->ctx = SSL_CTX_new(TLS_server_method());
  if (!impl->ctx) return Error::temp("SSL_CTX_new: " + openssl_error());
  common_options(impl->ctx);
  SSL_CTX_set_options(impl->ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
  SSL_CTX_set_cipher_list(impl->ctx, kServerCiphers12);
  SSL_CTX_set_max_early_data(impl->ctx, 0);  // no 0-RTT data: it could be replayed
  // Resumption through stateless tickets only: no server-side session cache growing with
  // the number of clients.
  SSL_CTX_set_num_tickets(impl->ctx, 1);
  SSL_CTX_set_session_cache_mode(impl->ctx, SSL_SESS_CACHE_OFF);
  if (SSL_CTX_use_certificate_chain_file(impl->ctx, cert_file.c_str()) != 1)
    return Error::perm(cert_file + ": cannot load the certificate chain: " + openssl_error());
  if (SSL_CTX_use_PrivateKey_file(impl->ctx, key_file.c_str(), SSL_FILETYPE_PEM) != 1)
    return Error::perm(key_file + ": cannot load the private key, or it does not match the certificate in " +
                       cert_file + ": " + openssl_error());
  if (SSL_CTX_check_private_key(impl->ctx) != 1)
    return Error::perm(key_file + ": the key does not match the certificate in " + cert_file);
  std::string description = describe_leaf(impl->ctx);
  std::shared_ptr<ServerContext> ctx(new ServerContext(std::move(impl)));
  ctx->description_ = std::move(description);
  return std::shared_ptr<const ServerContext>(std::move(ctx));
}

ClientContext::ClientContext(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClientContext::~ClientContext() = default;

Result<std::shared_ptr<const ClientContext>> ClientContext::load(const std::string& ca_file) {
  ERR_clear_error();
  auto impl = std::make_unique<Impl>();
  impl->ctx = SSL_CTX_new(TLS_client_method());
  if (!impl->ctx) return Error::temp("SSL_CTX_new: " + openssl_error());
  common_options(impl->ctx);
  // Lets a connection use TLSA records (tls::ClientOptions::dane); costs nothing otherwise.
  if (SSL_CTX_dane_enable(impl->ctx) <= 0) return Error::temp("SSL_CTX_dane_enable: " + openssl_error());
  const int ok = ca_file.empty() ? SSL_CTX_set_default_verify_paths(impl->ctx)
                                 : SSL_CTX_load_verify_locations(impl->ctx, ca_file.c_str(), nullptr);
  if (ok != 1)
    return Error::perm((ca_file.empty() ? std::string("the system CA store") : ca_file) +
                       ": cannot load CA certificates: " + openssl_error());
  return std::shared_ptr<const ClientContext>(new ClientContext(std::move(impl)));
}

}  // namespace tern::tls
