#!/usr/bin/python3
"""Local submission when ternd runs as its own unprivileged user (user: nobody, started as
root) and the caller is another unprivileged user (uid 4321, no passwd entry): through the
socket the message is attributed to that uid; with ternd stopped the maildrop file (owned by
4321, group nobody's through the setgid directory) is readable by ternd and delivered after it
starts. Root only."""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402

CALLER = 4321


def sendmail(t, args, message):
    cmd = ["setpriv", f"--reuid={CALLER}", f"--regid={CALLER}", "--clear-groups",
           h.TERN_SENDMAIL, "-C", t.config_path] + args
    return subprocess.run(cmd, input=message, capture_output=True, timeout=60)


def scenario(ctx):
    if os.geteuid() != 0:
        print("  ..   not root: skipped", flush=True)
        return "SKIP"
    port = sinks.pick_port(["127.0.0.2"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("relay.example", "MX", (10, "mx1.relay.example")),
        ("mx1.relay.example", "A", "127.0.0.2"),
    ])
    mx1 = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx1"))
    os.chmod(ctx.dir, 0o755)
    t = ctx.tern(user="nobody", **sinks.delivery_overrides(port, dns_port))
    os.chmod(t.dir, 0o755)
    os.chmod(t.config_path, 0o644)
    os.makedirs(t.queue_dir, mode=0o750, exist_ok=True)
    os.chown(t.queue_dir, 65534, 65534)
    drop = t.config["submit"]["maildrop"]
    os.makedirs(drop)
    os.chown(drop, 65534, 65534)
    os.chmod(drop, 0o3733)
    t.start()

    h.step("through the socket, from uid 4321 (no user name)")
    r = sendmail(t, ["a@relay.example"], b"Subject: socket\n\nvia the socket\n")
    h.check_eq(r.returncode, 0, f"exits 0 (stderr {r.stderr!r})")
    mx1.wait_messages(1, 30)
    m = mx1.messages()[0]
    h.check_eq(m.mail_from, f"uid{CALLER}@{h.HOSTNAME}", "the sender names the uid")
    h.check(f"Received: from local user uid{CALLER} (uid {CALLER})".encode() in m.data, "Received: names the uid",
            m.data[:400])

    h.step("ternd stopped: the caller's maildrop file is read by ternd running as nobody")
    t.stop()
    r = sendmail(t, ["b@relay.example"], b"Subject: dropped\n\nvia the maildrop\n")
    h.check_eq(r.returncode, 0, f"exits 0 with ternd down (stderr {r.stderr!r})")
    files = os.listdir(drop)
    h.check_eq(len(files), 1, "one file in the maildrop")
    st = os.stat(os.path.join(drop, files[0]))
    h.check(st.st_uid == CALLER and st.st_gid == 65534, "owned by the caller, group nobody's", repr(st))
    t.start()
    mx1.wait_messages(2, 30)
    m = mx1.messages()[1]
    h.check_eq(m.rcpt_tos, ["b@relay.example"], "delivered from the maildrop")
    h.check(b"via the maildrop" in m.data, "its body")
    h.check(f"(uid {CALLER})".encode() in m.data, "attributed to the file's owner")
    sinks.wait_until(lambda: not os.listdir(drop), 30, "the maildrop file removed after the commit")
    t.stop()


h.main(scenario)
