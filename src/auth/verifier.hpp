// Checks a user name and password against auth.users_file. Thread-safe and blocking: it runs
// on the server's verifier workers, never on the loop. It owns the parsed users file, re-read
// when the file changes (a stat per verification), so edits need no reload.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "auth/users.hpp"
#include "common/result.hpp"

namespace tern::auth {

enum class Verdict { Accepted, Rejected };

class Verifier {
 public:
  explicit Verifier(std::string users_file) : path_(std::move(users_file)) {}

  // Accepted or Rejected; a Temp error when the users file cannot be read or is broken (the
  // client gets 454 4.7.0, and the error is worth a log line). An unknown user costs one
  // hash computation like a known one (against a dummy yescrypt hash).
  [[nodiscard]] Result<Verdict> verify(const std::string& user, const std::string& password);

  [[nodiscard]] const std::string& path() const noexcept { return path_; }

 private:
  struct FileId {
    uint64_t dev = 0, ino = 0, size = 0;
    int64_t mtime_ns = 0, ctime_ns = 0;
    bool operator==(const FileId&) const = default;
  };
  Result<std::shared_ptr<const Users>> current();

  const std::string path_;
  std::mutex mu_;  // guards users_ and id_
  std::shared_ptr<const Users> users_;
  FileId id_;
  std::once_flag dummy_once_;
  std::string dummy_;  // a hash of random bytes: what unknown users are checked against
};

}  // namespace tern::auth
