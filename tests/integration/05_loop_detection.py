#!/usr/bin/python3
"""Loop detection (RFC 5321 6.3): more than limits.max_received_headers (50) Received:
headers -> 554 5.4.6 after the end of data and nothing queued; exactly 50 -> accepted."""
import time

import harness as h


def message(n_received, folded=False):
    hdrs = b""
    for i in range(n_received):
        if folded:
            hdrs += (b"Received: from hop%d.example (hop%d.example [192.0.2.%d])\r\n"
                     b"\tby hop%d.example; Tue, 25 Nov 2025 10:00:%02d +0000\r\n"
                     % (i, i, i % 250, i + 1, i % 60))
        else:
            hdrs += b"Received: from hop%d.example by hop%d.example; Tue, 25 Nov 2025 10:00:00 +0000\r\n" % (i, i + 1)
    return (hdrs + b"From: a@client.example\r\nSubject: loop %d\r\n"
            b"Message-ID: <loop%d@client.example>\r\nDate: Tue, 25 Nov 2025 10:00:00 +0000\r\n"
            b"\r\nReceived: in the body does not count\r\n" % (n_received, n_received))


def scenario(ctx):
    t = ctx.tern()
    t.start()
    with t.session() as c:
        h.step("51 Received: headers")
        c.expect("MAIL FROM:<a@client.example>", 250)
        c.expect("RCPT TO:<b@partner.example>", 250)
        c.expect("DATA", 354)
        wire = h.dot_stuff(message(51))
        c.send(wire[:-3])
        h.check(c.silent_for(0.4), "no reply before the end of data")
        c.send(wire[-3:])
        h.expect_reply(c.read_reply(), 554, "5.4.6", "51 Received: headers")
        h.check_eq(t.queue_ids(), [], "nothing queued")

        h.step("51 folded Received: headers, lower-case name on some")
        m51 = message(51, folded=True).replace(b"Received: from hop7", b"received: from hop7")
        r = h.send_raw_message(c, "a@client.example", ["b@partner.example"], h.dot_stuff(m51),
                               expect_code=None)
        h.expect_reply(r, 554, "5.4.6", "51 folded Received: headers")
        h.check_eq(t.queue_ids(), [], "nothing queued")

        h.step("51 Received: headers and no body (no blank line at all)")
        hdr_only = message(51).split(b"\r\n\r\n")[0] + b"\r\n"
        r = h.send_raw_message(c, "a@client.example", ["b@partner.example"],
                               h.dot_stuff(hdr_only), expect_code=None)
        h.expect_reply(r, 554, "5.4.6", "51 Received: headers, header section only")
        h.check_eq(t.queue_ids(), [], "nothing queued")

        h.step("exactly 50 Received: headers")
        m50 = message(50)
        r = h.send_raw_message(c, "a@client.example", ["b@partner.example"], h.dot_stuff(m50),
                               expect_code=None)
        h.expect_reply(r, 250, "2.0.0", "50 Received: headers")
        qid = r.queue_id()
        c.expect("QUIT", 221)
    q = t.queue()
    h.check_eq(sorted(q), [qid], "only the 50-header message is queued")
    h.check_stored(q[qid], m50, what="50-header message")
    recv_lines = [l for l in q[qid].data.split(b"\r\n\r\n")[0].split(b"\r\n") if l.lower().startswith(b"received:")]
    h.check_eq(len(recv_lines), 51, "stored copy has tern's Received: + the 50")
    deadline = time.monotonic() + 3
    while t.tmp_files() and time.monotonic() < deadline:
        time.sleep(0.05)
    h.check_eq(t.tmp_files(), [], "tmp/ is empty")
    t.stop()


h.main(scenario)
