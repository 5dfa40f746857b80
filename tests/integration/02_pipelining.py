#!/usr/bin/python3
"""Pipelining (RFC 2920): a whole command group in one write, replies in order; the EHLO
keywords; two transactions and QUIT pipelined behind a message's data."""
import harness as h

MSG1 = (b"From: a@client.example\r\nTo: b@partner.example\r\nSubject: pipelined 1\r\n"
        b"Message-ID: <p1@client.example>\r\nDate: Tue, 25 Nov 2025 10:00:00 +0000\r\n"
        b"\r\nfirst message\r\n.dotted\r\n")
MSG2 = (b"From: a@client.example\r\nTo: d@partner.example\r\nSubject: pipelined 2\r\n"
        b"Message-ID: <p2@client.example>\r\nDate: Tue, 25 Nov 2025 10:00:01 +0000\r\n"
        b"\r\nsecond message\r\n")


def scenario(ctx):
    t = ctx.tern(limits={"max_message_size": "20M"})
    t.start()

    with t.connect() as c:
        h.expect_reply(c.read_reply(), 220, None, "greeting")
        r = c.cmd("EHLO client.example")
        h.expect_reply(r, 250, None, "EHLO")
        h.check_eq(r.lines[0].split()[0], h.HOSTNAME, "EHLO first line is the hostname")
        kws = [l.upper() for l in r.lines[1:]]
        for kw in ("PIPELINING", f"SIZE {20 * 1024 * 1024}", "8BITMIME", "SMTPUTF8",
                   "ENHANCEDSTATUSCODES"):
            h.check(kw in kws, f"EHLO advertises {kw}", repr(r.lines))

        h.step("MAIL, RCPT, RCPT, DATA in one write")
        c.send(b"MAIL FROM:<a@client.example>\r\n"
               b"RCPT TO:<b@partner.example>\r\n"
               b"RCPT TO:<c@partner.example>\r\n"
               b"DATA\r\n")
        rs = c.read_replies(4)
        h.expect_reply(rs[0], 250, "2.1.0", "MAIL (1st reply)")
        h.expect_reply(rs[1], 250, "2.1.5", "RCPT b (2nd reply)")
        h.expect_reply(rs[2], 250, "2.1.5", "RCPT c (3rd reply)")
        h.expect_reply(rs[3], 354, None, "DATA (4th reply)")

        h.step("data, '.', MAIL, RCPT, DATA, data, '.', QUIT in one write")
        c.send(h.dot_stuff(MSG1)
               + b"MAIL FROM:<a@client.example> BODY=8BITMIME\r\n"
               + b"RCPT TO:<d@partner.example>\r\n"
               + b"DATA\r\n"
               + h.dot_stuff(MSG2)
               + b"QUIT\r\n")
        rs = c.read_replies(6, timeout=15)
        h.expect_reply(rs[0], 250, "2.0.0", "message 1 queued (1st reply)")
        h.expect_reply(rs[1], 250, "2.1.0", "MAIL (2nd reply)")
        h.expect_reply(rs[2], 250, "2.1.5", "RCPT d (3rd reply)")
        h.expect_reply(rs[3], 354, None, "DATA (4th reply)")
        h.expect_reply(rs[4], 250, "2.0.0", "message 2 queued (5th reply)")
        h.expect_reply(rs[5], 221, None, "QUIT (6th reply)")
        id1, id2 = rs[0].queue_id(), rs[4].queue_id()
        h.check(id1 and id2 and id1 < id2, "two ids, in increasing order", f"{id1} {id2}")
        rest = c.wait_closed()
        h.check_eq(rest, b"", "nothing after 221; the server closes")

    q = t.queue()
    h.check_eq(sorted(q), sorted([id1, id2]), "both messages, and only they, are queued")
    h.check_eq(q[id1].rcpt_addresses(), ["b@partner.example", "c@partner.example"],
               "message 1 recipients")
    h.check_eq(q[id2].rcpt_addresses(), ["d@partner.example"], "message 2 recipients")
    h.check_eq(q[id2].mail_params, ["BODY=8BITMIME"], "message 2 mail-param")
    h.check_stored(q[id1], MSG1, what="message 1")
    h.check_stored(q[id2], MSG2, what="message 2")
    h.check(b"\tfor <" not in h.split_received(q[id1].data)[0],
            "Received: of a 2-recipient message names no single recipient")

    h.step("a whole transaction including QUIT in a single write (RSET/NOOP too)")
    with t.connect() as c:
        c.send(b"EHLO client.example\r\nNOOP\r\nRSET\r\nMAIL FROM:<>\r\n"
               b"RCPT TO:<e@partner.example>\r\nDATA\r\n" + h.dot_stuff(MSG2) + b"QUIT\r\n")
        rs = c.read_replies(8, timeout=15)
        h.check_eq([r.code for r in rs], [220, 250, 250, 250, 250, 250, 354, 250],
                   "reply codes in order")
        h.check_eq(c.read_reply().code, 221, "QUIT")
        id3 = rs[7].queue_id()
        h.check(id3 is not None, "third message queued", repr(rs[7]))
    m = t.queue()[id3]
    h.check_eq(m.sender, "", "null sender stored as <>")
    h.check_stored(m, MSG2, what="message 3")
    t.stop()


h.main(scenario)
