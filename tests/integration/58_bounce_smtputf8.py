#!/usr/bin/python3
"""An SMTPUTF8 message (RFC 6531) whose UTF-8 recipient is refused gets an internationalized
DSN (RFC 6533):
  - the bounce is sent with MAIL ... SMTPUTF8 (it carries a UTF-8 address) to the sender's MX;
  - multipart/report with report-type=global-delivery-status: RFC 6522 §3 "The report-type
    parameter identifies the type of report. The parameter is the MIME subtype of the second
    body part of the multipart/report", and that part is message/global-delivery-status;
  - Final-Recipient: utf-8; jösé@relay.example (RFC 6533 §3: the "utf-8" address type),
    Action: failed, Status: 5.1.1, Diagnostic-Code with the reply;
  - the third part is message/global-headers with the UTF-8 Subject as is.
Also the whole bounce is valid UTF-8, and each part holding 8-bit octets is labelled
Content-Transfer-Encoding: 8bit (RFC 2045 §6.1: an unlabelled part is 7bit)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

SENDER = "alice@sender.example"
RCPT = "jösé@relay.example"


def scenario(ctx):
    soft = sinks.SoftChecks()

    port, dns, dns_port = sinks.start_bounce_world(ctx)
    mx1 = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx1",
                                         rcpt_replies={RCPT: "550 5.1.1 Unbekannter Empfänger"}))
    home = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "sender-mx"))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, retry=("1s", "1s", 1))).start()

    h.step("an SMTPUTF8 message to a UTF-8 recipient that is refused")
    original = ("From: Alice <alice@sender.example>\r\nTo: jösé@relay.example\r\n"
                "Subject: grüße aus Köln\r\nMessage-ID: <b58@sender.example>\r\n"
                "Date: Tue, 25 Nov 2025 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
                "\r\nnaïve café\r\n").encode()
    with t.session() as c:
        c.expect(f"MAIL FROM:<{SENDER}> SMTPUTF8 BODY=8BITMIME", 250, "2.1.0")
        c.expect(f"RCPT TO:<{RCPT}>", 250, "2.1.5")
        c.expect("DATA", 354)
        c.send(h.dot_stuff(original))
        r = c.read_reply(timeout=15)
        h.expect_reply(r, 250, "2.0.0", "end of data")
        qid = r.queue_id()
        c.expect("QUIT", 221)
    d = sinks.wait_delivery(t, qid, RCPT, timeout=10)
    h.check(d[0].status == "bounced" and d[0].dsn == "5.1.1", "log: status=bounced dsn=5.1.1", repr(d[0]))
    h.check(any(e == ("rcpt", RCPT) for e in mx1.events("rcpt")), "the MX was offered the UTF-8 recipient")

    h.step("the bounce")
    sinks.wait_bounces(home, 1, 10)
    time.sleep(1.5)
    got = home.messages()
    h.check_eq(len(got), 1, "exactly one message at the sender's MX")
    b = got[0]
    h.check_eq((b.mail_from, b.rcpt_tos), ("<>", [SENDER]), "from <> to the sender")
    h.check("SMTPUTF8" in [o.upper() for o in b.mail_options], "sent with MAIL ... SMTPUTF8",
            repr(b.mail_options))
    try:
        b.data.decode("utf-8")
        h.check(True, "the bounce is valid UTF-8")
    except UnicodeDecodeError as e:
        h.check(False, "the bounce is valid UTF-8", str(e))
    rep = sinks.parse_report(b.data)
    print(f"  ..   {rep!r}")
    h.check_eq(rep.content_type, "multipart/report", "multipart/report")
    h.check_eq(rep.ctypes[:2], ["text/plain", "message/global-delivery-status"],
               "parts: text/plain, message/global-delivery-status")
    soft(rep.report_type == "global-delivery-status",
         "report-type=global-delivery-status (the subtype of the second part, RFC 6522 §3)",
         f"Content-Type: {rep.msg.get('Content-Type')!s} while the second part is "
         f"{rep.ctypes[1]}")
    h.check_eq(rep.per_message.get("reporting-mta"), f"dns; {h.HOSTNAME}", "Reporting-MTA")
    h.check_eq(len(rep.recipients), 1, "one recipient block")
    r = rep.recipients[0]
    h.check_eq(r.get("final-recipient"), f"utf-8; {RCPT}", "Final-Recipient: utf-8; jösé@relay.example")
    h.check_eq(r.get("action"), "failed", "Action: failed")
    h.check_eq(r.get("status"), "5.1.1", "Status: 5.1.1")
    h.check("Unbekannter Empfänger" in r.get("diagnostic-code", ""), "Diagnostic-Code with the reply",
            r.get("diagnostic-code"))
    h.check(RCPT in rep.human, "the human-readable part names the recipient")
    ctype, body = rep.returned()
    h.check_eq(ctype, "message/global-headers", "the third part is message/global-headers")
    h.check("Subject: grüße aus Köln\r\n".encode() in body, "with the UTF-8 Subject as is")
    h.check("naïve café".encode() not in body, "and no body")

    unlabelled = []
    for hd, body, ct in zip(rep.heads, rep.bodies, rep.ctypes):
        cte = (hd.get("Content-Transfer-Encoding") or "7bit").strip().lower()
        if any(c >= 0x80 for c in body) and cte not in ("8bit", "binary"):
            unlabelled.append(f"{ct} (Content-Transfer-Encoding {cte!r})")
    soft(not unlabelled, "every part with 8-bit octets says Content-Transfer-Encoding: 8bit "
         "(RFC 2045 §6.1: no label means 7bit)", "8-bit octets in " + ", ".join(unlabelled))

    sinks.wait_queue_empty(t, 10, "original and bounce left the queue")
    t.stop()
    soft.finish()


h.main(scenario)
