#!/usr/bin/python3
"""Issue 8 item 11: ORCPT as Postfix sends it for an SMTPUTF8 recipient
(ORCPT=rfc822;r+C3+BCck@..., xtext-encoded UTF-8) and in RFC 6533's utf-8 forms (raw UTF-8
under SMTPUTF8, and \\x{...} escapes) is accepted, stored in one form and passed on to a
DSN-capable next hop as pure-ASCII utf-8-addr-xtext; an ASCII ORCPT goes on as rfc822 +
xtext; an unusual address type or control characters are accepted, not refused; broken
xtext still gets 501."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

SENDER = "alice@sender.example"
RUCK = "r\u00fcck@dsn.example"
NORMAL = "ORCPT=utf-8;r\\x{FC}ck@dsn.example"


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.4"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("dsn.example", "MX", (10, "mx.dsn.example")),
        ("mx.dsn.example", "A", "127.0.0.4"),
    ])
    dsn = sinks.add_sink(ctx, sinks.DsnSink("127.0.0.4", port, "mx-dsn"))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port, retry=("1s", "1s", 1))).start()

    forms = ["rfc822;r+C3+BCck@dsn.example",        # Postfix
             "utf-8;r\u00fcck@dsn.example",          # RFC 6533 utf-8-addr-unitext
             "utf-8;r\\x{FC}ck@dsn.example"]         # RFC 6533 utf-8-addr-xtext
    qids = []
    for i, form in enumerate(forms):
        h.step(f"ORCPT={form} under SMTPUTF8")
        q = sinks.raw_transaction(t, f"MAIL FROM:<{SENDER}> SMTPUTF8",
                                  [f"RCPT TO:<{RUCK}> NOTIFY=FAILURE ORCPT={form}"],
                                  sinks.body(f"orcpt form {i}"))
        qids.append(q)

    h.step("ASCII and unusual ORCPT values are accepted")
    q_ascii = sinks.raw_transaction(t, f"MAIL FROM:<{SENDER}>",
                                    ["RCPT TO:<bob@dsn.example> ORCPT=RFC822;Bob+2Bx@client.example",
                                     "RCPT TO:<carl@dsn.example> ORCPT=x-unknown;some+01thing"],
                                    sinks.body("ascii orcpt"))
    with t.session() as c:
        c.expect(f"MAIL FROM:<{SENDER}>", 250)
        c.expect("RCPT TO:<dan@dsn.example> ORCPT=rfc822;dan+ZZ@x", 501, what="broken xtext")
        c.expect("RSET", 250)
        c.expect("QUIT", 221)

    h.step("the next hop receives the one normalised form")
    for q in qids:
        sinks.wait_delivery(t, q, RUCK, "sent", timeout=15)
    sinks.wait_delivery(t, q_ascii, "bob@dsn.example", "sent", timeout=15)
    sinks.wait_delivery(t, q_ascii, "carl@dsn.example", "sent", timeout=15)
    rcpts = dsn.rcpt_args()
    print(f"  ..   RCPT args at mx-dsn: {rcpts}")
    ruck = [a for a in rcpts if a.startswith(f"TO:<{RUCK}>")]
    h.check_eq(len(ruck), 3, "three RCPTs for the UTF-8 recipient")
    for a in ruck:
        h.check(a.split()[1:] == ["NOTIFY=FAILURE", NORMAL], "passed on as utf-8-addr-xtext", a)
    bob = [a for a in rcpts if a.startswith("TO:<bob@dsn.example>")]
    h.check(len(bob) == 1 and bob[0].split()[1:] == ["ORCPT=rfc822;Bob+2Bx@client.example"],
            "an ASCII ORCPT goes on as rfc822 + xtext", repr(bob))
    carl = [a for a in rcpts if a.startswith("TO:<carl@dsn.example>")]
    h.check(len(carl) == 1 and carl[0].split()[1:] == ["ORCPT=x-unknown;some+01thing"],
            "an unknown address type is kept", repr(carl))
    t.stop()


h.main(scenario)
