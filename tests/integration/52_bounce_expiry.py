#!/usr/bin/python3
"""Expiry: delivery.max_queue_time 3s, the recipient's MX refuses connections (nothing
listens on 127.0.0.2), retry every 1 s. The message is retried until it is 3 s old, then the
recipient fails with 5.4.7 (RFC 3463 "delivery time expired", RFC 3464 §2.3.4) and exactly
one bounce reaches the sender's MX: Action: failed, Status: 5.4.7, a Diagnostic-Code, a
Last-Attempt-Date, no Will-Retry-Until; no delay warning before it (delay_warning is at its
4h default). Original and bounce leave the queue.
Alongside, a second ternd retrying every 2 s (attempts at about 0 s and 2 s, expiry found at
the next due time, about 4 s): its bounce's Last-Attempt-Date is the last attempt's time
(RFC 3464 §2.3.7 "the date and time of the last attempt to relay, gateway, or deliver the
message"), i.e. at most 3 s after the Arrival-Date, not the moment of expiry."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

SENDER = "alice@sender.example"
SENDER2 = "carol@sender.example"
RCPT = "user@relay.example"


def refused(address, port):
    import socket
    try:
        socket.create_connection((address, port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def scenario(ctx):
    port, dns, dns_port = sinks.start_bounce_world(ctx)
    home = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "sender-mx"))
    h.check(refused("127.0.0.2", port), "nothing listens for the recipient's MX (refused)")
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, retry=("1s", "1s", 1),
                                            max_queue_time="3s")).start()
    t2 = ctx.tern("ternd2", **sinks.delivery_overrides(port, dns_port, retry=("2s", "2s", 1),
                                                       max_queue_time="3s")).start()

    h.step("a message for a domain whose MX refuses connections")
    t0 = time.monotonic()
    t_sent = time.time()
    qid = sinks.send(t, SENDER, [RCPT], sinks.body("expire me"))
    qid2 = sinks.send(t2, SENDER2, [RCPT], sinks.body("expire me slowly"))
    d = sinks.wait_delivery(t, qid, RCPT, "deferred", timeout=10)
    h.check(d[0].dsn.startswith("4."), "first attempt deferred (connection refused)", repr(d[0]))
    e = sinks.wait_delivery(t, qid, RCPT, "expired", timeout=12)
    took = time.monotonic() - t0
    h.check_eq(e[0].dsn, "5.4.7", "log: status=expired dsn=5.4.7")
    h.check(2.5 <= took <= 8, f"expired after max_queue_time 3s ({took:.1f}s)")
    n_deferred = len(sinks.deliveries(t, qid, RCPT, "deferred"))
    h.check(n_deferred >= 2, f"retried before it expired ({n_deferred} deferred attempts)")

    h.step("the bounce")
    sinks.wait_until(lambda: [m for m in sinks.bounces(home) if m.rcpt_tos == [SENDER]], 10,
                     "the bounce reached the sender's MX")
    sinks.wait_until(lambda: [m for m in sinks.bounces(home) if m.rcpt_tos == [SENDER2]], 10,
                     "the second ternd's bounce reached the sender's MX")
    time.sleep(2.0)
    got = [m for m in home.messages() if m.rcpt_tos != [SENDER2]]
    h.check_eq(len(got), 1, "exactly one message for the sender at the sender's MX")
    b = got[0]
    h.check_eq((b.mail_from, b.rcpt_tos), ("<>", [SENDER]), "from <> to the sender")
    rep = sinks.parse_report(b.data)
    h.check_eq((rep.content_type, rep.report_type), ("multipart/report", "delivery-status"),
               "multipart/report; report-type=delivery-status")
    h.check_eq(len(rep.recipients), 1, "one recipient block")
    r = rep.recipients[0]
    h.check_eq(r.get("final-recipient"), f"rfc822; {RCPT}", "Final-Recipient")
    h.check_eq(r.get("action"), "failed", "Action: failed")
    h.check_eq(r.get("status"), "5.4.7", "Status: 5.4.7")
    h.check(r.get("diagnostic-code"), "a Diagnostic-Code is given", repr(r))
    last = sinks.rfc5322_date(r.get("last-attempt-date", ""), "Last-Attempt-Date")
    h.check(t_sent - 1 <= last <= time.time() + 1, "Last-Attempt-Date within the message's life",
            r.get("last-attempt-date"))
    h.check("will-retry-until" not in r, "no Will-Retry-Until")
    arr = sinks.rfc5322_date(rep.per_message.get("arrival-date", ""), "Arrival-Date")
    h.check(abs(arr - t_sent) < 3, "Arrival-Date is the original's arrival")
    h.check_eq(str(rep.returned_subject()), "expire me", "the returned header is the original's")
    h.check("expire" in rep.human.lower() or "time" in rep.human.lower() or "5.4.7" in rep.human,
            "the human-readable part says why (expiry)", rep.human[:500])

    h.step("the log and the queue")
    h.check_eq([x[1] for x in sinks.notice_lines(t, qid)], ["bounce"],
               "exactly one notice queued for the message: the bounce (no delay warning)")
    sinks.wait_queue_empty(t, 10, "original and bounce left the queue")
    t.stop()

    h.step("the second ternd (retry every 2 s): Last-Attempt-Date is the last attempt")
    got2 = [m for m in home.messages() if m.rcpt_tos == [SENDER2]]
    h.check_eq(len(got2), 1, "exactly one bounce for the second sender")
    rep2 = sinks.parse_report(got2[0].data)
    r2 = rep2.rcpt(RCPT)
    h.check(r2 is not None and r2.get("status") == "5.4.7", "Status: 5.4.7", repr(r2))
    ds = sinks.deliveries(t2, qid2, RCPT)
    attempts = [x for x in ds if x.status == "deferred"]
    print(f"  ..   second ternd: {len(attempts)} attempt(s), then {[x.status for x in ds if x.status != 'deferred']}")
    arr2 = sinks.rfc5322_date(rep2.per_message.get("arrival-date", ""), "Arrival-Date")
    last2 = sinks.rfc5322_date(r2.get("last-attempt-date", ""), "Last-Attempt-Date")
    h.check(len(attempts) == 2, "two attempts (about 0 s and 2 s) before the expiry", repr(ds))
    h.check(last2 - arr2 <= 3,
            "Last-Attempt-Date is the second attempt's time (<= Arrival-Date + 3 s), not the expiry",
            f"Arrival-Date {rep2.per_message.get('arrival-date')}, Last-Attempt-Date "
            f"{r2.get('last-attempt-date')} ({last2 - arr2:.0f} s later); the attempts: "
            + "; ".join(x.line.split(" info ")[0] + " " + x.status for x in ds))
    sinks.wait_queue_empty(t2, 10, "second ternd: queue empty")
    t2.stop()


h.main(scenario)
