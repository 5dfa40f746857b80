// SASL for SMTP AUTH: the AUTH argument, PLAIN and LOGIN exchanges (RFC 4954, RFC 4616).
#include "smtp/sasl.hpp"

#include <utility>

#include "common/strings.hpp"
#include "smtp/base64.hpp"

namespace tern::smtp::sasl {

namespace {
// LOGIN's conventional prompts (draft-murchison-sasl-login): "Username:" and "Password:".
constexpr std::string_view kLoginUser = "VXNlcm5hbWU6";
constexpr std::string_view kLoginPassword = "UGFzc3dvcmQ6";

Step failed(Failure f) {
  Step s;
  s.kind = Step::Kind::Failed;
  s.failure = f;
  return s;
}
Step challenge(std::string_view text) {
  Step s;
  s.kind = Step::Kind::Challenge;
  s.challenge = std::string(text);
  return s;
}

// A LOGIN field: non-empty, bounded, no NUL (it would truncate in C APIs further on).
bool good_field(std::string_view f) {
  return !f.empty() && f.size() <= kMaxField && f.find('\0') == std::string_view::npos;
}

// RFC 4954 §4 mechanism name: SASL's 1*20 of upper-case letters, digits, '-' and '_'
// (compared case-insensitively, as clients send lower case too).
bool mechanism_name(std::string_view m) {
  if (m.empty() || m.size() > 20) return false;
  for (char c : m) {
    const char u = ascii_upper(c);
    if (!((u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9') || u == '-' || u == '_')) return false;
  }
  return true;
}
}  // namespace

const char* failure_text(Failure f) noexcept {
  switch (f) {
    case Failure::UnknownMechanism: return "unsupported mechanism";
    case Failure::Syntax: return "AUTH syntax error";
    case Failure::BadBase64: return "invalid base64";
    case Failure::Malformed: return "malformed SASL message";
    case Failure::Cancelled: return "cancelled by the client";
  }
  return "?";
}

std::optional<Credentials> parse_plain(std::string_view message) {
  const size_t n1 = message.find('\0');
  if (n1 == std::string_view::npos) return std::nullopt;
  const size_t n2 = message.find('\0', n1 + 1);
  if (n2 == std::string_view::npos) return std::nullopt;
  const std::string_view authzid = message.substr(0, n1);
  const std::string_view authcid = message.substr(n1 + 1, n2 - n1 - 1);
  const std::string_view passwd = message.substr(n2 + 1);
  // good_field() also refuses a third NUL inside passwd.
  if (!good_field(authcid) || !good_field(passwd) || authzid.size() > kMaxField) return std::nullopt;
  // Acting for another identity (proxy authorization) is not offered.
  if (!authzid.empty() && authzid != authcid) return std::nullopt;
  return Credentials{std::string(authcid), std::string(passwd)};
}

Step Exchange::begin(std::string_view auth_arg) {
  // RFC 4954 §4: "AUTH" SP sasl-mech [SP initial-response]; exactly one space between.
  const size_t sp = auth_arg.find(' ');
  const std::string_view mech = auth_arg.substr(0, sp);
  if (!mechanism_name(mech)) return failed(Failure::Syntax);
  std::optional<std::string_view> initial;
  if (sp != std::string_view::npos) {
    initial = auth_arg.substr(sp + 1);
    if (initial->empty() || initial->find(' ') != std::string_view::npos) return failed(Failure::Syntax);
  }
  if (iequals(mech, "PLAIN")) {
    mech_ = Mechanism::Plain;
  } else if (iequals(mech, "LOGIN")) {
    mech_ = Mechanism::Login;
  } else {
    return failed(Failure::UnknownMechanism);
  }
  want_ = mech_ == Mechanism::Plain ? Want::PlainMessage : Want::LoginUser;
  if (!initial) return challenge(mech_ == Mechanism::Plain ? std::string_view() : kLoginUser);
  if (*initial == "*") return failed(Failure::Cancelled);
  // "=" is an initial response of zero length (RFC 4954 §4), not a missing one.
  if (*initial == "=") return take("");
  const auto decoded = base64_decode(*initial);
  if (!decoded) return failed(Failure::BadBase64);
  return take(*decoded);
}

Step Exchange::respond(std::string_view line) {
  if (want_ == Want::Nothing) return failed(Failure::Syntax);
  // RFC 4954 §4: "*" alone cancels the exchange.
  if (line == "*") {
    want_ = Want::Nothing;
    return failed(Failure::Cancelled);
  }
  const auto decoded = base64_decode(line);
  if (!decoded) {
    want_ = Want::Nothing;
    return failed(Failure::BadBase64);
  }
  return take(*decoded);
}

Step Exchange::take(std::string_view decoded) {
  const Want was = std::exchange(want_, Want::Nothing);
  switch (was) {
    case Want::PlainMessage: {
      auto c = parse_plain(decoded);
      if (!c) return failed(Failure::Malformed);
      Step s;
      s.kind = Step::Kind::Done;
      s.credentials = std::move(*c);
      return s;
    }
    case Want::LoginUser:
      if (!good_field(decoded)) return failed(Failure::Malformed);
      user_ = std::string(decoded);
      want_ = Want::LoginPassword;
      return challenge(kLoginPassword);
    case Want::LoginPassword: {
      if (!good_field(decoded)) return failed(Failure::Malformed);
      Step s;
      s.kind = Step::Kind::Done;
      s.credentials = Credentials{std::exchange(user_, {}), std::string(decoded)};
      return s;
    }
    case Want::Nothing: break;
  }
  return failed(Failure::Syntax);
}

std::string sasl_plain_response(std::string_view user, std::string_view pass) {
  std::string msg;
  msg.reserve(user.size() + pass.size() + 2);
  msg += '\0';
  msg += user;
  msg += '\0';
  msg += pass;
  return base64_encode(msg);
}

}  // namespace tern::smtp::sasl
