// Result and error types shared by every component: a failure is classified once,
// where it happens, as temporary, permanent or a bug (STYLE.md habit 5).
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace tern {

enum class ErrorKind { Temp, Perm, Bug };

struct Error {
  ErrorKind kind = ErrorKind::Temp;
  std::string message;
  std::string status;  // RFC 3463 enhanced status code, where the failure concerns a message

  static Error temp(std::string m) { return {ErrorKind::Temp, std::move(m), {}}; }
  static Error perm(std::string m) { return {ErrorKind::Perm, std::move(m), {}}; }
  static Error bug(std::string m) { return {ErrorKind::Bug, std::move(m), {}}; }
  // With the status code for delivery failures (kept apart from the text).
  static Error temp(std::string status, std::string m) { return {ErrorKind::Temp, std::move(m), std::move(status)}; }
  static Error perm(std::string status, std::string m) { return {ErrorKind::Perm, std::move(m), std::move(status)}; }
};

// A small std::expected stand-in (g++ 12 has no <expected>).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Error e) : v_(std::move(e)) {}      // NOLINT: implicit by design

  [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  [[nodiscard]] const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

struct Unit {};
using Status = Result<Unit>;
inline Status ok_status() { return Unit{}; }

}  // namespace tern
