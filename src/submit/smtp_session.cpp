// tern-sendmail -bs (see smtp_session.hpp).
#include "submit/smtp_session.hpp"

#include "common/strings.hpp"
#include "smtp/address.hpp"
#include "smtp/command.hpp"
#include "smtp/dsn_params.hpp"
#include "submit/options.hpp"

namespace tern::submit {

namespace {
constexpr size_t kMaxCommandLine = 4096;
}

std::string SmtpSession::greeting() const { return "220 " + hostname_ + " ESMTP tern-sendmail\r\n"; }

std::string SmtpSession::feed(std::string_view bytes) {
  buf_.append(bytes);
  return run();
}

std::string SmtpSession::run() {
  std::string out;
  while (state_ == State::Command || state_ == State::Data) {
    const size_t nl = buf_.find('\n');
    if (nl == std::string::npos) {
      if (state_ == State::Command && buf_.size() > kMaxCommandLine) {
        buf_.clear();
        out += "500 5.5.2 line too long\r\n";
      }
      break;
    }
    std::string line = buf_.substr(0, nl);
    buf_.erase(0, nl + 1);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (state_ == State::Data) {
      if (line == ".") {
        if (too_big_) {
          out += "552 5.3.4 message too big\r\n";
          msg_ = {};
          in_transaction_ = false;
          too_big_ = false;
          state_ = State::Command;
          continue;
        }
        state_ = State::Waiting;  // the caller queues it; message_done() replies
        break;
      }
      if (too_big_) continue;
      // Dot-unstuffing, RFC 5321 §4.5.2.
      msg_.data.append(line.size() > 1 && line[0] == '.' ? std::string_view(line).substr(1) : std::string_view(line));
      msg_.data.append("\r\n");
      if (msg_.data.size() > max_size_) {
        too_big_ = true;
        msg_.data.clear();
      }
      continue;
    }
    out += command(line);
  }
  return out;
}

std::string SmtpSession::message_done(bool queued, int exit_code, std::string_view text) {
  std::string out;
  if (queued) out = "250 2.0.0 Ok: queued as " + std::string(text) + "\r\n";
  else if (exit_code == kExitTempFail) out = "451 4.3.0 " + std::string(text) + "\r\n";
  else out = "554 5.6.0 " + std::string(text) + "\r\n";
  msg_ = {};
  in_transaction_ = false;
  state_ = State::Command;
  return out + run();
}

std::string SmtpSession::command(std::string_view line) {
  using smtp::Verb;
  const smtp::Command c = smtp::parse_command(line);
  switch (c.verb) {
    case Verb::Ehlo:
      msg_ = {};
      in_transaction_ = false;
      return "250-" + hostname_ + "\r\n250-8BITMIME\r\n250-DSN\r\n250 PIPELINING\r\n";
    case Verb::Helo:
      msg_ = {};
      in_transaction_ = false;
      return "250 " + hostname_ + "\r\n";
    case Verb::Mail: {
      if (in_transaction_) return "503 5.5.1 nested MAIL command\r\n";
      auto rest = smtp::strip_prefix(c.arg, "FROM:");
      if (!rest) return "501 5.5.4 syntax: MAIL FROM:<address>\r\n";
      auto p = smtp::parse_path(*rest, true, false, true);
      if (!p) return "501 " + p.error().message + "\r\n";
      auto params = smtp::parse_params(p->rest, true);
      if (!params) return "501 " + params.error().message + "\r\n";
      std::vector<std::string> kept;
      for (const auto& prm : *params) {
        if (prm.keyword == "BODY" && prm.value && (iequals(*prm.value, "7BIT") || iequals(*prm.value, "8BITMIME")))
          kept.push_back("BODY=" + to_upper(*prm.value));
        // RFC 3461 §4.3/§4.4: checked here, so a bad value gets its 501 in the session.
        else if (prm.keyword == "RET" && prm.value && smtp::parse_ret(*prm.value).ok())
          kept.push_back("RET=" + to_upper(*prm.value));
        else if (prm.keyword == "ENVID" && prm.value && smtp::parse_envid(*prm.value).ok())
          kept.push_back("ENVID=" + *prm.value);
        else if (prm.keyword == "RET" || prm.keyword == "ENVID")
          return "501 5.5.4 malformed " + prm.raw + "\r\n";
        else if (prm.keyword != "SIZE")
          return "555 5.5.4 unsupported parameter " + prm.raw + "\r\n";
      }
      msg_ = {};
      msg_.sender = p->address.mailbox();
      msg_.mail_params = std::move(kept);
      in_transaction_ = true;
      return "250 2.1.0 Ok\r\n";
    }
    case Verb::Rcpt: {
      if (!in_transaction_) return "503 5.5.1 need MAIL command\r\n";
      auto rest = smtp::strip_prefix(c.arg, "TO:");
      if (!rest) return "501 5.5.4 syntax: RCPT TO:<address>\r\n";
      auto p = smtp::parse_path(*rest, false, true, true);
      if (!p) return "501 " + p.error().message + "\r\n";
      auto params = smtp::parse_params(p->rest, true);
      if (!params) return "501 " + params.error().message + "\r\n";
      std::vector<std::string> kept;
      for (const auto& prm : *params) {
        // RFC 3461 §4.1/§4.2.
        if (prm.keyword == "NOTIFY" && prm.value && smtp::parse_notify(*prm.value).ok())
          kept.push_back("NOTIFY=" + to_upper(*prm.value));
        else if (prm.keyword == "ORCPT" && prm.value && smtp::parse_orcpt(*prm.value).ok())
          kept.push_back("ORCPT=" + *prm.value);
        else if (prm.keyword == "NOTIFY" || prm.keyword == "ORCPT")
          return "501 5.5.4 malformed " + prm.raw + "\r\n";
        else
          return "555 5.5.4 unsupported parameter " + prm.raw + "\r\n";
      }
      msg_.rcpts.push_back(p->address.mailbox());
      msg_.rcpt_params.push_back(std::move(kept));
      return "250 2.1.5 Ok\r\n";
    }
    case Verb::Data:
      if (!in_transaction_) return "503 5.5.1 need MAIL command\r\n";
      if (msg_.rcpts.empty()) return "554 5.5.1 no valid recipients\r\n";
      state_ = State::Data;
      return "354 End data with <CR><LF>.<CR><LF>\r\n";
    case Verb::Rset:
      msg_ = {};
      in_transaction_ = false;
      return "250 2.0.0 Ok\r\n";
    case Verb::Noop:
      return "250 2.0.0 Ok\r\n";
    case Verb::Quit:
      state_ = State::Closed;
      return "221 2.0.0 Bye\r\n";
    default:
      return "502 5.5.2 command not implemented\r\n";
  }
}

}  // namespace tern::submit
