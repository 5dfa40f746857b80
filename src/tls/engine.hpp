// The TLS engine: one OpenSSL connection driven entirely through memory, as an io::Filter
// stacked on a transport. It never touches a socket; the loop hands it ciphertext and
// plaintext and sends what it returns. Server (STARTTLS, implicit TLS) and client sides.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "io/transport.hpp"
#include "tls/context.hpp"

namespace tern::tls {

// What a handshake established, filled in by the engine as it learns it. Shared with the
// connection that inserted the engine, which reads it when the transport reports ready
// or failure (the engine itself is owned by the transport).
struct Info {
  bool done = false;        // the handshake completed
  std::string version;      // "TLSv1.3"
  std::string cipher;       // "TLS_AES_256_GCM_SHA384"
  int bits = 0;
  // Client side: the peer's chain verified against the CA store and, when names were
  // given, one of them matched. verify_error says why not.
  bool verified = false;
  std::string verified_by;   // "pkix", "dane-ee" or "dane-ta" when verified
  std::string dane_match;    // the TLSA record that matched ("3 1 1 <hex>"), DANE only
  std::string verify_error;
  std::string peer_subject;  // the peer certificate's subject (client side), for logs
  std::string error;         // why the engine failed, when it did
};

struct ClientOptions {
  std::string sni;                 // server name sent in the hello (no SNI when empty)
  // Names the server certificate must carry for `verified` (RFC 6125 matching, no
  // partial wildcards); a leading '.' accepts any subdomain. Empty: chain only.
  std::vector<std::string> names;
  // DANE (RFC 7671/7672): when not empty, the peer is authenticated by these TLSA records
  // instead of the CA store, through OpenSSL's DANE support: DANE-EE(3) without name checks,
  // DANE-TA(2) with `dane_base` (the MX host) as the name. `names` is not used then.
  struct Tlsa {
    uint8_t usage = 0, selector = 0, mtype = 0;
    std::vector<uint8_t> data;
  };
  std::vector<Tlsa> dane;
  std::string dane_base;
};

class Engine final : public io::Filter {
 public:
  static std::unique_ptr<Engine> server(std::shared_ptr<const ServerContext> ctx, std::shared_ptr<Info> info);
  static std::unique_ptr<Engine> client(std::shared_ptr<const ClientContext> ctx, const ClientOptions& opts,
                                        std::shared_ptr<Info> info);
  ~Engine() override;
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  bool start(std::string& wire) override;
  bool from_wire(std::string_view in, std::string& plain, std::string& wire) override;
  bool to_wire(std::string_view plain, std::string& wire) override;
  bool take_ready() override { return std::exchange(ready_, false); }

  struct Impl;

 private:
  Engine(std::unique_ptr<Impl> impl, std::shared_ptr<Info> info);
  bool handshake();
  bool write_plain(std::string_view plain);
  bool fail(const char* during);

  std::unique_ptr<Impl> impl_;
  std::shared_ptr<Info> info_;
  std::shared_ptr<const void> keep_;  // the context, alive as long as the engine
  std::string pending_;  // plaintext written before the handshake finished (an implicit-TLS greeting)
  bool ready_ = false;
  bool failed_ = false;
};

}  // namespace tern::tls
