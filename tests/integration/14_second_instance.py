#!/usr/bin/python3
"""A second ternd started by mistake on a queue_dir that a running ternd owns must not touch
that queue: it must refuse to start (exit non-zero) without removing the running daemon's
in-flight files (in msg/, not yet closed: startup would remove them as unfinished), and the
running daemon's message in flight must still get its 250."""
import os
import subprocess
import time

import harness as h

LINE = b"z" * 998 + b"\r\n"


def start_transfer(t):
    """A transaction whose data (> 256 KiB) is already being spooled into msg/."""
    c = t.session()
    c.expect("MAIL FROM:<a@client.example>", 250)
    c.expect("RCPT TO:<b@partner.example>", 250)
    c.expect("DATA", 354)
    body = (b"Subject: in flight\r\nMessage-ID: <f@client.example>\r\n"
            b"Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\n" + LINE * 400)
    c.send(body)
    deadline = time.monotonic() + 3
    while not spooled(t) and time.monotonic() < deadline:
        time.sleep(0.02)
    h.check_eq(len(t.unfinished_ids()), 1, "the message in flight is spooling in msg/, unfinished")
    h.check(spooled(t), "a first chunk of it is on disk")
    return c, body


def spooled(t):
    """The unfinished file in msg/ holds more than its header (a chunk was written)."""
    ids = t.unfinished_ids()
    return len(ids) == 1 and os.path.getsize(os.path.join(t.msg_dir(), ids[0])) > 256 * 1024


def finish_transfer(t, c, body, what):
    c.send(b".\r\n")
    r = c.read_reply()
    ok = r.code == 250
    if ok:
        h.check_stored(t.queue()[r.queue_id()], body, what=what)
    c.close()
    return r


def scenario(ctx):
    t = ctx.tern()
    t.start()
    problems = []

    h.step("same config started twice (the listen address is taken)")
    c, body = start_transfer(t)
    in_flight_before = t.unfinished_ids()
    p = subprocess.run([h.TERND, "--config", t.config_path] + h.root_flag(), stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=15)
    err = p.stderr.decode(errors="replace")
    h.check_eq(p.returncode, 1, "the second ternd exits 1")
    if t.unfinished_ids() != in_flight_before:
        problems.append(f"the failed second start removed the running daemon's files in flight "
                        f"{in_flight_before} (its log: {err.strip().splitlines()[1:2]})")
    r = finish_transfer(t, c, body, "message in flight during the second start")
    if r.code != 250:
        problems.append(f"the running daemon's message in flight got {r!r} instead of 250")
    print(f"  info message in flight -> {r!r}")

    h.step("another config (other port) on the same queue_dir")
    c, body = start_transfer(t)
    in_flight_before = t.unfinished_ids()
    other = ctx.tern("other", queue_dir=t.queue_dir)
    other.start(wait=False)
    deadline = time.monotonic() + 3
    while other.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    rc = other.proc.poll()
    if rc is None:
        problems.append("a second ternd runs on a queue_dir that another ternd owns "
                        "(no lock on queue_dir)")
        other.kill9()
    elif rc == 0:
        problems.append("the second ternd exited 0")
    if t.unfinished_ids() != in_flight_before:
        problems.append(f"the second ternd's startup removed the running daemon's files in flight "
                        f"{in_flight_before}")
    r = finish_transfer(t, c, body, "message in flight during the second daemon's start")
    if r.code != 250:
        problems.append(f"the running daemon's message in flight got {r!r} instead of 250")
    print(f"  info message in flight -> {r!r}")

    h.check(not problems, "a second ternd leaves the owner's queue alone",
            "\n    " + "\n    ".join(problems))
    t.stop()


h.main(scenario)
