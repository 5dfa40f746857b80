// Control socket server and its commands.
#include "admin/control.hpp"

#include "common/log_escape.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "admin/command.hpp"
#include "admin/format.hpp"
#include "common/log_escape.hpp"
#include "common/strings.hpp"

namespace tern::admin {

namespace {
constexpr size_t kMaxCommand = 1024;
constexpr uint64_t kClientTimeoutMs = 10 * 1000;  // a silent client is not kept
}

// One connected ternctl: its stream, its idle timer, what it has sent so far, who it is.
// `alive` is cleared when it is dropped: an answer computed later (a durable record, a
// file read) then goes nowhere.
struct ControlServer::Client {
  explicit Client(io::Loop& loop) : timer(loop) {}
  std::unique_ptr<io::Stream> stream;
  io::Timer timer;
  std::string buf;
  uid_t uid = 0;
  bool executing = false;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
};

ControlServer::ControlServer(io::Loop& loop, qmgr::Manager& sched, const Clock& clock, gid_t gid,
                             const Counters& counters, std::function<Gauges()> gauges, Transfer& transfer)
    : loop_(loop),
      sched_(sched),
      clock_(clock),
      gid_(gid),
      counters_(counters),
      gauges_(std::move(gauges)),
      transfer_(transfer) {}

ControlServer::~ControlServer() {
  *alive_ = false;
  for (auto& [c, owned] : clients_) *owned->alive = false;
}

void ControlServer::drop(Client* c) {
  auto it = clients_.find(c);
  if (it == clients_.end()) return;
  *it->second->alive = false;
  clients_.erase(it);
}

void ControlServer::answer(Client* c, std::string text) {
  c->stream->write(std::move(text));
  c->stream->close_after_flush();
  drop(c);
}

void ControlServer::execute(Client* c, const std::string& line) {
  auto parsed = parse_control(line);
  if (!parsed) return answer(c, "ERR " + parsed.error().message + "\n");
  const ControlCommand cmd = std::move(parsed.value());
  const std::string who = "uid=" + std::to_string(c->uid);
  auto alive = c->alive;
  using V = ControlCommand::Verb;
  switch (cmd.verb) {
    case V::Queue: {
      const auto entries = sched_.list();
      const int64_t now = clock_.now_us();
      if (cmd.json) return answer(c, "OK\n" + format_queue_json(entries, now));
      std::string out = "OK\n";
      for (const auto& e : entries) out += format_queue_line(e, now) + "\n";
      return answer(c, std::move(out));
    }
    case V::Stats:
      return answer(c, "OK\n" + format_stats(counters_, gauges_ ? gauges_() : Gauges{}, cmd.json));
    case V::Show: {
      const queue::Envelope* env = sched_.envelope(cmd.id);
      if (!env) return answer(c, "ERR " + cmd.id + ": no such message\n");
      // The file is read on the thread pool; the envelope is copied now (the message may
      // be gone by the time the read completes).
      struct Read {
        queue::Envelope env;
        std::string path;
        std::string text;
        std::string error;
      };
      auto r = std::make_shared<Read>(Read{*env, sched_.path_of(cmd.id), {}, {}});
      const bool body = cmd.body;
      loop_.queue_work(
          [r] {
            FILE* f = std::fopen(r->path.c_str(), "rb");
            if (!f) {
              r->error = std::strerror(errno);
              return;
            }
            char buf[65536];
            size_t n;
            while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) r->text.append(buf, n);
            std::fclose(f);
          },
          [this, c, r, alive, body] {
            if (!*alive) return;
            if (!r->error.empty()) return answer(c, "ERR " + r->env.id + ": cannot read the queue file: " + r->error + "\n");
            answer(c, "OK\n" + format_show(r->env, r->text, body));
          });
      return;
    }
    case V::Export:
    case V::Import: {
      c->executing = true;
      c->timer.stop();  // an export waits for attempts in flight; the answer comes when done
      auto reply = [this, c, alive](TransferAnswer a) {
        if (!*alive) return;
        size_t failed = 0;
        for (const auto& r : a.results) failed += !r.error.empty();
        std::string head = "OK\n";
        if (!a.fatal.empty()) head = "ERR " + a.fatal + "\n";
        else if (failed) head = "ERR " + std::to_string(failed) + " of " + std::to_string(a.results.size()) +
                                " message(s) not done\n";
        answer(c, head + format_admin_results(a.results));
      };
      if (cmd.verb == V::Export) transfer_.export_to(cmd.selector, cmd.path, who, std::move(reply));
      else transfer_.import_from(cmd.path, who, std::move(reply));
      return;
    }
    case V::Flush:
      if (!cmd.has_selector()) {
        sched_.flush();
        spdlog::info("control: flush of every deferred message by {}", who);
        return answer(c, "OK\nflushed: every deferred message is due now\n");
      }
      [[fallthrough]];
    case V::Hold:
    case V::Release:
    case V::Delete: {
      const auto op = cmd.verb == V::Hold      ? qmgr::AdminOp::Hold
                      : cmd.verb == V::Release ? qmgr::AdminOp::Release
                      : cmd.verb == V::Delete  ? qmgr::AdminOp::Delete
                                               : qmgr::AdminOp::Flush;
      c->executing = true;
      c->timer.stop();  // durable records take what they take; the answer comes when done
      sched_.admin(op, cmd.selector, who, [this, c, alive](std::vector<qmgr::AdminResult> results) {
        if (!*alive) return;
        size_t failed = 0;
        for (const auto& r : results) failed += !r.error.empty();
        std::string head = failed == 0 ? "OK\n"
                                       : "ERR " + std::to_string(failed) + " of " + std::to_string(results.size()) +
                                             " message(s) not done\n";
        if (results.empty()) head = "ERR no message matches\n";
        answer(c, head + format_admin_results(results));
      });
      return;
    }
  }
}

Result<std::unique_ptr<ControlServer>> ControlServer::start(io::Loop& loop, const config::Control& cfg,
                                                            qmgr::Manager& sched, const Clock& clock,
                                                            const Counters& counters,
                                                            std::function<Gauges()> gauges, Transfer& transfer) {
  gid_t gid = gid_t(-1);
  if (!cfg.group.empty()) {
    struct group* g = ::getgrnam(cfg.group.c_str());
    if (!g) return Error::perm("control.group: no such group '" + cfg.group + "'");
    gid = g->gr_gid;
  }
  std::unique_ptr<ControlServer> s(new ControlServer(loop, sched, clock, gid, counters, std::move(gauges), transfer));
  ControlServer* raw = s.get();
  auto l = io::UnixListener::listen(loop, cfg.socket, gid == gid_t(-1) ? 0600 : 0660, gid,
                                    [raw](std::unique_ptr<io::Stream> st) { raw->accept(std::move(st)); });
  if (!l) return l.error();
  s->listener_ = std::move(l.value());
  spdlog::info("control: listening on {}", cfg.socket);
  return s;
}

namespace {
// Whether `uid` has `gid` among its groups (primary or supplementary). Asks NSS (passwd and
// group databases: files, but maybe LDAP or sssd), which can block: call it off the loop.
bool in_group(uid_t uid, gid_t gid) {
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) != 0 || !found) return false;
  int n = 64;
  std::vector<gid_t> groups(static_cast<size_t>(n));
  if (::getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &n) < 0) {
    groups.resize(static_cast<size_t>(n));  // n now holds the real count
    if (::getgrouplist(pw.pw_name, pw.pw_gid, groups.data(), &n) < 0) return false;
  }
  for (int i = 0; i < n; ++i)
    if (groups[size_t(i)] == gid) return true;
  return false;
}
}  // namespace

void ControlServer::refuse(std::unique_ptr<io::Stream> s, uid_t uid, gid_t gid) {
  spdlog::warn("control: refused uid={} gid={}", uid, gid);
  s->write(std::string_view("ERR permission denied\n"));
  s->close_after_flush();
}

void ControlServer::accept(std::unique_ptr<io::Stream> s) {
  uid_t uid = 0;
  gid_t gid = 0;
  if (!s->peer_credentials(uid, gid)) return refuse(std::move(s), uid, gid);
  if (uid == 0 || uid == ::geteuid() || (gid_ != gid_t(-1) && gid == gid_)) return serve(std::move(s), uid);
  if (gid_ == gid_t(-1)) return refuse(std::move(s), uid, gid);
  // Supplementary membership of the admin group: the NSS look-up runs on the thread pool
  // (it may wait on a directory server), the connection waits here meanwhile.
  auto member = std::make_shared<bool>(false);
  io::Stream* key = s.get();
  checking_.emplace(key, std::move(s));
  loop_.queue_work([uid, group = gid_, member] { *member = in_group(uid, group); },
                   [this, alive = alive_, key, uid, gid, member] {
                     if (!*alive) return;  // the server closed meanwhile (and the stream with it)
                     auto it = checking_.find(key);
                     if (it == checking_.end()) return;
                     auto st = std::move(it->second);
                     checking_.erase(it);
                     if (*member) serve(std::move(st), uid);
                     else refuse(std::move(st), uid, gid);
                   });
}

void ControlServer::serve(std::unique_ptr<io::Stream> s, uid_t uid) {
  auto owned = std::make_unique<Client>(loop_);
  Client* c = owned.get();
  c->stream = std::move(s);
  c->uid = uid;
  clients_.emplace(c, std::move(owned));
  c->timer.start(kClientTimeoutMs, 0, [this, c] { drop(c); });
  c->stream->set_events({
      [this, c](std::string_view b) {
        if (c->executing) return;  // one command per connection
        c->buf.append(b);
        const size_t nl = c->buf.find('\n');
        if (nl == std::string::npos && c->buf.size() < kMaxCommand) return;
        std::string line = c->buf.substr(0, std::min(nl, c->buf.size()));
        if (!line.empty() && line.back() == '\r') line.pop_back();
        spdlog::info("control: uid={} command '{}'", c->uid, log_safe(line.substr(0, 200)));
        execute(c, line);
      },
      // The client went away: an operation under way still completes (its records are
      // durable), only the answer is lost.
      [this, c](int) { drop(c); },
      nullptr,
      nullptr,
  });
  c->stream->start_read();
}

}  // namespace tern::admin
