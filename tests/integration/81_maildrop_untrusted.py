#!/usr/bin/python3
"""The maildrop is untrusted input: ternd takes only complete (mode 0740) regular files with one
link, opened without following symlinks and without blocking on a FIFO. A symlink, a hard link,
a FIFO, a directory and an incomplete (0640) file are left alone; a file that is no valid
request is set aside as bad.NAME and logged; the incomplete file is taken once it is marked
complete; each good message is delivered once and its file removed. When ternd answers "try
later" (its queue short of space), tern-sendmail uses the maildrop too, and the message is
imported once there is room."""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402
import sinks  # noqa: E402


def request(rcpt, text):
    body = f"Subject: {text}\r\n\r\n{text}\r\n".encode()
    return f"TO <{rcpt}>\nDATA {len(body)}\n".encode() + body


def plant(path, content, mode):
    with open(path, "wb") as f:
        f.write(content)
    os.chmod(path, mode)


def scenario(ctx):
    port = sinks.pick_port(["127.0.0.2"])
    dns, dns_port = sinks.start_dns(ctx, [
        ("relay.example", "MX", (10, "mx1.relay.example")),
        ("mx1.relay.example", "A", "127.0.0.2"),
    ])
    mx1 = sinks.add_sink(ctx, sinks.Sink("127.0.0.2", port, "mx1"))
    t = ctx.tern(**sinks.delivery_overrides(port, dns_port))
    drop = t.config["submit"]["maildrop"]
    os.makedirs(drop)
    os.chmod(drop, 0o3733)
    outside = os.path.join(ctx.dir, "outside")
    os.makedirs(outside)

    h.step("planted while ternd is down: good, symlink, hard link, FIFO, directory, incomplete, junk")
    plant(os.path.join(drop, "good"), request("good@relay.example", "good one"), 0o740)
    plant(os.path.join(outside, "target"), request("symlink@relay.example", "via symlink"), 0o740)
    os.symlink(os.path.join(outside, "target"), os.path.join(drop, "sym"))
    plant(os.path.join(outside, "linked"), request("hardlink@relay.example", "via hard link"), 0o740)
    os.link(os.path.join(outside, "linked"), os.path.join(drop, "hard"))
    os.mkfifo(os.path.join(drop, "fifo"), 0o740)
    os.mkdir(os.path.join(drop, "dir"), 0o740)
    plant(os.path.join(drop, "part"), request("part@relay.example", "completed later"), 0o640)
    plant(os.path.join(drop, "junk"), b"HELLO there\nnot a request\n", 0o740)

    t.start()
    mx1.wait_messages(1, 30)
    t.wait_log("set aside as bad.junk", timeout=30)
    h.check(os.path.exists(os.path.join(drop, "bad.junk")), "the junk file is kept as bad.junk")
    # Scans follow every change in the directory (inotify) and any temporary refusal (5 s):
    # give them time to take something wrongly before the checks.
    time.sleep(6)
    got = mx1.messages()
    h.check_eq([m.rcpt_tos for m in got], [["good@relay.example"]], "only the good file was delivered")
    for name in ("sym", "hard", "fifo", "dir", "part"):
        h.check(os.path.lexists(os.path.join(drop, name)), f"{name} left alone")
    h.check(not os.path.exists(os.path.join(drop, "good")), "the good file is removed after its commit")
    h.check(ternd_alive(t), "ternd still runs (the FIFO did not block it)")

    h.step("the incomplete file, once marked complete, is taken (noticed by the watch: the timer is 60 s)")
    os.chmod(os.path.join(drop, "part"), 0o740)
    mx1.wait_messages(2, 30)
    h.check_eq(mx1.messages()[1].rcpt_tos, ["part@relay.example"], "the completed file's recipient")
    deadline = time.monotonic() + 30
    while os.path.exists(os.path.join(drop, "part")) and time.monotonic() < deadline:
        time.sleep(0.2)
    h.check(not os.path.exists(os.path.join(drop, "part")), "and its file removed")
    h.check_eq(len(mx1.messages()), 2, "two messages in all")

    h.step("ternd answers 'try later' (queue short of space): tern-sendmail uses the maildrop")
    t.config["queue_min_free"] = "1000000G"
    t.write_config()
    t.reload()
    r = subprocess.run([h.TERN_SENDMAIL, "-C", t.config_path, "full@relay.example"],
                       input=b"Subject: while short of space\n\nwaits\n", capture_output=True, timeout=60)
    h.check_eq(r.returncode, 0, f"exits 0 (stderr {r.stderr!r})")
    t.wait_log("tried again later", timeout=30)
    h.check_eq(len([n for n in os.listdir(drop) if not n.startswith("bad.")]) - 4, 1,
               "the message waits in the maildrop (besides the four left alone)")
    t.config["queue_min_free"] = "0"
    t.write_config()
    t.reload()
    mx1.wait_messages(3, 60)
    h.check_eq(mx1.messages()[2].rcpt_tos, ["full@relay.example"], "delivered once there is room")
    t.stop()


def ternd_alive(t):
    return t.proc is not None and t.proc.poll() is None


h.main(scenario)
