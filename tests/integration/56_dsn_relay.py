#!/usr/bin/python3
"""DSN parameters are passed on to a next hop that offers DSN, and a "relayed" notice is sent
when it does not (RFC 3461 §5.2, §6.2.2):
  - to dsn.example (127.0.0.4, announces DSN): the next hop's MAIL carries RET=HDRS and
    ENVID=abc, its RCPT NOTIFY=SUCCESS,DELAY and ORCPT=rfc822;Orig+2Bbob@client.example, each
    exactly as the client gave it; no notice comes back from tern (the next hop reports now);
  - a message without DSN parameters: none are invented;
  - to relay.example (127.0.0.2, no DSN): the message is delivered without the parameters and
    a notice reaches the sender's MX: Action: relayed, Status 2.x.x, Final-Recipient,
    Original-Recipient (decoded ORCPT), Original-Envelope-Id: abc, Remote-MTA, the header
    only (RET=HDRS); of two recipients only the NOTIFY=SUCCESS one is in it;
  - without NOTIFY (or NOTIFY=FAILURE) nothing is sent on success."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

SENDER = "alice@sender.example"




def tokens(arg):
    return arg.split()[1:]


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2", "127.0.0.3", "127.0.0.4"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("relay.example", "MX", (10, "mx1.relay.example")),
        ("mx1.relay.example", "A", "127.0.0.2"),
        ("sender.example", "MX", (10, "mx.sender.example")),
        ("mx.sender.example", "A", "127.0.0.3"),
        ("dsn.example", "MX", (10, "mx.dsn.example")),
        ("mx.dsn.example", "A", "127.0.0.4"),
    ])
    plain = sinks.add_sink(ctx, sinks.DsnSink("127.0.0.2", port, "mx1-nodsn", dsn=False))
    home = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "sender-mx"))
    dsn = sinks.add_sink(ctx, sinks.DsnSink("127.0.0.4", port, "mx-dsn"))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, retry=("1s", "1s", 1))).start()

    h.step("to a next hop that offers DSN: the parameters go along, raw")
    q1 = sinks.raw_transaction(t, f"MAIL FROM:<{SENDER}> RET=HDRS ENVID=abc",
                     ["RCPT TO:<bob@dsn.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Orig+2Bbob@client.example"],
                     sinks.body("to the dsn hop"))
    q2 = sinks.send(t, SENDER, ["carl@dsn.example"], sinks.body("no dsn parameters"))
    sinks.wait_delivery(t, q1, "bob@dsn.example", "sent", timeout=10)
    sinks.wait_delivery(t, q2, "carl@dsn.example", "sent", timeout=10)
    dsn.wait_messages(2, 5)
    ehlo = dsn.events("ehlo")
    h.check(len(ehlo) >= 1, "tern said EHLO to the DSN sink", repr(ehlo))
    mails, rcpts = dsn.mail_args(), dsn.rcpt_args()
    print(f"  ..   MAIL args at mx-dsn: {mails}")
    print(f"  ..   RCPT args at mx-dsn: {rcpts}")
    h.check_eq(len(mails), 2, "two MAIL commands")
    m1 = [a for a in mails if "RET=" in a or "ENVID=" in a]
    h.check_eq(len(m1), 1, "one MAIL with DSN parameters (the other had none)")
    toks = tokens(m1[0])
    h.check(m1[0].startswith(f"FROM:<{SENDER}>"), "MAIL FROM:<sender>", m1[0])
    h.check("RET=HDRS" in toks, "MAIL carries RET=HDRS", m1[0])
    h.check("ENVID=abc" in toks, "MAIL carries ENVID=abc (as given)", m1[0])
    r1 = [a for a in rcpts if "bob@dsn.example" in a]
    h.check_eq(len(r1), 1, "one RCPT for bob@")
    toks = tokens(r1[0])
    h.check("NOTIFY=SUCCESS,DELAY" in toks, "RCPT carries NOTIFY=SUCCESS,DELAY (as given)", r1[0])
    h.check("ORCPT=rfc822;Orig+2Bbob@client.example" in toks,
            "RCPT carries ORCPT=rfc822;Orig+2Bbob@client.example (as given, still xtext)", r1[0])
    m2 = [a for a in mails if a not in m1]
    r2 = [a for a in rcpts if "carl@dsn.example" in a]
    h.check(not any(x.split("=")[0].upper() in ("RET", "ENVID") for x in tokens(m2[0])),
            "the message without DSN parameters: none on its MAIL", m2[0])
    h.check(not any(x.split("=")[0].upper() in ("NOTIFY",) for x in tokens(r2[0])),
            "and no NOTIFY on its RCPT", r2[0])
    got = dsn.messages()
    h.check_eq(sorted(m.rcpt_tos[0] for m in got), ["bob@dsn.example", "carl@dsn.example"],
               "both delivered to the DSN sink")

    h.step("to a next hop without DSN: delivered plainly, then a relayed notice")
    q3 = sinks.raw_transaction(t, f"MAIL FROM:<{SENDER}> RET=HDRS ENVID=abc",
                     ["RCPT TO:<bob@relay.example> NOTIFY=SUCCESS,DELAY ORCPT=rfc822;Orig+2Bbob@client.example",
                      "RCPT TO:<dan@relay.example> NOTIFY=FAILURE",
                      "RCPT TO:<eve@relay.example>"],
                     sinks.body("to the plain hop", text="Body that stays home.\r\n"))
    for r in ("bob", "dan", "eve"):
        sinks.wait_delivery(t, q3, f"{r}@relay.example", "sent", timeout=10)
    plain.wait_messages(1, 5)
    h.check_eq(sorted(plain.messages()[0].rcpt_tos), ["bob@relay.example", "dan@relay.example",
                                                      "eve@relay.example"], "delivered to all three")
    bad = [a for a in plain.mail_args() + plain.rcpt_args()
           if any(x.split("=")[0].upper() in ("RET", "ENVID", "NOTIFY", "ORCPT") for x in tokens(a))]
    h.check_eq(bad, [], "no DSN parameter was sent to the hop that does not offer DSN")

    sinks.wait_bounces(home, 1, 10)
    time.sleep(2.0)  # a notice about the DSN hop's message would be here by now too
    got = home.messages()
    h.check_eq(len(got), 1, "exactly one notice at the sender's MX (none for the DSN hop)")
    h.check_eq([x[1] for x in sinks.notice_lines(t, q1)], [], "log: no notice for the DSN hop's message")
    h.check_eq([x[1] for x in sinks.notice_lines(t, q2)], [], "log: no notice without NOTIFY=SUCCESS")
    h.check_eq([(x[1], x[4]) for x in sinks.notice_lines(t, q3)], [("relayed notice", 1)],
               "log: one relayed notice for one recipient")
    m = got[0]
    h.check_eq((m.mail_from, m.rcpt_tos), ("<>", [SENDER]), "from <> to the sender")
    rep = sinks.parse_report(m.data)
    print(f"  ..   {rep!r}")
    h.check_eq((rep.content_type, rep.report_type), ("multipart/report", "delivery-status"),
               "multipart/report; report-type=delivery-status")
    h.check_eq(rep.header("Auto-Submitted"), "auto-replied", "Auto-Submitted: auto-replied")
    h.check_eq(rep.per_message.get("original-envelope-id"), "abc", "Original-Envelope-Id: abc")
    h.check_eq(rep.per_message.get("reporting-mta"), f"dns; {h.HOSTNAME}", "Reporting-MTA")
    h.check_eq(len(rep.recipients), 1, "one recipient block (dan@ FAILURE only, eve@ no NOTIFY)")
    r = rep.rcpt("bob@relay.example")
    h.check(r is not None, "Final-Recipient: rfc822; bob@relay.example", repr(rep.recipients))
    h.check_eq(r.get("action"), "relayed", "Action: relayed")
    st = r.get("status", "")
    h.check(st.startswith("2.") and st.count(".") == 2, "Status: 2.x.x", st)
    orc = r.get("original-recipient", "")
    h.check(orc.split(";", 1)[0].strip().lower() == "rfc822"
            and orc.split(";", 1)[-1].strip() == "Orig+bob@client.example",
            "Original-Recipient: rfc822;Orig+bob@client.example", orc)
    h.check_eq(r.get("remote-mta"), "dns; mx1.relay.example", "Remote-MTA: dns; mx1.relay.example")
    h.check("will-retry-until" not in r, "no Will-Retry-Until")
    ctype, body = rep.returned()
    h.check_eq(ctype, "text/rfc822-headers", "RET=HDRS: the header only")
    h.check(b"Subject: to the plain hop" in body and b"Body that stays home." not in body,
            "the original's header, not its body")
    h.check("bob@relay.example" in rep.human and "dan@relay.example" not in rep.human,
            "the human-readable part names bob@, not dan@")
    sinks.wait_queue_empty(t, 10, "queue empty")
    t.stop()


h.main(scenario)
