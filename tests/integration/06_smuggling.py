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


def attempt(t, ft, label, bytewise, expect_code, expect_enh):
    payload = HEAD + ft + SMUGGLED
    with t.session() as c:
        c.expect("MAIL FROM:<alice@client.example>", 250, "2.1.0")
        c.expect("RCPT TO:<bob@partner.example>", 250, "2.1.5")
        c.expect("DATA", 354)
        if bytewise:
            cut = len(HEAD) - 4
            c.send(payload[:cut])
            for i in range(cut, len(payload)):
                c.send(payload[i:i + 1])
        else:
            c.send(payload)
        h.check(c.silent_for(0.4), f"[{label}{' bytewise' if bytewise else ''}] "
                "no reply at the false terminator", repr(c.buf[:200]))
        c.send(REAL_END)
        r = c.read_reply()
        h.expect_reply(r, expect_code, expect_enh, f"[{label}] the one reply after CRLF.CRLF")
        h.check(c.silent_for(0.2), f"[{label}] no further reply", repr(c.buf[:200]))
        c.expect("QUIT", 221, what=f"[{label}] session back in command mode")
        return r


def wait_tmp_empty(t):
    deadline = time.monotonic() + 3
    while t.tmp_files() and time.monotonic() < deadline:
        time.sleep(0.05)
    return t.tmp_files()


def scenario(ctx):
    h.step("bare_newlines: reject (the default)")
    t = ctx.tern("reject")
    t.start()
    for ft, label in FALSE_TERMINATORS:
        for bytewise in (False, True):
            attempt(t, ft, label, bytewise, 550, "5.6.0")
            h.check_eq(t.queue_ids(), [], f"[{label}] queue holds nothing")
    h.check_eq(wait_tmp_empty(t), [], "tmp/ is empty")
    log = t.log()
    h.check("smuggler" not in log.split("reject:")[0] and "from=<smuggler" not in log,
            "the smuggled MAIL FROM never became a transaction (log)")
    t.stop()

    h.step("bare_newlines: normalize")
    t = ctx.tern("normalize", limits={"bare_newlines": "normalize"})
    t.start()
    seen = set()
    for ft, label in FALSE_TERMINATORS:
        for bytewise in (False, True):
            r = attempt(t, ft, label, bytewise, 250, "2.0.0")
            qid = r.queue_id()
            ids = set(t.queue_ids())
            h.check_eq(ids - seen, {qid}, f"[{label}] exactly one new message, the acknowledged one")
            seen = ids
            m = t.queue()[qid]  # parsing asserts CRLF-only data
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
