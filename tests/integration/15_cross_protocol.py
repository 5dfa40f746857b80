#!/usr/bin/python3
"""Attack-run items 20 and 21: an HTTP or proxy request (GET, POST with SMTP commands in its
body, CONNECT, HEAD, PUT, USER) gets one error and the connection closes at once, before
anything after the request line is read; and what a client sends reaches the log escaped:
no CR, ESC, BEL, C1 control or invalid UTF-8 byte from a client appears raw in ternd's log."""
import harness as h


def raw_log(t):
    with open(t.log_path, "rb") as f:
        return f.read()


def scenario(ctx):
    t = ctx.tern()
    t.start()

    requests = [
        b"GET / HTTP/1.1\r\nHost: relay.example.net\r\n\r\n",
        # A browser made to POST SMTP commands (cross-protocol request forgery).
        b"POST /submit HTTP/1.1\r\nHost: x\r\nContent-Length: 120\r\n\r\n"
        b"EHLO x\r\nMAIL FROM:<a@client.example>\r\nRCPT TO:<b@partner.example>\r\nDATA\r\n"
        b"Subject: forged\r\n\r\nforged\r\n.\r\nQUIT\r\n",
        b"CONNECT mx.partner.example:25 HTTP/1.1\r\n\r\n",
        b"HEAD / HTTP/1.0\r\n\r\n",
        b"PUT /x HTTP/1.1\r\n\r\n",
        b"USER root\r\nPASS secret\r\n",
    ]
    for req in requests:
        first = req.split(b"\r\n")[0].decode()
        h.step(f"{first!r}: one error, then the server closes")
        with t.connect() as c:
            h.expect_reply(c.read_reply(), 220, None, "greeting")
            c.send(req)
            h.expect_reply(c.read_reply(), 554, "5.7.0", first)
            rest = c.wait_closed(timeout=10)
            h.check_eq(rest, b"", f"{first!r}: nothing after the one reply")

    h.step("the same after EHLO, inside a transaction")
    with t.session() as c:
        c.expect("MAIL FROM:<a@client.example>", 250)
        c.send(b"GET /index.html HTTP/1.1\r\nRCPT TO:<b@partner.example>\r\n")
        h.expect_reply(c.read_reply(), 554, "5.7.0", "GET inside a transaction")
        h.check_eq(c.wait_closed(timeout=10), b"", "closed after the one reply")
    h.check_eq(t.queue_ids(), [], "nothing was queued")

    h.step("ordinary unknown commands still get 500 and the session goes on")
    with t.session() as c:
        c.expect("GETX /", 500, "5.5.2")
        c.expect("NOOP", 250)
        c.expect("QUIT", 221)

    h.step("client bytes reach the log escaped")
    hostile = [
        b"FOO \x1b[2J\x1b[31mred\x07",           # terminal control: clear screen, colour, bell
        b"BAR x\rsmtpd: conn=999 forged line",   # a CR to overwrite the line on a terminal
        b"BAZ \xff\xfe \xc2\x9b31m \xe2\x80\xae",  # invalid UTF-8, C1 CSI, bidi override
        b"GET /\x1b]0;title\x07 HTTP/1.1",        # an HTTP request line with controls
    ]
    for line in hostile[:3]:
        with t.session() as c:
            c.send(line + b"\r\n")
            h.expect_reply(c.read_reply(), 500, "5.5.2", repr(line[:12]))
            c.expect("QUIT", 221)
    with t.connect() as c:
        h.expect_reply(c.read_reply(), 220, None, "greeting")
        c.send(hostile[3] + b"\r\n")
        h.expect_reply(c.read_reply(), 554, "5.7.0", "HTTP request line with controls")
        c.wait_closed(timeout=10)
    t.wait_log("command=BAZ", timeout=10)
    t.wait_log("not an SMTP client", timeout=10)
    log = raw_log(t)
    for bad, what in [(b"\x1b", "ESC"), (b"\x07", "BEL"), (b"\r", "CR"), (b"\xff", "0xff"),
                      (b"\xc2\x9b", "C1 CSI"), (b"\xe2\x80\xae", "bidi override")]:
        h.check(bad not in log, f"no raw {what} in the log")
    text = log.decode("utf-8")  # the whole log is valid UTF-8
    h.check("command=FOO \\x1b[2J\\x1b[31mred\\x07" in text, "ESC and BEL shown as \\x1b, \\x07")
    h.check("command=BAR x\\rsmtpd: conn=999 forged line" in text, "the CR shown as \\r, same line")
    h.check("command=BAZ \\xff\\xfe \\u009b31m \\u202e" in text, "invalid UTF-8 and C1/bidi escaped")
    h.check("\\x1b]0;title\\x07" in text, "the HTTP request line is escaped too")
    h.check(not any(l.startswith("smtpd: conn=999") for l in text.split("\n")),
            "no forged log line")
    t.stop()


h.main(scenario)
