// No exception may unwind through libuv's C frames or out of a thread's body: a callback
// run through guarded() that throws is a bug, logged, and the process aborts.
#pragma once

#include <cstdlib>
#include <exception>
#include <spdlog/spdlog.h>

namespace tern::io {

template <typename F>
void guarded(const char* what, F&& f) noexcept {
  try {
    f();
  } catch (const std::exception& e) {
    spdlog::critical("bug: exception escaped {}: {}", what, e.what());
    spdlog::shutdown();  // an asynchronous logger writes the line out before the abort
    std::abort();
  } catch (...) {
    spdlog::critical("bug: unknown exception escaped {}", what);
    spdlog::shutdown();
    std::abort();
  }
}

}  // namespace tern::io
