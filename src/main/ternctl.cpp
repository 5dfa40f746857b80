// ternctl: the operator's tool. Reads the config (only what it needs: the control socket)
// to find ternd, sends one command line over the control socket, prints the answer.
// `passwd` (no config, no ternd) prints a users-file hash line for SMTP AUTH.
// Exit codes: 0 done, 1 refused or failed (the reason on stderr), 2 usage.
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "admin/command.hpp"
#include "auth/hash.hpp"
#include "config/config.hpp"
#include "smtp/sasl.hpp"

namespace {

constexpr const char* kDefaultConfig = "/etc/tern/tern.yaml";

constexpr const char* kUsage =
    "usage: ternctl [--config PATH] COMMAND [ARGS]\n"
    "  (config: --config, else $TERN_CONFIG, else /etc/tern/tern.yaml)\n"
    "commands:\n"
    "  queue [--json]          list queued messages (id, age, size, sender, next attempt, each\n"
    "                          recipient with its state and last reply)\n"
    "  show [--body] ID        envelope, each recipient's history, headers (and the body)\n"
    "  hold SELECTOR...        keep messages from being attempted (they still expire)\n"
    "  release SELECTOR...     undo hold; the messages are due at once\n"
    "  delete SELECTOR...      remove messages for good, without a bounce\n"
    "  flush [SELECTOR...]     make deferred messages due now (all of them without a selector)\n"
    "  stats [--json]          counters since start, queue and connection gauges\n"
    "  export SELECTOR... FILE move messages into a new archive FILE (written by ternd, mode\n"
    "                          0600, never overwriting a file) and remove them here\n"
    "  import FILE             queue the messages of an export archive here (new queue ids;\n"
    "                          a message imported before is refused)\n"
    "selectors: queue IDs, or --all, --domain DOMAIN (a recipient's), --sender ADDRESS\n"
    "  passwd [USER]           read a password (from the terminal without echo, asked twice;\n"
    "                          else one line of stdin) and print a yescrypt hash for SMTP\n"
    "                          AUTH, as a users-file line \"USER:hash\" if USER is given\n";

int talk(const std::string& path, const std::string& command) {
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.size() >= sizeof sa.sun_path) {
    std::fprintf(stderr, "ternctl: control socket path too long: %s\n", path.c_str());
    return 1;
  }
  std::memcpy(sa.sun_path, path.c_str(), path.size() + 1);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    std::fprintf(stderr, "ternctl: cannot connect to %s: %s (is ternd running?)\n", path.c_str(),
                 std::strerror(errno));
    return 1;
  }
  // A refusal ("ERR permission denied") may arrive and the socket close before our command
  // is read: a failed write is not the end, the answer is still there to read.
  const std::string line = command + "\n";
  (void)!::send(fd, line.data(), line.size(), MSG_NOSIGNAL);
  std::string answer;
  char buf[65536];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    answer.append(buf, size_t(n));
  }
  ::close(fd);
  const size_t nl = answer.find('\n');
  const std::string status = answer.substr(0, nl);
  const std::string body = nl == std::string::npos ? "" : answer.substr(nl + 1);
  if (status != "OK") {
    // Per-message lines of a partly failed command go to stderr with the summary.
    std::fprintf(stderr, "ternctl: %s\n", status.empty() ? "no answer from ternd" : status.substr(4).c_str());
    std::fwrite(body.data(), 1, body.size(), stderr);
    return 1;
  }
  std::fwrite(body.data(), 1, body.size(), stdout);
  return 0;
}

// One line from the terminal with echo off (the prompt on stderr), or from stdin.
std::optional<std::string> read_secret(const char* prompt, bool tty) {
  termios old{};
  if (tty) {
    std::fputs(prompt, stderr);
    std::fflush(stderr);
    if (::tcgetattr(STDIN_FILENO, &old) == 0) {
      termios quiet = old;
      quiet.c_lflag &= ~tcflag_t(ECHO);
      ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
  }
  std::string line;
  const bool got = bool(std::getline(std::cin, line));
  if (tty) {
    ::tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
    std::fputs("\n", stderr);
  }
  if (!got) return std::nullopt;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

int passwd(const std::string& user) {
  if (!user.empty() && (user.find(':') != std::string::npos || user.find_first_of(" \t") != std::string::npos)) {
    std::fprintf(stderr, "ternctl: a user name cannot contain ':' or spaces\n");
    return 2;
  }
  const bool tty = ::isatty(STDIN_FILENO) == 1;
  auto pw = read_secret("Password: ", tty);
  if (!pw) {
    std::fprintf(stderr, "ternctl: no password given\n");
    return 1;
  }
  if (tty) {
    auto again = read_secret("Again: ", tty);
    const bool same = again && *again == *pw;
    if (again) tern::auth::wipe(*again);
    if (!same) {
      tern::auth::wipe(*pw);
      std::fprintf(stderr, "ternctl: the passwords differ\n");
      return 1;
    }
  }
  // SASL PLAIN and LOGIN carry at most 255 octets (RFC 4616 §2): a longer password could
  // never be used to log in.
  if (pw->empty() || pw->size() > tern::smtp::sasl::kMaxField || pw->find('\0') != std::string::npos) {
    tern::auth::wipe(*pw);
    std::fprintf(stderr, "ternctl: the password must be 1 to %zu bytes\n", tern::smtp::sasl::kMaxField);
    return 1;
  }
  auto hash = tern::auth::make_hash(*pw);
  tern::auth::wipe(*pw);
  if (!hash) {
    std::fprintf(stderr, "ternctl: %s\n", hash.error().message.c_str());
    return 1;
  }
  std::printf("%s%s%s\n", user.c_str(), user.empty() ? "" : ":", hash->c_str());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::signal(SIGPIPE, SIG_IGN);
  std::string config;
  std::vector<std::string> words;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (words.empty() && (a == "--help" || a == "-h")) {
      std::fputs(kUsage, stdout);
      return 0;
    }
    if (words.empty() && a == "passwd") {  // needs neither the config nor ternd
      if (i + 2 < argc) {
        std::fprintf(stderr, "ternctl: passwd takes at most one user name\n%s", kUsage);
        return 2;
      }
      return passwd(i + 1 < argc ? argv[i + 1] : "");
    }
    if (words.empty() && a == "--config") {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "ternctl: --config needs a path\n%s", kUsage);
        return 2;
      }
      config = argv[++i];
    } else if (words.empty() && a.starts_with("--config=")) {
      config = a.substr(9);
    } else {
      if (a.empty() || a.find_first_of(" \t\r\n") != std::string::npos) {
        std::fprintf(stderr, "ternctl: argument '%s' may not be empty or contain spaces\n", a.c_str());
        return 2;
      }
      words.push_back(a);
    }
  }
  if (words.empty()) {
    std::fputs(kUsage, stderr);
    return 2;
  }
  // The archive is opened by ternd, whose working directory is not ours: a relative FILE
  // (the last word, unless it is an option's value) is made absolute here.
  if ((words[0] == "export" || words[0] == "import") && words.size() >= 2) {
    std::string& file = words.back();
    const std::string& before = words[words.size() - 2];
    if (!file.starts_with("-") && !file.starts_with("/") && before != "--domain" && before != "--sender") {
      char cwd[4096];
      if (!::getcwd(cwd, sizeof cwd)) {
        std::fprintf(stderr, "ternctl: cannot find the current directory: %s\n", std::strerror(errno));
        return 1;
      }
      file = std::string(cwd) + (std::string_view(cwd) == "/" ? "" : "/") + file;
      if (file.find_first_of(" \t\r\n") != std::string::npos) {
        std::fprintf(stderr, "ternctl: the archive path may not contain spaces: %s\n", file.c_str());
        return 2;
      }
    }
  }
  std::string line;
  for (const auto& w : words) line += (line.empty() ? "" : " ") + w;
  // Checked here too, so a usage error is exit 2 without a daemon to ask.
  if (auto parsed = tern::admin::parse_control(line); !parsed) {
    std::fprintf(stderr, "ternctl: %s\n%s", parsed.error().message.c_str(), kUsage);
    return 2;
  }
  if (config.empty()) {
    const char* env = std::getenv("TERN_CONFIG");
    config = env && *env ? env : kDefaultConfig;
  }
  auto cfg = tern::config::load_file(config, tern::config::LoadOptions{false});
  if (!cfg) {
    std::fprintf(stderr, "ternctl: %s\n", cfg.error().message.c_str());
    return 1;
  }
  return talk(cfg->control.socket, line);
}
