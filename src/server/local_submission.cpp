// The submission socket and the injection of locally submitted messages (see
// local_submission.hpp).
#include "server/local_submission.hpp"

#include <pwd.h>

#include <spdlog/spdlog.h>
#include <vector>

#include "common/date.hpp"
#include "common/log_escape.hpp"
#include "submit/message.hpp"
#include "submit/options.hpp"
#include "submit/protocol.hpp"

namespace tern::server {

namespace {
constexpr uint64_t kClientTimeoutMs = 60 * 1000;  // between reads; a stalled client is not kept

}

std::string user_name_of(uid_t uid) {
  struct passwd pw {};
  struct passwd* found = nullptr;
  std::vector<char> buf(16384);
  if (::getpwuid_r(uid, &pw, buf.data(), buf.size(), &found) == 0 && found && found->pw_name[0]) {
    std::string name = found->pw_name;
    // The name goes into a header and an address: anything unusual is not trusted there.
    bool plain = name.size() <= 64;
    for (char c : name)
      plain = plain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                        c == '_' || c == '-');
    if (plain && name.front() != '.' && name.back() != '.' && name.find("..") == std::string::npos) return name;
  }
  return "uid" + std::to_string(uid);
}

struct LocalSubmission::Client {
  explicit Client(io::Loop& loop, const Settings& s) : timer(loop), reader(s.hostname, s.max_message_size, s.max_recipients) {}
  std::unique_ptr<io::Stream> stream;
  io::Timer timer;
  submit::RequestReader reader;
  uid_t uid = 0;
  std::string message;
  bool reading_message = false;
  bool busy = false;  // the message is complete: looking up the user, or committing
  bool gone = false;  // the client hung up while busy
};

LocalSubmission::LocalSubmission(io::Loop& loop, queue::Injector& injector, const Clock& clock, Settings settings,
                                 std::function<std::string()> list_queue)
    : loop_(loop), injector_(injector), clock_(clock), settings_(std::move(settings)), list_queue_(std::move(list_queue)) {}

LocalSubmission::~LocalSubmission() { *alive_ = false; }

Status LocalSubmission::listen(const std::string& socket_path) {
  LocalSubmission* raw = this;
  // Mode 0666: every local user may submit (what a sendmail command promises); who they are
  // comes from the peer credentials, never from what they send.
  auto l = io::UnixListener::listen(loop_, socket_path, 0666, gid_t(-1),
                                    [raw](std::unique_ptr<io::Stream> st) { raw->accept(std::move(st)); });
  if (!l) return Error::perm("submit.socket " + socket_path + ": " + l.error().message);
  listener_ = std::move(l.value());
  spdlog::info("submit: listening on {}", socket_path);
  return ok_status();
}

void LocalSubmission::drop(Client* c) {
  if (c->busy) {
    c->gone = true;  // the commit under way still completes; only the answer is lost
    return;
  }
  clients_.erase(c);
}

void LocalSubmission::answer(Client* c, std::string text) {
  c->timer.stop();
  c->busy = false;
  if (!c->gone) {
    c->stream->write(std::move(text));
    c->stream->close_after_flush();
  }
  clients_.erase(c);
}

void LocalSubmission::accept(std::unique_ptr<io::Stream> s) {
  uid_t uid = 0;
  gid_t gid = 0;
  if (!s->peer_credentials(uid, gid)) {
    spdlog::warn("submit: no peer credentials on a connection; refused");
    s->write(std::string_view("ERR 75 cannot tell who you are\n"));
    s->close_after_flush();
    return;
  }
  if (clients_.size() >= kMaxClients) {
    spdlog::warn("submit: uid={} refused: {} submissions in progress", uid, clients_.size());
    s->write(std::string_view("ERR 75 too many local submissions at once\n"));
    s->close_after_flush();
    return;
  }
  auto owned = std::make_unique<Client>(loop_, settings_);
  Client* c = owned.get();
  c->stream = std::move(s);
  c->uid = uid;
  clients_.emplace(c, std::move(owned));
  c->timer.start(kClientTimeoutMs, 0, [this, c] {
    spdlog::info("submit: uid={} timed out", c->uid);
    drop(c);
  });
  c->stream->set_events({
      [this, c](std::string_view b) { on_data(c, b); },
      // tern-sendmail half-closes after the message: EOF while busy is no hang-up, the
      // answer still goes out on the other half.
      [this, c](int err) {
        if (err == 0 && c->busy) return;
        drop(c);
      },
      nullptr,
      nullptr,
  });
  c->stream->start_read();
}

void LocalSubmission::on_data(Client* c, std::string_view bytes) {
  if (c->busy) return;
  c->timer.start(kClientTimeoutMs, 0, [this, c] { drop(c); });
  if (!c->reading_message) {
    using S = submit::RequestReader::State;
    switch (c->reader.feed(bytes)) {
      case S::More:
        return;
      case S::Refused: {
        const auto& r = c->reader.refusal();
        spdlog::info("submit: uid={} refused: {}", c->uid, log_safe(r.text));
        return answer(c, "ERR " + std::to_string(r.code) + " " + r.text + "\n");
      }
      case S::List:
        spdlog::info("submit: uid={} queue listing", c->uid);
        return answer(c, "OK\n" + (list_queue_ ? list_queue_() : std::string()));
      case S::Data:
        c->reading_message = true;
        c->message = c->reader.take_leftover();
        break;
    }
  } else {
    c->message.append(bytes);
  }
  const uint64_t size = c->reader.request().size;
  if (c->message.size() > size) return answer(c, "ERR 64 more octets than DATA announced\n");
  if (c->message.size() == size) submit(c);
}

void LocalSubmission::submit(Client* c) {
  c->busy = true;
  c->timer.stop();
  c->stream->stop_read();
  auto who = std::make_shared<LocalSender>(LocalSender{c->uid, {}});
  // NSS may ask a directory server: off the loop.
  loop_.queue_work([who] { who->user = user_name_of(who->uid); },
                   [this, alive = alive_, c, who] {
                     if (!*alive || !clients_.count(c)) return;
                     const submit::Request& q = c->reader.request();
                     std::vector<std::pair<std::string, std::vector<std::string>>> rcpts;
                     for (const auto& r : q.rcpts) rcpts.emplace_back(r.address, r.params);
                     inject(*who, q.sender, q.sender_given, q.mail_params, q.full_name, std::move(rcpts),
                            std::move(c->message), [this, c](Done d) {
                              answer(c, d.ok ? "OK " + d.text + "\n" : "ERR " + d.text + "\n");
                            });
                   });
}

void LocalSubmission::inject(const LocalSender& who, std::string sender, bool sender_given,
                             std::vector<std::string> mail_params, std::string full_name,
                             std::vector<std::pair<std::string, std::vector<std::string>>> rcpts, std::string message,
                             std::function<void(Done)> done) {
  if (rcpts.empty()) return done({false, "65 no recipients"});
  // The content is untrusted: line ends are made CRLF again, a body gets its blank line,
  // and Bcc: goes (a blind copy stays blind whichever way the recipients were given).
  std::string text = submit::normalize_input(message, true);
  submit::separate_body(text);
  text = submit::remove_bcc(text);
  if (text.size() > settings_.max_message_size)
    return done({false, "65 message too big (limits.max_message_size is " + std::to_string(settings_.max_message_size) + ")"});
  if (!injector_.has_room(text.size())) return done({false, "75 the queue's file system is short of space; try later"});
  if (sender_given)
    spdlog::info("submit: uid={} user={} sets the sender <{}> (-f)", who.uid, who.user, log_safe(sender));
  else
    sender = who.user + "@" + settings_.hostname;

  queue::Envelope env;
  env.arrival_us = clock_.now_us();
  env.client_address = "127.0.0.1";
  env.client_helo = who.user;
  env.client_relay = true;  // a local user, like a client in relay.networks, may send anywhere
  env.protocol = "LOCAL";
  env.sender = sender;
  env.mail_params = std::move(mail_params);
  for (auto& [addr, params] : rcpts) {
    queue::Recipient r;
    r.address = std::move(addr);
    r.params = std::move(params);
    env.recipients.push_back(std::move(r));
  }
  std::unique_ptr<queue::Incoming> owned = injector_.begin(std::move(env));
  queue::Incoming* incoming = owned.get();
  const std::string id = incoming->id();
  const std::string date = rfc5322_date(clock_.now_us());
  submit::LocalOrigin origin{who.user, uint32_t(who.uid), full_name, settings_.hostname, id, date,
                             "<" + id + "@" + settings_.hostname + ">"};
  incoming->append(submit::local_prelude(text, origin));
  incoming->append(text);
  spdlog::info("submit: id={} uid={} user={} from=<{}> nrcpt={} size={}", id, who.uid, who.user, log_safe(sender),
               rcpts.size(), text.size());
  committing_.emplace(id, std::move(owned));
  incoming->commit([this, id, done = std::move(done)](queue::CommitStatus st) mutable {
    committing_.erase(id);
    if (st == queue::CommitStatus::Committed) return done({true, id});
    done({false, st == queue::CommitStatus::NoSpace ? "75 the queue's file system is full; try later"
                                                    : "75 the queue could not store the message; try later"});
  });
}

}  // namespace tern::server
