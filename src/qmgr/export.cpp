// The queue manager's side of `ternctl export`: hold the selected messages durably, wait until
// no attempt or notice of theirs is under way, and after the archive is durable, record
// `!exported` before their files go (queue-format.md, "Export archives"). A crash at any point
// leaves each message either here (held) or exported, never deliverable from both nodes.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "qmgr/manager.hpp"
#include "queue/codec.hpp"

namespace tern::qmgr {

// One export in progress: its messages, the answers so far, and the attempts it waits for.
struct Manager::ExportWait {
  std::vector<ExportItem> items;
  std::vector<AdminResult> results;
  std::set<JobId> flying;  // attempts in flight when the holds were durable
  size_t left = 0;         // !held records not yet durable
  std::function<void(std::vector<ExportItem>, std::vector<AdminResult>)> ready;
};

void Manager::export_prepare(const Selector& sel, const std::string& who,
                             std::function<void(std::vector<ExportItem>, std::vector<AdminResult>)> ready) {
  std::vector<std::string> unknown;
  const std::vector<std::string> ids = select(sel, unknown);
  auto w = std::make_shared<ExportWait>();
  w->ready = std::move(ready);
  for (auto& u : unknown) w->results.push_back(AdminResult{u, "", "no such message"});
  // When each message's next attempt was due, before the holds move its jobs.
  const std::set<std::string> chosen(ids.begin(), ids.end());
  std::map<std::string, int64_t> next;
  for (JobId j : jobs_of(chosen))
    if (auto due = sched_.due(j)) {
      auto [it, fresh] = next.emplace(*jobs_.at(j).msg_id, *due);
      if (!fresh) it->second = std::min(it->second, *due);
    }
  for (const auto& id : ids) {
    Msg& m = msgs_.at(id);
    if (m.exporting) {
      w->results.push_back(AdminResult{id, "", "already being exported"});
      continue;
    }
    m.exporting = true;
    const auto n = next.find(id);
    w->items.push_back(ExportItem{id, files_.path_of(id), m.env.held, n == next.end() ? 0 : n->second});
  }
  if (w->items.empty()) return w->ready({}, std::move(w->results));
  w->left = w->items.size();
  const int64_t now = clock_.now_us();
  // Copied: the callbacks below may change w->items.
  const std::vector<ExportItem> items = w->items;
  for (const auto& item : items) {
    if (item.was_held) {
      if (--w->left == 0) export_held(w);
      continue;
    }
    const std::string id = item.id;
    files_.append_status(id, queue::encode_held(now), [this, w, id, who](Status st) {
      auto it = msgs_.find(id);
      if (!st.ok() || it == msgs_.end()) {
        if (it != msgs_.end()) it->second.exporting = false;
        w->results.push_back(AdminResult{id, "", st.ok() ? "no such message" : "not exported: " + st.error().message});
        std::erase_if(w->items, [&](const ExportItem& i) { return i.id == id; });
      } else {
        it->second.env.held = true;
        spdlog::info("qmgr: id={} held for export by {}", id, who);
      }
      if (--w->left == 0) export_held(w);
    });
  }
}

// Every hold is durable: from now on no new attempt starts (begin() sends a held message's
// jobs back to wait), so only the attempts already in flight are waited for.
void Manager::export_held(const std::shared_ptr<ExportWait>& w) {
  std::set<std::string> ids;
  for (const auto& i : w->items) ids.insert(i.id);
  for (JobId j : jobs_of(ids))
    if (sched_.in_flight(j)) w->flying.insert(j);
  export_waits_.push_back(w);
  poll_exports();
}

// Called whenever an attempt's outcome has been applied or a notice has been dealt with.
void Manager::poll_exports() {
  if (export_waits_.empty()) return;
  std::vector<std::shared_ptr<ExportWait>> done;
  for (const auto& w : export_waits_) {
    std::erase_if(w->flying, [this](JobId j) { return !jobs_.count(j) || !sched_.in_flight(j); });
    if (!w->flying.empty()) continue;
    bool quiet = true;
    for (const auto& i : w->items) {
      auto it = msgs_.find(i.id);
      if (it != msgs_.end() && !it->second.removing && (it->second.notices_pending > 0 || it->second.failure_notice_busy))
        quiet = false;
    }
    if (!quiet) continue;
    // An attempt in flight may have finished the message: it is not exported (it was
    // delivered here, or bounced).
    std::erase_if(w->items, [this, &w](const ExportItem& i) {
      auto it = msgs_.find(i.id);
      if (it != msgs_.end() && !it->second.removing) return false;
      w->results.push_back(AdminResult{i.id, "not exported: its last recipients were done meanwhile", ""});
      return true;
    });
    done.push_back(w);
  }
  for (const auto& w : done) {
    std::erase(export_waits_, w);
    w->ready(std::move(w->items), std::move(w->results));
  }
}

void Manager::export_finish(std::vector<ExportItem> written, std::vector<ExportItem> kept, const std::string& who,
                            std::function<void(std::vector<AdminResult>)> done) {
  const int64_t now = clock_.now_us();
  // Not in the archive: back to what it was, and owed notices go out from here.
  for (const auto& item : kept) {
    auto it = msgs_.find(item.id);
    if (it == msgs_.end()) continue;
    it->second.exporting = false;
    const std::string id = item.id;
    if (item.was_held) continue;
    files_.append_status(id, queue::encode_released(now), [this, id](Status st) {
      auto it = msgs_.find(id);
      if (it == msgs_.end()) return;
      if (!st.ok()) {
        spdlog::error("qmgr: id={} stays held after a failed export: {}", id, st.error().message);
        return;
      }
      it->second.env.held = false;
      for (JobId j : jobs_of({id})) sched_.expedite(j);
      send_failure_notices(id);
      maybe_remove(id);
    });
  }
  struct Finish {
    std::vector<AdminResult> results;
    std::set<std::string> exported;
    size_t left = 0;
    std::function<void(std::vector<AdminResult>)> done;
  };
  auto f = std::make_shared<Finish>();
  f->done = std::move(done);
  if (written.empty()) return f->done({});
  f->left = written.size();
  auto step = [this, f, who] {
    if (--f->left > 0) return;
    if (f->exported.empty()) return f->done(std::move(f->results));
    forget_jobs(f->exported);
    f->left = f->exported.size();
    for (const auto& id : f->exported)
      files_.remove(id, [this, id, f, who](Status st) {
        msgs_.erase(id);
        covered_.erase(id);
        if (!st.ok())
          spdlog::error("queue: id={} {}; its !exported record makes the next start remove it", id, st.error().message);
        spdlog::info("qmgr: id={} exported by {}", id, who);
        f->results.push_back(AdminResult{id, "exported", ""});
        if (--f->left == 0) f->done(std::move(f->results));
      });
  };
  // The record is durable before the file goes: a crash in between unlinks it at startup.
  for (const auto& item : written) {
    const std::string id = item.id;
    files_.append_status(id, queue::encode_exported(now), [this, id, f, step](Status st) {
      if (!st.ok()) {
        // In the archive, but not marked here: it stays held until an operator deletes it.
        if (auto it = msgs_.find(id); it != msgs_.end()) it->second.exporting = false;
        spdlog::error("qmgr: id={} is in the archive but its !exported record failed ({}); it stays held here: "
                      "delete it once the archive is imported", id, st.error().message);
        f->results.push_back(AdminResult{id, "", "in the archive, but not marked exported here (" + st.error().message +
                                                     "): it stays held; delete it here once the archive is imported"});
      } else {
        f->exported.insert(id);
      }
      step();
    });
  }
}

std::vector<std::string> Manager::origins() const {
  std::vector<std::string> out;
  for (const auto& [id, m] : msgs_)
    if (!m.env.origin.empty()) out.push_back(m.env.origin);
  return out;
}

}  // namespace tern::qmgr
