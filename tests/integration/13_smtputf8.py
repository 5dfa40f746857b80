#!/usr/bin/python3
"""SMTPUTF8 (RFC 6531): with MAIL ... SMTPUTF8, UTF-8 addresses are accepted, the protocol is
UTF8SMTP and the queue file keeps UTF-8 as is; without it a non-ASCII address in MAIL or
RCPT gets 553 5.6.7 (RFC 6531 3.5, 'Non-ASCII addresses not permitted')."""
import os

import harness as h

UTF8_MSG = ("From: jörg@client.example\r\nTo: zoë@partner.example\r\n"
            "Subject: grüße\r\nMessage-ID: <u@client.example>\r\n"
            "Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\nnaïve café\r\n").encode()


def scenario(ctx):
    t = ctx.tern()
    t.start()

    h.step("a UTF-8 transaction with SMTPUTF8")
    with t.session() as c:
        c.expect("MAIL FROM:<jörg@client.example> SMTPUTF8 BODY=8BITMIME", 250, "2.1.0")
        c.expect("RCPT TO:<zoë@partner.example>", 250, "2.1.5")
        c.expect("RCPT TO:<user@bücher.example>", 250, "2.1.5",
                 what="U-label domain from a relay client")
        c.expect("DATA", 354)
        c.send(h.dot_stuff(UTF8_MSG))
        r = c.read_reply()
        h.expect_reply(r, 250, "2.0.0", "SMTPUTF8 message")
        qid = r.queue_id()
        c.expect("QUIT", 221)
    raw = open(os.path.join(t.msg_dir(), qid), "rb").read()
    h.check("\nsender <jörg@client.example>\n".encode() in raw, "UTF-8 sender written as is")
    m = t.queue()[qid]
    h.check_eq(m.fields["protocol"], "UTF8SMTP", "protocol UTF8SMTP")
    h.check_eq(m.rcpt_addresses(), ["zoë@partner.example", "user@bücher.example"],
               "UTF-8 recipients")
    h.check_eq(m.mail_params, ["SMTPUTF8", "BODY=8BITMIME"], "mail-params")
    h.check(b" with UTF8SMTP id " in h.split_received(m.data)[0], "Received: says UTF8SMTP")
    h.check_stored(m, UTF8_MSG, what="SMTPUTF8 message")

    h.step("non-ASCII addresses without SMTPUTF8")
    with t.session() as c:
        c.expect("MAIL FROM:<jörg@client.example>", 553, "5.6.7",
                 what="UTF-8 sender without SMTPUTF8")
        c.expect("MAIL FROM:<a@client.example>", 250)
        c.expect("RCPT TO:<b@partner.example>", 250)
        wrong = []
        for rcpt in ("zoë@partner.example", "user@bücher.example"):
            r = c.cmd(f"RCPT TO:<{rcpt}>")
            print(f"  info RCPT TO:<{rcpt}> without SMTPUTF8 -> {r!r}")
            if r.code != 553 or r.enhanced != "5.6.7":
                wrong.append(f"RCPT TO:<{rcpt}> got {r!r}")
        c.expect("QUIT", 221)
    h.check(not wrong, "non-ASCII recipients without SMTPUTF8 -> 553 5.6.7 (like MAIL)",
            "; ".join(wrong))
    h.check_eq(len(t.queue()), 1, "one message queued")
    t.stop()


h.main(scenario)
