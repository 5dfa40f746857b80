// Fuzz target: the whole inbound session machine fed arbitrary client bytes.
#include <memory>
#include <string>
#include <string_view>

#include "server/session.hpp"

namespace {
struct Host : tern::server::SessionHost {
  bool queue_has_room(uint64_t) override { return true; }
  std::string begin_message(const tern::queue::Envelope&) override { return "00000000001"; }
  void message_data(std::string_view) override {}
  void commit_message() override {}
  void abort_message() override {}
  int64_t now_us() override { return 1764066538000000; }
  // Every verification is taken; the outcome is chosen by the input (below).
  bool verify_credentials(const tern::smtp::sasl::Credentials&) override { return true; }
};
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  static const auto settings = [] {
    tern::config::Config c;
    c.hostname = "relay.example.net";
    c.postmaster = "hostmaster@example.net";
    c.relay.networks = {*tern::Cidr::parse("127.0.0.1/32")};
    c.relay.domains = {{"partner.example", std::nullopt, {}}};
    c.limits.max_message_size = 4096;
    c.limits.max_recipients = 5;
    return std::make_shared<const tern::server::SessionSettings>(
        tern::server::SessionSettings{c.hostname, c.limits, tern::server::RelayPolicy(c), true, true});
  }();
  if (size < 1) return 0;
  Host host;
  const bool relay = data[0] & 1;
  const bool auth_required = data[0] & 2;
  tern::server::Session s(settings,
                          {*tern::IpAddress::parse(relay ? "127.0.0.1" : "127.0.0.5"), 1, relay, false, auth_required},
                          host);
  s.start();
  const size_t chunk = 1 + data[0] % 64;
  std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  while (!in.empty() && !s.closed()) {
    s.feed(in.substr(0, chunk));
    in.remove_prefix(std::min(chunk, in.size()));
    if (s.state() == tern::server::Session::State::WaitCommit) s.on_commit(tern::server::CommitOutcome::Committed);
    // STARTTLS: the handshake "completes" at once, so the rest of the input is read as the
    // protected session.
    if (s.wants_tls()) s.on_tls_started({"TLSv1.3", "TLS_AES_128_GCM_SHA256", 128});
    // AUTH: the verifier answers at once, by the input's first byte and the failures so far.
    if (s.state() == tern::server::Session::State::WaitAuth)
      s.on_auth_result((data[0] & 4) ? tern::server::AuthOutcome::Accepted
                       : (data[0] & 8) ? tern::server::AuthOutcome::TempFail
                                       : tern::server::AuthOutcome::Rejected);
    (void)s.take_output();
  }
  return 0;
}
