// The OpenSSL handles behind the opaque contexts, shared by tls/ files only.
#pragma once

#include <openssl/ssl.h>

#include "tls/context.hpp"

namespace tern::tls {

struct ServerContext::Impl {
  SSL_CTX* ctx = nullptr;
  ~Impl() { SSL_CTX_free(ctx); }
};

struct ClientContext::Impl {
  SSL_CTX* ctx = nullptr;
  ~Impl() { SSL_CTX_free(ctx); }
};

}  // namespace tern::tls
