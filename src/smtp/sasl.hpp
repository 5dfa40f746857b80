// SMTP AUTH (RFC 4954) as pure functions: the AUTH command's argument, the PLAIN (RFC 4616)
// and LOGIN exchanges on the server side, and the client's PLAIN response. Base64 is
// smtp/base64.hpp's (strict).
// No I/O and no verification: the exchange ends in a user name and a password.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace tern::smtp::sasl {

// RFC 4616 §2: authzid, authcid and passwd are each at most 255 octets. LOGIN has no
// standard; the same bound applies to its user name and password.
inline constexpr size_t kMaxField = 255;

enum class Mechanism { Plain, Login };

// Why an exchange ended without credentials. The session maps each to its reply.
enum class Failure {
  UnknownMechanism,  // 504 5.5.4 (RFC 4954 §4)
  Syntax,            // the AUTH command itself is malformed: 501 5.5.2
  BadBase64,         // a response or initial response is not base64: 501 5.5.2
  Malformed,         // decodes, but not a valid PLAIN message / LOGIN field: 501 5.5.2
  Cancelled,         // the client sent "*": 501 5.7.0 (RFC 4954 §4)
};

// Text naming a failure, for log lines (never containing client data).
[[nodiscard]] const char* failure_text(Failure f) noexcept;

struct Credentials {
  std::string user;      // RFC 4616 authcid (LOGIN: the user name)
  std::string password;  // never logged
};

// One step of an exchange: either a challenge to send ("334 " + challenge), or the end.
struct Step {
  enum class Kind { Challenge, Done, Failed };
  Kind kind = Kind::Failed;
  std::string challenge;  // base64, possibly empty (Challenge)
  Credentials credentials;  // Done
  Failure failure = Failure::Syntax;  // Failed
};

// The server side of one AUTH exchange. begin() takes the AUTH command's argument
// ("PLAIN", "PLAIN <initial-response>", "LOGIN =" ...); while it returns Challenge, each
// client line goes to respond(). One Exchange per AUTH command.
class Exchange {
 public:
  [[nodiscard]] Step begin(std::string_view auth_arg);
  [[nodiscard]] Step respond(std::string_view line);
  [[nodiscard]] Mechanism mechanism() const noexcept { return mech_; }

 private:
  enum class Want { Nothing, PlainMessage, LoginUser, LoginPassword };
  Step take(std::string_view decoded);
  Mechanism mech_ = Mechanism::Plain;
  Want want_ = Want::Nothing;
  std::string user_;
};

// RFC 4616 §2: "[authzid] NUL authcid NUL passwd". authzid must be empty or equal to authcid
// (tern acts for no one else); authcid and passwd non-empty, at most kMaxField, no NUL.
[[nodiscard]] std::optional<Credentials> parse_plain(std::string_view message);

// Client side (smarthost AUTH): the PLAIN initial response, base64 of NUL user NUL pass.
[[nodiscard]] std::string sasl_plain_response(std::string_view user, std::string_view pass);

}  // namespace tern::smtp::sasl
