// tern-sendmail's command line: the sendmail-compatible options the issue names, parsed
// into a value with no I/O, so that the callers' real command lines are a table test.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"
#include "smtp/dsn_params.hpp"

namespace tern::submit {

// sysexits(3) codes tern-sendmail exits with.
enum Exit : int {
  kExitOk = 0,
  kExitUsage = 64,     // EX_USAGE: a bad command line
  kExitDataErr = 65,   // EX_DATAERR: no recipients, a malformed address, an over-size message
  kExitSoftware = 70,  // EX_SOFTWARE
  kExitTempFail = 75,  // EX_TEMPFAIL: neither ternd nor the maildrop took the message
  kExitConfig = 78,    // EX_CONFIG
};

enum class Mode {
  Deliver,    // -bm (the default): read a message on stdin and submit it
  ListQueue,  // -bp, or called as mailq
  Smtp,       // -bs: an SMTP session on stdin/stdout
  Noop,       // -bi, or called as newaliases: tern has no aliases database
};

enum class Body { Unspecified, SevenBit, EightBitMime };

struct Options {
  Mode mode = Mode::Deliver;
  bool from_headers = false;   // -t: recipients from To/Cc/Bcc
  bool ignore_dots = false;    // -i / -oi: a lone "." line does not end the message
  bool sender_given = false;   // -f / -r
  std::string sender;          // as given ("" or "<>" = the null sender)
  std::string full_name;       // -F
  smtp::Notify notify;         // -N (given=false: not on the command line)
  smtp::Ret ret = smtp::Ret::Unspecified;  // -R
  std::string envid;           // -V, plain text (xtext-coded only on the wire)
  Body body = Body::Unspecified;           // -B
  bool verbose = false;        // -v
  std::string config;          // -C
  std::vector<std::string> recipients;
};

// `argv0` decides the mode for mailq and newaliases (its last path component counts);
// `args` are the arguments after it. Options may follow recipients (as with getopt's
// permutation) until "--". The error message is one line, without the usage line.
Result<Options> parse_options(std::string_view argv0, const std::vector<std::string>& args);

// "usage: NAME [-t] [-i] ..." for the error output.
std::string usage(std::string_view argv0);

}  // namespace tern::submit
