#!/usr/bin/python3
"""Delay warnings (RFC 3464 Action: delayed): delivery.delay_warning 2s, the recipients' MX
refuses connections, retry every 1 s, max_queue_time 1h. Each case has a domain of its own
(d1..d4.example, all MX 127.0.0.2) so that each message is attempted on its own:
  - a message with no NOTIFY, and one with NOTIFY=DELAY: exactly one delay notice each,
    Action: delayed, Status 4.x.x, Will-Retry-Until (arrival + max_queue_time), and still
    only one after several more retries and after a restart (SIGTERM, start again): the
    queue file has its delay-warned record;
  - NOTIFY=FAILURE (no DELAY): none, though it is retried as often;
  - a second ternd with delay_warning 0: none, though it is retried as often;
  - a third ternd (delay_warning 2s) with mail for one down domain only (d5.example): a
    message arrives, its first attempt fails, then two more messages for d5.example arrive.
    They are delayed just as long, so each is owed delivery attempts and its delay warning.
The originals stay queued (still being retried)."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

RCPT = "user@d1.example"




def by_rcpt(home):
    out = {}
    for m in sinks.bounces(home):
        out.setdefault(m.rcpt_tos[0], []).append(m)
    return out


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2", "127.0.0.3"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("d1.example", "MX", (10, "mx1.down.example")),
        ("d2.example", "MX", (10, "mx1.down.example")),
        ("d3.example", "MX", (10, "mx1.down.example")),
        ("d4.example", "MX", (10, "mx1.down.example")),
        ("d5.example", "MX", (10, "mx1.down.example")),
        ("mx1.down.example", "A", "127.0.0.2"),
        ("sender.example", "MX", (10, "mx.sender.example")),
        ("mx.sender.example", "A", "127.0.0.3"),
    ])
    home = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "sender-mx"))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, retry=("1s", "1s", 1),
                                            max_queue_time="1h", delay_warning="2s")).start()
    t0 = ctx.tern("ternd-nowarn", **sinks.delivery_overrides(port, dns_port, retry=("1s", "1s", 1),
                                                             max_queue_time="1h", delay_warning="0")).start()
    t5 = ctx.tern("ternd-d5", **sinks.delivery_overrides(port, dns_port, retry=("1s", "1s", 1),
                                                         max_queue_time="1h", delay_warning="2s")).start()

    h.step("messages for domains whose MX refuses connections")
    problems = []
    t_sent = time.time()
    q_plain = sinks.send(t, "alice@sender.example", [RCPT], sinks.body("no notify"))
    q5 = [sinks.send(t5, "frank@sender.example", ["user@d5.example"], sinks.body("d5 first"))]
    sinks.wait_delivery(t5, q5[0], "user@d5.example", "deferred", timeout=5)
    q5 += [sinks.send(t5, f"{who}@sender.example", [f"{who}@d5.example"], sinks.body(f"d5 {who}"))
           for who in ("gina", "hank")]
    q_delay = sinks.raw_transaction(t, "MAIL FROM:<bob@sender.example>",
                          ["RCPT TO:<user@d2.example> NOTIFY=DELAY,FAILURE"], sinks.body("notify delay"))
    q_fail = sinks.raw_transaction(t, "MAIL FROM:<carl@sender.example>",
                         ["RCPT TO:<user@d3.example> NOTIFY=FAILURE"], sinks.body("notify failure"))
    q_off = sinks.send(t0, "dora@sender.example", ["user@d4.example"], sinks.body("warnings off"))

    h.step("the delay warnings")
    sinks.wait_until(lambda: {"alice@sender.example", "bob@sender.example"} <= set(by_rcpt(home)),
                     10, "delay notices for alice@ and bob@")
    took = time.time() - t_sent
    h.check(1.5 <= took <= 6, f"they came after delay_warning 2s ({took:.1f}s)")
    for who, qid, subject, rcpt in (("alice@sender.example", q_plain, "no notify", RCPT),
                                    ("bob@sender.example", q_delay, "notify delay", "user@d2.example")):
        m = by_rcpt(home)[who][0]
        rep = sinks.parse_report(m.data)
        h.check_eq(m.mail_from, "<>", f"{who}: from <>")
        h.check_eq((rep.content_type, rep.report_type), ("multipart/report", "delivery-status"),
                   f"{who}: multipart/report; report-type=delivery-status")
        h.check_eq(len(rep.recipients), 1, f"{who}: one recipient block")
        r = rep.rcpt(rcpt)
        h.check(r is not None, f"{who}: Final-Recipient: rfc822; {rcpt}", repr(rep.recipients))
        h.check_eq(r.get("action"), "delayed", f"{who}: Action: delayed")
        st = r.get("status", "")
        h.check(st.startswith("4.") and st.count(".") == 2, f"{who}: Status: 4.x.x", st)
        wru = sinks.rfc5322_date(r.get("will-retry-until", ""), "Will-Retry-Until")
        arr = sinks.rfc5322_date(rep.per_message.get("arrival-date", ""), "Arrival-Date")
        h.check(abs(wru - (arr + 3600)) <= 2, f"{who}: Will-Retry-Until = arrival + max_queue_time",
                f"{r.get('will-retry-until')} vs Arrival-Date {rep.per_message.get('arrival-date')}")
        h.check(bool(r.get("diagnostic-code")), f"{who}: a Diagnostic-Code (why it is delayed)", repr(r))
        h.check_eq(str(rep.returned_subject()), subject, f"{who}: the original's header is returned")
        h.check(rcpt in rep.human, f"{who}: the human-readable part names the recipient")
        h.check(os.path.exists(os.path.join(t.msg_dir(), qid)), f"{who}: the original stays queued")

    h.step("more retries: no second warning")
    n_before = len(sinks.deliveries(t, q_delay, "user@d2.example", "deferred"))
    sinks.wait_delivery(t, q_delay, "user@d2.example", "deferred", count=n_before + 3, timeout=10)
    for qid in (q_plain, q_delay):
        qf = sinks.read_queue_file(os.path.join(t.msg_dir(), qid))
        h.check(qf is not None and len(qf.delay_warned) == 1, f"{qid}: one delay-warned record on disk",
                repr(qf and qf.delay_warned))
    qf = sinks.read_queue_file(os.path.join(t.msg_dir(), q_fail))
    h.check(qf is not None and not qf.delay_warned, f"{q_fail} (NOTIFY=FAILURE): no delay-warned record")

    h.step("restart (SIGTERM, start): still no second warning")
    t.stop()
    t.start()
    n_restart = len(sinks.deliveries(t, q_delay, "user@d2.example", "deferred"))
    sinks.wait_delivery(t, q_delay, "user@d2.example", "deferred", count=n_restart + 3, timeout=12)
    time.sleep(1.0)  # a notice queued by the last attempt would be delivered by now
    counts = {k: len(v) for k, v in by_rcpt(home).items()}
    print(f"  ..   notices per sender: {counts}")
    for q, what in ((q_plain, "no NOTIFY"), (q_delay, "NOTIFY=DELAY"), (q_fail, "NOTIFY=FAILURE")):
        print(f"  ..   {q} ({what}): {len(sinks.deliveries(t, q, status='deferred'))} attempt(s)")
    h.check_eq({k: v for k, v in counts.items() if not k.startswith(("frank@", "gina@", "hank@"))},
               {"alice@sender.example": 1, "bob@sender.example": 1},
               "exactly one delay notice each for no-NOTIFY and NOTIFY=DELAY; none for "
               "NOTIFY=FAILURE or with delay_warning 0")
    h.check_eq([x[1] for x in sinks.notice_lines(t, q_plain)], ["delay warning"],
               "log: one delay warning queued for the first message (across both runs)")
    h.check(len(sinks.deliveries(t, q_fail, status="deferred")) >= 5,
            "the NOTIFY=FAILURE message was retried as often")
    h.check_eq(sinks.notice_lines(t, q_fail), [], "log: none for NOTIFY=FAILURE")
    h.check(len(sinks.deliveries(t0, q_off, status="deferred")) >= 5,
            "the delay_warning 0 message was retried as often")
    h.check_eq(sinks.notice_lines(t0, q_off), [], "log: none with delay_warning 0")
    for tt, qs in ((t, (q_plain, q_delay, q_fail)), (t0, (q_off,))):
        for qid in qs:
            h.check(os.path.exists(os.path.join(tt.msg_dir(), qid)), f"{qid} is still queued")

    h.step("ternd-d5: two messages queued for d5.example after its first failure")
    age = time.time() - t_sent
    for q, who in zip(q5, ("frank", "gina", "hank")):
        n_att = len(sinks.deliveries(t5, q, status="deferred"))
        n_warn = counts.get(f"{who}@sender.example", 0)
        print(f"  ..   {q} ({who}@): {n_att} attempt(s), {n_warn} delay notice(s) after {age:.0f}s")
        if n_att >= 1 and n_warn == 1:
            h.check(True, f"{who}@'s message was attempted and got exactly one delay notice")
        else:
            problems.append(
                f"ternd-d5: message {q} for {who}@d5.example (arrived after d5.example's first failure) "
                f"got {n_att} delivery attempt(s) and {n_warn} delay notice(s) in {age:.0f}s "
                f"(delay_warning 2s, retry 1s) while {q5[0]} was attempted "
                f"{len(sinks.deliveries(t5, q5[0], status='deferred'))} times")
            print(f"  FAIL {problems[-1]}", flush=True)
    t5.stop()
    t.stop()
    t0.stop()
    if problems:
        h.fail("; ".join(problems))

h.main(scenario)
