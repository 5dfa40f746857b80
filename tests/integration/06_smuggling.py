#!/usr/bin/python3
"""SMTP smuggling (CVE-2023-51764 family): only CRLF.CRLF ends the data. Each false
terminator is tried on a fresh connection, in one write and byte by byte. With
bare_newlines: reject there is no reply at the false terminator, one 550 5.6.0 after the real
one and nothing queued; with bare_newlines: normalize the whole thing is ONE message whose
stored data has no bare CR/LF and carries the smuggled text as body."""
import time

import harness as h

HEAD = (b"From: alice@client.example\r\nTo: bob@partner.example\r\nSubject: innocent\r\n"
        b"Message-ID: <s@client.example>\r\nDate: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\n"
        b"first part")
SMUGGLED = (b"MAIL FROM:<smuggler@evil.example>\r\n"
            b"RCPT TO:<victim@partner.example>\r\n"
            b"DATA\r\n"
            b"From: ceo@partner.example\r\nSubject: smuggled\r\n\r\nsmuggled body")
REAL_END = b"\r\n.\r\n"

FALSE_TERMINATORS = [
    (b"\n.\n", "LF . LF"),
    (b"\r\n.\n", "CRLF . LF"),
    (b"\n.\r\n", "LF . CRLF"),
    (b"\r.\r\n", "CR . CRLF"),
    (b"\r\n.\r", "CRLF . CR + other bytes"),
    (b"\r\n.\r\r\n", "CRLF . CR CRLF"),
    (b"\n.\r", "LF . CR + other bytes"),
]


def run_attempts(t, expect_code, expect_enh):
    """Every false terminator, in one write and byte by byte, each on its own connection.
    The connections run side by side so that one quiet period covers them all."""
    attempts = []
    try:
        for ft, label in FALSE_TERMINATORS:
            for bytewise in (False, True):
                name = label + (" bytewise" if bytewise else "")
                c = t.session()
                attempts.append((name, c))
                c.expect("MAIL FROM:<alice@client.example>", 250, "2.1.0", what=f"[{name}] MAIL")
                c.expect("RCPT TO:<bob@partner.example>", 250, "2.1.5", what=f"[{name}] RCPT")
                c.expect("DATA", 354, what=f"[{name}] DATA")
                payload = HEAD + ft + SMUGGLED
                if bytewise:
                    cut = len(HEAD) - 4
                    c.send(payload[:cut])
                    for i in range(cut, len(payload)):
                        c.send(payload[i:i + 1])
                else:
                    c.send(payload)
        time.sleep(0.5)
        for name, c in attempts:
            h.check(c.silent_for(0.01), f"[{name}] no reply at the false terminator",
                    repr(c.buf[:200]))
        replies = []
        for name, c in attempts:
            c.send(REAL_END)
            r = c.read_reply()
            h.expect_reply(r, expect_code, expect_enh, f"[{name}] the one reply after CRLF.CRLF")
            replies.append((name, r))
        time.sleep(0.2)
        for name, c in attempts:
            h.check(c.silent_for(0.01), f"[{name}] no further reply", repr(c.buf[:200]))
            c.expect("QUIT", 221, what=f"[{name}] session back in command mode")
        return replies
    finally:
        for _, c in attempts:
            c.close()


def wait_tmp_empty(t):
    deadline = time.monotonic() + 3
    while t.tmp_files() and time.monotonic() < deadline:
        time.sleep(0.05)
    return t.tmp_files()


def scenario(ctx):
    h.step("bare_newlines: reject (the default)")
    t = ctx.tern("reject")
    t.start()
    run_attempts(t, 550, "5.6.0")
    h.check_eq(t.queue_ids(), [], "queue holds nothing")
    h.check_eq(wait_tmp_empty(t), [], "tmp/ is empty")
    log = t.log()
    h.check("smuggler" not in log,
            "the smuggled MAIL FROM never became a transaction (log)")
    t.stop()

    h.step("bare_newlines: normalize")
    t = ctx.tern("normalize", limits={"bare_newlines": "normalize"})
    t.start()
    replies = run_attempts(t, 250, "2.0.0")
    q = t.queue()  # parsing asserts CRLF-only data in every file
    h.check_eq(sorted(q), sorted(r.queue_id() for _, r in replies),
               "the queue holds exactly the acknowledged messages, one per attempt")
    for label, r in replies:
        m = q[r.queue_id()]
        h.check_eq(m.sender, "alice@client.example", f"[{label}] sender is the real one")
        h.check_eq(m.rcpt_addresses(), ["bob@partner.example"], f"[{label}] recipient")
        _, rest = h.split_received(m.data)
        h.check(rest.startswith(HEAD.split(b"first part")[0]), f"[{label}] headers intact")
        h.check(b"first part\r\n" in rest and
                b"MAIL FROM:<smuggler@evil.example>\r\nRCPT TO:<victim@partner.example>\r\n"
                b"DATA\r\n" in rest and rest.endswith(b"smuggled body\r\n"),
                f"[{label}] smuggled commands are body text of the one message", repr(rest))
    h.check_eq(len(t.queue_ids()), 2 * len(FALSE_TERMINATORS), "one message per attempt")
    h.check_eq(wait_tmp_empty(t), [], "tmp/ is empty")
    t.stop()


h.main(scenario)
