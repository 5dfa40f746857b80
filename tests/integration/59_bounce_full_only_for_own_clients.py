#!/usr/bin/python3
"""RET=FULL returns the whole message only to tern's own clients. Mail from an outsider
(a backup-MX partner domain, source 127.0.0.5) may carry a forged sender; a bounce with the
full content would deliver that content to whoever the sender names. Its bounce carries the
headers only (text/rfc822-headers), while the same message from a relay-network client
comes back whole (message/rfc822)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

SENDER = "alice@sender.example"
REPLY = "550 5.1.1 No such user here"


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2", "127.0.0.3"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("partner.example", "MX", (10, "mx.partner.example")),
        ("mx.partner.example", "A", "127.0.0.2"),
        ("sender.example", "MX", (10, "mx.sender.example")),
        ("mx.sender.example", "A", "127.0.0.3"),
    ])
    sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "partner-mx", rcpt_replies={
        "out@partner.example": REPLY, "own@partner.example": REPLY}))
    home = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "sender-mx"))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, retry=("1s", "1s", 1))).start()

    body = (b"From: alice@sender.example\r\nSubject: full or not\r\n\r\n"
            b"SECRET BODY LINE\r\n")
    for who, source, rcpt in (("outsider", "127.0.0.5", "out@partner.example"),
                              ("relay client", None, "own@partner.example")):
        h.step(f"{who}: RET=FULL, refused recipient")
        code, text, qid = h.send_smtplib(t.port, SENDER, [rcpt], body, source=source,
                                         mail_options=("RET=FULL",))
        h.check_eq(code, 250, f"{who}: accepted")
        sinks.wait_delivery(t, qid, rcpt, "bounced", timeout=10)

    got = sinks.wait_bounces(home, 2, 15)
    by_rcpt = {}
    for m in got:
        rep = sinks.parse_report(m.data)
        by_rcpt[rep.recipients[0].get("final-recipient", "").split(";")[-1].strip()] = (rep, m)
    out_rep, out_msg = by_rcpt["out@partner.example"]
    own_rep, own_msg = by_rcpt["own@partner.example"]
    h.check_eq(out_rep.ctypes[2], "text/rfc822-headers", "outsider's bounce: headers only")
    h.check(b"SECRET BODY LINE" not in out_msg.data, "outsider's bounce does not carry the body")
    h.check(b"Subject: full or not" in out_msg.data, "outsider's bounce carries the headers")
    h.check_eq(own_rep.ctypes[2], "message/rfc822", "relay client's bounce: the whole message")
    h.check(b"SECRET BODY LINE" in own_msg.data, "relay client's bounce carries the body")
    t.stop()


h.main(scenario)
