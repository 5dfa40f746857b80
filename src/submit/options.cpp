// tern-sendmail's command line parser (see options.hpp).
#include "submit/options.hpp"

#include "common/strings.hpp"

namespace tern::submit {

namespace {

std::string_view base_name(std::string_view p) {
  const size_t slash = p.rfind('/');
  return slash == std::string_view::npos ? p : p.substr(slash + 1);
}

// Options that take a value, attached ("-fSENDER") or as the next argument ("-f SENDER").
bool takes_value(char c) {
  switch (c) {
    case 'f': case 'r': case 'F': case 'N': case 'R': case 'V': case 'B': case 'b': case 'o': case 'C':
      return true;
    default:
      return false;
  }
}

Status apply_value(Options& o, char opt, const std::string& v) {
  switch (opt) {
    case 'f':
    case 'r':
      o.sender_given = true;
      o.sender = v;
      return ok_status();
    case 'F':
      o.full_name = v;
      return ok_status();
    case 'N': {
      auto n = smtp::parse_notify(v);
      if (!n) return Error::perm("-N " + v + ": expected never, or a list of success, failure, delay");
      o.notify = *n;
      return ok_status();
    }
    case 'R': {
      auto r = smtp::parse_ret(v);
      if (!r) return Error::perm("-R " + v + ": expected full or hdrs");
      o.ret = *r;
      return ok_status();
    }
    case 'V':
      if (v.empty() || v.size() > 100) return Error::perm("-V: the envelope id must be 1 to 100 characters");
      o.envid = v;
      return ok_status();
    case 'B':
      if (iequals(v, "7BIT")) o.body = Body::SevenBit;
      else if (iequals(v, "8BITMIME")) o.body = Body::EightBitMime;
      else return Error::perm("-B " + v + ": expected 7BIT or 8BITMIME");
      return ok_status();
    case 'b':
      if (v == "m") o.mode = Mode::Deliver;
      else if (v == "p") o.mode = Mode::ListQueue;
      else if (v == "s") o.mode = Mode::Smtp;
      else if (v == "i") o.mode = Mode::Noop;
      else return Error::perm("-b" + v + ": unsupported mode (tern knows -bm, -bp, -bs, -bi)");
      return ok_status();
    case 'o':
      // -oi is the one -o option with a meaning here; the rest (-odi, -odb, -oem, -oee, …)
      // are sendmail delivery and error modes, which tern's queue decides: accepted, ignored.
      if (v == "i") o.ignore_dots = true;
      return ok_status();
    case 'C':
      o.config = v;
      return ok_status();
  }
  return Error::bug("unhandled option");
}

}  // namespace

Result<Options> parse_options(std::string_view argv0, const std::vector<std::string>& args) {
  Options o;
  const std::string_view name = base_name(argv0);
  if (name == "mailq") o.mode = Mode::ListQueue;
  else if (name == "newaliases") o.mode = Mode::Noop;

  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a == "--") {
      for (++i; i < args.size(); ++i) o.recipients.push_back(args[i]);
      break;
    }
    if (a.size() < 2 || a[0] != '-') {
      o.recipients.push_back(a);
      continue;
    }
    // A cluster of flags ("-ti"), possibly ending in one option with a value ("-tfME").
    for (size_t k = 1; k < a.size(); ++k) {
      const char c = a[k];
      if (takes_value(c)) {
        std::string v;
        if (k + 1 < a.size()) v = a.substr(k + 1);
        else if (i + 1 < args.size()) v = args[++i];
        else return Error::perm(std::string("option -") + c + " needs a value");
        if (auto st = apply_value(o, c, v); !st) return st.error();
        break;
      }
      switch (c) {
        case 't': o.from_headers = true; break;
        case 'i': o.ignore_dots = true; break;
        case 'v': o.verbose = true; break;
        default: return Error::perm(std::string("unknown option -") + c);
      }
    }
  }
  if (o.mode != Mode::Deliver && !o.recipients.empty() && o.mode != Mode::Noop)
    return Error::perm("recipients are only taken with -bm");
  return o;
}

std::string usage(std::string_view argv0) {
  return "usage: " + std::string(base_name(argv0)) +
         " [-t] [-i|-oi] [-f SENDER] [-F NAME] [-N DSN] [-R full|hdrs] [-V ENVID] [-B 7BIT|8BITMIME]"
         " [-bm|-bp|-bs|-bi] [-o...] [-v] [-C CONFIG] [--] [RECIPIENT...]";
}

}  // namespace tern::submit
