// MTA-STS policy discovery, caching and refresh (RFC 8461 §3, §5.1), on the loop thread;
// files are read and written on libuv's thread pool, fetches run on the Fetcher's workers.
#include "sts/policies.hpp"

#include <spdlog/spdlog.h>

#include "common/log_escape.hpp"

namespace tern::sts {

namespace {

// Fetch threads: fetches are rare, and each waits on the network, not the CPU.
constexpr unsigned kFetchThreads = 2;
// How often cached policies are checked for a refresh due before expiry.
constexpr uint64_t kSweepMs = 10 * 60 * 1000;

std::string unix_time(int64_t us) { return std::to_string(us / 1000000); }

}  // namespace

Policies::Policies(io::Loop& loop, const Clock& clock, dns::Resolver& resolver, Settings s)
    : loop_(loop), clock_(clock), resolver_(resolver), s_(std::move(s)), fetcher_(loop, kFetchThreads) {}

Policies::~Policies() { *alive_ = false; }

void Policies::start() {
  struct Read {
    Result<std::vector<CacheFile>> files = Error::temp("not read");
  };
  auto r = std::make_shared<Read>();
  auto alive = alive_;
  loop_.queue_work([r, dir = s_.cache_dir] { r->files = read_cache_dir(dir); },
                   [this, r, alive] {
                     if (!*alive) return;
                     std::vector<CacheFile> none;
                     if (!r->files) return loaded(none, r->files.error().message);
                     loaded(*r->files, {});
                   });
}

void Policies::loaded(std::vector<CacheFile>& files, const std::string& error) {
  if (!error.empty())
    spdlog::error("mta-sts: cache {}: {}; policies are fetched again and kept in memory only", s_.cache_dir,
                  error);
  size_t n = 0;
  for (auto& f : files) {
    if (!f.error.empty()) {
      spdlog::warn("mta-sts: cache file {}/{}: {}; ignored", s_.cache_dir, log_safe(f.name), f.error);
      continue;
    }
    auto e = decode_entry(f.contents);
    if (!e || file_name_for(e->domain) != f.name) {
      spdlog::warn("mta-sts: cache file {}/{}: {}; ignored", s_.cache_dir, log_safe(f.name),
                   e ? "names another domain" : e.error().message);
      continue;
    }
    const std::string domain = e->domain;
    cache_.insert_or_assign(domain, std::move(*e));
    ++n;
  }
  spdlog::info("mta-sts: {} cached polic{} read from {}", n, n == 1 ? "y" : "ies", s_.cache_dir);
  loaded_ = true;
  sweep_timer_ = std::make_unique<io::Timer>(loop_);
  sweep_timer_->start(kSweepMs, kSweepMs, [this] { sweep(); });
  for (auto& [domain, cb] : std::exchange(early_, {})) policy_for(domain, std::move(cb));
}

// §5.1: policies in use are fetched again before they expire, so that mail arriving just
// after expiry does not wait for a fetch (or go without a policy if the host is down).
void Policies::sweep() {
  const int64_t now = clock_.now_us();
  for (const auto& [domain, e] : cache_) {
    if (refreshing_.count(domain) || waiting_.count(domain)) continue;
    auto used = last_used_.find(domain);
    auto failed = failed_at_.find(domain);
    if (refresh_due(e, used == last_used_.end() ? 0 : used->second, now,
                    failed == failed_at_.end() ? 0 : failed->second, timing_))
      refresh(domain);
  }
}

void Policies::refresh(const std::string& domain) {
  refreshing_.insert(domain);
  auto alive = alive_;
  resolver_.resolve_txt("_mta-sts." + domain, [this, alive, domain](dns::TxtAnswer a) {
    if (!*alive) return;
    const TxtVerdict v = a.rcode == dns::Rcode::Ok ? parse_txt(a.records) : TxtVerdict{};
    // No record now: the cached policy runs out its max_age (§5.1), nothing to fetch.
    if (!v.found) return static_cast<void>(refreshing_.erase(domain));
    fetch(domain, v.id, false);
  });
}

void Policies::policy_for(const std::string& domain, std::function<void(Applied)> cb) {
  if (!loaded_) {
    early_.emplace_back(domain, std::move(cb));
    return;
  }
  auto& w = waiting_[domain];
  w.push_back(std::move(cb));
  if (w.size() == 1) lookup(domain);  // else: the lookup under way answers this one too
}

// §3.1: the TXT record says whether the domain has a policy, and which.
void Policies::lookup(const std::string& domain) {
  auto alive = alive_;
  resolver_.resolve_txt("_mta-sts." + domain, [this, alive, domain](dns::TxtAnswer a) {
    if (*alive) on_txt(domain, a);
  });
}

void Policies::on_txt(const std::string& domain, const dns::TxtAnswer& a) {
  TxtState state = TxtState::Failed;
  std::string id, why;
  if (a.rcode == dns::Rcode::Ok) {
    auto v = parse_txt(a.records);
    state = v.found ? TxtState::Found : TxtState::Absent;
    id = v.id;
    why = v.reason;
  } else if (a.rcode == dns::Rcode::NoData || a.rcode == dns::Rcode::NxDomain) {
    state = TxtState::Absent;
    why = "no TXT record";
  } else {
    why = "TXT lookup failed: " + a.detail;
  }
  auto it = cache_.find(domain);
  const Entry* cached = it == cache_.end() ? nullptr : &it->second;
  const int64_t now = clock_.now_us();
  auto fit = failed_at_.find(domain);
  const Decision d = decide(cached, state, id, now, fit == failed_at_.end() ? 0 : fit->second, timing_);
  if (state != TxtState::Found && cached && d.action == Action::Use)
    // §5.1: a record that vanished (perhaps removed by an attacker) does not end a policy
    // before its max_age.
    spdlog::debug("mta-sts: domain={} {}; the cached policy id={} stays in force until {}", domain,
                  log_safe(why), cached->id, unix_time(cached->expires_us()));
  switch (d.action) {
    case Action::Use:
      if (d.refresh && !refreshing_.count(domain)) fetch(domain, id, false);
      return finish(domain, cached);
    case Action::None:
      return finish(domain, nullptr);
    case Action::Fetch:
      return fetch(domain, id, true);
  }
}

// §3.3: the policy host's addresses come from tern's resolver, then the HTTPS fetch.
void Policies::fetch(const std::string& domain, const std::string& id, bool waiting) {
  if (!waiting) refreshing_.insert(domain);
  struct Pending {
    FetchRequest req;
    int left = 2;
  };
  auto p = std::make_shared<Pending>();
  p->req.domain = domain;
  p->req.port = s_.https_port;
  p->req.ca_file = s_.ca_file;
  p->req.timeout = s_.timeout;
  const int64_t started = clock_.now_us();
  auto alive = alive_;
  for (bool v6 : {false, true}) {
    resolver_.resolve_addr("mta-sts." + domain, v6, [this, alive, p, domain, id, waiting, started](dns::AddrAnswer a) {
      if (!*alive) return;
      if (a.rcode == dns::Rcode::Ok) p->req.addresses.insert(p->req.addresses.end(), a.addresses.begin(), a.addresses.end());
      if (--p->left > 0) return;
      fetcher_.fetch(std::move(p->req), [this, alive, domain, id, waiting, started](Result<std::string> body) {
        if (*alive) fetched(domain, id, waiting, std::move(body), started);
      });
    });
  }
}

void Policies::fetched(const std::string& domain, const std::string& id, bool waiting, Result<std::string> body,
                       int64_t started_us) {
  if (!waiting) refreshing_.erase(domain);
  auto it = cache_.find(domain);
  const Entry* cached = it == cache_.end() ? nullptr : &it->second;
  const int64_t now = clock_.now_us();
  std::optional<Entry> fresh;
  std::string why;
  if (!body) {
    why = body.error().message;
  } else if (auto p = parse_policy(*body); !p) {
    why = "malformed policy: " + p.error().message;
  } else {
    // §5.1: the policy's lifetime counts from when it was fetched.
    fresh = Entry{domain, id, started_us, std::move(*body), std::move(*p)};
  }
  if (fresh) {
    failed_at_.erase(domain);
    std::string mx;
    for (const auto& m : fresh->policy.mx) mx += (mx.empty() ? "" : ",") + m;
    spdlog::info("mta-sts: domain={} policy id={} fetched: mode={} max_age={} mx={}", domain, id,
                 to_string(fresh->policy.mode), fresh->policy.max_age, mx.empty() ? "-" : mx);
    save(*fresh);
    cached = &cache_.insert_or_assign(domain, std::move(*fresh)).first->second;
    if (waiting) finish(domain, cached);
    return;
  }
  failed_at_[domain] = now;
  const Entry* use = after_fetch(nullptr, cached, now);
  spdlog::warn("mta-sts: domain={} policy id={} not fetched: {}; {}", domain, id, log_safe(why),
               use ? "keeping the cached policy id=" + use->id + " (mode " + to_string(use->policy.mode) +
                         ") until " + unix_time(use->expires_us())
                   : std::string("no policy applies"));
  if (waiting) finish(domain, use);
}

void Policies::finish(const std::string& domain, const Entry* e) {
  auto it = waiting_.find(domain);
  if (it == waiting_.end()) return;
  auto cbs = std::move(it->second);
  waiting_.erase(it);
  Applied a;
  if (e) {
    a.policy = e->policy;
    a.id = e->id;
    last_used_[domain] = clock_.now_us();
  }
  for (auto& cb : cbs) cb(a);
}

void Policies::save(const Entry& e) {
  const std::string name = file_name_for(e.domain);
  if (name.empty()) return;  // kept in memory only (see file_name_for)
  std::string contents = encode_entry(e);
  if (auto it = writing_.find(e.domain); it != writing_.end()) {
    it->second = std::move(contents);  // written when the write under way is done
    return;
  }
  write(e.domain, name, std::move(contents));
}

void Policies::write(const std::string& domain, const std::string& name, std::string contents) {
  writing_[domain] = std::nullopt;
  auto st = std::make_shared<Status>(ok_status());
  auto alive = alive_;
  loop_.queue_work(
      [st, dir = s_.cache_dir, name, contents = std::move(contents)] { *st = write_cache_file(dir, name, contents); },
      [this, st, alive, domain, name] {
        if (!*alive) return;
        if (!*st)
          spdlog::error("mta-sts: domain={} cannot save the policy: {}; it is kept in memory", domain,
                        st->error().message);
        auto it = writing_.find(domain);
        if (it == writing_.end()) return;
        auto next = std::move(it->second);
        writing_.erase(it);
        if (next) write(domain, name, std::move(*next));
      });
}

}  // namespace tern::sts
