// tern-sendmail: the sendmail-compatible command. Wiring only: the command line
// (submit/options), the message (submit/message), the request (submit/protocol) sent over
// ternd's submission socket — or, when ternd does not answer, a file in the maildrop.
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "smtp/address.hpp"
#include "submit/message.hpp"
#include "submit/options.hpp"
#include "submit/protocol.hpp"
#include "submit/smtp_session.hpp"

using namespace tern;
using namespace tern::submit;

namespace {

const char* g_name = "tern-sendmail";

int fail(int code, const std::string& why) {
  std::fprintf(stderr, "%s: %s\n", g_name, why.c_str());
  return code;
}

bool write_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data.remove_prefix(size_t(n));
  }
  return true;
}

// Connects to the submission socket; -1 with errno when ternd is not there.
int connect_socket(const std::string& path) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) {
    errno = ENAMETOOLONG;
    return -1;
  }
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    const int e = errno;
    ::close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

std::string read_to_end(int fd) {
  std::string out;
  char buf[65536];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, size_t(n));
  }
  return out;
}

// The maildrop: the same request bytes as on the socket, in a file only its owner and ternd
// see (directory mode 3733: not listable, sticky, and setgid so that the file gets ternd's
// group), written 0640 and made durable before fchmod 0740 marks it complete for ternd's
// import (ternd runs as its own user: the group read bit is how it reads the file).
// What became of a request: code 0 = ternd committed it (text: the queue id) or the maildrop
// holds it (text empty); otherwise a sysexits code and the reason.
struct Sent {
  int code = kExitOk;
  std::string text;
};

Sent drop_in_maildrop(const std::string& dir, const std::string& request, const std::string& why) {
  char name[128];
  timespec ts{};
  ::clock_gettime(CLOCK_REALTIME, &ts);
  std::snprintf(name, sizeof name, "/%lld.%09ld.%d", static_cast<long long>(ts.tv_sec), ts.tv_nsec, int(::getpid()));
  const std::string path = dir + name;
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
  if (fd < 0)
    return {kExitTempFail, "ternd is not answering (" + why + ") and the maildrop " + dir +
                               " cannot take the message: " + std::strerror(errno) + "; nothing was sent"};
  std::string_view rest = request;
  bool ok = true;
  while (ok && !rest.empty()) {
    const ssize_t n = ::write(fd, rest.data(), rest.size());
    if (n < 0 && errno == EINTR) continue;
    ok = n > 0;
    if (ok) rest.remove_prefix(size_t(n));
  }
  // fsync for the file, syncfs for its directory entry (a user cannot open the 3733
  // directory to fsync it), and only then the mode that says "complete".
  ok = ok && ::fsync(fd) == 0 && ::syncfs(fd) == 0 && ::fchmod(fd, 0740) == 0;
  const int e = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(path.c_str());
    return {kExitTempFail, "ternd is not answering (" + why + ") and writing to the maildrop failed: " +
                               std::strerror(e) + "; nothing was sent"};
  }
  return {};
}

// Hands a request to ternd over the submission socket, or to the maildrop when ternd does
// not answer.
Sent hand_over(const config::Config& cfg, const std::string& request) {
  const int fd = connect_socket(cfg.submit.socket);
  if (fd < 0) return drop_in_maildrop(cfg.submit.maildrop, request, std::strerror(errno));
  const bool sent = write_all(fd, request);
  ::shutdown(fd, SHUT_WR);
  const std::string answer = read_to_end(fd);
  ::close(fd);
  const size_t nl = answer.find('\n');
  if (nl == std::string::npos) {
    // ternd went away mid-request (a restart): nothing was committed, the maildrop keeps it.
    return drop_in_maildrop(cfg.submit.maildrop, request, sent ? "no answer" : "connection lost");
  }
  const Answer a = parse_answer(answer.substr(0, nl));
  // ternd cannot take it now (queue short of space, too busy): the maildrop can, and ternd
  // imports it later. Callers such as cron never retry, so 75 is the last resort.
  if (!a.ok && a.code == kExitTempFail) return drop_in_maildrop(cfg.submit.maildrop, request, "ternd: " + a.text);
  if (!a.ok) return {a.code, a.text};
  return {kExitOk, a.text};
}

// -bs: the SMTP session on stdin/stdout; each message goes the same way as with -bm.
int smtp_session(const config::Config& cfg) {
  SmtpSession s(cfg.hostname, cfg.limits.max_message_size);
  auto put = [](const std::string& out) {
    std::fwrite(out.data(), 1, out.size(), stdout);
    std::fflush(stdout);
  };
  put(s.greeting());
  char buf[65536];
  while (!s.finished()) {
    while (s.has_message()) {
      const SessionMessage& m = s.message();
      std::string problem;
      if (m.data.size() > cfg.limits.max_message_size) problem = "message too big";
      Submission sub;
      sub.sender_given = true;
      sub.sender = m.sender.empty() ? "<>" : m.sender;
      sub.mail_params = m.mail_params;
      sub.rcpts = m.rcpts;
      sub.rcpt_params = m.rcpt_params;
      Sent r = problem.empty() ? hand_over(cfg, format_request(sub, m.data.size()) + m.data)
                               : Sent{kExitDataErr, problem};
      put(s.message_done(r.code == kExitOk, r.code, r.text.empty() ? "in the maildrop" : r.text));
    }
    if (s.finished()) break;
    const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the client went away: a message without its "." is not queued
    put(s.feed(std::string_view(buf, size_t(n))));
  }
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string argv0 = argc > 0 ? argv[0] : "tern-sendmail";
  std::vector<std::string> args(argv + (argc > 0 ? 1 : 0), argv + argc);
  auto opts = parse_options(argv0, args);
  if (!opts) {
    std::fprintf(stderr, "%s: %s\n%s\n", g_name, opts.error().message.c_str(), usage(argv0).c_str());
    return kExitUsage;
  }
  const Options& o = *opts;
  if (o.mode == Mode::Noop) return kExitOk;  // newaliases: tern keeps no aliases database

  std::string config_path = o.config;
  if (config_path.empty()) {
    const char* env = std::getenv("TERN_CONFIG");
    config_path = env && *env ? env : "/etc/tern/tern.yaml";
  }
  // Only the keys needed here; files the config names are not opened (users cannot read them).
  auto cfg = config::load_file(config_path, config::LoadOptions{false});
  if (!cfg) return fail(kExitConfig, cfg.error().message);

  if (o.mode == Mode::Smtp) return smtp_session(*cfg);

  if (o.mode == Mode::ListQueue) {
    const int fd = connect_socket(cfg->submit.socket);
    if (fd < 0)
      return fail(kExitTempFail, "cannot reach ternd at " + cfg->submit.socket + ": " + std::strerror(errno));
    (void)write_all(fd, "LIST\n");
    const std::string answer = read_to_end(fd);
    ::close(fd);
    const size_t nl = answer.find('\n');
    const Answer a = parse_answer(answer.substr(0, nl));
    if (!a.ok) return fail(a.code, a.text.empty() ? "no answer from ternd" : a.text);
    const std::string body = nl == std::string::npos ? "" : answer.substr(nl + 1);
    if (body.empty()) std::printf("Mail queue is empty\n");
    else std::fwrite(body.data(), 1, body.size(), stdout);
    return kExitOk;
  }

  // The message: read whole (bounded), then line ends, the lone dot, -t.
  const uint64_t max = cfg->limits.max_message_size;
  std::string input;
  {
    char buf[65536];
    while (true) {
      const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return fail(kExitTempFail, std::string("reading the message: ") + std::strerror(errno));
      if (n == 0) break;
      input.append(buf, size_t(n));
      // Bare LFs become CRLF: the input may grow by up to half again; past that it is too big.
      if (input.size() > max + max / 2 + 65536)
        return fail(kExitDataErr, "message too big (limits.max_message_size is " + std::to_string(max) + ")");
    }
  }
  std::string message = normalize_input(input, o.ignore_dots);
  std::vector<std::string> rcpts = o.recipients;
  if (o.from_headers) {
    auto found = recipients_from_headers(message);
    if (!found) return fail(kExitDataErr, "-t: " + found.error().message);
    for (auto& r : *found) rcpts.push_back(std::move(r));
    message = remove_bcc(message);
  }
  if (rcpts.empty()) return fail(kExitDataErr, "no recipients (give them as arguments, or use -t)");
  if (message.size() > max)
    return fail(kExitDataErr, "message too big: " + std::to_string(message.size()) +
                                  " octets, limits.max_message_size is " + std::to_string(max));
  for (const auto& r : rcpts) {
    const std::string probe = r.find('@') == std::string::npos ? r + "@" + cfg->hostname : r;
    auto p = smtp::parse_path("<" + probe + ">", false, false, true);
    if (!p || !p->rest.empty()) return fail(kExitDataErr, "malformed recipient address: " + r);
  }

  Submission s;
  s.sender_given = o.sender_given;
  s.sender = o.sender == "" ? "<>" : o.sender;
  if (o.ret != smtp::Ret::Unspecified) s.mail_params.push_back(o.ret == smtp::Ret::Full ? "RET=FULL" : "RET=HDRS");
  if (!o.envid.empty()) s.mail_params.push_back("ENVID=" + smtp::xtext_encode(o.envid));
  if (o.body != Body::Unspecified) s.mail_params.push_back(o.body == Body::SevenBit ? "BODY=7BIT" : "BODY=8BITMIME");
  s.full_name = o.full_name;
  s.rcpts = rcpts;
  if (o.notify.given) s.notify = o.notify.str();
  const std::string request = format_request(s, message.size()) + message;

  const Sent r = hand_over(*cfg, request);
  if (r.code != kExitOk) return fail(r.code, r.text);
  if (o.verbose) std::fprintf(stderr, "%s: %s\n", g_name, r.text.empty() ? "left in the maildrop" : ("queued as " + r.text).c_str());
  return kExitOk;
}
