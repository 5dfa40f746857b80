// The real Resolver: libunbound's asynchronous API driven by the loop (its result fd is
// polled, ub_process runs on readability), with tern's own per-query deadline on top.
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
  // libunbound's worker runs as a thread (ub_ctx_async(ctx, 1)), started here.
  static Result<std::unique_ptr<UnboundResolver>> create(io::Loop& loop,
                                                         const std::vector<std::string>& forwarders,
                                                         std::chrono::milliseconds query_timeout);

  // Outstanding queries are dropped; their callbacks are never called.
  ~UnboundResolver() override;
  UnboundResolver(const UnboundResolver&) = delete;
  UnboundResolver& operator=(const UnboundResolver&) = delete;

  void resolve_mx(const std::string& domain, std::function<void(MxAnswer)> cb) override;
  void resolve_addr(const std::string& host, bool v6, std::function<void(AddrAnswer)> cb) override;
  void resolve_txt(const std::string& name, std::function<void(TxtAnswer)> cb) override;

 private:
  struct Query;
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

  UnboundResolver(io::Loop& loop, ub_ctx* ctx, std::chrono::milliseconds query_timeout);

  // Starts one lookup; `finish` (on the loop thread, once, later) turns the raw result
  // into the caller's answer and calls the caller back.
  void start(const std::string& name, int rrtype, std::function<void(const RawResult&)> finish);
  // Moves query `id` to ready_ and makes sure ready_ gets drained on a later turn.
  void complete(uint64_t id, UbResultPtr result, RawResult raw);
  void on_readable();
  void on_timeout(uint64_t id);
  void drain();
  static void on_ub_result(void* mydata, int err, ub_result* result) noexcept;

  io::Loop& loop_;
  ub_ctx* ctx_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<io::Poll> poll_;
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
