#!/usr/bin/python3
"""Full disk: queue_dir on a 2 MiB tmpfs. A 3 MiB message gets 452 4.3.1 after the end of
data and leaves nothing in msg/ or tmp/; the session still works; with queue_min_free 1M on a
nearly full disk MAIL gets 452 4.3.1. Needs root and tmpfs (else SKIP)."""
import os
import subprocess
import time

import harness as h

SMALL = (b"From: a@client.example\r\nSubject: small\r\nMessage-ID: <small@client.example>\r\n"
         b"Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\nsmall body\r\n")


def big_message(size):
    head = (b"From: a@client.example\r\nSubject: big\r\nMessage-ID: <big@client.example>\r\n"
            b"Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\n")
    line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
    return head + line * ((size - len(head)) // len(line) + 1)


def mail_until(c, code, timeout=6.0):
    """Repeats MAIL (free space is re-read about once a second) until it gets `code`."""
    deadline = time.monotonic() + timeout
    r = None
    for _ in range(100):
        r = c.cmd("MAIL FROM:<a@client.example>")
        if r.code == 250:
            c.expect("RSET", 250)
        if r.code == code or time.monotonic() > deadline:
            return r
        time.sleep(0.25)
    return r


def scenario(ctx):
    if os.geteuid() != 0:
        print("SKIP: not running as root (mount -t tmpfs needs it)")
        return "SKIP"
    mnt = ctx.path("mnt")
    os.makedirs(mnt)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0755", "tmpfs", mnt],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
    if p.returncode != 0:
        print(f"SKIP: mount -t tmpfs failed: {p.stdout.decode(errors='replace').strip()}")
        return "SKIP"

    def unmount():
        for _ in range(20):
            if subprocess.run(["umount", mnt], stderr=subprocess.DEVNULL, timeout=20).returncode == 0:
                return
            time.sleep(0.25)
        subprocess.run(["umount", "-l", mnt], timeout=20)
    ctx.cleanups.append(unmount)
    h.check(True, f"2 MiB tmpfs mounted on {mnt}")

    t = ctx.tern(queue_dir=os.path.join(mnt, "queue"), queue_min_free="0",
                 limits={"max_message_size": "8M"})
    t.start()

    with t.session() as c:
        h.step("MAIL announcing SIZE=3 MiB on a 2 MiB disk")
        c.expect(f"MAIL FROM:<a@client.example> SIZE={3 * 1024 * 1024}", 452, "4.3.1",
                 what="MAIL SIZE=3145728")

        h.step("a 3 MiB message without SIZE")
        c.expect("MAIL FROM:<a@client.example>", 250, "2.1.0")
        c.expect("RCPT TO:<b@partner.example>", 250, "2.1.5")
        c.expect("DATA", 354)
        wire = h.dot_stuff(big_message(3 * 1024 * 1024))
        body, term = wire[:-3], wire[-3:]
        for i in range(0, len(body), 65536):
            c.send(body[i:i + 65536])
        h.check(c.silent_for(0.5), "no reply before the end of data")
        c.send(term)
        r = c.read_reply(timeout=30)
        h.expect_reply(r, 452, "4.3.1", "3 MiB message on a 2 MiB disk, after end of data")
        h.check_eq(t.queue_ids(), [], "nothing in msg/")
        h.check_eq(t.tmp_files(), [], "nothing left in tmp/")
        # The log is written by ternd's logging thread: wait for the line (bounded).
        logged = False
        for _ in range(100):
            logged = "write failed" in t.log() or "commit failed" in t.log()
            if logged:
                break
            time.sleep(0.1)
        h.check(logged, "the failure is logged")

        h.step("the session still works")
        r = h.send_raw_message(c, "a@client.example", ["b@partner.example"], h.dot_stuff(SMALL))
        h.expect_reply(r, 250, "2.0.0", "small message after the full-disk refusal")
        small_id = r.queue_id()
        h.check_stored(t.queue()[small_id], SMALL, what="small message")

        h.step("queue_min_free 1M on a nearly full disk")
        filler = os.path.join(mnt, "filler")
        with open(filler, "wb") as f:
            f.write(b"\0" * (1536 * 1024))
        st = os.statvfs(mnt)
        free = st.f_bavail * st.f_frsize
        print(f"  info free space on the tmpfs now {free} bytes")
        h.check(free < 1024 * 1024, "less than 1 MiB free")
        t.config["queue_min_free"] = "1M"
        t.write_config()
        t.reload()
    with t.session() as c:
        r = mail_until(c, 452)
        h.expect_reply(r, 452, "4.3.1", "MAIL with less than queue_min_free available")
        h.check_eq(t.queue_ids(), [small_id], "queue unchanged")
        os.unlink(filler)
        r = mail_until(c, 250)
        h.expect_reply(r, 250, "2.1.0", "MAIL accepted again once space is freed")
        c.expect("QUIT", 221)
    h.check_eq(t.tmp_files(), [], "tmp/ is empty")
    t.stop()


h.main(scenario)
