#!/usr/bin/python3
"""DSN parameters given to tern come back in its bounces (RFC 3461 §4, §6.3; RFC 3464):
  - ENVID=QQ+2Bid123 on MAIL: "Original-Envelope-Id: QQ+id123". The DSN field carries the
    decoded envelope id: RFC 3461 §4.4 restricts "the value of the ENVID parameter prior to
    encoding as xtext" to printable US-ASCII "due to limitations in the Delivery Status
    Notification format", i.e. the DSN carries the value before xtext encoding, and RFC 3464
    §2.2.1 makes it *text, case preserved.
  - ORCPT=rfc822;x+2By@example on RCPT: "Original-Recipient: rfc822;x+y@example" (decoded, the
    same reasoning with RFC 3461 §4.2); a recipient without ORCPT gets no Original-Recipient
    (RFC 3461 §6.3 (d)).
  - RET=FULL: the third part is message/rfc822 with the whole message (header and body,
    byte for byte what tern stored); RET=HDRS: text/rfc822-headers, header only.
  - RET=FULL of an 8BITMIME message with 8-bit body: the bounce carries 8-bit data, so it
    must be sent with BODY=8BITMIME (RFC 6152) and its message/rfc822 part labelled
    Content-Transfer-Encoding: 8bit (RFC 2045 §6.1: no label means 7bit)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

SENDER = "alice@sender.example"
REFUSE = "550 5.1.1 No such user here"


def scenario(ctx):
    soft = sinks.SoftChecks()

    port, dns, dns_port = sinks.start_bounce_world(ctx)
    sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx1", rcpt_replies={
        f"bad{i}@relay.example": REFUSE for i in range(1, 5)}))
    home = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "sender-mx"))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, retry=("1s", "1s", 1))).start()

    h.step("three messages whose recipients are refused")
    full = (b"From: alice@sender.example\r\nTo: bad1@relay.example\r\nSubject: return it all\r\n"
            b"Message-ID: <b51.full@sender.example>\r\nDate: Tue, 25 Nov 2025 10:00:00 +0000\r\n"
            b"\r\nFull body, first line.\r\n.dot line\r\nFull body, last line.\r\n")
    q_full = sinks.raw_transaction(t, f"MAIL FROM:<{SENDER}> RET=FULL ENVID=QQ+2Bid123",
                         ["RCPT TO:<bad1@relay.example> ORCPT=rfc822;x+2By@example",
                          "RCPT TO:<bad2@relay.example>"], full)
    hdrs = (b"From: alice@sender.example\r\nTo: bad3@relay.example\r\nSubject: headers only\r\n"
            b"Message-ID: <b51.hdrs@sender.example>\r\nDate: Tue, 25 Nov 2025 10:00:00 +0000\r\n"
            b"\r\nSecret body text.\r\n")
    q_hdrs = sinks.raw_transaction(t, f"MAIL FROM:<{SENDER}> RET=HDRS", ["RCPT TO:<bad3@relay.example>"], hdrs)
    eight = ("From: alice@sender.example\r\nTo: bad4@relay.example\r\nSubject: eight bit\r\n"
             "Message-ID: <b51.8bit@sender.example>\r\nDate: Tue, 25 Nov 2025 10:00:00 +0000\r\n"
             "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
             "Content-Transfer-Encoding: 8bit\r\n\r\nGrüße aus Köln.\r\n").encode()
    q_8bit = sinks.raw_transaction(t, f"MAIL FROM:<{SENDER}> BODY=8BITMIME RET=FULL",
                         ["RCPT TO:<bad4@relay.example>"], eight)
    print(f"  ..   queued {q_full} (RET=FULL), {q_hdrs} (RET=HDRS), {q_8bit} (8BITMIME, RET=FULL)")

    sinks.wait_bounces(home, 3, 15)
    time.sleep(1.5)
    got = {}
    for m in home.messages():
        rep = sinks.parse_report(m.data)
        got.setdefault(str(rep.returned_subject()), []).append((m, rep))
    h.check_eq(sorted((k, len(v)) for k, v in got.items()),
               [("eight bit", 1), ("headers only", 1), ("return it all", 1)],
               "one bounce per message (by the returned Subject)")

    h.step("RET=FULL, ENVID, ORCPT")
    m, rep = got["return it all"][0]
    pm = rep.per_message
    h.check_eq(pm.get("original-envelope-id"), "QQ+id123",
               "Original-Envelope-Id: the ENVID xtext-decoded (QQ+2Bid123 -> QQ+id123)")
    h.check_eq(len(rep.recipients), 2, "two recipient blocks (both refused)")
    r1, r2 = rep.rcpt("bad1@relay.example"), rep.rcpt("bad2@relay.example")
    h.check(r1 is not None and r2 is not None, "a block for bad1@ and for bad2@", repr(rep.recipients))
    orcpt = r1.get("original-recipient", "")
    typ, _, addr = orcpt.partition(";")
    h.check(typ.strip().lower() == "rfc822" and addr.strip() == "x+y@example",
            "bad1@: Original-Recipient: rfc822;x+y@example (xtext-decoded ORCPT)", repr(orcpt))
    h.check("original-recipient" not in r2, "bad2@ (no ORCPT): no Original-Recipient", repr(r2))
    for r in (r1, r2):
        h.check(r.get("action") == "failed" and r.get("status") == "5.1.1",
                f"{r.get('final-recipient')}: Action: failed, Status: 5.1.1", repr(r))
    ctype, body = rep.returned()
    h.check_eq(ctype, "message/rfc822", "RET=FULL: the third part is message/rfc822")
    stored_recv = body[:body.find(b"From: ")]
    h.check(stored_recv.startswith(b"Received: ") and q_full.encode() in stored_recv,
            "it starts with tern's Received: header", repr(stored_recv[:120]))
    h.check_eq(body[len(stored_recv):], full, "then the whole original, body included, byte for byte")
    inner = rep.parts[2].get_payload()
    inner = inner[0] if isinstance(inner, list) else inner
    h.check(str(inner.get("Subject")) == "return it all" and "Full body, last line." in inner.get_payload(),
            "the email package reads the returned message (Subject, body)")

    h.step("RET=HDRS")
    m, rep = got["headers only"][0]
    h.check("original-envelope-id" not in rep.per_message, "no ENVID given: no Original-Envelope-Id")
    h.check_eq(len(rep.recipients), 1, "one recipient block")
    h.check("original-recipient" not in rep.recipients[0], "no ORCPT given: no Original-Recipient")
    ctype, body = rep.returned()
    h.check_eq(ctype, "text/rfc822-headers", "RET=HDRS: the third part is text/rfc822-headers")
    h.check(b"Subject: headers only\r\n" in body and b"Message-ID: <b51.hdrs@sender.example>" in body,
            "the original header is there")
    h.check(b"Secret body text." not in body, "the body is not")

    h.step("RET=FULL of an 8-bit message")
    m, rep = got["eight bit"][0]
    ctype, body = rep.returned()
    h.check_eq(ctype, "message/rfc822", "the third part is message/rfc822")
    h.check("Grüße aus Köln.".encode() in body, "with the 8-bit body")
    soft(any(o.upper() == "BODY=8BITMIME" for o in m.mail_options),
         "the bounce (8-bit content) is sent with MAIL ... BODY=8BITMIME (RFC 6152)",
         f"MAIL parameters of the bounce: {m.mail_options}; the next hop announced 8BITMIME")
    cte = (rep.heads[2].get("Content-Transfer-Encoding") or "7bit").strip().lower()
    soft(cte in ("8bit", "binary"),
         "its message/rfc822 part is labelled Content-Transfer-Encoding: 8bit (RFC 2045 §6.1)",
         f"Content-Transfer-Encoding is {cte!r} (none given = 7bit) but the part has 8-bit octets")

    h.step("the queue")
    for q in (q_full, q_hdrs, q_8bit):
        h.check_eq([x[1] for x in sinks.notice_lines(t, q)], ["bounce"], f"{q}: one bounce queued")
    sinks.wait_queue_empty(t, 10, "originals and bounces have left the queue")
    t.stop()
    soft.finish()


h.main(scenario)
