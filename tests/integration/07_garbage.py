#!/usr/bin/python3
"""Garbage, then a good message: 200 junk lines across as many connections as
limits.max_errors forces (each ends with 421 4.7.0), then a good message is accepted.
Also: over-long command lines, sequencing errors, unknown/unimplemented commands, VRFY,
NOOP/RSET/HELP, and the recipients limit."""
import random

import harness as h

MAX_ERRORS = 10
MSG = (b"From: a@client.example\r\nSubject: good\r\nMessage-ID: <g@client.example>\r\n"
       b"Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\ngood message after garbage\r\n")
VERBS = {b"EHLO", b"HELO", b"MAIL", b"RCPT", b"DATA", b"RSET", b"NOOP", b"QUIT", b"VRFY",
         b"HELP", b"EXPN", b"STARTTLS", b"AUTH", b"BDAT", b"ETRN", b"TURN"}


def garbage_lines(n, seed=5321):
    rnd = random.Random(seed)
    out = []
    printable = bytes(range(0x21, 0x7f))
    for i in range(n):
        kind = i % 4
        if kind == 0:  # printable junk
            line = bytes(rnd.choice(printable) for _ in range(rnd.randint(1, 200)))
        elif kind == 1:  # over-long line
            line = bytes(rnd.choice(printable) for _ in range(rnd.randint(4097, 9000)))
        elif kind == 2:  # binary, no LF
            line = bytes(rnd.choice([b for b in range(256) if b not in (0x0a, 0x0d)])
                         for _ in range(rnd.randint(1, 300)))
        else:  # unknown verbs
            # (HTTP request lines and USER close the connection at once: scenario 15.)
            line = rnd.choice([b"XYZZY", b"GETX / HTTP1.1", b"HELLO there", b"MAILFROM:<a@b>",
                               b"RCPTTO:<x@y>", b"USERS root", b"\x16\x03\x01\x02\x00\x01",
                               b"EHL0 x", b"DATA2"])
        if line.split(b" ")[0].upper() in VERBS or not line.strip():
            line = b"X" + line
        out.append(line)
    return out


def scenario(ctx):
    t = ctx.tern(limits={"max_errors": str(MAX_ERRORS), "max_recipients": "3"})
    t.start()

    h.step("200 garbage lines; each connection ends with 421 4.7.0 after max_errors errors")
    lines = garbage_lines(200)
    i = 0
    connections = 0
    for _ in range(200):  # bound
        if i >= len(lines):
            break
        connections += 1
        with t.connect() as c:
            h.expect_reply(c.read_reply(), 220, None, f"conn {connections}: greeting")
            errors = 0
            for _ in range(MAX_ERRORS):
                if i >= len(lines):
                    break
                line = lines[i]
                i += 1
                c.send(line + b"\r\n")
                r = c.read_reply()
                errors += 1
                if r.code != 500 or r.enhanced != "5.5.2":
                    h.check(False, f"garbage line {i} -> 500 5.5.2", f"got {r!r} for {line[:60]!r}")
            h.check(errors > 0, f"conn {connections}: {errors} garbage lines, each 500 5.5.2")
            if errors == MAX_ERRORS:
                r = c.read_reply()
                h.expect_reply(r, 421, "4.7.0", f"conn {connections}: closed after {MAX_ERRORS} errors")
                h.check(h.HOSTNAME in r.text, "421 names the host")
                c.wait_closed()
                h.check(True, f"conn {connections}: server closed the connection")
            else:
                c.expect("QUIT", 221)
    h.check_eq(connections, 200 // MAX_ERRORS, "connections needed for 200 garbage lines")
    h.check(t.running(), "ternd still running")

    h.step("a good message on a new connection")
    code, text, qid = h.send_smtplib(t.port, "a@client.example", ["b@partner.example"], MSG)
    h.check_eq(code, 250, "good message accepted")
    h.check_stored(t.queue()[qid], MSG, what="good message")

    h.step("over-long command lines")
    with t.session() as c:
        c.expect("NOOP " + "x" * 5000, 500, "5.5.2", what="NOOP + 5000 bytes")
        c.expect("NOOP", 250, what="session still usable")
        c.expect("MAIL FROM:<" + "a" * 4200 + "@client.example>", 500, "5.5.2",
                 what="MAIL FROM with a 4 KiB address")
        # sent in pieces: the first piece alone is already over the limit
        c.send("RCPT TO:<" + "b" * 3000)
        c.send("b" * 3000)
        c.send("@partner.example>\r\n")
        h.expect_reply(c.read_reply(), 500, "5.5.2", "4 KiB line arriving in pieces")
        h.check(c.silent_for(0.3), "one reply for the whole long line")
        c.expect("NOOP", 250, what="session still usable")
        line = "NOOP " + "y" * (4096 - 2 - 5)  # exactly 4096 octets with CRLF
        c.expect(line, 250, what="a 4096-octet line (the limit, CRLF included) is fine")
        c.expect(line + "y", 500, "5.5.2", what="a 4097-octet line")
        c.expect("QUIT", 221)

    h.step("sequencing")
    with t.connect() as c:
        h.expect_reply(c.read_reply(), 220, None, "greeting")
        c.expect("MAIL FROM:<a@client.example>", 503, "5.5.1", what="MAIL before EHLO")
        c.expect("RCPT TO:<b@partner.example>", 503, "5.5.1", what="RCPT before EHLO")
        c.expect("DATA", 503, "5.5.1", what="DATA before EHLO")
        c.expect("EHLO", 501, "5.5.4", what="EHLO without a name")
        c.expect("EHLO client.example", 250)
        c.expect("RCPT TO:<b@partner.example>", 503, "5.5.1", what="RCPT before MAIL")
        c.expect("DATA", 503, "5.5.1", what="DATA before MAIL")
        c.expect("MAIL FROM:<a@client.example>", 250, "2.1.0")
        c.expect("MAIL FROM:<a@client.example>", 503, "5.5.1", what="nested MAIL")
        r = c.cmd("DATA")
        # RFC 5321 3.3: 503 (bad sequence) or 554 (no valid recipients) are both allowed here.
        h.check(r.code in (503, 554) and r.enhanced == "5.5.1",
                "DATA after MAIL but before RCPT -> 503/554 5.5.1", repr(r))
        c.expect("RCPT TO:<b@partner.example>", 250, "2.1.5",
                 what="the transaction is still open after the refused DATA")
        c.expect("RSET", 250, "2.0.0")
        c.expect("RCPT TO:<b@partner.example>", 503, "5.5.1", what="RCPT after RSET")
        c.expect("QUIT", 221)

    h.step("unknown, unimplemented and informational commands")
    with t.session() as c:
        c.expect("FOO bar", 500, "5.5.2", what="unknown command")
        c.expect("EXPN staff", 502, "5.5.1", what="EXPN")
        c.expect("VRFY x", 252, "2.5.0", what="VRFY x")
        c.expect("VRFY", 501, "5.5.4", what="VRFY without argument")
        c.expect("NOOP", 250, "2.0.0")
        c.expect("noop with an argument", 250, "2.0.0", what="NOOP with argument, lower case")
        c.expect("RSET", 250, "2.0.0")
        c.expect("HELP", 214)
        c.expect("QUIT", 221)
        h.check_eq(c.wait_closed(), b"", "closed after QUIT")

    h.step("recipients limit: max_recipients 3")
    with t.session() as c:
        c.expect("MAIL FROM:<a@client.example>", 250)
        for n in range(1, 4):
            c.expect(f"RCPT TO:<r{n}@partner.example>", 250, "2.1.5", what=f"RCPT {n}")
        for n in range(4, 4 + MAX_ERRORS + 2):
            c.expect(f"RCPT TO:<r{n}@partner.example>", 452, "4.5.3", what=f"RCPT {n}")
        c.expect("NOOP", 250, what="452s are not counted as errors (still connected)")
        c.expect("DATA", 354)
        c.send(h.dot_stuff(MSG))
        r = c.read_reply()
        h.expect_reply(r, 250, "2.0.0", "message with the first 3 recipients")
        c.expect("QUIT", 221)
    m = t.queue()[r.queue_id()]
    h.check_eq(m.rcpt_addresses(), [f"r{n}@partner.example" for n in range(1, 4)],
               "the queued message has exactly the 3 accepted recipients")
    t.stop()


h.main(scenario)
