#!/usr/bin/python3
"""SIZE (RFC 1870): the EHLO keyword shows limits.max_message_size; MAIL SIZE= above it gets
552 5.3.4; an oversized message gets 552 5.3.4 only after its final CRLF.CRLF, nothing of it
is queued, and the session goes on working."""
import time

import harness as h

LIMIT = 10000


def message_of_size(n, tag):
    """A CRLF message of exactly n bytes (as stored after the Received: header)."""
    head = (f"From: a@client.example\r\nSubject: {tag}\r\n"
            f"Message-ID: <{tag}@client.example>\r\nDate: Tue, 25 Nov 2025 10:00:00 +0000\r\n"
            f"\r\n").encode()
    body = b""
    line = b"0123456789" * 7 + b"\r\n"  # 72 bytes
    while len(head) + len(body) + len(line) <= n - 3:
        body += line
    pad = n - len(head) - len(body) - 2
    body += b"x" * pad + b"\r\n"
    m = head + body
    assert len(m) == n, (len(m), n)
    return m


def wait_tmp_empty(t, timeout=3.0):
    deadline = time.monotonic() + timeout
    for _ in range(1000):
        if not t.tmp_files() or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    return t.tmp_files()


def scenario(ctx):
    t = ctx.tern(limits={"max_message_size": str(LIMIT)})
    t.start()
    accepted = []

    with t.connect() as c:
        h.expect_reply(c.read_reply(), 220, None, "greeting")
        r = c.cmd("EHLO client.example")
        h.expect_reply(r, 250, None, "EHLO")
        h.check(f"SIZE {LIMIT}" in r.lines, f"EHLO announces SIZE {LIMIT}", repr(r.lines))

        h.step("MAIL SIZE= above and at the limit")
        c.expect(f"MAIL FROM:<a@client.example> SIZE={LIMIT + 1}", 552, "5.3.4")
        c.expect("MAIL FROM:<a@client.example> SIZE=99999999999", 552, "5.3.4")
        c.expect(f"MAIL FROM:<a@client.example> SIZE={LIMIT}", 250, "2.1.0")
        c.expect("RSET", 250)

        h.step("oversized data (twice the limit): no reply until the real end of data")
        big = message_of_size(2 * LIMIT, "big")
        c.expect("MAIL FROM:<a@client.example> SIZE=100", 250, "2.1.0")
        c.expect("RCPT TO:<b@partner.example>", 250, "2.1.5")
        c.expect("DATA", 354)
        wire = h.dot_stuff(big)
        body, term = wire[:-3], wire[-3:]
        h.check_eq(term, b".\r\n", "terminator split off")
        for i in range(0, len(body), 4096):
            c.send(body[i:i + 4096])
        h.check(c.silent_for(0.7), "no reply while the oversized data is still coming")
        c.send(term)
        r = c.read_reply()
        h.expect_reply(r, 552, "5.3.4", "oversized message after CRLF.CRLF")
        h.check(c.silent_for(0.3), "exactly one reply to the oversized data")
        h.check_eq(t.queue_ids(), [], "nothing queued")
        h.check_eq(wait_tmp_empty(t), [], "nothing left in tmp/")

        h.step("the same session still works: a small message")
        small = message_of_size(500, "small")
        r = h.send_raw_message(c, "a@client.example", ["b@partner.example"], h.dot_stuff(small))
        h.expect_reply(r, 250, "2.0.0", "small message after the refusal")
        accepted.append((r.queue_id(), small))

        h.step("boundary: exactly the limit is accepted, one byte more is not")
        exact = message_of_size(LIMIT, "exact")
        r = h.send_raw_message(c, "a@client.example", ["b@partner.example"], h.dot_stuff(exact),
                               expect_code=None)
        h.expect_reply(r, 250, "2.0.0", f"message of {LIMIT} bytes")
        accepted.append((r.queue_id(), exact))
        over = message_of_size(LIMIT + 1, "over")
        r = h.send_raw_message(c, "a@client.example", ["b@partner.example"], h.dot_stuff(over),
                               expect_code=None)
        h.expect_reply(r, 552, "5.3.4", f"message of {LIMIT + 1} bytes")

        h.step("dot-stuffing does not count: a message of dots exactly at the limit")
        dots = (b"Subject: dots\r\nMessage-ID: <d@c>\r\nDate: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\n")
        dots += b".\r\n" * ((LIMIT - len(dots) - 10) // 3)
        dots += b"y" * (LIMIT - len(dots) - 2) + b"\r\n"
        h.check_eq(len(dots), LIMIT, "dots message size")
        r = h.send_raw_message(c, "a@client.example", ["b@partner.example"], h.dot_stuff(dots),
                               expect_code=None)
        h.expect_reply(r, 250, "2.0.0", "dot-stuffed message at the limit (stuffing not counted)")
        accepted.append((r.queue_id(), dots))
        c.expect("QUIT", 221)

    q = t.queue()
    h.check_eq(sorted(q), sorted(i for i, _ in accepted), "queue holds the accepted ones only")
    for qid, original in accepted:
        h.check_stored(q[qid], original, what=f"message {qid}")
    h.check_eq(wait_tmp_empty(t), [], "tmp/ is empty")
    t.stop()


h.main(scenario)
