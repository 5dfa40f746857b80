// Parsing the control command line.
#include "admin/command.hpp"

#include <vector>

#include "common/strings.hpp"

namespace tern::admin {

namespace {
std::vector<std::string> words(std::string_view line) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    size_t j = i;
    while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
    if (j > i) out.emplace_back(line.substr(i, j - i));
    i = j;
  }
  return out;
}

bool plausible_id(std::string_view id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id)
    if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z'))) return false;
  return true;
}
}  // namespace

Result<ControlCommand> parse_control(std::string_view line) {
  auto w = words(line);
  if (w.empty()) return Error::perm("empty command");
  ControlCommand c;
  const std::string verb = to_lower(w[0]);
  using V = ControlCommand::Verb;
  if (verb == "queue") c.verb = V::Queue;
  else if (verb == "show") c.verb = V::Show;
  else if (verb == "stats") c.verb = V::Stats;
  else if (verb == "hold") c.verb = V::Hold;
  else if (verb == "release") c.verb = V::Release;
  else if (verb == "delete") c.verb = V::Delete;
  else if (verb == "flush") c.verb = V::Flush;
  else if (verb == "export") c.verb = V::Export;
  else if (verb == "import") c.verb = V::Import;
  else return Error::perm("unknown command '" + w[0].substr(0, 32) +
                          "' (queue, show, hold, release, delete, flush, stats, export, import)");
  const bool selects = c.verb == V::Hold || c.verb == V::Release || c.verb == V::Delete || c.verb == V::Flush ||
                       c.verb == V::Export;
  const bool takes_path = c.verb == V::Export || c.verb == V::Import;
  for (size_t i = 1; i < w.size(); ++i) {
    const std::string& a = w[i];
    if (a == "--json" && (c.verb == V::Queue || c.verb == V::Stats)) c.json = true;
    else if (a == "--body" && c.verb == V::Show) c.body = true;
    else if (a == "--all" && selects) c.selector.all = true;
    else if ((a == "--domain" || a == "--sender") && selects) {
      if (i + 1 >= w.size()) return Error::perm(a + " needs a value");
      const std::string v = w[++i];
      if (a == "--domain") {
        std::string d = to_lower(v);
        while (!d.empty() && d.back() == '.') d.pop_back();
        if (d.empty()) return Error::perm("--domain needs a domain");
        c.selector.domain = d;
      } else {
        // "<>" or "" selects mail from the null sender (bounces).
        c.selector.sender = (v == "<>") ? "" : v;
        if (c.selector.sender.empty()) c.selector.sender = "<>";
      }
    } else if (a.starts_with("/") && takes_path) {
      if (!c.path.empty()) return Error::perm(verb + " takes one archive file");
      c.path = a;
    } else if (!a.starts_with("-") && c.verb == V::Import) {
      return Error::perm("the archive path must be absolute: '" + a.substr(0, 64) + "'");
    } else if (!a.starts_with("-") && c.verb == V::Show && c.id.empty()) {
      if (!plausible_id(a)) return Error::perm("not a queue id: '" + a.substr(0, 32) + "'");
      c.id = a;
    } else if (!a.starts_with("-") && selects) {
      if (!plausible_id(a)) return Error::perm("not a queue id: '" + a.substr(0, 32) + "'");
      c.selector.ids.push_back(a);
    } else {
      return Error::perm("unexpected argument '" + a.substr(0, 32) + "' for " + verb);
    }
  }
  if (c.verb == V::Show && c.id.empty()) return Error::perm("show needs a queue id");
  if (!c.selector.ids.empty() && (c.selector.all || !c.selector.domain.empty() || !c.selector.sender.empty()))
    return Error::perm("give queue ids or --all/--domain/--sender, not both");
  if ((c.verb == V::Hold || c.verb == V::Release || c.verb == V::Delete || c.verb == V::Export) &&
      !c.has_selector())
    return Error::perm(verb + " needs queue ids or --all, --domain D or --sender S");
  if (takes_path && c.path.empty()) return Error::perm(verb + " needs an archive FILE");
  return c;
}

}  // namespace tern::admin
