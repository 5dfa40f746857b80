// Unit tests for auth/: hash formats, the users file, verification and its change detection.
// Hashes are made here (libxcrypt's gensalt and crypt), never pasted in.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <string>

#include "auth/hash.hpp"
#include "auth/users.hpp"
#include "auth/verifier.hpp"
#include "temp_dir.hpp"

using namespace tern;
using namespace tern::auth;
using tern::test::TempDir;

namespace {
std::string hash_of(const std::string& pw, const char* prefix = "$y$") {
  auto h = make_hash(pw, prefix);
  REQUIRE(h.ok());
  return h.value();
}
}  // namespace

TEST_CASE("auth: constant-time comparison") {
  CHECK(equal_ct("", ""));
  CHECK(equal_ct("abc", "abc"));
  CHECK_FALSE(equal_ct("abc", "abd"));
  CHECK_FALSE(equal_ct("abc", "ab"));
  CHECK_FALSE(equal_ct("ab", "abc"));
  CHECK_FALSE(equal_ct("", "a"));
}

TEST_CASE("auth: every supported method verifies, wrong passwords do not") {
  for (const char* prefix : {"$y$", "$7$", "$6$", "$5$", "$2b$"}) {
    CAPTURE(prefix);
    const std::string h = hash_of("correct horse", prefix);
    CHECK(h.rfind(prefix, 0) == 0);
    CHECK(check_hash(h).ok());
    CHECK(verify_hash("correct horse", h).value() == Match::Yes);
    CHECK(verify_hash("correct hors", h).value() == Match::No);
    CHECK(verify_hash("", h).value() == Match::No);
  }
  // htpasswd -B writes $2y$: the same bcrypt, accepted.
  std::string y = hash_of("pw", "$2b$");
  y[2] = 'y';
  CHECK(check_hash(y).ok());
  CHECK(verify_hash("pw", y).value() == Match::Yes);
}

TEST_CASE("auth: unsupported hashes are refused with a reason") {
  auto apr = check_hash("$apr1$abcdefgh$0123456789abcdefghijkl");
  REQUIRE_FALSE(apr.ok());
  CHECK(apr.error().message.find("apr1") != std::string::npos);
  CHECK_FALSE(check_hash("").ok());
  CHECK_FALSE(check_hash("!").ok());
  CHECK_FALSE(check_hash("$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA").ok());
  CHECK_FALSE(check_hash("$99$nothing$here").ok());
  CHECK_FALSE(check_hash("$6$saltonly$").ok());  // a setting without a checksum
}

TEST_CASE("auth: users file syntax") {
  const std::string a = hash_of("a-pw", "$5$");
  const std::string b = hash_of("b-pw", "$6$");
  const std::string c = hash_of("c-pw", "$2b$");
  const std::string text = "# tern users\n"
                           "\n"
                           "alice:" + a + "\n"
                           "bob:{SHA512-CRYPT}" + b + ":1000:1000::/home/bob::\r\n"
                           "   # indented comment\n"
                           "carol@example.net:{blf-crypt}" + c;
  auto u = parse_users(text, "users");
  REQUIRE(u.ok());
  CHECK(u->hashes.size() == 3);
  CHECK(u->hashes.at("alice") == a);
  CHECK(u->hashes.at("bob") == b);
  CHECK(u->hashes.at("carol@example.net") == c);
  CHECK(u->warnings.empty());
}

TEST_CASE("auth: users file errors name the file and line, never the hash") {
  const std::string good = hash_of("pw", "$5$");
  const auto err = [](const std::string& text) {
    auto r = parse_users(text, "/etc/tern/users");
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == ErrorKind::Perm);
    return r.error().message;
  };
  std::string m = err("alice:" + good + "\n# x\nbob:$apr1$abcdefgh$0123456789abcdefghijkl\n");
  CHECK(m.rfind("/etc/tern/users:3: ", 0) == 0);
  CHECK(m.find("bob") != std::string::npos);
  CHECK(m.find("apr1") != std::string::npos);
  CHECK(m.find("0123456789abcdefghijkl") == std::string::npos);
  CHECK(err("alice " + good + "\n").rfind("/etc/tern/users:1: expected name:hash", 0) == 0);
  CHECK(err("alice:" + good + "\nalice:" + good + "\n").find(":2: duplicate user alice") != std::string::npos);
  CHECK(err("alice:{PLAIN}secret\n").find(":1: unsupported password scheme {PLAIN}") != std::string::npos);
  CHECK(err("alice:{SHA512-CRYPT$6$x\n").find("unterminated") != std::string::npos);
  CHECK(err(":" + good + "\n").find("invalid user name") != std::string::npos);
  CHECK(err("al ice:" + good + "\n").find("invalid user name") != std::string::npos);
  CHECK(err("alice:\n").find(":1: user alice: empty password hash") != std::string::npos);
}

TEST_CASE("auth: the users file's mode is checked at load") {
  TempDir dir;
  const std::string path = dir.write("users", "alice:" + hash_of("pw", "$5$") + "\n");
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  auto ok = load_users(path);
  REQUIRE(ok.ok());
  CHECK(ok->warnings.empty());

  REQUIRE(::chmod(path.c_str(), 0644) == 0);
  auto readable = load_users(path);
  REQUIRE(readable.ok());
  REQUIRE(readable->warnings.size() == 1);
  CHECK(readable->warnings[0].find("world-readable") != std::string::npos);

  for (mode_t bad : {mode_t(0602), mode_t(0620)}) {
    REQUIRE(::chmod(path.c_str(), bad) == 0);
    auto r = load_users(path);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().kind == ErrorKind::Perm);
    CHECK(r.error().message.find("writable") != std::string::npos);
  }

  auto missing = load_users((dir.path / "nope").string());
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().kind == ErrorKind::Temp);
}

TEST_CASE("auth: the verifier accepts, rejects, re-reads a changed file, fails soft when it is gone") {
  TempDir dir;
  const std::string path = dir.write("users", "alice:" + hash_of("alice-pw", "$5$") + "\n");
  REQUIRE(::chmod(path.c_str(), 0600) == 0);
  Verifier v(path);
  CHECK(v.verify("alice", "alice-pw").value() == Verdict::Accepted);
  CHECK(v.verify("alice", "wrong").value() == Verdict::Rejected);
  CHECK(v.verify("nobody", "alice-pw").value() == Verdict::Rejected);
  CHECK(v.verify("Alice", "alice-pw").value() == Verdict::Rejected);  // names are exact

  // A new line (and a new size) is seen at the next verification, without a reload.
  dir.write("users", "alice:" + hash_of("alice-pw", "$5$") + "\nbob:" + hash_of("bob-pw", "$6$") + "\n");
  CHECK(v.verify("bob", "bob-pw").value() == Verdict::Accepted);

  // A broken edit fails every attempt (Temp, 454) instead of keeping the old file in force.
  dir.write("users", "bob:$apr1$abcdefgh$0123456789abcdefghijkl\n");
  auto broken = v.verify("alice", "alice-pw");
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.error().kind == ErrorKind::Temp);

  std::filesystem::remove(path);
  auto gone = v.verify("alice", "alice-pw");
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().kind == ErrorKind::Temp);
}

TEST_CASE("auth: weak legacy hashes are accepted with a warning naming the line") {
  const std::string md5 = hash_of("pw", "$1$");
  CHECK(legacy_hash(md5));
  CHECK_FALSE(legacy_hash(hash_of("pw", "$5$")));
  CHECK_FALSE(legacy_hash(hash_of("pw", "$y$")));
  auto u = parse_users("# old\nalice:" + md5 + "\n", "users");
  REQUIRE(u.ok());
  REQUIRE(u->warnings.size() == 1);
  CHECK(u->warnings[0].rfind("users:2: user alice: weak legacy hash", 0) == 0);
  CHECK(verify_hash("pw", md5).value() == Match::Yes);
}
