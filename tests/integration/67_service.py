#!/usr/bin/python3
"""ternd as a system service:
  Type=notify: on a NOTIFY_SOCKET the test listens on, READY=1 (with a STATUS= line) once
      the listeners are bound, RELOADING=1 then READY=1 around a SIGHUP, STOPPING=1 on
      SIGTERM, and WATCHDOG=1 pings when WATCHDOG_USEC is set;
  as root without `user:` ternd refuses to start unless --allow-root is given;
  as root with `user: nobody` it binds a port below 1024, then runs as nobody keeping only
      CAP_NET_BIND_SERVICE (seen in /proc/PID/status) and still serves SMTP."""
import os
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402


def notifications(sock, want, timeout=15):
    """Datagrams until one contains `want`; returns all of them."""
    got = []
    deadline = time.monotonic() + timeout
    for _ in range(1000):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            break
        got.append(msg)
        if want in msg:
            return got
    h.fail(f"no {want!r} notification within {timeout}s (got {got!r})")


def scenario(ctx):
    h.step("Type=notify: READY, RELOADING/READY, WATCHDOG, STOPPING")
    path = ctx.path("notify.sock")
    ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    ns.bind(path)
    ctx.cleanups.append(ns.close)
    t = ctx.tern()
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="1000000")
    with open(t.log_path, "ab") as log:
        p = subprocess.Popen([h.TERND, "--config", t.config_path] + h.root_flag(), stdin=subprocess.DEVNULL,
                             stdout=log, stderr=log, env=env, cwd="/")
    ctx.cleanups.append(lambda: p.poll() is None and p.kill())
    got = notifications(ns, "READY=1")
    ready = [m for m in got if "READY=1" in m][0]
    h.check("STATUS=accepting mail" in ready, "READY=1 comes with a STATUS line", ready)
    with socket.create_connection(("127.0.0.1", t.port), timeout=5) as s:
        h.check(s.recv(100).startswith(b"220 "), "the listener answers once READY=1 is sent")
    notifications(ns, "WATCHDOG=1", timeout=10)
    p.send_signal(signal.SIGHUP)
    got = notifications(ns, "READY=1")
    h.check(any("RELOADING=1" in m and "MONOTONIC_USEC=" in m for m in got), "RELOADING=1 before READY=1", repr(got))
    p.send_signal(signal.SIGTERM)
    notifications(ns, "STOPPING=1")
    h.check_eq(p.wait(timeout=30), 0, "exit status after SIGTERM")

    if os.geteuid() != 0:
        print("  ..   not root: the privilege checks are skipped", flush=True)
        return
    h.step("root without user: refuses, unless --allow-root")
    out = subprocess.run([h.TERND, "--config", t.config_path], capture_output=True, text=True, timeout=30)
    h.check(out.returncode == 1 and "refusing to run as root" in out.stderr, "refused", out.stderr[-500:])

    h.step("user: nobody, a port below 1024: bound as root, then nobody with CAP_NET_BIND_SERVICE only")
    low = next((p_ for p_ in range(1000, 600, -1) if sinks._bindable("127.0.0.1", p_)), None)
    h.check(low is not None, "a free port below 1024")
    os.chmod(ctx.dir, 0o755)
    u = ctx.tern(name="dropped", user="nobody", listen=[{"address": f"127.0.0.1:{low}"}])
    os.chmod(u.dir, 0o755)
    os.makedirs(u.queue_dir, mode=0o750, exist_ok=True)
    os.chown(u.queue_dir, 65534, 65534)
    u.port = low
    u.start()
    status = open(f"/proc/{u.proc.pid}/status").read()
    fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
    h.check(fields["Uid"].split()[0] == "65534" and fields["Uid"].split()[1] == "65534", "uid is nobody", fields["Uid"])
    h.check(fields["Gid"].split()[0] == "65534", "gid is nobody's", fields["Gid"])
    h.check_eq(fields["CapEff"].strip(), "0000000000000400", "only CAP_NET_BIND_SERVICE is effective")
    h.check_eq(fields["CapPrm"].strip(), "0000000000000400", "and permitted")
    q = sinks.send(u, "a@client.example", ["x@partner.example"], sinks.body("as nobody"))
    h.check(os.stat(os.path.join(u.queue_dir, "msg", q)).st_uid == 65534, "the queue file belongs to nobody")
    u.wait_log("running as user nobody")

    h.step("--check: a file SIGHUP re-reads that user: cannot read is named; a readable one is not")
    secret = os.path.join(u.dir, "recipients-secret")   # root's, mode 0600: nobody cannot read it
    fd = os.open(secret, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.write(fd, b"alice\n")
    os.close(fd)
    shared = os.path.join(u.dir, "recipients-shared")
    with open(shared, "w") as f:
        f.write("bob\n")
    os.chmod(shared, 0o644)
    c = ctx.tern(name="checked", user="nobody",
                 relay={"networks": ["127.0.0.1/32"],
                        "domains": [{"name": "a.example", "recipients_file": secret},
                                    {"name": "b.example", "recipients_file": shared}]})
    out = subprocess.run([h.TERND, "--config", c.config_path, "--check"], capture_output=True, text=True, timeout=30)
    h.check_eq(out.returncode, 0, "still a valid configuration (a warning, not an error)")
    h.check(f"user nobody cannot read {secret}" in out.stderr, "the unreadable file is named", out.stderr)
    h.check(shared not in out.stderr, "the readable one is not", out.stderr)


h.main(scenario)
