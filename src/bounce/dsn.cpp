// DSN message construction.
#include "bounce/dsn.hpp"

#include <cctype>

#include "common/date.hpp"
#include "common/log_escape.hpp"
#include "smtp/header_section.hpp"
#include "smtp/headers.hpp"
#include "smtp/reply_parser.hpp"

namespace tern::bounce {

namespace {

const char* action_word(Action a) {
  switch (a) {
    case Action::Failed: return "failed";
    case Action::Delayed: return "delayed";
    case Action::Relayed: return "relayed";
  }
  return "failed";
}

bool non_ascii(std::string_view s) {
  for (unsigned char c : s)
    if (c >= 0x80) return true;
  return false;
}

// Header and DSN field values must stay on one line of sane length.
std::string one_line(std::string_view s, size_t max = 900) {
  std::string out;
  for (char c : s) {
    if (c == '\r' || c == '\n') c = ' ';
    out += c;
    if (out.size() >= max) break;
  }
  return out;
}

std::string human_text(const Report& r) {
  std::string t;
  bool any_failed = false, any_delayed = false, any_relayed = false;
  for (const auto& x : r.rcpts) {
    any_failed |= x.action == Action::Failed;
    any_delayed |= x.action == Action::Delayed;
    any_relayed |= x.action == Action::Relayed;
  }
  t += "This is the mail system at " + r.reporting_mta + ".\r\n\r\n";
  if (any_failed)
    t += "Your message could not be delivered to one or more recipients. It has not been\r\n"
         "delivered to the addresses below and tern will not try again.\r\n\r\n";
  if (any_delayed)
    t += "Your message has not been delivered yet to the addresses below. tern is still\r\n"
         "trying; you do not need to send it again. You will be told if it gives up.\r\n\r\n";
  if (any_relayed)
    t += "Your message was passed on to the next mail server for the addresses below. That\r\n"
         "server does not report delivery, so this is the last notice you will get.\r\n\r\n";
  for (const auto& x : r.rcpts) {
    t += "<" + x.final_recipient + ">: ";
    switch (x.action) {
      case Action::Failed: t += "failed"; break;
      case Action::Delayed: t += "delayed"; break;
      case Action::Relayed: t += "relayed"; break;
    }
    if (!x.remote_mta.empty()) t += " (host " + x.remote_mta + ")";
    t += "\r\n";
    if (!x.diagnostic.empty()) t += "    " + one_line(x.diagnostic) + "\r\n";
    if (x.action == Action::Delayed && x.will_retry_until_us)
      t += "    Will keep trying until " + rfc5322_date(x.will_retry_until_us) + "\r\n";
  }
  t += "\r\nThe message's queue id here was " + r.queue_id + ".\r\n";
  return t;
}

// RFC 3464 §2.3.6: "smtp; <reply>" only for a remote SMTP reply (tern's MAIL:/DATA:
// labels removed); tern's own reasons (DNS, expiry, connections) use a private type.
std::string diagnostic_code(std::string_view d, std::optional<bool> remote) {
  std::string_view reply = d;
  for (std::string_view label : {"MAIL: ", "DATA: ", "RSET: "})
    if (reply.starts_with(label)) reply.remove_prefix(label.size());
  if (remote) return *remote ? "smtp; " + one_line(reply) : "X-tern; " + one_line(d);
  const bool smtp = reply.size() >= 4 && reply[0] >= '2' && reply[0] <= '5' && std::isdigit(static_cast<unsigned char>(reply[1])) &&
                    std::isdigit(static_cast<unsigned char>(reply[2])) && (reply[3] == ' ' || reply[3] == '-');
  return smtp ? "smtp; " + one_line(reply) : "X-tern; " + one_line(d);
}

// RFC 3464 §2.3.2: the ORCPT as the sender gave it, decoded, when that is printable text
// (UTF-8 only in a global DSN, RFC 6533 §3); otherwise its encoded form (xtext or
// utf-8-addr-xtext), so control bytes or raw 8-bit never reach the report.
std::string original_recipient(const smtp::Orcpt& o, bool global) {
  bool plain = !o.address.empty();
  for (unsigned char c : o.address) plain = plain && c >= 0x20 && c != 0x7f && (c < 0x80 || global);
  if (plain && global) plain = valid_utf8(o.address);
  return plain ? o.addr_type + ";" + o.address : smtp::format_orcpt(o);
}

std::string status_fields(const Report& r) {
  std::string s;
  s += "Reporting-MTA: dns; " + r.reporting_mta + "\r\n";
  if (!r.envid.empty()) s += "Original-Envelope-Id: " + one_line(r.envid) + "\r\n";
  s += "Arrival-Date: " + rfc5322_date(r.arrival_us) + "\r\n";
  for (const auto& x : r.rcpts) {
    s += "\r\n";
    // RFC 6533 §3: utf-8 address type for non-ASCII addresses in global DSNs.
    const char* type = r.utf8 && non_ascii(x.final_recipient) ? "utf-8" : "rfc822";
    s += std::string("Final-Recipient: ") + type + "; " + x.final_recipient + "\r\n";
    if (x.orcpt) s += "Original-Recipient: " + original_recipient(*x.orcpt, r.utf8) + "\r\n";
    s += std::string("Action: ") + action_word(x.action) + "\r\n";
    s += "Status: " + x.status + "\r\n";
    if (!x.remote_mta.empty()) s += "Remote-MTA: dns; " + x.remote_mta + "\r\n";
    if (!x.diagnostic.empty()) s += "Diagnostic-Code: " + diagnostic_code(x.diagnostic, x.remote_reply) + "\r\n";
    if (x.last_attempt_us) s += "Last-Attempt-Date: " + rfc5322_date(x.last_attempt_us) + "\r\n";
    if (x.action == Action::Delayed && x.will_retry_until_us)
      s += "Will-Retry-Until: " + rfc5322_date(x.will_retry_until_us) + "\r\n";
  }
  return s;
}

}  // namespace

std::string status_of(std::string_view reply, std::string_view fallback) {
  std::string code = smtp::find_enhanced(reply);
  return code.empty() ? std::string(fallback) : code;
}

std::string build(const Report& r) {
  const std::string text = human_text(r);
  const std::string fields = status_fields(r);
  // Headers only: up to the blank line, or the leading header fields when there is none
  // (a message without a blank line must not come back whole).
  bool complete = false;
  const size_t hl = smtp::header_section_length(r.original, complete);
  const std::string_view headers = r.original.substr(0, hl);
  const bool full = r.return_full && r.original.size() <= kMaxReturnedMessage;
  const std::string_view returned = full ? r.original : headers;
  // RFC 2045 §6.1: a part without Content-Transfer-Encoding is 7bit; label 8-bit ones.
  const bool text8 = non_ascii(text), fields8 = non_ascii(fields), returned8 = non_ascii(returned);
  const bool eight_bit = text8 || fields8 || returned8;
  auto cte = [](bool b) { return b ? std::string("Content-Transfer-Encoding: 8bit\r\n") : std::string(); };
  bool failed = false, delayed = false;
  for (const auto& x : r.rcpts) {
    failed |= x.action == Action::Failed;
    delayed |= x.action == Action::Delayed;
  }
  const std::string subject = failed    ? "Undelivered Mail Returned to Sender"
                              : delayed ? "Delayed Mail (still being retried)"
                                        : "Successful Mail Relay Notification";
  const std::string boundary = "tern-" + r.notice_id + "/" + r.reporting_mta;
  std::string m;
  m += "From: Mail Delivery System <MAILER-DAEMON@" + r.reporting_mta + ">\r\n";
  m += "To: <" + r.to + ">\r\n";
  m += "Subject: " + subject + "\r\n";
  m += "Date: " + rfc5322_date(r.now_us) + "\r\n";
  m += "Message-ID: <" + r.notice_id + ".dsn@" + r.reporting_mta + ">\r\n";
  m += "Auto-Submitted: auto-replied\r\n";  // RFC 3834: no auto-reply loops
  m += "MIME-Version: 1.0\r\n";
  // RFC 6522 §3: report-type names the second part's subtype (RFC 6533 for global DSNs).
  m += std::string("Content-Type: multipart/report; report-type=") +
       (r.utf8 ? "global-delivery-status" : "delivery-status") + ";\r\n\tboundary=\"" + boundary + "\"\r\n";
  if (eight_bit) m += "Content-Transfer-Encoding: 8bit\r\n";
  m += "\r\nThis is a MIME-encapsulated message.\r\n\r\n";

  m += "--" + boundary + "\r\n";
  m += "Content-Description: Notification\r\n";
  m += "Content-Type: text/plain; charset=utf-8\r\n" + cte(text8) + "\r\n";
  m += text;
  m += "\r\n--" + boundary + "\r\n";
  m += "Content-Description: Delivery report\r\n";
  m += std::string("Content-Type: ") + (r.utf8 ? "message/global-delivery-status" : "message/delivery-status") +
       "\r\n" + cte(fields8) + "\r\n";
  m += fields;

  m += "\r\n--" + boundary + "\r\n";
  if (full) {
    m += "Content-Description: Undelivered Message\r\n";
    m += std::string("Content-Type: ") + (r.utf8 ? "message/global" : "message/rfc822") + "\r\n" +
         cte(returned8) + "\r\n";
    m += r.original;
    if (!r.original.ends_with("\r\n")) m += "\r\n";
  } else {
    m += "Content-Description: Undelivered Message Headers\r\n";
    m += std::string("Content-Type: ") + (r.utf8 ? "message/global-headers" : "text/rfc822-headers") + "\r\n" +
         cte(returned8) + "\r\n";
    std::string_view h = headers;
    while (h.ends_with("\r\n\r\n")) h.remove_suffix(2);
    m += h;
    if (!h.ends_with("\r\n")) m += "\r\n";
  }
  m += "\r\n--" + boundary + "--\r\n";
  return m;
}

}  // namespace tern::bounce
