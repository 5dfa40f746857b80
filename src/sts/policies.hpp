// The owner of MTA-STS state (RFC 8461 §5.1): the policy cache (in memory and one file per
// domain in mta_sts.cache_dir), the `_mta-sts` TXT lookups, and the fetches. Delivery asks
// policy_for(domain) and waits; lookups for a domain already under way share one answer.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "dns/resolver.hpp"
#include "io/loop.hpp"
#include "sts/cache_entry.hpp"
#include "sts/disk.hpp"
#include "sts/fetcher.hpp"
#include "sts/source.hpp"

namespace tern::sts {

struct Settings {
  std::string cache_dir;
  std::string ca_file;               // verifies the HTTPS fetch; empty: the system store
  uint16_t https_port = 443;         // of mta-sts.DOMAIN (another port only in tests and labs)
  std::chrono::seconds timeout{10};  // per fetch: connect and transfer
};

class Policies final : public Source {
 public:
  Policies(io::Loop& loop, const Clock& clock, dns::Resolver& resolver, Settings s);
  // Fetches in flight are aborted; pending callbacks never run.
  ~Policies() override;
  Policies(const Policies&) = delete;
  Policies& operator=(const Policies&) = delete;

  // Reads the cache directory on the thread pool; lookups asked before it is read wait.
  void start();
  void policy_for(const std::string& domain, std::function<void(Applied)> cb) override;

 private:
  void lookup(const std::string& domain);
  void on_txt(const std::string& domain, const dns::TxtAnswer& a);
  void fetch(const std::string& domain, const std::string& id, bool waiting);
  void fetched(const std::string& domain, const std::string& id, bool waiting, Result<std::string> body,
               int64_t started_us);
  void finish(const std::string& domain, const Entry* e);
  void sweep();
  void refresh(const std::string& domain);
  void save(const Entry& e);
  void write(const std::string& domain, const std::string& name, std::string contents);
  void loaded(std::vector<CacheFile>& files, const std::string& error);

  io::Loop& loop_;
  const Clock& clock_;
  dns::Resolver& resolver_;
  Settings s_;
  Timing timing_;
  Fetcher fetcher_;
  bool loaded_ = false;
  std::vector<std::pair<std::string, std::function<void(Applied)>>> early_;  // before the cache was read
  std::map<std::string, Entry> cache_;
  std::map<std::string, int64_t> failed_at_;  // the latest failed fetch per domain
  std::map<std::string, std::vector<std::function<void(Applied)>>> waiting_;
  std::set<std::string> refreshing_;          // background fetches under way
  std::map<std::string, int64_t> last_used_;  // when a cached policy last applied to mail
  std::unique_ptr<io::Timer> sweep_timer_;
  // A write per domain at a time; the contents to write once it is done (the newest wins).
  std::map<std::string, std::optional<std::string>> writing_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace tern::sts
