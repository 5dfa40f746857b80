#!/usr/bin/python3
"""SMTPUTF8 is decided by what the message needs, not by the MAIL parameter alone: a client
that declares SMTPUTF8 for an all-ASCII message (envelope and header section) has it
delivered to a next hop without SMTPUTF8, as Postfix does; a message whose header section
is UTF-8 still fails there with 5.6.7 (and bounces), and one with a UTF-8 recipient too."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2"])
    _, dns_port = sinks.start_dns(ctx, [
        ("relay.example", "MX", (10, "mx1.relay.example")),
        ("mx1.relay.example", "A", "127.0.0.2"),
    ])
    mx1 = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx1", smtputf8=False))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port)).start()

    h.step("SMTPUTF8 declared, nothing in the message needs it: delivered without it")
    ascii_msg = sinks.body("plain ascii")
    code, text, qid = h.send_smtplib(t.port, "a@client.example", ["user@relay.example"], ascii_msg,
                                     mail_options=("SMTPUTF8",))
    h.check_eq(code, 250, "accepted")
    sinks.wait_delivery(t, qid, "user@relay.example", "sent", timeout=20)
    got = mx1.messages()
    h.check_eq(len(got), 1, "mx1 has it")
    h.check("SMTPUTF8" not in [o.upper() for o in got[0].mail_options], "sent without SMTPUTF8",
            str(got[0].mail_options))

    h.step("a UTF-8 header section does need it: 5.6.7 at a next hop without SMTPUTF8")
    utf8_msg = ("From: a@client.example\r\nTo: user@relay.example\r\nSubject: caf\u00e9\r\n"
                "Message-ID: <utf8.1@client.example>\r\nDate: Tue, 25 Nov 2025 10:00:00 +0000\r\n"
                "\r\nbody\r\n").encode()
    code, text, qid2 = h.send_smtplib(t.port, "a@client.example", ["user@relay.example"], utf8_msg,
                                      mail_options=("SMTPUTF8", "BODY=8BITMIME"))
    h.check_eq(code, 250, "accepted")
    d = sinks.wait_delivery(t, qid2, "user@relay.example", "bounced", timeout=20)
    h.check_eq(d[0].dsn, "5.6.7", "failed for want of SMTPUTF8")
    h.check_eq(len(mx1.messages()), 1, "nothing more reached mx1")
    t.stop()


h.main(scenario)
