// libunbound on the loop: queries go to libunbound's background worker thread, answers come
// back on ub_fd(), which the loop polls; callbacks run on the loop thread via ub_process().
#include "dns/unbound_resolver.hpp"

#include <spdlog/spdlog.h>
#include <unbound.h>

#include <cstdlib>
#include <exception>
#include <span>

namespace tern::dns {

namespace {
// RFC 1035 §3.2.2 / RFC 3596 §2.1 type codes and the IN class.
constexpr int kTypeA = 1;
constexpr int kTypeMx = 15;
constexpr int kTypeTxt = 16;
constexpr int kTypeAaaa = 28;
constexpr int kClassIn = 1;

std::string ub_error(const char* what, int rc) {
  return std::string(what) + ": " + ub_strerror(rc);
}

void discard_result(void*, int, ub_result* result) noexcept { ub_resolve_free(result); }
}  // namespace

struct UnboundResolver::Query {
  UnboundResolver* owner = nullptr;
  uint64_t id = 0;
  int async_id = 0;
  bool submitted = false;  // libunbound knows it: cancel on timeout
  std::string name;
  std::unique_ptr<io::Timer> timer;
  std::function<void(const RawResult&)> finish;
};

void UnboundResolver::UbFree::operator()(ub_result* r) const noexcept { ub_resolve_free(r); }

Result<std::unique_ptr<UnboundResolver>> UnboundResolver::create(
    io::Loop& loop, const std::vector<std::string>& forwarders,
    std::chrono::milliseconds query_timeout) {
  ub_ctx* ctx = ub_ctx_create();
  if (ctx == nullptr) return Error::temp("dns: cannot create the libunbound context");
  // Owns ctx until the resolver takes it.
  std::unique_ptr<ub_ctx, void (*)(ub_ctx*)> guard(ctx, ub_ctx_delete);

  // libunbound refuses to send queries to 127.0.0.0/8 and ::1 by default; a local
  // caching resolver (and the test DNS server) lives exactly there.
  if (int rc = ub_ctx_set_option(ctx, "do-not-query-localhost:", "no"); rc != 0)
    return Error::temp(ub_error("dns: do-not-query-localhost", rc));
  if (forwarders.empty()) {
    if (int rc = ub_ctx_resolvconf(ctx, nullptr); rc != 0)
      return Error::temp(ub_error("dns: cannot use /etc/resolv.conf", rc));
  }
  for (const auto& f : forwarders) {
    // ub_ctx_set_fwd understands both "addr" and "addr@port".
    if (int rc = ub_ctx_set_fwd(ctx, f.c_str()); rc != 0)
      return Error::perm(ub_error(("dns: bad forwarder \"" + f + "\"").c_str(), rc));
  }
  // A worker thread, not libunbound's default forked process: a forked worker would keep
  // every descriptor open at fork time (SMTP connections ternd closes later would never
  // see their EOF) and would flush copies of our stdio buffers when it exits.
  if (int rc = ub_ctx_async(ctx, 1); rc != 0)
    return Error::temp(ub_error("dns: cannot switch libunbound to a worker thread", rc));
  if (ub_fd(ctx) < 0) return Error::temp("dns: libunbound has no result descriptor");
  // Start the worker now, so a broken configuration shows at start-up, not at the first
  // delivery. "localhost." is answered from libunbound's built-in local zone, offline.
  if (int rc =
          ub_resolve_async(ctx, "localhost.", kTypeA, kClassIn, nullptr, &discard_result, nullptr);
      rc != 0)
    return Error::temp(ub_error("dns: cannot start libunbound's worker", rc));

  std::unique_ptr<UnboundResolver> r(new UnboundResolver(loop, guard.release(), query_timeout));
  return r;
}

UnboundResolver::UnboundResolver(io::Loop& loop, ub_ctx* ctx,
                                 std::chrono::milliseconds query_timeout)
    : loop_(loop), ctx_(ctx), timeout_(query_timeout), drain_timer_(loop) {
  poll_ = std::make_unique<io::Poll>(loop, ub_fd(ctx_), [this] { on_readable(); });
}

UnboundResolver::~UnboundResolver() {
  *alive_ = false;
  // Stop watching the descriptor before ub_ctx_delete closes it.
  poll_.reset();
  ready_.clear();
  queries_.clear();
  // Drops every outstanding query without calling back, and stops the background worker
  // (it waits for the worker's goodbye, which is prompt).
  ub_ctx_delete(ctx_);
}

void UnboundResolver::resolve_mx(const std::string& domain, std::function<void(MxAnswer)> cb) {
  start(domain, kTypeMx, [cb = std::move(cb)](const RawResult& raw) { cb(to_mx_answer(raw)); });
}

void UnboundResolver::resolve_addr(const std::string& host, bool v6,
                                   std::function<void(AddrAnswer)> cb) {
  start(host, v6 ? kTypeAaaa : kTypeA,
        [cb = std::move(cb), v6](const RawResult& raw) { cb(to_addr_answer(raw, v6)); });
}

void UnboundResolver::resolve_txt(const std::string& name, std::function<void(TxtAnswer)> cb) {
  start(name, kTypeTxt, [cb = std::move(cb)](const RawResult& raw) { cb(to_txt_answer(raw)); });
}

void UnboundResolver::start(const std::string& name, int rrtype,
                            std::function<void(const RawResult&)> finish) {
  auto q = std::make_unique<Query>();
  q->owner = this;
  q->id = next_id_++;
  q->name = name;
  q->finish = std::move(finish);
  q->timer = std::make_unique<io::Timer>(loop_);
  Query* raw_q = q.get();
  const uint64_t id = q->id;
  queries_.emplace(id, std::move(q));

  RawResult failure;
  if (!poll_) {
    failure.failure = "DNS resolver unavailable (libunbound's worker is gone)";
  } else {
    int rc = ub_resolve_async(ctx_, name.c_str(), rrtype, kClassIn, raw_q, &on_ub_result,
                              &raw_q->async_id);
    if (rc == 0) {
      raw_q->submitted = true;
      raw_q->timer->start(uint64_t(timeout_.count()), 0, [this, id] { on_timeout(id); });
      return;
    }
    failure.failure = "DNS query for " + name + " failed: " + ub_strerror(rc);
  }
  // Never call back from inside resolve_*: deliver on a later loop turn.
  complete(id, nullptr, std::move(failure));
  drain_timer_.start(0, 0, [this] { drain(); });
}

void UnboundResolver::complete(uint64_t id, UbResultPtr result, RawResult raw) {
  auto it = queries_.find(id);
  if (it == queries_.end()) return;
  auto q = std::move(it->second);
  queries_.erase(it);
  q->timer->stop();
  ready_.push_back(Done{std::move(q), std::move(result), std::move(raw)});
}

// Runs inside ub_process (or, were libunbound ever to answer at once, inside
// ub_resolve_async): only records the answer, no caller code runs here.
void UnboundResolver::on_ub_result(void* mydata, int err, ub_result* result) noexcept {
  UbResultPtr owned(result);
  try {
    auto* q = static_cast<Query*>(mydata);
    UnboundResolver* self = q->owner;
    RawResult raw;
    if (err != 0) {
      raw.failure = "DNS query for " + q->name + " failed: " + ub_strerror(err);
    } else if (!owned) {
      raw.failure = "DNS query for " + q->name + " failed: no result";
    } else {
      raw.rcode = owned->rcode;
      raw.havedata = owned->havedata != 0;
      raw.nxdomain = owned->nxdomain != 0;
      raw.secure = owned->secure != 0;
      raw.bogus = owned->bogus != 0;
      if (owned->why_bogus != nullptr) raw.why_bogus = owned->why_bogus;
      for (int i = 0; owned->data != nullptr && owned->data[i] != nullptr; ++i) {
        const int len = owned->len[i];
        raw.rdata.emplace_back(reinterpret_cast<const uint8_t*>(owned->data[i]),
                               len > 0 ? size_t(len) : 0);
      }
    }
    self->complete(q->id, std::move(owned), std::move(raw));
    if (!self->in_process_) self->drain_timer_.start(0, 0, [self] { self->drain(); });
  } catch (const std::exception& e) {
    spdlog::critical("dns: bug: exception in libunbound callback: {}", e.what());
    std::abort();
  } catch (...) {
    spdlog::critical("dns: bug: unknown exception in libunbound callback");
    std::abort();
  }
}

void UnboundResolver::on_readable() {
  in_process_ = true;
  const int rc = ub_process(ctx_);
  in_process_ = false;
  if (rc != 0) {
    // Typically the worker process died: its pipe now reads as EOF forever, so stop
    // polling (or the loop would spin). Pending queries end with their timeouts; new
    // ones fail at once.
    spdlog::error("dns: libunbound stopped answering: {}; DNS lookups will fail", ub_strerror(rc));
    poll_.reset();
  }
  drain();
}

void UnboundResolver::on_timeout(uint64_t id) {
  auto it = queries_.find(id);
  if (it == queries_.end()) return;
  Query& q = *it->second;
  if (q.submitted) {
    // After a successful cancel libunbound never calls back for this query; a failing
    // cancel means the answer was already consumed, which cannot happen while the query
    // is still in queries_ (the loop thread does both).
    if (int rc = ub_cancel(ctx_, q.async_id); rc != 0 && rc != UB_NOID)
      spdlog::warn("dns: cancelling the query for {}: {}", q.name, ub_strerror(rc));
  }
  RawResult raw;
  raw.failure = "DNS timeout";
  complete(id, nullptr, std::move(raw));
  drain();
}

void UnboundResolver::drain() {
  const auto alive = alive_;
  while (!ready_.empty()) {
    std::vector<Done> batch;
    batch.swap(ready_);
    for (auto& d : batch) {
      d.query->finish(d.raw);
      if (!*alive) return;  // the callback destroyed the resolver: drop the rest
    }
  }
}

}  // namespace tern::dns
