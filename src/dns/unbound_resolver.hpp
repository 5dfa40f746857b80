// The real Resolver: libunbound's asynchronous API driven by the loop (its result fd is
// polled, ub_process runs on readability), with tern's own per-query deadline on top.
// With a trust anchor it keeps two libunbound contexts: one validating (DNSSEC), used once a
// probe shows the anchor's own zone validates through the forwarders, and one that does
// not validate, used when it does not (a forwarder that strips DNSSEC would otherwise make
// every answer bogus and defer all mail).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/result.hpp"
#include "dns/rdata.hpp"
#include "dns/resolver.hpp"
#include "io/loop.hpp"

struct ub_ctx;
struct ub_result;

namespace tern::dns {

class UnboundResolver final : public Resolver {
 public:
  // `forwarders`: "addr" or "addr@port" each; empty means the servers in /etc/resolv.conf.
  // `query_timeout` bounds every query: after it the answer is TempFail "DNS timeout".
  // `trust_anchor`: a zone-format DS/DNSKEY file (ub_ctx_add_ta_file), empty for none.
  // libunbound's workers run as threads (ub_ctx_async(ctx, 1)), started here. With a trust
  // anchor the validation probe starts here too; queries wait for its verdict.
  static Result<std::unique_ptr<UnboundResolver>> create(io::Loop& loop,
                                                         const std::vector<std::string>& forwarders,
                                                         std::chrono::milliseconds query_timeout,
                                                         const std::string& trust_anchor = {});

  // Outstanding queries are dropped; their callbacks are never called.
  ~UnboundResolver() override;
  UnboundResolver(const UnboundResolver&) = delete;
  UnboundResolver& operator=(const UnboundResolver&) = delete;

  void resolve_mx(const std::string& domain, std::function<void(MxAnswer)> cb) override;
  void resolve_addr(const std::string& host, bool v6, std::function<void(AddrAnswer)> cb) override;
  void resolve_txt(const std::string& name, std::function<void(TxtAnswer)> cb) override;
  void resolve_tlsa(const std::string& name, std::function<void(TlsaAnswer)> cb) override;

  // Checks again that the trust anchor's zone validates (after SIGHUP); new queries wait
  // for the verdict. No-op without a trust anchor.
  void probe();
  // True while answers are DNSSEC-validated (a trust anchor, and the last probe passed).
  [[nodiscard]] bool validating() const noexcept { return use_validating_; }

 private:
  struct Query;
  struct Context;
  struct UbFree {
    void operator()(ub_result* r) const noexcept;
  };
  using UbResultPtr = std::unique_ptr<ub_result, UbFree>;
  // An answered query waiting for delivery; `raw` may point into `result`.
  struct Done {
    std::unique_ptr<Query> query;
    UbResultPtr result;
    RawResult raw;
  };
  struct Held {
    std::string name;
    int rrtype;
    std::function<void(const RawResult&)> finish;
  };

  UnboundResolver(io::Loop& loop, std::chrono::milliseconds query_timeout);

  // Starts one lookup; `finish` (on the loop thread, once, later) turns the raw result
  // into the caller's answer and calls the caller back.
  void start(const std::string& name, int rrtype, std::function<void(const RawResult&)> finish);
  void submit(Context& c, const std::string& name, int rrtype, std::function<void(const RawResult&)> finish);
  void probe_done(const RawResult& raw);
  // Moves query `id` to ready_ and makes sure ready_ gets drained on a later turn.
  void complete(uint64_t id, UbResultPtr result, RawResult raw);
  void on_readable(Context& c);
  void on_timeout(uint64_t id);
  void drain();
  static void on_ub_result(void* mydata, int err, ub_result* result) noexcept;

  io::Loop& loop_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Context> plain_;       // never validates
  std::unique_ptr<Context> validating_;  // with the trust anchor; null without one
  std::string anchor_zone_;              // the anchor's owner ("" = the root)
  bool use_validating_ = false;
  bool probing_ = false;
  std::vector<Held> held_;               // queries started while the probe runs
  // Delivers answers that did not come through ub_process (immediate failures).
  io::Timer drain_timer_;
  bool in_process_ = false;
  uint64_t next_id_ = 1;
  std::unordered_map<uint64_t, std::unique_ptr<Query>> queries_;
  // Answers collected inside ub_process, delivered after it returns: a callback may start
  // queries or destroy the resolver, neither of which may happen under libunbound's feet.
  std::vector<Done> ready_;
  // Cleared by the destructor, so a delivery loop notices the resolver went away.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tern::dns
