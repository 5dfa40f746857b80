// ternctl: the admin tool. Its commands talk to ternd over the control socket (next issue);
// for now it only explains itself.
#include <cstdio>
#include <string>

namespace {
constexpr const char* kUsage =
    "usage: ternctl --config PATH COMMAND\n"
    "commands (they need ternd's control socket, which a later release adds):\n"
    "  queue   list queued messages\n"
    "  flush   make every deferred message due now\n";
}

int main(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    }
  }
  std::fputs(kUsage, stderr);
  return 2;
}
