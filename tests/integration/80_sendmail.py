#!/usr/bin/python3
"""Local submission: tern-sendmail hands messages to ternd over the submission socket. With -t
(recipients from To/Cc/Bcc, run as the unprivileged user nobody when the test runs as root)
and with recipients as arguments and -f, the sink gets the right envelope; Bcc: is gone, the
Received: names the local user, From:/Date:/Message-ID: are added when missing. Bad command
lines and messages get sysexits codes (64, 65); mailq lists the queue; -bs speaks SMTP on
stdin/stdout. With ternd stopped the
message waits in the maildrop (a complete 0740 file) and is delivered after ternd starts."""
import os
import stat
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402


def sendmail(t, args, message, as_nobody=False):
    cmd = [h.TERN_SENDMAIL, "-C", t.config_path] + args
    if as_nobody:
        cmd = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + cmd
    env = dict(os.environ)
    env.pop("TERN_CONFIG", None)
    return subprocess.run(cmd, input=message, capture_output=True, timeout=60, env=env)


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("relay.example", "MX", (10, "mx1.relay.example")),
        ("mx1.relay.example", "A", "127.0.0.2"),
        ("down.example", "MX", (10, "mx.down.example")),
        ("mx.down.example", "A", "127.0.0.3"),  # nothing listens there: mail to it waits
    ])
    mx1 = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx1"))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port))
    maildrop = t.config["submit"]["maildrop"]
    os.makedirs(maildrop, exist_ok=True)
    os.chmod(maildrop, 0o3733)
    root = os.geteuid() == 0
    if root:
        # nobody must reach the config file and the socket through the test's directories.
        os.chmod(ctx.dir, 0o755)
        os.chmod(t.dir, 0o755)
        os.chmod(t.config_path, 0o644)
    t.start()
    user, uid = ("nobody", 65534) if root else (os.environ.get("USER") or "", os.geteuid())

    h.step(f"-t as {'nobody' if root else 'the test user'}: recipients from To, Cc and Bcc; Bcc removed")
    msg = (b"To: A <a@relay.example>,\n  b@relay.example\nCc: \"C, Jr.\" <c@relay.example>\n"
           b"Bcc: hidden@relay.example\nSubject: from -t\n\nline one\n")
    r = sendmail(t, ["-t", "-i"], msg, as_nobody=root)
    h.check_eq(r.returncode, 0, f"tern-sendmail -t exits 0 (stderr {r.stderr!r})")
    mx1.wait_messages(1, 30)
    m = mx1.messages()[0]
    h.check_eq(sorted(m.rcpt_tos), ["a@relay.example", "b@relay.example", "c@relay.example",
                                     "hidden@relay.example"], "envelope recipients from To, Cc, Bcc")
    if root:
        h.check_eq(m.mail_from, f"nobody@{h.HOSTNAME}", "default sender user@hostname")
    data = m.data
    h.check(b"\nBcc:" not in data and b"hidden@relay.example" not in data, "no Bcc: in the delivered message",
            data[:600])
    if root:
        h.check(f"Received: from local user nobody (uid {uid})".encode() in data, "Received: names the user",
                data[:600])
        h.check(f"From: <nobody@{h.HOSTNAME}>\r\n".encode() in data, "From: added", data[:600])
    h.check(b"\r\nDate: " in data, "Date: added", data[:600])
    h.check(b"\r\nMessage-ID: <" in data, "Message-ID: added", data[:600])
    h.check(b"\r\n\r\nline one\r\n" in data, "body with CRLF", data[-200:])

    h.step("recipients as arguments, -f and -F; the lone dot ends input without -i")
    msg = (b"From: Dev <dev@client.example>\nDate: Tue, 25 Nov 2025 10:00:00 +0000\n"
           b"Message-ID: <given.1@client.example>\nSubject: args\n\nbefore\n.\nafter the dot\n")
    r = sendmail(t, ["-f", "dev@client.example", "-FDev", "--", "x@relay.example", "y@relay.example"], msg)
    h.check_eq(r.returncode, 0, f"tern-sendmail exits 0 (stderr {r.stderr!r})")
    mx1.wait_messages(2, 30)
    m = mx1.messages()[1]
    h.check_eq(m.mail_from, "dev@client.example", "-f is the envelope sender")
    h.check_eq(sorted(m.rcpt_tos), ["x@relay.example", "y@relay.example"], "recipients from the arguments")
    h.check(m.data.count(b"Message-ID:") == 1 and b"<given.1@client.example>" in m.data, "Message-ID kept, not added")
    h.check(m.data.count(b"\r\nDate:") == 1 and m.data.count(b"From:") == 1, "Date and From kept, not added")
    h.check(b"before\r\n" in m.data and b"after the dot" not in m.data, "a lone dot ended the input", m.data[-200:])
    t.wait_log("(-f)")

    h.step("errors: sysexits codes with a clear message")
    r = sendmail(t, ["-x"], b"")
    h.check(r.returncode == 64 and b"usage:" in r.stderr, "an unknown option: 64 and a usage line", r.stderr)
    r = sendmail(t, [], b"Subject: nobody\n\nbody\n")
    h.check(r.returncode == 65 and b"no recipients" in r.stderr, "no recipients: 65", r.stderr)
    r = sendmail(t, ["-t"], b"To: broken <a@relay.example\n\nbody\n")
    h.check(r.returncode == 65, "a malformed To: with -t: 65", r.stderr)
    big = b"Subject: big\n\n" + b"x" * 1000 + b"\n"
    small = ctx.tern(name="small", limits={"max_message_size": 500}).start()
    r = sendmail(small, ["a@relay.example"], big)
    h.check(r.returncode == 65 and b"too big" in r.stderr, "over limits.max_message_size: 65", r.stderr)
    small.stop()

    h.step("mailq (-bp) lists through the submission socket; newaliases is a no-op")
    r = sendmail(t, ["-v", "w@down.example"], b"Subject: waits\n\nbody\n")
    h.check_eq(r.returncode, 0, f"a message that waits is queued (stderr {r.stderr!r})")
    qid = r.stderr.decode().rsplit("queued as ", 1)[-1].strip()
    h.check(qid != "" and " " not in qid, "-v names the queue id", r.stderr)
    r = sendmail(t, ["-bp"], b"", as_nobody=root)
    h.check_eq(r.returncode, 0, f"-bp exits 0 (stderr {r.stderr!r})")
    h.check(qid.encode() in r.stdout and b"w@down.example" in r.stdout, "-bp lists the waiting message",
            r.stdout)
    r = sendmail(t, ["-bi"], b"")
    h.check_eq(r.returncode, 0, "-bi exits 0")

    h.step("-bs: an SMTP session on stdin/stdout")
    session = (b"EHLO app.example\r\nMAIL FROM:<app@client.example>\r\nRCPT TO:<s@relay.example>\r\n"
               b"DATA\r\nSubject: via -bs\r\n\r\n..stuffed\r\n.\r\nQUIT\r\n")
    r = sendmail(t, ["-bs"], session, as_nobody=root)
    h.check_eq(r.returncode, 0, f"-bs exits 0 (stderr {r.stderr!r})")
    out = r.stdout.decode()
    h.check(out.startswith("220 ") and "250 2.0.0 Ok: queued as " in out and out.rstrip().endswith("221 2.0.0 Bye"),
            "greeting, queued, bye", out)
    mx1.wait_messages(3, 30)
    m = mx1.messages()[2]
    h.check_eq(m.mail_from, "app@client.example", "MAIL FROM is the sender")
    h.check_eq(m.rcpt_tos, ["s@relay.example"], "RCPT TO the recipient")
    h.check(b"\r\n.stuffed\r\n" in m.data, "dot-unstuffed", m.data[-100:])
    if root:
        h.check(b"Received: from local user nobody (uid 65534)" in m.data, "Received: names the user")

    h.step("ternd stopped: the message goes to the maildrop, and is delivered once ternd is back")
    t.stop()
    msg = b"Subject: while down\n\nkept in the maildrop\n"
    r = sendmail(t, ["z@relay.example"], msg, as_nobody=root)
    h.check_eq(r.returncode, 0, f"exits 0 with ternd down (stderr {r.stderr!r})")
    files = os.listdir(maildrop)
    h.check_eq(len(files), 1, "one file in the maildrop")
    st = os.stat(os.path.join(maildrop, files[0]))
    h.check_eq(stat.S_IMODE(st.st_mode), 0o740, "the file is marked complete (0740)")
    h.check_eq(st.st_gid, os.stat(maildrop).st_gid, "its group is the maildrop's (setgid directory)")
    h.check_eq(st.st_uid, uid, "the file belongs to the caller")
    t.start()
    mx1.wait_messages(4, 30)
    m = mx1.messages()[3]
    h.check_eq(m.rcpt_tos, ["z@relay.example"], "the maildrop message's recipient")
    h.check(b"kept in the maildrop" in m.data, "its body", m.data[-200:])
    if root:
        h.check_eq(m.mail_from, f"nobody@{h.HOSTNAME}", "attributed to the file's owner")
        h.check(b"Received: from local user nobody (uid 65534)" in m.data, "Received: names the owner")
    deadline = time.monotonic() + 30
    while os.listdir(maildrop) and time.monotonic() < deadline:
        time.sleep(0.2)
    h.check_eq(os.listdir(maildrop), [], "the maildrop file is removed after the commit")
    h.check_eq(len(mx1.messages()), 4, "each message delivered once")
    t.stop()


h.main(scenario)
