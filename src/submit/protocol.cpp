// The submission socket protocol (see protocol.hpp).
#include "submit/protocol.hpp"

#include "common/strings.hpp"
#include "smtp/address.hpp"
#include "smtp/dsn_params.hpp"
#include "submit/options.hpp"

namespace tern::submit {

namespace {

// Splits "<addr> P1 P2" or "addr P1": the address (without <>) and the parameters.
bool split_address(std::string_view rest, std::string& addr, std::vector<std::string>& params) {
  rest = trim(rest);
  size_t end;
  if (!rest.empty() && rest.front() == '<') {
    end = rest.find('>');
    if (end == std::string_view::npos) return false;
    addr = std::string(rest.substr(1, end - 1));
    ++end;
  } else {
    end = rest.find(' ');
    if (end == std::string_view::npos) end = rest.size();
    addr = std::string(rest.substr(0, end));
  }
  std::string_view tail = rest.substr(end);
  while (!(tail = trim(tail)).empty()) {
    size_t sp = tail.find(' ');
    if (sp == std::string_view::npos) sp = tail.size();
    params.emplace_back(tail.substr(0, sp));
    tail.remove_prefix(sp);
  }
  return true;
}

}  // namespace

RequestReader::State RequestReader::refuse(int code, std::string text) {
  refusal_ = {code, std::move(text)};
  return state_ = State::Refused;
}

RequestReader::State RequestReader::feed(std::string_view bytes) {
  if (state_ != State::More) return state_;
  buf_.append(bytes);
  size_t nl;
  while ((nl = buf_.find('\n')) != std::string::npos) {
    if (nl > kMaxLine) return refuse(kExitUsage, "request line too long");
    std::string l = buf_.substr(0, nl);
    buf_.erase(0, nl + 1);
    if (!l.empty() && l.back() == '\r') l.pop_back();
    if (line(l) != State::More) return state_;
  }
  if (buf_.size() > kMaxLine) return refuse(kExitUsage, "request line too long");
  return state_;
}

RequestReader::State RequestReader::line(std::string_view l) {
  const size_t sp = l.find(' ');
  const std::string_view verb = l.substr(0, sp);
  const std::string_view rest = sp == std::string_view::npos ? std::string_view{} : l.substr(sp + 1);
  if (verb == "LIST") {
    req_.list = true;
    return state_ = State::List;
  }
  if (verb == "NAME") {
    req_.full_name = std::string(rest.substr(0, 200));
    return State::More;
  }
  if (verb == "FROM" || verb == "TO") {
    const bool from = verb == "FROM";
    std::string addr;
    std::vector<std::string> params;
    if (!split_address(rest, addr, params)) return refuse(kExitDataErr, "malformed address: " + std::string(rest));
    const bool default_sender = from && addr == "-";
    if (default_sender) addr.clear();
    else if (!addr.empty() && addr.find('@') == std::string::npos) addr += "@" + hostname_;
    if (addr.empty() && !from) return refuse(kExitDataErr, "an empty recipient address");
    // The same syntax rules as SMTP's MAIL and RCPT (RFC 5321 §4.1.2), UTF-8 allowed.
    auto p = smtp::parse_path("<" + addr + ">", from, false, true);
    if (!p || !p->rest.empty()) return refuse(kExitDataErr, "malformed address <" + addr + ">" + (p ? "" : ": " + p.error().message));
    for (const auto& prm : params) {
      const bool ok = from ? ((istarts_with(prm, "RET=") && smtp::parse_ret(prm.substr(4)).ok()) ||
                              (istarts_with(prm, "ENVID=") && smtp::parse_envid(prm.substr(6)).ok()) ||
                              iequals(prm, "BODY=7BIT") || iequals(prm, "BODY=8BITMIME"))
                           : ((istarts_with(prm, "NOTIFY=") && smtp::parse_notify(prm.substr(7)).ok()) ||
                              (istarts_with(prm, "ORCPT=") && smtp::parse_orcpt(prm.substr(6)).ok()));
      if (!ok) return refuse(kExitUsage, "bad parameter " + prm);
    }
    if (from) {
      req_.sender_given = !default_sender;
      req_.sender = p->address.mailbox();
      req_.mail_params = std::move(params);
    } else {
      if (req_.rcpts.size() >= max_rcpts_)
        return refuse(kExitDataErr, "too many recipients (limits.max_recipients is " + std::to_string(max_rcpts_) + ")");
      req_.rcpts.push_back({p->address.mailbox(), std::move(params)});
    }
    return State::More;
  }
  if (verb == "DATA") {
    uint64_t n = 0;
    if (rest.empty() || rest.size() > 19) return refuse(kExitUsage, "DATA needs a size");
    for (char c : rest) {
      if (c < '0' || c > '9') return refuse(kExitUsage, "DATA needs a size");
      n = n * 10 + uint64_t(c - '0');
    }
    if (req_.rcpts.empty()) return refuse(kExitDataErr, "no recipients");
    if (n > max_size_)
      return refuse(kExitDataErr, "message too big: " + std::to_string(n) + " octets, limits.max_message_size is " +
                                      std::to_string(max_size_));
    req_.size = n;
    return state_ = State::Data;
  }
  return refuse(kExitUsage, "unknown request " + std::string(verb.substr(0, 20)));
}

std::string format_request(const Submission& s, uint64_t size) {
  std::string out;
  auto bracket = [](const std::string& a) {
    return a.size() >= 2 && a.front() == '<' && a.back() == '>' ? a : "<" + a + ">";
  };
  if (s.sender_given) {
    out += "FROM " + bracket(s.sender);
    for (const auto& p : s.mail_params) out += " " + p;
    out += "\n";
  } else if (!s.mail_params.empty()) {
    out += "FROM -";  // parameters without -f: ternd still fills in the sender
    for (const auto& p : s.mail_params) out += " " + p;
    out += "\n";
  }
  if (!s.full_name.empty()) {
    std::string name;
    for (char c : s.full_name)
      if (c != '\n' && c != '\r') name.push_back(c);
    out += "NAME " + name + "\n";
  }
  for (size_t i = 0; i < s.rcpts.size(); ++i) {
    out += "TO " + bracket(s.rcpts[i]);
    if (i < s.rcpt_params.size()) {
      for (const auto& p : s.rcpt_params[i]) out += " " + p;
    } else if (!s.notify.empty()) {
      out += " NOTIFY=" + s.notify;
    }
    out += "\n";
  }
  out += "DATA " + std::to_string(size) + "\n";
  return out;
}

Answer parse_answer(std::string_view l) {
  Answer a;
  if (!l.empty() && l.back() == '\n') l.remove_suffix(1);
  if (l == "OK" || l.starts_with("OK ")) {
    a.ok = true;
    a.text = std::string(l.size() > 3 ? l.substr(3) : "");
    return a;
  }
  a.code = kExitTempFail;
  if (l.starts_with("ERR ")) {
    l.remove_prefix(4);
    const size_t sp = l.find(' ');
    const std::string_view num = l.substr(0, sp);
    for (int code : {kExitUsage, kExitDataErr, kExitTempFail, kExitConfig})
      if (num == std::to_string(code)) a.code = code;
    a.text = std::string(sp == std::string_view::npos ? l : l.substr(sp + 1));
  } else {
    a.text = "unexpected answer from ternd: " + std::string(l.substr(0, 200));
  }
  return a;
}

}  // namespace tern::submit
