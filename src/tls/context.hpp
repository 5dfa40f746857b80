// TLS contexts: the server's certificate and key (swapped whole on SIGHUP) and the
// client's trust store and protocol settings. Only tls/ sees OpenSSL; these are opaque
// handles to everyone else.
#pragma once

#include <memory>
#include <string>

#include "common/result.hpp"

namespace tern::tls {

class Engine;

// A certificate chain and its key, ready to answer handshakes. Immutable once loaded:
// a reload builds a new one and new connections take it; running ones keep theirs.
class ServerContext {
 public:
  // Loads a PEM chain (leaf first) and its private key, checking they belong together.
  static Result<std::shared_ptr<const ServerContext>> load(const std::string& cert_file,
                                                           const std::string& key_file);
  ~ServerContext();
  ServerContext(const ServerContext&) = delete;
  ServerContext& operator=(const ServerContext&) = delete;
  // The leaf certificate's subject and expiry, for the log line at load.
  [[nodiscard]] const std::string& description() const noexcept { return description_; }

 private:
  friend class Engine;
  struct Impl;
  explicit ServerContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string description_;
};

// Outbound: the CA certificates that `verify` checks chains against.
class ClientContext {
 public:
  // `ca_file` empty: OpenSSL's default store (Debian: /etc/ssl/certs).
  static Result<std::shared_ptr<const ClientContext>> load(const std::string& ca_file);
  ~ClientContext();
  ClientContext(const ClientContext&) = delete;
  ClientContext& operator=(const ClientContext&) = delete;

 private:
  friend class Engine;
  struct Impl;
  explicit ClientContext(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern::tls
