// libunbound on the loop: queries go to libunbound's background worker thread, answers come
// back on ub_fd(), which the loop polls; callbacks run on the loop thread via ub_process().
#include "dns/unbound_resolver.hpp"

#include <spdlog/spdlog.h>
#include <unbound.h>

#include <cstdlib>
#include <exception>
#include <fstream>
#include <iterator>
#include <span>

namespace tern::dns {

namespace {
// RFC 1035 §3.2.2 / RFC 3596 §2.1 / RFC 4034 §2.1 / RFC 6698 §7.1 type codes and the IN class.
constexpr int kTypeA = 1;
constexpr int kTypeMx = 15;
constexpr int kTypeTxt = 16;
constexpr int kTypeAaaa = 28;
constexpr int kTypeDnskey = 48;
constexpr int kTypeTlsa = 52;
constexpr int kClassIn = 1;

std::string ub_error(const char* what, int rc) {
  return std::string(what) + ": " + ub_strerror(rc);
}

void discard_result(void*, int, ub_result* result) noexcept { ub_resolve_free(result); }

using CtxPtr = std::unique_ptr<ub_ctx, void (*)(ub_ctx*)>;

Result<CtxPtr> make_context(const std::vector<std::string>& forwarders, const std::string& trust_anchor) {
  CtxPtr ctx(ub_ctx_create(), ub_ctx_delete);
  if (!ctx) return Error::temp("dns: cannot create the libunbound context");
  // libunbound refuses to send queries to 127.0.0.0/8 and ::1 by default; a local
  // caching resolver (and the test DNS server) lives exactly there.
  if (int rc = ub_ctx_set_option(ctx.get(), "do-not-query-localhost:", "no"); rc != 0)
    return Error::temp(ub_error("dns: do-not-query-localhost", rc));
  if (forwarders.empty()) {
    if (int rc = ub_ctx_resolvconf(ctx.get(), nullptr); rc != 0)
      return Error::temp(ub_error("dns: cannot use /etc/resolv.conf", rc));
  }
  for (const auto& f : forwarders) {
    // ub_ctx_set_fwd understands both "addr" and "addr@port".
    if (int rc = ub_ctx_set_fwd(ctx.get(), f.c_str()); rc != 0)
      return Error::perm(ub_error(("dns: bad forwarder \"" + f + "\"").c_str(), rc));
  }
  if (!trust_anchor.empty()) {
    if (int rc = ub_ctx_add_ta_file(ctx.get(), trust_anchor.c_str()); rc != 0)
      return Error::perm(ub_error(("dns: cannot load the trust anchor " + trust_anchor).c_str(), rc));
  }
  // A worker thread, not libunbound's default forked process: a forked worker would keep
  // every descriptor open at fork time (SMTP connections ternd closes later would never
  // see their EOF) and would flush copies of our stdio buffers when it exits.
  if (int rc = ub_ctx_async(ctx.get(), 1); rc != 0)
    return Error::temp(ub_error("dns: cannot switch libunbound to a worker thread", rc));
  if (ub_fd(ctx.get()) < 0) return Error::temp("dns: libunbound has no result descriptor");
  // Start the worker now, so a broken configuration (a bad trust anchor file too) shows at
  // start-up, not at the first delivery. "localhost." is answered from libunbound's
  // built-in local zone, offline.
  if (int rc = ub_resolve_async(ctx.get(), "localhost.", kTypeA, kClassIn, nullptr, &discard_result, nullptr);
      rc != 0)
    return Error::temp(ub_error("dns: cannot start libunbound's worker", rc));
  return ctx;
}

Result<std::string> read_anchor_zone(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Error::perm("dns: cannot read the trust anchor " + path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto zone = trust_anchor_zone(text);
  if (!zone) return Error::perm("dns: trust anchor " + path + ": " + zone.error().message);
  return zone;
}
}  // namespace

// One libunbound context and the poll on its result descriptor.
struct UnboundResolver::Context {
  ub_ctx* ctx = nullptr;
  std::unique_ptr<io::Poll> poll;  // null once the worker is gone
  ~Context() {
    // Stop watching the descriptor before ub_ctx_delete closes it; deleting drops every
    // outstanding query without calling back and stops the worker.
    poll.reset();
    if (ctx) ub_ctx_delete(ctx);
  }
};

struct UnboundResolver::Query {
  UnboundResolver* owner = nullptr;
  Context* context = nullptr;
  uint64_t id = 0;
  int async_id = 0;
  bool submitted = false;  // libunbound knows it: cancel on timeout
  std::string name;
  std::unique_ptr<io::Timer> timer;
  std::function<void(const RawResult&)> finish;
};

void UnboundResolver::UbFree::operator()(ub_result* r) const noexcept { ub_resolve_free(r); }

Result<std::unique_ptr<UnboundResolver>> UnboundResolver::create(io::Loop& loop,
                                                                 const std::vector<std::string>& forwarders,
                                                                 std::chrono::milliseconds query_timeout,
                                                                 const std::string& trust_anchor) {
  std::string zone;
  if (!trust_anchor.empty()) {
    auto z = read_anchor_zone(trust_anchor);
    if (!z) return z.error();
    zone = std::move(z.value());
  }
  auto plain = make_context(forwarders, {});
  if (!plain) return plain.error();
  std::unique_ptr<UnboundResolver> r(new UnboundResolver(loop, query_timeout));
  auto attach = [&](CtxPtr ctx) {
    auto c = std::make_unique<Context>();
    c->ctx = ctx.release();
    Context* raw = c.get();
    c->poll = std::make_unique<io::Poll>(loop, ub_fd(raw->ctx), [rp = r.get(), raw] { rp->on_readable(*raw); });
    return c;
  };
  r->plain_ = attach(std::move(plain.value()));
  if (!trust_anchor.empty()) {
    auto validating = make_context(forwarders, trust_anchor);
    if (!validating) return validating.error();
    r->validating_ = attach(std::move(validating.value()));
    r->anchor_zone_ = std::move(zone);
    r->probe();
  }
  return r;
}

UnboundResolver::UnboundResolver(io::Loop& loop, std::chrono::milliseconds query_timeout)
    : loop_(loop), timeout_(query_timeout), drain_timer_(loop) {}

UnboundResolver::~UnboundResolver() {
  *alive_ = false;
  ready_.clear();
  queries_.clear();
  held_.clear();
  validating_.reset();
  plain_.reset();
}

void UnboundResolver::resolve_mx(const std::string& domain, std::function<void(MxAnswer)> cb) {
  start(domain, kTypeMx, [cb = std::move(cb)](const RawResult& raw) { cb(to_mx_answer(raw)); });
}

void UnboundResolver::resolve_addr(const std::string& host, bool v6,
                                   std::function<void(AddrAnswer)> cb) {
  start(host, v6 ? kTypeAaaa : kTypeA,
        [cb = std::move(cb), v6](const RawResult& raw) { cb(to_addr_answer(raw, v6)); });
}

void UnboundResolver::resolve_tlsa(const std::string& name, std::function<void(TlsaAnswer)> cb) {
  start(name, kTypeTlsa, [cb = std::move(cb)](const RawResult& raw) { cb(to_tlsa_answer(raw)); });
}

// The trust anchor's own DNSKEY set must come back secure through the forwarders: a
// forwarder that drops RRSIGs, or a clock far off, fails here once instead of making every
// later answer bogus.
void UnboundResolver::probe() {
  if (!validating_ || probing_) return;
  probing_ = true;
  const std::string name = anchor_zone_.empty() ? "." : anchor_zone_ + ".";
  submit(*validating_, name, kTypeDnskey, [this](const RawResult& raw) { probe_done(raw); });
}

void UnboundResolver::probe_done(const RawResult& raw) {
  probing_ = false;
  const std::string zone = anchor_zone_.empty() ? "." : anchor_zone_;
  const bool was = use_validating_;
  use_validating_ = raw.failure.empty() && raw.secure && !raw.bogus && raw.rcode == 0 && raw.havedata;
  if (use_validating_) {
    if (!was) spdlog::info("dns: DNSSEC validation on: the trust anchor's zone \"{}\" validates", zone);
  } else {
    std::string why = !raw.failure.empty() ? raw.failure
                      : raw.bogus          ? "bogus: " + (raw.why_bogus.empty() ? std::string("no reason given")
                                                                                 : raw.why_bogus)
                      : raw.rcode != 0     ? "DNS server answered " + rcode_name(raw.rcode)
                      : !raw.havedata      ? "no DNSKEY records"
                                           : "the answer is not signed (does the forwarder strip DNSSEC?)";
    spdlog::error("dns: DANE disabled: the trust anchor's zone \"{}\" does not validate through the "
                  "forwarders ({}); DNSSEC validation is off, every answer counts as insecure",
                  zone, why);
  }
  auto held = std::move(held_);
  held_.clear();
  for (auto& h : held) start(h.name, h.rrtype, std::move(h.finish));
}

void UnboundResolver::resolve_txt(const std::string& name, std::function<void(TxtAnswer)> cb) {
  start(name, kTypeTxt, [cb = std::move(cb)](const RawResult& raw) { cb(to_txt_answer(raw)); });
}

void UnboundResolver::start(const std::string& name, int rrtype,
                            std::function<void(const RawResult&)> finish) {
  if (probing_) {
    held_.push_back(Held{name, rrtype, std::move(finish)});
    return;
  }
  submit(use_validating_ ? *validating_ : *plain_, name, rrtype, std::move(finish));
}

void UnboundResolver::submit(Context& c, const std::string& name, int rrtype,
                             std::function<void(const RawResult&)> finish) {
  auto q = std::make_unique<Query>();
  q->owner = this;
  q->context = &c;
  q->id = next_id_++;
  q->name = name;
  q->finish = std::move(finish);
  q->timer = std::make_unique<io::Timer>(loop_);
  Query* raw_q = q.get();
  const uint64_t id = q->id;
  queries_.emplace(id, std::move(q));

  RawResult failure;
  if (!c.poll) {
    failure.failure = "DNS resolver unavailable (libunbound's worker is gone)";
  } else {
    int rc = ub_resolve_async(c.ctx, name.c_str(), rrtype, kClassIn, raw_q, &on_ub_result,
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

void UnboundResolver::on_readable(Context& c) {
  in_process_ = true;
  const int rc = ub_process(c.ctx);
  in_process_ = false;
  if (rc != 0) {
    // Typically the worker process died: its pipe now reads as EOF forever, so stop
    // polling (or the loop would spin). Pending queries end with their timeouts; new
    // ones fail at once.
    spdlog::error("dns: libunbound stopped answering: {}; DNS lookups will fail", ub_strerror(rc));
    c.poll.reset();
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
    if (int rc = ub_cancel(q.context->ctx, q.async_id); rc != 0 && rc != UB_NOID)
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
