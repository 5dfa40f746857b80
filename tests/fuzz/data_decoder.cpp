// Fuzz target: the DATA decoder. Invariant: the data ends only at CRLF "." CRLF (or "."
// CRLF as the very first line), however the input is split, and never at a bare CR/LF.
// In BDAT mode (no dot stuffing) it never ends, keeps every octet unless normalising, and
// normalised output has no bare CR or LF once finished.
#include <string>
#include <string_view>

#include "smtp/data_decoder.hpp"

extern "C" int LLVMFuzzerTestOneInput(const unsigned char* data, size_t size) {
  if (size < 1) return 0;
  const size_t chunk = 1 + data[0] % 16;
  const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
  for (bool normalize : {false, true}) {
    tern::smtp::DataDecoder d({normalize, 1000});
    std::string out;
    size_t pos = 0;
    bool done = false;
    while (pos < in.size() && !done) {
      auto step = d.feed(in.substr(pos, chunk), out);
      pos += step.consumed;
      done = step.done;
    }
    if (done) {
      const std::string_view used = in.substr(0, pos);
      const bool ok = used == ".\r\n" || (used.size() >= 5 && used.ends_with("\r\n.\r\n"));
      if (!ok) __builtin_trap();
    } else if (in.substr(0, 3) == ".\r\n" || in.find("\r\n.\r\n") != std::string_view::npos) {
      // A real terminator was present but not found: only acceptable if an earlier
      // terminator-like sequence was inside a line (after a bare CR/LF).
      if (!d.saw_bare_newline()) __builtin_trap();
    }
    if (normalize) {
      for (size_t i = 0; i < out.size(); ++i) {
        if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r')) __builtin_trap();
        if (out[i] == '\r' && (i + 1 >= out.size() || out[i + 1] != '\n')) __builtin_trap();
      }
    }
  }
  for (bool normalize : {false, true}) {
    tern::smtp::DataDecoder d({normalize, 1000, false});
    std::string out;
    for (size_t pos = 0; pos < in.size(); pos += chunk) {
      const auto piece = in.substr(pos, chunk);
      const auto step = d.feed(piece, out);
      if (step.done || step.consumed != piece.size()) __builtin_trap();
    }
    d.finish(out);
    if (!normalize && out != in) __builtin_trap();
    const bool bare = [&] {
      for (size_t i = 0; i < in.size(); ++i) {
        if (in[i] == '\n' && (i == 0 || in[i - 1] != '\r')) return true;
        if (in[i] == '\r' && (i + 1 >= in.size() || in[i + 1] != '\n')) return true;
      }
      return false;
    }();
    if (bare != d.saw_bare_newline()) __builtin_trap();
    if (normalize) {
      for (size_t i = 0; i < out.size(); ++i) {
        if (out[i] == '\n' && (i == 0 || out[i - 1] != '\r')) __builtin_trap();
        if (out[i] == '\r' && (i + 1 >= out.size() || out[i + 1] != '\n')) __builtin_trap();
      }
    }
  }
  return 0;
}
