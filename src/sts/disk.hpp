// The MTA-STS cache directory on disk: one file per domain, replaced atomically. Blocking
// calls, run on libuv's thread pool by sts::Policies, never on the loop thread.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "common/result.hpp"

namespace tern::sts {

struct CacheFile {
  std::string name;      // the file name (the domain, see file_name_for)
  std::string contents;  // or, when `error` is set, nothing
  std::string error;     // why this file could not be read
};

// Creates `dir` (mode 0750) when missing, removes temporary files a crash left behind and
// reads every other regular file in it.
Result<std::vector<CacheFile>> read_cache_dir(const std::string& dir);

// Writes `contents` to dir/name.new, fsyncs it, renames it over dir/name and fsyncs the
// directory: after success the file survives a crash; before it the old one is intact.
Status write_cache_file(const std::string& dir, const std::string& name, const std::string& contents);

}  // namespace tern::sts
