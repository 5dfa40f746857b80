// Control socket server and its commands.
#include "admin/control.hpp"

#include "common/log_escape.hpp"

#include <grp.h>
#include <pwd.h>
#include <unistd.h>

#include <spdlog/spdlog.h>
#include <vector>

#include "admin/format.hpp"
#include "common/log_escape.hpp"
#include "common/strings.hpp"

namespace tern::admin {

namespace {
constexpr size_t kMaxCommand = 1024;
constexpr uint64_t kClientTimeoutMs = 10 * 1000;  // a silent client is not kept
}

// One connected ternctl: its stream, its idle timer, what it has sent so far.
struct ControlServer::Client {
  explicit Client(io::Loop& loop) : timer(loop) {}
  std::unique_ptr<io::Stream> stream;
  io::Timer timer;
  std::string buf;
};

ControlServer::ControlServer(io::Loop& loop, qmgr::Manager& sched, const Clock& clock, gid_t gid)
    : loop_(loop), sched_(sched), clock_(clock), gid_(gid) {}

ControlServer::~ControlServer() { *alive_ = false; }

void ControlServer::drop(Client* c) { clients_.erase(c); }

std::string handle_command(std::string_view line, qmgr::Manager& sched, int64_t now_us) {
  const std::string cmd = to_lower(trim(line));
  if (cmd == "queue") {
    std::string out = "OK\n";
    for (const auto& e : sched.list()) out += format_queue_line(e, now_us) + "\n";
    return out;
  }
  if (cmd == "flush") {
    sched.flush();
    return "OK\nflushed: every deferred message is due now\n";
  }
  return "ERR unknown command '" + std::string(line.substr(0, 64)) + "' (queue, flush)\n";
}

Result<std::unique_ptr<ControlServer>> ControlServer::start(io::Loop& loop, const config::Control& cfg,
                                                            qmgr::Manager& sched, const Clock& clock) {
  gid_t gid = gid_t(-1);
  if (!cfg.group.empty()) {
    struct group* g = ::getgrnam(cfg.group.c_str());
    if (!g) return Error::perm("control.group: no such group '" + cfg.group + "'");
    gid = g->gr_gid;
  }
  std::unique_ptr<ControlServer> s(new ControlServer(loop, sched, clock, gid));
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
  if (uid == 0 || uid == ::geteuid() || (gid_ != gid_t(-1) && gid == gid_)) return serve(std::move(s));
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
                     if (*member) serve(std::move(st));
                     else refuse(std::move(st), uid, gid);
                   });
}

void ControlServer::serve(std::unique_ptr<io::Stream> s) {
  auto owned = std::make_unique<Client>(loop_);
  Client* c = owned.get();
  c->stream = std::move(s);
  clients_.emplace(c, std::move(owned));
  c->timer.start(kClientTimeoutMs, 0, [this, c] { drop(c); });
  c->stream->set_events({
      [this, c](std::string_view b) {
        c->buf.append(b);
        const size_t nl = c->buf.find('\n');
        if (nl == std::string::npos && c->buf.size() < kMaxCommand) return;
        const std::string line = c->buf.substr(0, std::min(nl, c->buf.size()));
        spdlog::info("control: command '{}'", log_safe(line.substr(0, 64)));
        c->stream->write(handle_command(line, sched_, clock_.now_us()));
        c->stream->close_after_flush();
        drop(c);
      },
      [this, c](int) { drop(c); },
      nullptr,
      nullptr,
  });
  c->stream->start_read();
}

}  // namespace tern::admin
