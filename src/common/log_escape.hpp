// Making peer-supplied text safe to log, and the strict UTF-8 decoder (RFC 3629) that both
// the log escaping and the SMTPUTF8 address checks are built on. Pure.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace tern {

// Length of the well-formed UTF-8 sequence at the start of `s`, or 0 when it is not one.
// Strict per RFC 3629 §4: no overlong forms, no UTF-16 surrogates (U+D800..U+DFFF), nothing
// above U+10FFFF, no truncated sequence. ASCII bytes count as sequences of length 1.
[[nodiscard]] size_t utf8_char_length(std::string_view s) noexcept;

// True when all of `s` is well-formed UTF-8 (by the rule above).
[[nodiscard]] bool valid_utf8(std::string_view s) noexcept;

// `s` made fit for one log line: a client must not be able to end the line (CR, LF), forge a
// following one, or drive a terminal (ESC, BEL, C1 controls) through what it sends. Escapes
// "\\" as "\\\\"; CR, LF, TAB as "\r", "\n", "\t"; other C0 controls and DEL as "\x1b";
// each byte of invalid UTF-8 as "\xff"; C1 controls and the Unicode line/paragraph separators
// and bidirectional overrides (which reorder what a terminal shows) as "\u202e". Valid
// printable UTF-8 is kept as it is, so the escaping is reversible and unambiguous.
[[nodiscard]] std::string log_safe(std::string_view s);

}  // namespace tern
