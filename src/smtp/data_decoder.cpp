// DATA decoding: end-of-data detection, dot-unstuffing, bare CR/LF and long-line detection.
#include "smtp/data_decoder.hpp"

namespace tern::smtp {

void DataDecoder::bare(std::string& out) {
  bare_ = true;
  // Normalising writes CRLF into the stored content but the decoder stays mid-line: a bare
  // newline must never make the next "." look like a line start (see the file header).
  if (opt_.normalize_bare_newlines) {
    out += "\r\n";
    end_line();
  }
}

void DataDecoder::end_line() {
  if (line_len_ + 2 > opt_.max_line_length) long_line_ = true;
  line_len_ = 0;
}

DataDecoder::Step DataDecoder::feed(std::string_view in, std::string& out) {
  size_t i = 0;
  const size_t n = in.size();
  while (i < n) {
    const char c = in[i];
    switch (state_) {
      case State::LineStart:
        if (c == '.' && opt_.dot_stuffed) {
          state_ = State::Dot;
          ++i;
          continue;
        }
        state_ = State::Mid;
        continue;  // reprocess as mid-line
      case State::Dot:
        if (c == '\r') {
          state_ = State::DotCr;
          ++i;
          continue;
        }
        // A leading dot followed by anything else is stuffing: drop it.
        state_ = State::Mid;
        continue;
      case State::DotCr:
        if (c == '\n') {
          ++i;
          state_ = State::LineStart;
          return {i, true};
        }
        // ".\r" then something else: the dot was stuffing, the CR is bare.
        if (!opt_.normalize_bare_newlines) out += '\r';
        bare(out);
        state_ = State::Mid;
        continue;
      case State::Mid: {
        // Fast path: copy the run of ordinary bytes.
        size_t j = i;
        while (j < n && in[j] != '\r' && in[j] != '\n') ++j;
        out.append(in.data() + i, j - i);
        line_len_ += j - i;
        i = j;
        if (i == n) break;
        if (in[i] == '\r') {
          state_ = State::Cr;
        } else {  // bare LF
          if (!opt_.normalize_bare_newlines) out += '\n';
          bare(out);
        }
        ++i;
        continue;
      }
      case State::Cr:
        if (c == '\n') {
          out += "\r\n";
          end_line();
          state_ = State::LineStart;
          ++i;
          continue;
        }
        if (!opt_.normalize_bare_newlines) out += '\r';
        bare(out);
        state_ = State::Mid;
        continue;
    }
  }
  return {i, false};
}

void DataDecoder::finish(std::string& out) {
  if (state_ == State::Cr) {
    if (!opt_.normalize_bare_newlines) out += '\r';
    bare(out);
  }
  if (line_len_ > 0) end_line();
  state_ = State::LineStart;
}

}  // namespace tern::smtp
