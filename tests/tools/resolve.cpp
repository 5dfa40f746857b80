// tern_resolve: one lookup through the real UnboundResolver, printed in a stable text form
// for the integration scenarios. Exit 0 whenever an answer came back, whatever its rcode.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "common/strings.hpp"
#include "dns/rdata.hpp"
#include "dns/unbound_resolver.hpp"
#include "io/loop.hpp"

using namespace tern;

namespace {

int usage() {
  std::cerr
      << "usage: tern_resolve [--forwarder ADDR[@PORT]]... [--timeout-ms N] [--trust-anchor FILE]\n"
         "                    (mx|a|aaaa|tlsa) NAME\n"
         "prints 'rcode=R secure=S [detail=...]' then one 'mx PREF HOST', 'addr IP' or\n"
         "'tlsa U S M HEX' line per record (host \"\" is printed as '.', the null MX)\n";
  return 2;
}

void print_head(dns::Rcode rc, bool secure, const std::string& detail) {
  std::cout << "rcode=" << dns::rcode_str(rc) << " secure=" << (secure ? 1 : 0);
  if (rc != dns::Rcode::Ok) std::cout << " detail=" << detail;
  std::cout << "\n";
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> forwarders;
  long timeout_ms = 5000;
  std::string trust_anchor;
  std::vector<std::string> rest;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--forwarder" && i + 1 < argc) {
      forwarders.emplace_back(argv[++i]);
    } else if (a == "--trust-anchor" && i + 1 < argc) {
      trust_anchor = argv[++i];
    } else if (a == "--timeout-ms" && i + 1 < argc) {
      char* end = nullptr;
      timeout_ms = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || timeout_ms < 0) return usage();
    } else if (a.rfind("--", 0) == 0) {
      return usage();
    } else {
      rest.push_back(a);
    }
  }
  if (rest.size() != 2) return usage();
  const std::string& type = rest[0];
  const std::string& name = rest[1];
  if (type != "mx" && type != "a" && type != "aaaa" && type != "tlsa") return usage();

  // Flushed before the resolver starts: nothing may sit in our stdio buffers
  // then, or the worker would print it again when it exits.
  std::cout.flush();
  std::fflush(nullptr);

  io::Loop loop;
  auto created =
      dns::UnboundResolver::create(loop, forwarders, std::chrono::milliseconds(timeout_ms), trust_anchor);
  if (!created) {
    std::cerr << "tern_resolve: " << created.error().message << "\n";
    return 1;
  }
  std::unique_ptr<dns::UnboundResolver> resolver = std::move(created.value());
  bool answered = false;
  if (type == "mx") {
    resolver->resolve_mx(name, [&](dns::MxAnswer a) {
      answered = true;
      print_head(a.rcode, a.secure, a.detail);
      for (const auto& mx : a.records)
        std::cout << "mx " << mx.preference << " " << (mx.host.empty() ? "." : mx.host) << "\n";
      loop.stop();
    });
  } else if (type == "tlsa") {
    resolver->resolve_tlsa(name, [&](dns::TlsaAnswer a) {
      answered = true;
      print_head(a.rcode, a.secure, a.detail);
      for (const auto& t : a.records) {
        std::cout << "tlsa " << int(t.usage) << " " << int(t.selector) << " " << int(t.mtype) << " ";
        std::cout << hex_lower(t.data);
        std::cout << "\n";
      }
      loop.stop();
    });
  } else {
    resolver->resolve_addr(name, type == "aaaa", [&](dns::AddrAnswer a) {
      answered = true;
      print_head(a.rcode, a.secure, a.detail);
      for (const auto& ip : a.addresses) std::cout << "addr " << ip.str() << "\n";
      loop.stop();
    });
  }
  // A callback must never run inside resolve_*: if one did, that is a bug worth a loud exit.
  if (answered) {
    std::cerr << "tern_resolve: bug: callback ran inside the resolve call\n";
    return 3;
  }
  loop.run();
  std::cout.flush();
  resolver.reset();
  if (!answered) {
    std::cerr << "tern_resolve: the loop ended without an answer\n";
    return 1;
  }
  return 0;
}
