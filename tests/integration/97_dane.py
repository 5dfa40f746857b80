#!/usr/bin/python3
"""DANE (RFC 7672) against a DNSSEC-signed zone served by NSD, signed at test time, with its
KSK as ternd's trust anchor; real aiosmtpd sinks on loopback:
  ee.dane.example        TLSA 3 1 1 of the sink's key: delivered, verified=dane-ee, the
                         matched record logged;
  mismatch.dane.example  TLSA 3 1 1 of another key: deferred 4.7.5, never delivered;
  ta.dane.example        TLSA 2 0 1 of the test CA (the sink sends it in its chain; the CA is
                         in no store tern uses): delivered, verified=dane-ta;
  taname.dane.example    the same 2 0 1 record for an MX host the certificate does not name:
                         deferred (DANE-TA checks the name);
  notlsa.dane.example    a secure zone with no TLSA records at a sink without STARTTLS:
                         `may`, delivered in plaintext;
  bogus.dane.example     its TLSA record edited after signing: the lookup is bogus, the host
                         is skipped, deferred, never delivered;
  pkix.dane.example      MX 10 has only a PKIX-EE (usage 1) record and no STARTTLS: TLS is
                         still required there, so it is passed over for MX 20;
and a second ternd whose forwarder strips DNSSEC (an unsigned copy of the zone on the test's
plain DNS server): the start-up probe logs "DANE disabled" and mail is still delivered."""
import hashlib
import os
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import certs  # noqa: E402
import harness as h  # noqa: E402
import signedzone  # noqa: E402
import sinks  # noqa: E402
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import serialization  # noqa: E402


def spki_sha256(pem_path):
    cert = x509.load_pem_x509_certificate(open(pem_path, "rb").read())
    der = cert.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def scenario(ctx):
    missing = signedzone.available()
    if missing:
        print(f"  SKIP: {missing} not installed (packaging/deps.sh test installs them)")
        return "SKIP"
    port = sinks.pick_port(["127.0.0.2", "127.0.0.3"])
    ca = certs.TestCA(ctx.path("ca"))
    names = [f"mx-{n}.dane.example" for n in ("ee", "bad", "ta", "bogus", "ee2")]
    leaf = ca.issue(names)
    # The chain the sink presents: leaf, then the CA (DANE-TA needs the anchor in the chain).
    chain = ctx.path("ca", "chain.pem")
    with open(chain, "wb") as f:
        f.write(open(leaf.cert, "rb").read() + open(ca.ca_file, "rb").read())
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(chain, leaf.key)
    tls_sink = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "tls", tls_context=server_ctx))
    plain_sink = sinks.add_sink(ctx, sinks.Sink("127.0.0.3", port, "plain"))

    good = spki_sha256(leaf.cert)
    wrong = hashlib.sha256(b"another key").hexdigest()
    ca_digest = hashlib.sha256(x509.load_pem_x509_certificate(open(ca.ca_file, "rb").read())
                               .public_bytes(serialization.Encoding.DER)).hexdigest()
    records = [
        "ee IN MX 10 mx-ee", "mx-ee IN A 127.0.0.2", f"_{port}._tcp.mx-ee IN TLSA 3 1 1 {good}",
        "mismatch IN MX 10 mx-bad", "mx-bad IN A 127.0.0.2", f"_{port}._tcp.mx-bad IN TLSA 3 1 1 {wrong}",
        "ta IN MX 10 mx-ta", "mx-ta IN A 127.0.0.2", f"_{port}._tcp.mx-ta IN TLSA 2 0 1 {ca_digest}",
        "taname IN MX 10 mx-other", "mx-other IN A 127.0.0.2", f"_{port}._tcp.mx-other IN TLSA 2 0 1 {ca_digest}",
        "notlsa IN MX 10 mx-plain", "mx-plain IN A 127.0.0.3",
        "bogus IN MX 10 mx-bogus", "mx-bogus IN A 127.0.0.2", f"_{port}._tcp.mx-bogus IN TLSA 3 1 1 {good}",
        "pkix IN MX 10 mx-p", "pkix IN MX 20 mx-ee2", "mx-p IN A 127.0.0.3", "mx-ee2 IN A 127.0.0.2",
        f"_{port}._tcp.mx-p IN TLSA 1 1 1 {good}",
    ]
    zone = signedzone.SignedZone(ctx, "dane.example", records,
                                 tamper=[(f"_{port}._tcp.mx-bogus", "TLSA", f"3 1 1 {wrong}")])

    over = sinks.delivery_overrides(port, zone.port, retry=("60s", "120s", 2), tls="dane")
    over["dns"]["trust_anchor"] = zone.trust_anchor
    t = ctx.tern(**over).start()
    t.wait_log('DNSSEC validation on: the trust anchor\'s zone "dane.example" validates', timeout=20)

    def sent(domain, subject):
        q = sinks.send(t, "a@client.example", [f"u@{domain}"], sinks.body(subject))
        return q

    h.step("DANE-EE: 3 1 1 of the sink's key delivers, authenticated by the record")
    q = sent("ee.dane.example", "ee")
    d = sinks.wait_delivery(t, q, "u@ee.dane.example", "sent", timeout=30)[0]
    h.check(d.tls.startswith("TLSv1."), "over TLS", d.line)
    h.check_eq(d.verified, "dane-ee", "verified=dane-ee")
    h.check(d.tlsa is not None and d.tlsa.startswith("3 1 1 " + good[:16]), "the matched record is logged", d.line)

    h.step("a TLSA record for another key: deferred 4.7.5, never delivered")
    q = sent("mismatch.dane.example", "mismatch")
    d = sinks.wait_delivery(t, q, "u@mismatch.dane.example", "deferred", timeout=30)[0]
    h.check(d.dsn.startswith("4.7."), "deferred with a 4.7.x status", d.line)
    h.check("DANE" in d.reply, "the reason names DANE", d.line)

    h.step("DANE-TA: 2 0 1 of the test CA delivers, with the MX host name checked")
    q = sent("ta.dane.example", "ta")
    d = sinks.wait_delivery(t, q, "u@ta.dane.example", "sent", timeout=30)[0]
    h.check_eq(d.verified, "dane-ta", "verified=dane-ta")
    h.check(d.tlsa is not None and d.tlsa.startswith("2 0 1 "), "the CA's record matched", d.line)

    h.step("DANE-TA checks the name: the CA's record, but a certificate without the MX host's name")
    q = sent("taname.dane.example", "taname")
    d = sinks.wait_delivery(t, q, "u@taname.dane.example", "deferred", timeout=30)[0]
    h.check(d.dsn.startswith("4.7.") and "DANE" in d.reply, "deferred: DANE authentication failed", d.line)

    h.step("a secure zone without TLSA records: may (plaintext to a sink without STARTTLS)")
    q = sent("notlsa.dane.example", "notlsa")
    d = sinks.wait_delivery(t, q, "u@notlsa.dane.example", "sent", timeout=30)[0]
    h.check_eq(d.tls, "none", "delivered in plaintext")

    h.step("a TLSA record edited after signing: bogus, the host is skipped, deferred")
    q = sent("bogus.dane.example", "bogus")
    d = sinks.wait_delivery(t, q, "u@bogus.dane.example", "deferred", timeout=30)[0]
    h.check("TLSA lookup failed" in d.reply, "the reason is the TLSA lookup", d.line)
    t.wait_log("dane=unusable", timeout=5)

    h.step("only a usage-1 record: TLS is required, the plaintext MX 10 is passed over for MX 20")
    q = sent("pkix.dane.example", "pkix")
    d = sinks.wait_delivery(t, q, "u@pkix.dane.example", "sent", timeout=30)[0]
    h.check(d.relay.startswith("mx-ee2.dane.example[127.0.0.2]"), "delivered by MX 20", d.line)
    t.wait_log("host=mx-p.dane.example address=127.0.0.3", timeout=5)
    h.check("does not offer STARTTLS" in t.log(), "MX 10 failed for lack of STARTTLS")

    subjects = lambda sink: [m.header("Subject") for m in sink.messages()]  # noqa: E731
    h.check_eq(sorted(subjects(tls_sink)), ["ee", "pkix", "ta"], "the TLS sink got exactly the authenticated ones")
    h.check_eq(subjects(plain_sink), ["notlsa"], "the plaintext sink got only the no-TLSA one")

    h.step("a forwarder that strips DNSSEC: the probe turns validation off, mail still flows")
    unsigned = [("strip.example", "MX", (10, "mx.strip.example")), ("mx.strip.example", "A", "127.0.0.3"),
                ("dane.example", "A", "127.0.0.9")]
    _, plain_dns = sinks.start_dns(ctx, unsigned)
    over2 = sinks.delivery_overrides(port, plain_dns, retry=("60s", "120s", 2), tls="dane")
    over2["dns"]["trust_anchor"] = zone.trust_anchor
    t2 = ctx.tern("stripped", **over2).start()
    t2.wait_log("DANE disabled", timeout=30)
    h.check('zone "dane.example" does not validate' in t2.log(), "the log line names the anchor's zone",
            t2.log_tail(5))
    q = sinks.send(t2, "a@client.example", ["u@strip.example"], sinks.body("strip"))
    sinks.wait_delivery(t2, q, "u@strip.example", "sent", timeout=30)
    h.check("strip" in subjects(plain_sink), "delivered without validation")
    t2.reload()
    t2.wait_log("DANE disabled", count=2, timeout=30)  # SIGHUP checks again


if __name__ == "__main__":
    h.main(scenario)
