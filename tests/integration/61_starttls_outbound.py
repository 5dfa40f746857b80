#!/usr/bin/python3
"""Outbound TLS against real receiving servers (aiosmtpd with STARTTLS) and scripted peers:
  may.example      a sink offering STARTTLS: delivered over TLS (log tls=TLSv1.x; the sink
                   saw TLS);
  inject.example   a peer answering STARTTLS with "220 go\\r\\n250 x\\r\\n" in one write:
                   the connection is dropped, no MAIL is ever sent to it, deferred 4.7.x;
  broken.example   a sink whose TLS cannot be negotiated (TLS 1.1 at most): under `may`
                   the same address is retried at once in plaintext and the mail delivered;
  strict.example   the same broken sink under `encrypt` (tls_policy): deferred with a
                   4.7.5 reason naming the handshake, never delivered in plaintext;
  ok.example       `verify` with the test CA, certificate for mx.ok.example: delivered,
                   verified=pkix;
  wrong.example    `verify`, certificate for another name: deferred 4.7.5, not delivered;
  expired.example  `verify`, an expired certificate: deferred 4.7.5, not delivered."""
import os
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import certs  # noqa: E402
import harness as h  # noqa: E402
import sinks  # noqa: E402


def tls_sink(ctx, address, port, name, ca, names, **kw):
    ctx_ = ca.server_context(ca.issue(names, **kw))
    return sinks.add_sink(ctx, sinks.Sink(address, port, name, tls_context=ctx_))


def scenario(ctx):
    addrs = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6", "127.0.0.7"]
    port = sinks.pick_port(addrs)
    ca = certs.TestCA(ctx.path("ca"))
    records = []
    for dom, addr in [("may", "127.0.0.2"), ("inject", "127.0.0.3"), ("broken", "127.0.0.4"),
                      ("strict", "127.0.0.4"), ("ok", "127.0.0.5"), ("wrong", "127.0.0.6"),
                      ("expired", "127.0.0.7")]:
        records += [(f"{dom}.example", "MX", (10, f"mx.{dom}.example")), (f"mx.{dom}.example", "A", addr)]
    dns, dns_port = sinks.start_dns(ctx, records)

    may = tls_sink(ctx, "127.0.0.2", port, "may", ca, ["mx.may.example"])
    inject = sinks.add_sink(ctx, sinks.ScriptedSink("127.0.0.3", port, "inject",
                                                    starttls=b"220 go\r\n250 x\r\n"))
    old = ca.server_context(ca.issue(["mx.broken.example"]))
    old.maximum_version = ssl.TLSVersion.TLSv1_1  # below tern's floor: no handshake possible
    broken = sinks.add_sink(ctx, sinks.Sink("127.0.0.4", port, "broken", tls_context=old))
    ok = tls_sink(ctx, "127.0.0.5", port, "ok", ca, ["mx.ok.example"])
    wrong = tls_sink(ctx, "127.0.0.6", port, "wrong", ca, ["mx.elsewhere.example"])
    expired = tls_sink(ctx, "127.0.0.7", port, "expired", ca, ["mx.expired.example"], expired=True)

    over = sinks.delivery_overrides(port, dns_port, retry=("30s", "60s", 2), tls="may",
                                    tls_ca_file=ca.ca_file,
                                    tls_policy={"strict.example": "encrypt", "ok.example": "verify",
                                                "wrong.example": "verify", "expired.example": "verify"})
    t = ctx.tern(**over).start()

    h.step("may: delivered over STARTTLS")
    q = sinks.send(t, "a@client.example", ["u@may.example"], sinks.body("may"))
    d = sinks.wait_delivery(t, q, "u@may.example", "sent", timeout=20)[0]
    h.check(d.tls.startswith("TLSv1."), "log says tls=TLSv1.x", d.line)
    h.check_eq(d.verified, "pkix", "the test CA signed it for a name under the domain: verified=pkix (logged at may too)")
    m = may.wait_messages(1, 10)[0]
    h.check(m.tls is not None and m.tls.startswith("TLSv1."), "the sink received it inside TLS", repr(m.tls))

    h.step("STARTTLS injection: dropped, nothing sent over it")
    q = sinks.send(t, "a@client.example", ["u@inject.example"], sinks.body("inject"))
    d = sinks.wait_delivery(t, q, "u@inject.example", "deferred", timeout=20)[0]
    h.check(d.dsn.startswith("4.7."), "deferred with a 4.7.x status", d.line)
    h.check("injection" in d.reply, "the reason names the injection", d.line)
    h.check(inject.starttls_seen >= 1, "tern sent STARTTLS")
    with inject.lock:
        verbs = list(inject.verbs)
    h.check(not any(v.startswith(b"MAIL") or v.startswith(b"RCPT") for v in verbs),
            "no MAIL or RCPT reached the injecting peer", repr(verbs))
    h.check(not inject.finished(), "no message reached it")

    h.step("may + handshake failure: retried at once in plaintext and delivered")
    q = sinks.send(t, "a@client.example", ["u@broken.example"], sinks.body("broken"))
    d = sinks.wait_delivery(t, q, "u@broken.example", "sent", timeout=20)[0]
    h.check_eq(d.tls, "none", "delivered in plaintext")
    t.wait_log("TLS handshake failed")
    t.wait_log("retrying in plaintext")
    h.check(broken.messages()[0].tls is None, "the sink got it without TLS")

    h.step("encrypt + handshake failure: deferred 4.7.5, never plaintext")
    q = sinks.send(t, "a@client.example", ["u@strict.example"], sinks.body("strict"))
    d = sinks.wait_delivery(t, q, "u@strict.example", "deferred", timeout=20)[0]
    h.check_eq(d.dsn, "4.7.5", "deferred with 4.7.5")
    h.check("TLS handshake failed" in d.reply, "the reason names the handshake", d.line)
    h.check(not any("u@strict.example" in r for m in broken.messages() for r in m.rcpt_tos),
            "nothing for strict.example reached the sink")

    h.step("verify: right name delivered; wrong name and expired certificate deferred")
    q = sinks.send(t, "a@client.example", ["u@ok.example"], sinks.body("ok"))
    d = sinks.wait_delivery(t, q, "u@ok.example", "sent", timeout=20)[0]
    h.check_eq(d.verified, "pkix", "verified=pkix")
    ok.wait_messages(1, 10)
    for dom, sink, why in [("wrong", wrong, "mismatch"), ("expired", expired, "expired")]:
        q = sinks.send(t, "a@client.example", [f"u@{dom}.example"], sinks.body(dom))
        d = sinks.wait_delivery(t, q, f"u@{dom}.example", "deferred", timeout=20)[0]
        h.check_eq(d.dsn, "4.7.5", f"{dom}: deferred with 4.7.5")
        h.check("certificate verification failed" in d.reply and why in d.reply,
                f"{dom}: the reason names the verification failure", d.line)
        h.check(not sink.messages(), f"{dom}: nothing was delivered")


h.main(scenario)
