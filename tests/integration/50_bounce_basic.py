#!/usr/bin/python3
"""A 550 at RCPT gives a bounce (RFC 3464 in RFC 6522 multipart/report) that travels through
tern's own queue to the sender's domain (sender.example, MX 127.0.0.3):
  - exactly one message arrives there, from <> to the original sender;
  - header: To the sender, Auto-Submitted: auto-replied, Date, Message-ID, MIME-Version 1.0;
    multipart/report; report-type=delivery-status with three parts: text/plain (names the
    failed recipient, not the delivered one), message/delivery-status, text/rfc822-headers
    (the original header: Subject; no body);
  - delivery-status: Reporting-MTA: dns; <hostname>, Arrival-Date; one recipient block:
    Final-Recipient: rfc822; <rcpt>, Action: failed, Status: 5.1.1 (the sink's), Remote-MTA:
    dns; mx1.relay.example, Diagnostic-Code: smtp; <the sink's reply>, Last-Attempt-Date;
    no Original-Recipient (no ORCPT was given), no Will-Retry-Until;
  - the original leaves the queue only after the bounce was queued; the bounce is delivered
    and leaves the queue too; no notice for the bounce itself."""
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

SENDER = "alice@sender.example"
BAD = "bad@relay.example"
GOOD = "good@relay.example"
REPLY = "550 5.1.1 No such user here"


def scenario(ctx):
    port, dns, dns_port = sinks.start_bounce_world(ctx)
    mx1 = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx1", rcpt_replies={BAD: REPLY}))
    home = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "sender-mx"))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, retry=("1s", "1s", 1))).start()

    h.step("a message to one good and one refused recipient")
    original = (b"From: Alice <alice@sender.example>\r\nTo: bad@relay.example\r\n"
                b"Subject: bounce me please\r\nMessage-ID: <b50.1@sender.example>\r\n"
                b"Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\nThe body line 1.\r\n"
                b"The body line 2.\r\n")
    t_sent = time.time()
    qid = sinks.send(t, SENDER, [GOOD, BAD], original)
    print(f"  ..   queued as {qid}")
    d = sinks.wait_delivery(t, qid, BAD, "bounced", timeout=10)
    h.check_eq(d[0].dsn, "5.1.1", "log: bad@ bounced with dsn=5.1.1")
    sinks.wait_delivery(t, qid, GOOD, "sent", timeout=10)

    h.step("the bounce reaches the sender's MX")
    got = sinks.wait_bounces(home, 1, 15)
    time.sleep(2.0)  # longer than retry.max: a second notice would be here by now
    got = home.messages()
    h.check_eq(len(got), 1, "exactly one message at the sender's MX")
    b = got[0]
    h.check_eq(b.mail_from, "<>", "envelope sender is the null sender <>")
    h.check_eq(b.rcpt_tos, [SENDER], "envelope recipient is the original sender")
    h.check_eq(b.helo, h.HOSTNAME, "tern's EHLO name")
    h.assert_crlf_only(b.data, "the bounce")
    h.check(True, "the bounce has CRLF line ends only")
    h.check(all(len(line) <= 998 for line in b.data.split(b"\r\n")),
            "no line longer than 998 octets (RFC 5322 §2.1.1)")
    h.check(all(c < 0x80 for c in b.data), "the bounce is 7-bit (the original was ASCII)")

    rep = sinks.parse_report(b.data)
    print(f"  ..   {rep!r}")
    to = rep.header("To") or ""
    h.check(SENDER in to, "To: names the original sender", to)
    h.check_eq(rep.header("Auto-Submitted"), "auto-replied", "Auto-Submitted: auto-replied (RFC 3834)")
    h.check_eq(rep.header("MIME-Version"), "1.0", "MIME-Version: 1.0")
    when = sinks.rfc5322_date(rep.header("Date") or "", "Date:")
    h.check(abs(when - time.time()) < 60, "Date: is about now", rep.header("Date"))
    mid = rep.header("Message-ID") or ""
    h.check(re.match(r"^<[^<>@\s]+@[^<>@\s]+>$", mid) is not None, "Message-ID: is <left@right>", mid)
    h.check(rep.header("From") is not None, "From: present", rep.header("From"))
    h.check(rep.header("Subject") is not None, "Subject: present", rep.header("Subject"))
    h.check_eq(rep.content_type, "multipart/report", "Content-Type multipart/report")
    h.check_eq(rep.report_type, "delivery-status", "report-type=delivery-status")
    h.check_eq(rep.ctypes, ["text/plain", "message/delivery-status", "text/rfc822-headers"],
               "three parts: text/plain, message/delivery-status, text/rfc822-headers")
    h.check_eq([p.get_content_type() for p in rep.parts], rep.ctypes,
               "the email package sees the same three parts")

    h.step("the human-readable part")
    h.check(BAD in rep.human, "it names the failed recipient", rep.human[:400])
    h.check(GOOD not in rep.human, "it does not name the delivered recipient")
    h.check("No such user here" in rep.human, "it carries the remote reply")

    h.step("the delivery-status part")
    pm = rep.per_message
    h.check_eq(pm.get("reporting-mta"), f"dns; {h.HOSTNAME}", "Reporting-MTA: dns; <hostname>")
    arr = sinks.rfc5322_date(pm.get("arrival-date", ""), "Arrival-Date")
    h.check(abs(arr - t_sent) < 5, "Arrival-Date is when the message arrived", pm.get("arrival-date"))
    h.check("original-envelope-id" not in pm, "no Original-Envelope-Id (no ENVID given)")
    # The email package parses message/delivery-status into blocks of fields too.
    blocks = rep.parts[1].get_payload()
    h.check(isinstance(blocks, list) and len(blocks) == 2
            and str(blocks[0].get("Reporting-MTA", "")).strip() == f"dns; {h.HOSTNAME}",
            "email package: two field blocks, the first with Reporting-MTA",
            repr([dict(x.items()) for x in blocks] if isinstance(blocks, list) else blocks))
    h.check_eq(len(rep.recipients), 1, "exactly one recipient block (good@ was delivered)")
    r = rep.recipients[0]
    h.check_eq(r.get("final-recipient"), f"rfc822; {BAD}", "Final-Recipient: rfc822; <rcpt>")
    h.check_eq(r.get("action"), "failed", "Action: failed")
    h.check_eq(r.get("status"), "5.1.1", "Status: 5.1.1 (from the sink's reply)")
    h.check_eq(r.get("remote-mta"), "dns; mx1.relay.example", "Remote-MTA: dns; mx1.relay.example")
    diag = r.get("diagnostic-code", "")
    h.check(diag.lower().startswith("smtp;") and REPLY in diag,
            "Diagnostic-Code: smtp; with the remote reply", diag)
    last = sinks.rfc5322_date(r.get("last-attempt-date", ""), "Last-Attempt-Date")
    h.check(t_sent - 2 <= last <= time.time() + 2, "Last-Attempt-Date is the attempt's time",
            r.get("last-attempt-date"))
    h.check("original-recipient" not in r, "no Original-Recipient (no ORCPT given)")
    h.check("will-retry-until" not in r, "no Will-Retry-Until in a failure")

    h.step("the returned header")
    ctype, ret = rep.returned()
    hd = rep.returned_headers()
    h.check_eq(str(hd.get("Subject")), "bounce me please", "Subject of the original")
    h.check_eq(str(hd.get("Message-ID")), "<b50.1@sender.example>", "Message-ID of the original")
    h.check(hd.get("Received") is not None and qid in str(hd.get("Received")),
            "tern's Received: header (naming the id) is there", str(hd.get("Received")))
    h.check(b"The body line" not in ret, "no body in text/rfc822-headers")

    h.step("the queue")
    lines = sinks.notice_lines(t, qid)
    h.check_eq([(x[1], x[3], x[4]) for x in lines], [("bounce", SENDER, 1)],
               "log: one bounce queued for the original, to the sender, 1 recipient")
    notice = lines[0][2]
    log = t.log()
    i_queued = log.find(f"bounce: id={qid} bounce queued as {notice}")
    sinks.wait_until(lambda: sinks.removed(t, qid), 5, f"the original {qid} is removed")
    i_removed = t.log().find(f"queue: id={qid} removed")
    h.check(0 <= i_queued < i_removed, "the original was removed after the bounce was queued")
    ds = sinks.wait_delivery(t, notice, SENDER, "sent", timeout=10)
    h.check_eq(len(ds), 1, f"the bounce {notice} was delivered once")
    h.check(ds[0].relay.startswith("mx.sender.example[127.0.0.3]"), "to the sender's MX", repr(ds[0]))
    sinks.wait_queue_empty(t, 10, "the queue is empty (original and bounce gone)")
    h.check_eq(sinks.notice_lines(t, notice), [], "no notice about the bounce itself")
    h.check_eq(mx1.rcpt_counts(), {GOOD: 1}, "the recipient MX got the message for good@ only")
    h.check_eq(len(home.messages()), 1, "still exactly one message at the sender's MX")
    t.stop()


h.main(scenario)
