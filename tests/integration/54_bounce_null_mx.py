#!/usr/bin/python3
"""A recipient whose domain publishes a null MX ("MX 0 .", RFC 7505) bounces at once, without
a retry: the sender's MX gets the bounce within a few seconds, with Action: failed,
Status: 5.1.10 (RFC 7505 §4.2 / RFC 3463), a Diagnostic-Code, and no Remote-MTA (no host
was ever asked). Likewise a domain that does not exist (NXDOMAIN): Status 5.1.2."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

SENDER = "alice@sender.example"


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.3"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("nullmx.example", "MX", (0, ".")),
        ("sender.example", "MX", (10, "mx.sender.example")),
        ("mx.sender.example", "A", "127.0.0.3"),
    ])
    home = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "sender-mx"))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, retry=("1s", "1s", 1))).start()

    cases = [("user@nullmx.example", "null MX", "5.1.10"),
             ("user@nowhere.example", "nxdomain", "5.1.2")]
    for rcpt, subject, status in cases:
        h.step(f"{rcpt}: {subject}")
        t0 = time.monotonic()
        qid = sinks.send(t, SENDER, [rcpt], sinks.body(subject))
        d = sinks.wait_delivery(t, qid, rcpt, timeout=10)
        h.check(d[0].status == "bounced" and d[0].dsn == status,
                f"first outcome: status=bounced dsn={status}", repr(d[0]))
        sinks.wait_until(lambda: [m for m in sinks.bounces(home)
                                  if str(sinks.parse_report(m.data).returned_subject()) == subject],
                         10, f"the bounce for {subject!r} arrived")
        took = time.monotonic() - t0
        h.check(took < 5, f"the bounce arrived {took:.1f}s after the message was sent (< 5 s)")
        h.check_eq(len(sinks.deliveries(t, qid, rcpt)), 1, "one delivery line: no retry")

    time.sleep(1.5)
    got = home.messages()
    h.check_eq(len(got), 2, "two messages at the sender's MX in all")
    for rcpt, subject, status in cases:
        h.step(f"the bounce for {rcpt}")
        m = [m for m in got if str(sinks.parse_report(m.data).returned_subject()) == subject]
        h.check_eq(len(m), 1, "exactly one bounce")
        h.check_eq((m[0].mail_from, m[0].rcpt_tos), ("<>", [SENDER]), "from <> to the sender")
        rep = sinks.parse_report(m[0].data)
        h.check_eq((rep.content_type, rep.report_type), ("multipart/report", "delivery-status"),
                   "multipart/report; report-type=delivery-status")
        h.check_eq(len(rep.recipients), 1, "one recipient block")
        r = rep.rcpt(rcpt)
        h.check(r is not None, f"Final-Recipient: rfc822; {rcpt}", repr(rep.recipients))
        h.check_eq(r.get("action"), "failed", "Action: failed")
        h.check_eq(r.get("status"), status, f"Status: {status}")
        h.check(bool(r.get("diagnostic-code")), "a Diagnostic-Code", repr(r))
        h.check("remote-mta" not in r, "no Remote-MTA (no host answered)", repr(r))
        h.check(rcpt in rep.human, "the human-readable part names the recipient")

    sinks.wait_queue_empty(t, 10, "originals and bounces left the queue")
    t.stop()


h.main(scenario)
