#!/usr/bin/python3
"""Relay policy: what a client outside relay.networks (127.0.0.5) may send to, and the
postmaster rewrites; a client inside (127.0.0.1) may relay anywhere."""
import harness as h

OUTSIDE = "127.0.0.5"
MSG = (b"From: x@remote.example\r\nSubject: relay test\r\nMessage-ID: <r@remote.example>\r\n"
       b"Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\nbody\r\n")

CASES = [
    # (RCPT argument, code, enhanced, why)
    ("<user@victim.example>", 550, "5.7.1", "foreign domain"),
    ("<@partner.example:u@victim.example>", 550, "5.7.1", "source route via a relay domain"),
    ("<@partner.example,@other.example:u@victim.example>", 550, "5.7.1", "two-hop source route"),
    ("<u@[127.0.0.1]>", 550, "5.7.1", "address literal"),
    ("<u@[IPv6:::1]>", 550, "5.7.1", "IPv6 address literal"),
    ("<u@sub.partner.example>", 550, "5.7.1", "subdomain of a relay domain"),
    ("<u@partner.example.victim.example>", 550, "5.7.1", "relay domain as a prefix"),
    ("<u@xpartner.example>", 550, "5.7.1", "relay domain as a suffix"),
    ("<u%victim.example@partner.example>", 250, "2.1.5", "percent hack is just a local part"),
    ("<u@partner.example>", 250, "2.1.5", "relay domain"),
    ("<u@PARTNER.EXAMPLE.>", 250, "2.1.5", "relay domain, upper case + trailing dot"),
    ("<alice@other.example>", 250, "2.1.5", "listed recipient"),
    ("<BOB@Other.Example>", 250, "2.1.5", "listed recipient, other case"),
    ("<carol@other.example>", 550, "5.1.1", "unlisted recipient of a recipient-list domain"),
    ("<someone@relay.example.net>", 550, "5.1.1", "no mailboxes on tern's own name"),
    ("<someone@RELAY.example.net.>", 550, "5.1.1", "own name, other case + dot"),
]


def scenario(ctx):
    t = ctx.tern(limits={"max_errors": "100"})
    t.start()

    h.step(f"RCPT decisions for a client at {OUTSIDE} (not in relay.networks)")
    with t.session(source=OUTSIDE) as c:
        c.expect("MAIL FROM:<x@remote.example>", 250, "2.1.0")
        for arg, code, enh, why in CASES:
            c.expect(f"RCPT TO:{arg}", code, enh, what=f"RCPT TO:{arg} ({why})")
        c.expect("RSET", 250)

    h.step("the accepted relay-domain recipients are queued as given")
    with t.session(source=OUTSIDE) as c:
        c.expect("MAIL FROM:<x@remote.example>", 250)
        c.expect("RCPT TO:<u@PARTNER.EXAMPLE.>", 250, "2.1.5")
        c.expect("RCPT TO:<alice@other.example>", 250, "2.1.5")
        c.expect("RCPT TO:<victim@victim.example>", 550, "5.7.1")
        c.expect("DATA", 354)
        c.send(h.dot_stuff(MSG))
        r = c.read_reply()
        h.expect_reply(r, 250, "2.0.0", "message to the accepted recipients")
        qid = r.queue_id()
    m = t.queue()[qid]
    h.check_eq(m.rcpt_addresses(), ["u@PARTNER.EXAMPLE.", "alice@other.example"],
               "only the accepted recipients are in the queue file")
    h.check_eq(m.fields["client-relay"], "no", "client-relay no")

    h.step("<postmaster> (no domain) from anyone: rewritten to the postmaster address")
    with t.session(source=OUTSIDE) as c:
        r = h.send_raw_message(c, "x@remote.example", ["postmaster"], h.dot_stuff(MSG))
        qid = r.queue_id()
    m = t.queue()[qid]
    h.check_eq(m.rcpts, [{"address": h.POSTMASTER, "orig": "postmaster", "params": []}],
               f"rcpt <{h.POSTMASTER}> orig=<postmaster>")
    raw = open(f"{t.msg_dir()}/{qid}", "rb").read()
    h.check(f"\nrcpt <{h.POSTMASTER}> orig=<postmaster>\n".encode() in raw,
            "raw record reads 'rcpt <hostmaster@example.net> orig=<postmaster>'")

    h.step("postmaster@<own hostname> is accepted and goes to the postmaster address")
    with t.session(source=OUTSIDE) as c:
        c.expect("MAIL FROM:<x@remote.example>", 250)
        c.expect(f"RCPT TO:<postmaster@{h.HOSTNAME}>", 250, "2.1.5")
        c.expect(f"RCPT TO:<PostMaster@{h.HOSTNAME.upper()}.>", 250, "2.1.5")
        c.expect("RCPT TO:<Postmaster>", 250, "2.1.5")
        c.expect("DATA", 354)
        c.send(h.dot_stuff(MSG))
        r = c.read_reply()
        h.expect_reply(r, 250, "2.0.0", "message to postmaster@hostname")
        qid = r.queue_id()
    m = t.queue()[qid]
    h.check_eq(m.rcpt_addresses(), [h.POSTMASTER],
               "the three postmaster spellings become one recipient")
    h.check_eq(m.rcpts[0]["orig"], f"postmaster@{h.HOSTNAME}", "orig is what the client wrote")

    h.step("from 127.0.0.1 (in relay.networks) the same foreign domain is accepted")
    with t.session() as c:
        c.expect("MAIL FROM:<a@client.example>", 250)
        c.expect("RCPT TO:<user@victim.example>", 250, "2.1.5")
        c.expect("RCPT TO:<u@[127.0.0.1]>", 250, "2.1.5", what="address literal from a relay client")
        c.expect("RCPT TO:<carol@other.example>", 550, "5.1.1",
                 what="unlisted recipient is refused even for a relay client")
        c.expect("RCPT TO:<someone@relay.example.net>", 550, "5.1.1",
                 what="own name is refused even for a relay client")
        c.expect("DATA", 354)
        c.send(h.dot_stuff(MSG))
        r = c.read_reply()
        h.expect_reply(r, 250, "2.0.0", "relayed message")
        qid = r.queue_id()
    m = t.queue()[qid]
    h.check_eq(m.rcpt_addresses(), ["user@victim.example", "u@[127.0.0.1]"], "relayed recipients")
    h.check_eq(m.fields["client-relay"], "yes", "client-relay yes")

    h.check_eq(len(t.queue()), 4, "four messages queued in all")
    t.stop()


h.main(scenario)
