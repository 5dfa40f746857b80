#!/usr/bin/python3
"""Inbound TLS (RFC 3207, RFC 8314), driven by real clients:
  - STARTTLS with swaks and with Python smtplib: offered in EHLO before TLS only, the client
    must EHLO again, the message is queued with protocol ESMTPS and a Received: line naming
    the TLS version and cipher, and the session's log line says tls=TLSv1.x;
  - implicit TLS on a `tls: implicit` listener (the greeting comes inside TLS);
  - the injection (CVE-2011-0411 class): "STARTTLS\\r\\nMAIL FROM:<a@b>\\r\\n" in one write
    gets the 220 and nothing else; inside TLS the injected MAIL never happened, so RCPT
    gets 503 and MAIL needs a new EHLO; a second STARTTLS gets 503;
  - SIGHUP swaps the certificate for new connections; a broken certificate file on reload
    keeps the running one (logged);
  - a private key readable by everyone is refused by --check, naming the file."""
import os
import smtplib
import ssl
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import certs  # noqa: E402
import harness as h  # noqa: E402
import sinks  # noqa: E402


def peer_cert(port, ca, implicit=False):
    """The DER certificate tern presents on `port`."""
    with h.SmtpConn(port) as c:
        if implicit:
            c.start_tls(ca.client_context())
        c.greet()
        if not implicit:
            c.expect("STARTTLS", 220, "2.0.0")
            c.start_tls(ca.client_context())
        return c.sock.getpeercert(binary_form=True)


def scenario(ctx):
    ca = certs.TestCA(ctx.path("ca"))
    first = ca.issue([h.HOSTNAME], tag="server")
    implicit_port = h.free_port()
    t = ctx.tern(tls={"cert": first.cert, "key": first.key},
                 routes={'"*"': "127.0.0.9:9"})  # nothing is delivered in this scenario
    t.config["listen"].append({"address": f"127.0.0.1:{implicit_port}", "tls": "implicit"})
    t.write_config()
    t.start()

    h.step("swaks over STARTTLS")
    out = subprocess.run(["swaks", "--server", f"127.0.0.1:{t.port}", "--tls", "--from", "a@client.example",
                          "--to", "x@partner.example", "--header", "Subject: swaks tls"],
                         capture_output=True, text=True, timeout=60)
    h.check(out.returncode == 0, "swaks --tls succeeded", out.stdout[-2000:] + out.stderr[-500:])
    h.check("TLS started with cipher TLSv1." in out.stdout, "swaks reports TLS", out.stdout[-1500:])
    h.check("<~  250 2.0.0 Ok: queued as " in out.stdout, "the message was queued inside TLS", out.stdout[-1500:])

    h.step("smtplib: STARTTLS offered before TLS only; EHLO again; ESMTPS in the queue file")
    with smtplib.SMTP("127.0.0.1", t.port, timeout=10) as s:
        s.ehlo("client.example")
        h.check(s.has_extn("starttls"), "EHLO offers STARTTLS before TLS")
        code, _ = s.starttls(context=ca.client_context())
        h.check_eq(code, 220, "STARTTLS reply")
        s.ehlo("client.example")
        h.check(not s.has_extn("starttls"), "EHLO inside TLS does not offer STARTTLS again")
        s.sendmail("a@client.example", ["y@partner.example"],
                   sinks.body("smtplib tls"))
    sinks.wait_until(lambda: any("y@partner.example" in q.rcpt_addresses()
                                 for q in t.queue().values()), 10, "the smtplib message is queued")
    msg = [q for q in t.queue().values() if "y@partner.example" in q.rcpt_addresses()][0]
    h.check_eq(msg.fields["protocol"], "ESMTPS", "queue file protocol")
    h.check(b"(using TLSv1." in msg.data and b" with cipher " in msg.data and b"with ESMTPS id" in msg.data,
            "Received: names TLS version, cipher and ESMTPS", msg.data[:400])
    t.wait_log("disconnect from [127.0.0.1] (session ended) messages=1 tls=TLSv1.", count=2)

    h.step("implicit TLS: the greeting comes inside TLS")
    with smtplib.SMTP_SSL("127.0.0.1", implicit_port, timeout=10, context=ca.client_context()) as s:
        code, _ = s.ehlo("client.example")
        h.check_eq(code, 250, "EHLO over implicit TLS")
        h.check(not s.has_extn("starttls"), "no STARTTLS on an implicit-TLS listener")
        s.sendmail("b@client.example", ["z@partner.example"], sinks.body("implicit tls"))
    sinks.wait_until(lambda: any("z@partner.example" in q.rcpt_addresses() for q in t.queue().values()), 10,
                     "the implicit-TLS message is queued")

    h.step("injection: commands pipelined after STARTTLS are discarded, never executed")
    with h.SmtpConn(t.port) as c:
        c.greet()
        c.send("STARTTLS\r\nMAIL FROM:<a@b.example>\r\n")
        c.expect(None, 220, "2.0.0", "the 220 to STARTTLS")
        h.check(c.silent_for(1.0), "nothing is answered for the injected MAIL before the handshake",
                repr(c.buf))
        c.start_tls(ca.client_context())
        c.expect("RCPT TO:<x@partner.example>", 503, None, "RCPT inside TLS: no MAIL happened")
        c.expect("MAIL FROM:<a@b.example>", 503, "5.5.1", "MAIL before the EHLO inside TLS")
        c.expect("EHLO client.example", 250)
        c.expect("STARTTLS", 503, "5.5.1", "a second STARTTLS")
        c.expect("MAIL FROM:<a@b.example>", 250, "2.1.0")
        c.expect("QUIT", 221)
    t.wait_log("sent after STARTTLS before the TLS handshake discarded")

    h.step("SIGHUP swaps the certificate; a broken one on reload keeps the running one")
    before = peer_cert(t.port, ca)
    second = ca.issue([h.HOSTNAME], tag="server2")
    os.replace(second.cert, first.cert)
    os.replace(second.key, first.key)
    t.reload()
    after = peer_cert(t.port, ca)
    h.check(after != before, "new connections get the new certificate after SIGHUP")
    h.check(peer_cert(implicit_port, ca, implicit=True) == after, "the implicit listener too")
    with open(first.cert, "w") as f:
        f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
    t.reload()
    t.wait_log("keeping the certificate in use")
    h.check(peer_cert(t.port, ca) == after, "the certificate in use stays after a bad reload")

    h.step("--check refuses a private key readable by every user")
    os.chmod(first.key, 0o644)
    out = subprocess.run([h.TERND, "--config", t.config_path, "--check"], capture_output=True, text=True,
                         timeout=30)
    h.check(out.returncode == 1, "--check exits 1", out.stdout + out.stderr)
    h.check(first.key in out.stderr and "accessible to other users" in out.stderr,
            "--check names the key file and why", out.stderr)


h.main(scenario)
