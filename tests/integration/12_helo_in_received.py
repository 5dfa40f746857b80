#!/usr/bin/python3
"""The HELO/EHLO argument ends up in tern's own Received: header. Whatever a client writes
there must not make tern store a malformed message: no bare CR (the stored data must be
CRLF lines, queue-format.md, and a bare CR is exactly what bare_newlines: reject refuses
from clients), no NUL or other control characters in a header, no header line over 998
octets (RFC 5322 2.1.1). tern may refuse such a greeting (501) or sanitise it; either is
accepted here, storing it raw is not."""
import re

import harness as h

MSG = (b"From: a@client.example\r\nSubject: helo test\r\nMessage-ID: <helo@client.example>\r\n"
       b"Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\nbody\r\n")

CASES = [
    (b"evil.example\rX-Injected: yes", "bare CR (header injection)"),
    (b"evil.example\x00nul", "NUL byte"),
    (b"evil.example\x1b[31mred", "ESC and other C0 controls"),
    (b"evil.example\x7f", "DEL"),
    (b"h" * 3000 + b".example", "3 KiB name (Received: line over 998 octets)"),
]


def scenario(ctx):
    t = ctx.tern()
    t.start()
    problems = []
    for helo, why in CASES:
        h.step(f"EHLO with {why}")
        with t.connect() as c:
            h.expect_reply(c.read_reply(), 220, None, "greeting")
            c.send(b"EHLO " + helo + b"\r\n")
            r = c.read_reply()
            if r.code == 501:
                h.check(True, f"EHLO with {why} refused: {r!r}")
                continue
            h.expect_reply(r, 250, None, f"EHLO with {why} accepted")
            r = h.send_raw_message(c, "a@client.example", ["b@partner.example"],
                                   h.dot_stuff(MSG), expect_code=None)
            if r.code != 250:
                h.check(r.code // 100 == 5, f"message after EHLO with {why} refused", repr(r))
                continue
            qid = r.queue_id()
        path = f"{t.msg_dir()}/{qid}"
        data = open(path, "rb").read()
        data = data[data.index(b"\ndata\n") + 6:]
        recv = data[:data.index(b"\r\nMessage-ID") + 2] if b"\r\nMessage-ID" in data else data[:300]
        issues = []
        if b"\r" in recv.replace(b"\r\n", b"") or b"\n" in recv.replace(b"\r\n", b""):
            issues.append("bare CR/LF in tern's Received: header")
        if re.search(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", recv):
            issues.append("control character in tern's Received: header")
        longest = max(len(l) for l in recv.split(b"\r\n"))
        if longest > 998:
            issues.append(f"Received: line of {longest} octets")
        try:
            h.parse_queue_file(path)
        except h.Failure as e:
            issues.append(f"queue file check: {e}")
        if issues:
            problems.append(f"EHLO with {why}: " + "; ".join(issues) + f" (stored {recv[:120]!r})")
            print(f"  FAIL EHLO with {why}: {'; '.join(issues)}")
        else:
            h.check(True, f"EHLO with {why}: stored message is well-formed")
    h.check(not problems, "no client greeting makes tern store a malformed header",
            "\n    " + "\n    ".join(problems))
    t.stop()


h.main(scenario)
