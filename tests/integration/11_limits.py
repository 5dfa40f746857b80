#!/usr/bin/python3
"""Connection limits and timeouts: the 4th concurrent connection from one address gets
421 4.7.0 (max_connections_per_client 3); an idle client gets 421 4.4.2 after
timeouts.command (2 s) and is disconnected; likewise in DATA after timeouts.data."""
import time

import harness as h


def wait_accepted(t, source=None, timeout=5.0):
    """Connects until the greeting is 220 (the server frees a slot asynchronously)."""
    deadline = time.monotonic() + timeout
    for _ in range(200):
        c = t.connect(source)
        r = c.read_reply()
        if r.code == 220:
            return c, r
        c.close()
        if time.monotonic() > deadline:
            return None, r
        time.sleep(0.05)
    return None, None


def scenario(ctx):
    # 127.0.0.1 is in relay.networks, exempt from the per-client limit unless told otherwise
    # (scenario 16 covers the exemption).
    t = ctx.tern(limits={"max_connections_per_client": "3", "max_connections": "5",
                         "relay_networks_per_client_limit": "apply"},
                 timeouts={"command": "2s", "data": "2s", "shutdown": "10s"})
    t.start()

    h.step("max_connections_per_client 3")
    conns = []
    try:
        for n in range(3):
            c = t.connect()
            conns.append(c)
            h.expect_reply(c.read_reply(), 220, None, f"connection {n + 1} from 127.0.0.1")
        fourth = t.connect()
        r = fourth.read_reply()
        h.expect_reply(r, 421, "4.7.0", "4th concurrent connection from 127.0.0.1")
        h.check(h.HOSTNAME in r.text, "the 421 names the host", r.text)
        h.check_eq(fourth.wait_closed(), b"", "and it is closed")
        fourth.close()
        for c in conns:
            c.expect("NOOP", 250, what="the first three still work")

        other = t.connect(source="127.0.0.2")
        h.expect_reply(other.read_reply(), 220, None, "a connection from 127.0.0.2 is accepted")
        conns.append(other)
        fifth = t.connect(source="127.0.0.3")
        h.expect_reply(fifth.read_reply(), 220, None, "5th connection overall (127.0.0.3)")
        conns.append(fifth)
        sixth = t.connect(source="127.0.0.4")
        r = sixth.read_reply()
        h.expect_reply(r, 421, "4.7.0", "6th connection overall (max_connections 5)")
        sixth.wait_closed()
        sixth.close()

        conns[0].expect("QUIT", 221)
        conns[0].wait_closed()
        conns.pop(0).close()
        c, r = wait_accepted(t)
        h.check(c is not None, "after one closes, 127.0.0.1 may connect again", repr(r))
        conns.append(c)
    finally:
        for c in conns:
            c.close()

    h.step("timeouts.command 2s")
    # Wait for the server to release the slots above first.
    c, r = wait_accepted(t)
    h.check(c is not None, "a fresh connection", repr(r))
    with c:
        c.expect("EHLO client.example", 250)
        t0 = time.monotonic()
        r = c.read_reply(timeout=10)
        elapsed = time.monotonic() - t0
        h.expect_reply(r, 421, "4.4.2", "idle client")
        h.check(1.5 <= elapsed <= 5.0, f"421 came after {elapsed:.2f}s (timeout 2s)")
        h.check_eq(c.wait_closed(timeout=5), b"", "connection closed after the 421")

    h.step("activity resets the command timer")
    c, r = wait_accepted(t)
    h.check(c is not None, "a fresh connection", repr(r))
    with c:
        for _ in range(4):
            time.sleep(0.8)
            c.expect("NOOP", 250, what="NOOP every 0.8 s")
        h.check(True, "3.2 s of activity without a timeout")

    h.step("timeouts.data 2s")
    c, r = wait_accepted(t)
    h.check(c is not None, "a fresh connection", repr(r))
    with c:
        c.expect("EHLO client.example", 250)
        c.expect("MAIL FROM:<a@client.example>", 250)
        c.expect("RCPT TO:<b@partner.example>", 250)
        c.expect("DATA", 354)
        c.send(b"Subject: half a message\r\n\r\nsome text")
        t0 = time.monotonic()
        r = c.read_reply(timeout=10)
        elapsed = time.monotonic() - t0
        h.expect_reply(r, 421, "4.4.2", "client silent in DATA")
        h.check(1.5 <= elapsed <= 5.0, f"421 came after {elapsed:.2f}s (timeout 2s)")
        c.wait_closed(timeout=5)
    deadline = time.monotonic() + 3
    while t.msg_files() and time.monotonic() < deadline:
        time.sleep(0.05)
    h.check_eq(t.msg_files(), [], "nothing queued or left in msg/ from the timed-out DATA")
    h.check_eq(t.tmp_files(), [], "nothing left in tmp/")

    h.step("a client that disconnects in the middle of DATA leaves nothing behind")
    c, r = wait_accepted(t)
    h.check(c is not None, "a fresh connection", repr(r))
    with c:
        c.expect("EHLO client.example", 250)
        c.expect("MAIL FROM:<a@client.example>", 250)
        c.expect("RCPT TO:<b@partner.example>", 250)
        c.expect("DATA", 354)
        line = b"x" * 998 + b"\r\n"
        c.send(b"Subject: abandoned\r\n\r\n" + line * 700)  # > 256 KiB: spooling starts
        deadline = time.monotonic() + 3
        while not t.unfinished_ids() and time.monotonic() < deadline:
            time.sleep(0.02)
        h.check(len(t.unfinished_ids()) == 1, "the message is being spooled in msg/, unfinished",
                repr(t.msg_files()))
    t.wait_log("lost connection in DATA")
    h.check(True, "log says 'lost connection in DATA'")
    deadline = time.monotonic() + 3
    while t.msg_files() and time.monotonic() < deadline:
        time.sleep(0.05)
    h.check_eq(t.msg_files(), [], "msg/ is empty after the client went away (nothing queued)")
    h.check_eq(t.tmp_files(), [], "tmp/ is empty")
    t.stop()

    h.step("limits.long_lines: reject (max_line_length 1000)")
    t = ctx.tern("longlines", limits={"long_lines": "reject"})
    t.start()
    head = b"Subject: long lines\r\nMessage-ID: <l@c>\r\nDate: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\n"
    with t.session() as c:
        ok_msg = head + b"a" * 998 + b"\r\n" + b"." + b"b" * 997 + b"\r\n"
        r = h.send_raw_message(c, "a@client.example", ["b@partner.example"], h.dot_stuff(ok_msg),
                               expect_code=None)
        h.expect_reply(r, 250, "2.0.0", "lines of 1000 octets with CRLF")
        h.check_stored(t.queue()[r.queue_id()], ok_msg, what="1000-octet lines")
        long_msg = head + b"a" * 999 + b"\r\n"
        r = h.send_raw_message(c, "a@client.example", ["b@partner.example"],
                               h.dot_stuff(long_msg), expect_code=None)
        h.expect_reply(r, 550, "5.6.0", "a line of 1001 octets")
        c.expect("QUIT", 221)
    h.check_eq(len(t.queue_ids()), 1, "only the conforming message is queued")
    t.stop()


h.main(scenario)
