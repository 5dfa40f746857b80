#!/usr/bin/python3
"""When no bounce is owed, none is sent, and the message still leaves the queue:
  - mail from <> whose recipient fails (no bounce for a bounce, RFC 3461 §6.2 / RFC 5321
    §4.5.5; delivery.double_bounce is "drop", the postmaster hears nothing either);
  - a failing recipient with NOTIFY=NEVER, and one with NOTIFY=SUCCESS,DELAY (no FAILURE);
  - of two failing recipients, NOTIFY=NEVER and NOTIFY=FAILURE: one bounce naming only the
    second.
With delivery.double_bounce: postmaster (a second ternd), the failed mail from <> is
reported to the postmaster address instead.
Syntax (RFC 3461 §4): NOTIFY=NEVER with another value, unknown or empty NOTIFY values,
malformed xtext in ORCPT/ENVID ('+' not followed by two upper-case hex digits, '=' or a
space-less junk), ORCPT without "addr-type;", RET other than FULL/HDRS, a repeated RET:
501 5.5.4 each, and the session goes on. ENVID and ORCPT whose decoded value is not
printable US-ASCII ("+00", "+0D", "+80"): RFC 3461 §4.2/§4.4 say the value before xtext
encoding "MUST consist entirely of printable (graphic and white space) characters from
the US-ASCII repertoire" because the DSN format cannot carry anything else: 501 as well
for ENVID; ORCPT in well-formed xtext is accepted whatever it decodes to (real MTAs send
xtext-encoded UTF-8 there, issue 8 item 11)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

SENDER = "alice@sender.example"
POSTMASTER = "postmaster@sender.example"
REFUSE = "550 5.1.1 No such user here"


def scenario(ctx):
    soft = sinks.SoftChecks()

    port, dns, dns_port = sinks.start_bounce_world(ctx)
    sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx1", rcpt_replies={
        f"bad{i}@relay.example": REFUSE for i in range(1, 10)}))
    home = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "sender-mx"))
    over = sinks.delivery_overrides(port, dns_port, retry=("1s", "1s", 1))
    t = ctx.tern(postmaster=POSTMASTER, **over).start()
    over2 = sinks.delivery_overrides(port, dns_port, retry=("1s", "1s", 1), double_bounce="postmaster")
    t2 = ctx.tern("ternd-pm", postmaster=POSTMASTER, **over2).start()

    h.step("failures that owe no bounce")
    q_null = sinks.send(t, "", ["bad1@relay.example"], sinks.body("from the null sender"))
    q_never = sinks.raw_transaction(t, f"MAIL FROM:<{SENDER}>",
                          ["RCPT TO:<bad2@relay.example> NOTIFY=NEVER",
                           "RCPT TO:<bad3@relay.example> NOTIFY=SUCCESS,DELAY"],
                          sinks.body("never and success-delay"))
    q_mixed = sinks.raw_transaction(t, f"MAIL FROM:<{SENDER}>",
                          ["RCPT TO:<bad4@relay.example> NOTIFY=NEVER",
                           "RCPT TO:<bad5@relay.example> NOTIFY=FAILURE"],
                          sinks.body("never and failure"))
    q_pm = sinks.send(t2, "", ["bad6@relay.example"], sinks.body("double bounce to postmaster"))
    for q, r in ((q_null, "bad1"), (q_never, "bad2"), (q_never, "bad3"), (q_mixed, "bad4"),
                 (q_mixed, "bad5")):
        sinks.wait_delivery(t, q, f"{r}@relay.example", "bounced", timeout=10)
    sinks.wait_delivery(t2, q_pm, "bad6@relay.example", "bounced", timeout=10)
    for q, what in ((q_null, "from <>"), (q_never, "NOTIFY=NEVER / SUCCESS,DELAY"),
                    (q_mixed, "NEVER + FAILURE")):
        sinks.wait_until(lambda: sinks.removed(t, q), 5, f"{q} ({what}) left the queue")
        h.check(True, f"{q} ({what}) left the queue")
    sinks.wait_bounces(home, 2, 10)  # the mixed one's bounce and t2's postmaster notice
    time.sleep(2.5)                  # anything else owed (or not) would be here by now

    h.step("what arrived at sender.example")
    got = home.messages()
    for m in got:
        print(f"  ..   {m.mail_from} -> {m.rcpt_tos}: {sinks.parse_report(m.data)!r}")
    h.check_eq(len(got), 2, "exactly two notices: NEVER+FAILURE's bounce, the postmaster's")
    h.check_eq([x[1] for x in sinks.notice_lines(t, q_null)], [], "none for the mail from <>")
    h.check_eq([x[1] for x in sinks.notice_lines(t, q_never)], [], "none for NEVER / SUCCESS,DELAY")
    mixed = [m for m in got if str(sinks.parse_report(m.data).returned_subject()) == "never and failure"]
    h.check_eq(len(mixed), 1, "one bounce for NEVER + FAILURE")
    rep = sinks.parse_report(mixed[0].data)
    h.check_eq(mixed[0].rcpt_tos, [SENDER], "to the sender")
    h.check_eq([b.get("final-recipient") for b in rep.recipients], ["rfc822; bad5@relay.example"],
               "it names only the NOTIFY=FAILURE recipient")
    h.check("bad4@relay.example" not in rep.human, "the NOTIFY=NEVER one is not in the text")
    pm = [m for m in got if m.rcpt_tos == [POSTMASTER]]
    h.check_eq(len(pm), 1, "double_bounce: postmaster: one notice to the postmaster")
    rep = sinks.parse_report(pm[0].data)
    h.check_eq(pm[0].mail_from, "<>", "from <>")
    r = rep.rcpt("bad6@relay.example")
    h.check(r is not None and r.get("action") == "failed" and r.get("status") == "5.1.1",
            "it reports bad6@: Action: failed, Status: 5.1.1", repr(rep.recipients))
    h.check_eq(str(rep.returned_subject()), "double bounce to postmaster", "with the failed message's header")
    sinks.wait_queue_empty(t, 5, "first ternd: queue empty")
    sinks.wait_queue_empty(t2, 5, "second ternd: queue empty")
    t2.stop()

    h.step("DSN parameter syntax: 501 5.5.4")
    bad_rcpt = ["NOTIFY=NEVER,SUCCESS", "NOTIFY=FAILURE,NEVER", "NOTIFY=NEVER,NEVER,DELAY",
                "NOTIFY=BOGUS", "NOTIFY=", "NOTIFY=SUCCESS,,DELAY",
                "ORCPT=rfc822;a+2", "ORCPT=rfc822;a+ZZb@example", "ORCPT=rfc822;a+2bb@example",
                "ORCPT=rfc822;a=b@example", "ORCPT=rfc822a@example", "ORCPT=rfc822;",
                "NOTIFY=FAILURE NOTIFY=FAILURE"]
    bad_mail = ["ENVID=a+4", "ENVID=a+GGb", "ENVID=a+4f", "ENVID=a=b", "ENVID=",
                "RET=FOO", "RET=", "RET=FULL RET=HDRS", "ENVID=x ENVID=y"]
    for p in bad_rcpt:
        with t.session() as c:
            c.expect(f"MAIL FROM:<{SENDER}>", 250, "2.1.0")
            c.expect(f"RCPT TO:<x@relay.example> {p}", 501, "5.5.4")
            c.expect("RCPT TO:<x@relay.example> NOTIFY=FAILURE,DELAY ORCPT=rfc822;x@relay.example",
                     250, "2.1.5", what="then a good RCPT")
            c.expect("QUIT", 221)
    for p in bad_mail:
        with t.session() as c:
            c.expect(f"MAIL FROM:<{SENDER}> {p}", 501, "5.5.4")
            c.expect(f"MAIL FROM:<{SENDER}> RET=HDRS ENVID=ok+2Bid", 250, "2.1.0", what="then a good MAIL")
            c.expect("QUIT", 221)

    h.step("decoded values that are not printable US-ASCII (RFC 3461 §4.2, §4.4)")
    for p in ("ENVID=ctl+00id", "ENVID=line+0D+0Abreak", "ENVID=high+80bit"):
        with t.session() as c:
            r = c.cmd(f"MAIL FROM:<{SENDER}> {p}")
            print(f"  ..   MAIL ... {p} -> {r!r}")
            soft(r.code == 501, f"MAIL ... {p} -> 501", f"got {r!r}")
            c.cmd("QUIT")
    # ORCPT is different (issue 8 item 11): a recipient is never refused over an ORCPT that
    # is well-formed xtext, whatever it decodes to; real MTAs send xtext-encoded UTF-8 there.
    for p in ("ORCPT=rfc822;ctl+00x@example", "ORCPT=rfc822;line+0D+0Ax@example",
              "ORCPT=rfc822;high+C3+A9x@example"):
        with t.session() as c:
            c.expect(f"MAIL FROM:<{SENDER}>", 250, "2.1.0")
            r = c.cmd(f"RCPT TO:<x@relay.example> {p}")
            print(f"  ..   RCPT ... {p} -> {r!r}")
            soft(r.code == 250, f"RCPT ... {p} -> 250 (well-formed xtext is accepted)", f"got {r!r}")
            c.cmd("QUIT")

    h.step("what such values turn into when accepted: a NUL in the bounce?")
    with t.session() as c:
        r1 = c.cmd(f"MAIL FROM:<{SENDER}> ENVID=ctl+00id")
        if r1.code == 250:
            r2 = c.cmd("RCPT TO:<bad7@relay.example> ORCPT=rfc822;ctl+01x@example")
            if r2.code == 250:
                c.expect("DATA", 354)
                c.send(h.dot_stuff(sinks.body("control characters")))
                q_ctl = c.read_reply(timeout=15).queue_id()
                c.cmd("QUIT")
                m = sinks.wait_until(lambda: [m for m in sinks.bounces(home)
                                              if b"control characters" in m.data], 10,
                                     "the bounce for the control-character message")[0]
                rep = sinks.parse_report(m.data)
                ctl = sorted({f"0x{b:02x}" for b in rep.bodies[1] if b < 0x20 and b not in (0x0d, 0x0a)})
                print(f"  ..   {q_ctl}: its delivery-status part: {rep.bodies[1][:400]!r}")
                soft(not ctl, "the bounce's delivery-status part has no control characters",
                     f"it has {ctl} (from ENVID=ctl+00id / ORCPT=rfc822;ctl+01x@example)")
        else:
            h.check(True, "ENVID=ctl+00id refused: nothing to see")
    t.stop()
    soft.finish()


h.main(scenario)
