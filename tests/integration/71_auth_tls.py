#!/usr/bin/python3
"""SMTP AUTH inside TLS (RFC 4954, issue 9), with real clients:
  - swaks --tls --auth PLAIN and --auth LOGIN from a client outside relay.networks: 235, and
    the message to a foreign domain is queued (relaying after AUTH) with protocol ESMTPSA;
  - Python smtplib: starttls() + login() (PLAIN), and LOGIN without an initial response;
  - a wrong password gets 535 5.7.8; "*" cancels with 501 5.7.0; bad base64 501 5.5.2;
  - inside TLS an outside client still cannot relay before AUTH, and can after it;
  - three failures on one connection: 421 and close, each failure logged with address and
    user, never the password; the third answer is held back by the per-address delay;
  - an auth: required listener refuses MAIL (530 5.7.0) from 127.0.0.1 until AUTH, and an
    implicit-TLS one offers AUTH in its first EHLO;
  - a missing users file gives 454 4.7.0 (and a log line), its return makes AUTH work again;
  - a user added to the users file works at once, without a reload;
  - the user name is not in Received: (auth.show_user is off) but is in the session log."""
import base64
import os
import smtplib
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import auth_helpers as a  # noqa: E402
import certs  # noqa: E402
import harness as h  # noqa: E402
import sinks  # noqa: E402

OUTSIDE = "127.0.0.5"    # not in relay.networks (127.0.0.1/32)
GUESSER = "127.0.0.6"    # its own failure count
USERS = {"app@example.net": "app-pw-7f3c", "alice": "alice pw with spaces"}


def b64(text):
    return base64.b64encode(text.encode()).decode()


def swaks(t, mech, user, password, to, source=OUTSIDE):
    return subprocess.run(["swaks", "--server", f"127.0.0.1:{t.port}", "--local-interface", source,
                           "--tls", "--auth", mech, "--auth-user", user, "--auth-password", password,
                           "--from", "app@example.net", "--to", to, "--header", f"Subject: swaks {mech}"],
                          capture_output=True, text=True, timeout=60)


def queued_for(t, rcpt):
    return sinks.wait_until(lambda: [q for q in t.queue().values() if rcpt in q.rcpt_addresses()], 10,
                            f"the message to {rcpt} is queued")[0]


def tls_session(t, ca, port=None, source=None):
    c = h.SmtpConn(port or t.port, source=source)
    c.greet()
    c.expect("STARTTLS", 220, "2.0.0")
    c.start_tls(ca.client_context())
    c.expect("EHLO client.example", 250)
    return c


def scenario(ctx):
    ca = certs.TestCA(ctx.path("ca"))
    cert = ca.issue([h.HOSTNAME], tag="server")
    t = a.auth_tern(ctx, USERS, required_listener=True, tls={"cert": cert.cert, "key": cert.key},
                    routes={'"*"': "127.0.0.9:9"})  # nothing is delivered in this scenario
    implicit_port = h.free_port()
    t.config["listen"].append({"address": f"127.0.0.1:{implicit_port}", "tls": "implicit", "auth": "required"})
    t.write_config()
    t.start()

    h.step("swaks --tls --auth PLAIN from outside relay.networks: 235, relays to a foreign domain")
    out = swaks(t, "PLAIN", "app@example.net", USERS["app@example.net"], "x1@far.example")
    h.check(out.returncode == 0, "swaks AUTH PLAIN succeeded", out.stdout[-2500:] + out.stderr[-500:])
    h.check("<~  235 2.7.0 Authentication successful" in out.stdout, "235 2.7.0", out.stdout[-2000:])
    m = queued_for(t, "x1@far.example")
    h.check_eq(m.fields["protocol"], "ESMTPSA", "queue file protocol (RFC 3848)")
    h.check(b"with ESMTPSA id" in m.data, "Received: says with ESMTPSA", m.data[:400])
    received = m.data.split(b"\r\n\r\n")[0].split(b"\r\nFrom:")[0]
    h.check(b"authenticated" not in received and b"app@example.net" not in received,
            "the user name is not in Received: without auth.show_user", received)

    h.step("swaks --tls --auth LOGIN")
    out = swaks(t, "LOGIN", "alice", USERS["alice"], "x2@far.example")
    h.check(out.returncode == 0, "swaks AUTH LOGIN succeeded", out.stdout[-2500:] + out.stderr[-500:])
    h.check("334 VXNlcm5hbWU6" in out.stdout and "334 UGFzc3dvcmQ6" in out.stdout,
            "LOGIN asks Username: and Password:", out.stdout[-2000:])
    queued_for(t, "x2@far.example")

    h.step("swaks with a wrong password: 535 5.7.8, nothing queued")
    out = swaks(t, "PLAIN", "alice", "not-alice-pw", "x3@far.example")
    h.check(out.returncode != 0, "swaks reports the failure")
    h.check("535 5.7.8 Authentication credentials invalid" in out.stdout, "535 5.7.8", out.stdout[-2000:])
    t.wait_log(f"client=[{OUTSIDE}] auth failed: user=alice")

    h.step("smtplib: starttls() + login() (PLAIN), then LOGIN without an initial response")
    with smtplib.SMTP("127.0.0.1", t.port, timeout=30, source_address=(OUTSIDE, 0)) as s:
        s.ehlo("client.example")
        h.check(not s.has_extn("auth"), "no AUTH in EHLO before TLS")
        s.starttls(context=ca.client_context())
        s.ehlo("client.example")
        h.check_eq(sorted(s.esmtp_features.get("auth", "").split()), ["LOGIN", "PLAIN"], "AUTH PLAIN LOGIN after TLS")
        code, _ = s.login("app@example.net", USERS["app@example.net"])
        h.check_eq(code, 235, "smtplib login()")
        s.sendmail("app@example.net", ["x4@far.example"], sinks.body("smtplib auth"))
    queued_for(t, "x4@far.example")
    with smtplib.SMTP("127.0.0.1", t.port, timeout=30, source_address=(OUTSIDE, 0)) as s:
        s.starttls(context=ca.client_context())
        s.ehlo("client.example")
        s.user, s.password = "alice", USERS["alice"]
        code, _ = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        h.check_eq(code, 235, "AUTH LOGIN, user name and password both as 334 answers")

    h.step("inside TLS: cancel, bad base64, unknown mechanism; relaying only after AUTH")
    with tls_session(t, ca, source=OUTSIDE) as c:
        c.expect("AUTH LOGIN", 334, what="AUTH LOGIN")
        c.expect("*", 501, "5.7.0", "'*' cancels")
        c.expect("AUTH PLAIN", 334)
        c.expect("!!not-base64!!", 501, "5.5.2", "bad base64")
        c.expect("AUTH CRAM-MD5", 504, "5.5.4", "an unoffered mechanism")
        c.expect("MAIL FROM:<app@example.net>", 250)
        c.expect("RCPT TO:<y@far.example>", 550, "5.7.1", "no relaying before AUTH, even inside TLS")
        c.expect("AUTH PLAIN", 503, "5.5.1", "AUTH inside a mail transaction")
        c.expect("RSET", 250)
        plain = b64("\0app@example.net\0" + USERS["app@example.net"])
        c.expect(f"AUTH PLAIN {plain}", 235, "2.7.0", "AUTH PLAIN with an initial response")
        c.expect(f"AUTH PLAIN {plain}", 503, "5.5.1", "a second AUTH")
        c.expect("MAIL FROM:<app@example.net>", 250)
        c.expect("RCPT TO:<y@far.example>", 250, "2.1.5", "relaying after AUTH")
        c.expect("QUIT", 221)
    t.wait_log("auth ok: user=app@example.net", count=3)
    t.wait_log("user=app@example.net duration=")

    h.step(f"three failures from {GUESSER}: 535, 535, 535 + 421; each held back longer")
    with tls_session(t, ca, source=GUESSER) as c:
        took = []
        for i in range(3):
            start = time.monotonic()
            c.send("AUTH LOGIN\r\n")
            h.expect_reply(c.read_reply(), 334)
            c.send(b64("mallory") + "\r\n")
            h.expect_reply(c.read_reply(), 334)
            c.send(b64("guess-password") + "\r\n")
            r = c.read_reply(timeout=60)
            took.append(time.monotonic() - start)
            h.expect_reply(r, 535, "5.7.8", f"failure {i + 1}")
        h.expect_reply(c.read_reply(), 421, "4.7.0", "the third failure closes the connection")
        c.wait_closed()
    # The delay doubles per failure from the address (0.5 s, 1 s, 2 s): only a lower bound.
    h.check(took[2] >= 1.5, "the third 535 was held back by the per-address delay", f"{took}")
    # The log is written by its own thread: wait for the third line rather than race it.
    t.wait_log(f"client=[{GUESSER}] auth failed: user=mallory", count=3, timeout=10)
    h.check(t.log().count(f"client=[{GUESSER}] auth failed: user=mallory") == 3,
            "each failure logged with the client's address and the user name")
    log = t.log()
    for secret in list(USERS.values()) + ["guess-password", "not-alice-pw", b64("guess-password"), plain]:
        h.check(secret not in log, f"{secret[:12]}... never appears in the log")

    h.step("auth: required listener: 530 before AUTH from 127.0.0.1, accepted after it")
    with tls_session(t, ca, port=t.submission_port) as c:
        c.expect("MAIL FROM:<app@example.net>", 530, "5.7.0", "MAIL before AUTH, even from relay.networks")
        c.expect(f"AUTH PLAIN {plain}", 235, "2.7.0")
        c.expect("MAIL FROM:<app@example.net>", 250, "2.1.0", "MAIL after AUTH")
        c.expect("QUIT", 221)

    h.step("implicit TLS with auth: required (port 465 style): AUTH offered at once, MAIL after it")
    with smtplib.SMTP_SSL("127.0.0.1", implicit_port, timeout=30, context=ca.client_context(),
                          source_address=(OUTSIDE, 0)) as s:
        s.ehlo("client.example")
        h.check_eq(sorted(s.esmtp_features.get("auth", "").split()), ["LOGIN", "PLAIN"],
                   "AUTH in the first EHLO on an implicit-TLS listener")
        code, _ = s.mail("app@example.net")
        h.check_eq(code, 530, "MAIL before AUTH on the auth: required implicit-TLS listener")
        s.rset()
        s.login("alice", USERS["alice"])
        s.sendmail("app@example.net", ["x5@far.example"], sinks.body("implicit tls auth"))
    h.check_eq(queued_for(t, "x5@far.example").fields["protocol"], "ESMTPSA", "protocol over implicit TLS")

    h.step("the users file gone: 454 4.7.0 (temporary), logged; back: AUTH works again")
    users = t.config["auth"]["users_file"]
    os.rename(users, users + ".away")
    with tls_session(t, ca) as c:
        c.expect(f"AUTH PLAIN {plain}", 454, "4.7.0", "AUTH while the users file is missing")
        t.wait_log("smtpd: auth: " + users + ": cannot stat users file")
        os.rename(users + ".away", users)
        c.expect(f"AUTH PLAIN {plain}", 235, "2.7.0", "AUTH once the file is back")

    h.step("a user added to the users file can log in at once, without a reload")
    with open(t.config["auth"]["users_file"], "a") as f:
        f.write(a.hash_line("newbie", "fresh-pw") + "\n")
    with smtplib.SMTP("127.0.0.1", t.port, timeout=30) as s:
        s.starttls(context=ca.client_context())
        code, _ = s.login("newbie", "fresh-pw")
        h.check_eq(code, 235, "the new user authenticates")
    t.stop()


h.main(scenario)
