#!/usr/bin/python3
"""kill -9 during a stream of messages: every id that got its 250 is in msg/ after a
restart, complete and intact; no acknowledged message was ever without its closing record;
the unfinished ones (no closing record) and tmp/ leftovers are removed; nothing is set aside
as corrupt."""
import os
import re
import threading
import time

import harness as h

THREADS = 4
PER_THREAD = 100       # at most 400 messages in all
STREAM_SECONDS = 3.0   # and at most this long
KILL_AFTER_ACKS = 200  # SIGKILL once this many were acknowledged (or after KILL_AFTER_S)
KILL_AFTER_S = 1.5


def make_message(tid, seq):
    tag = f"t{tid}-m{seq}"
    head = (f"From: sender{tid}@client.example\r\nTo: rcpt@partner.example\r\n"
            f"Subject: stream {tag}\r\nMessage-ID: <{tag}@client.example>\r\n"
            f"Date: Tue, 25 Nov 2025 10:00:00 +0000\r\n\r\n").encode()
    # Mostly small, every 10th larger than the spool chunk (256 KiB) so it is written in parts.
    size = 300 * 1024 if seq % 10 == 9 else 200 + (seq * 7919 + tid * 104729) % 60000
    line = (f"{tag} " + "abcdefghijklmnopqrstuvwxyz0123456789" * 2 + "\r\n").encode()
    body = b"." + line  # a leading dot, stuffed on the wire
    while len(body) < size:
        body += line
    return head + body


class Sender(threading.Thread):
    def __init__(self, tid, port, stop, deadline):
        super().__init__(daemon=True)
        self.tid, self.port, self.stop, self.deadline = tid, port, stop, deadline
        self.acked = []   # (id, original)
        self.error = None
        self.attempted = 0

    def run(self):
        conn = None
        try:
            conn = h.SmtpConn(self.port, timeout=10)
            conn.read_reply()
            conn.cmd("EHLO client.example")
            for seq in range(PER_THREAD):
                if self.stop.is_set() or time.monotonic() > self.deadline:
                    break
                msg = make_message(self.tid, seq)
                self.attempted += 1
                conn.send(b"MAIL FROM:<sender%d@client.example>\r\nRCPT TO:<rcpt@partner.example>\r\n"
                          b"DATA\r\n" % self.tid)
                rs = conn.read_replies(3)
                if [r.code for r in rs] != [250, 250, 354]:
                    self.error = f"unexpected replies {rs!r}"
                    return
                conn.send(h.dot_stuff(msg))
                r = conn.read_reply(timeout=10)
                if r.code != 250 or not r.queue_id():
                    self.error = f"end of data got {r!r}"
                    return
                self.acked.append((r.queue_id(), msg))
        except (h.Failure, OSError) as e:
            if not self.stop.is_set():
                self.error = f"{type(e).__name__}: {e}"
        finally:
            if conn:
                conn.close()


def scenario(ctx):
    t = ctx.tern()
    t.start()

    h.step(f"{THREADS} client threads stream messages; SIGKILL mid-stream")
    stop = threading.Event()
    deadline = time.monotonic() + STREAM_SECONDS
    senders = [Sender(i, t.port, stop, deadline) for i in range(THREADS)]
    for s in senders:
        s.start()
    t0 = time.monotonic()
    for _ in range(10000):
        acked = sum(len(s.acked) for s in senders)
        if acked >= KILL_AFTER_ACKS or time.monotonic() - t0 > KILL_AFTER_S:
            break
        time.sleep(0.005)
    alive_at_kill = sum(s.is_alive() for s in senders)
    stop.set()  # from here on a broken connection is expected, not an error
    t.kill9()
    for s in senders:
        s.join(timeout=15)
    h.check(all(not s.is_alive() for s in senders), "every client thread ended")
    errors = [s.error for s in senders if s.error]
    h.check(not errors, "no client saw an unexpected reply before the kill", repr(errors))
    acked = [a for s in senders for a in s.acked]
    attempted = sum(s.attempted for s in senders)
    print(f"  info {len(acked)} acknowledged of {attempted} attempted; "
          f"{alive_at_kill} thread(s) still sending at the kill")
    h.check(alive_at_kill > 0, "the kill hit while clients were still sending")
    h.check(len(acked) >= 10, "a useful number of messages were acknowledged", str(len(acked)))
    h.check_eq(t.proc.returncode, -9, "ternd died of SIGKILL")

    leftovers = t.tmp_files()
    # Messages being received when the kill came: in msg/ without their closing record.
    unfinished = t.unfinished_ids()
    print(f"  info {len(leftovers)} file(s) in tmp/ and {len(t.msg_files())} in msg/ after the kill, "
          f"{len(unfinished)} of them unfinished")
    acked_ids = {i for s in senders for i, _ in s.acked}
    h.check(not acked_ids & set(unfinished), "no acknowledged message lacks its closing record",
            repr(sorted(acked_ids & set(unfinished))))

    h.step("restart on the same queue_dir")
    t.start()
    t.wait_log("queue: recovered", count=2)
    section = t.log().split("==== start #2 ====")[1]
    m = re.search(r"queue: recovered (\d+) message\(s\), removed (\d+) unfinished, "
                  r"set aside (\d+) malformed", section)
    h.check(m is not None, "restart logs 'queue: recovered N message(s)'", section[:500])
    recovered, removed, corrupt = (int(x) for x in m.groups())
    print(f"  info recovered={recovered} removed={removed} malformed={corrupt}")
    ids = t.queue_ids()
    h.check_eq(recovered, len(ids), "recovered count = files in msg/")
    h.check_eq(corrupt, 0, "nothing set aside as malformed")
    h.check_eq(os.listdir(os.path.join(t.queue_dir, "corrupt")), [], "corrupt/ is empty")
    h.check_eq(removed, len(leftovers) + len(unfinished), "every tmp/ leftover and unfinished file was removed")
    h.check_eq(ids, t.msg_files(), "every file in msg/ is a queued message (none unfinished)")
    h.check(not set(unfinished) & set(t.msg_files()), "the unfinished files are gone", repr(unfinished))
    h.check_eq(t.tmp_files(), [], "tmp/ is empty after restart")

    q = t.queue()  # parses and checks every file in msg/
    h.check(True, f"all {len(q)} files in msg/ parse and are complete")
    missing = [i for i, _ in acked if i not in q]
    h.check(not missing, f"all {len(acked)} acknowledged ids are in msg/", f"missing {missing[:10]}")
    bad = []
    for qid, original in acked:
        why = h.stored_problem(q[qid], original)
        if why:
            bad.append(f"{qid}: {why}")
    h.check(not bad, f"all {len(acked)} acknowledged messages are intact (byte-exact)",
            "; ".join(bad[:5]))
    extra = sorted(set(q) - {i for i, _ in acked})
    h.check(len(extra) <= THREADS,
            "unacknowledged survivors are at most one per client (commit raced the kill)",
            repr(extra))
    for qid in extra:
        rest = h.split_received(q[qid].data)[1]
        h.check(rest.startswith(b"From: sender"), f"unacknowledged survivor {qid} is one of ours")
    h.check(len(set(i for i, _ in acked)) == len(acked), "ids are unique")
    h.check(all([i for i, _ in s.acked] == sorted(i for i, _ in s.acked) for s in senders),
            "each client's ids strictly increase")

    h.step("the restarted daemon works")
    msg = make_message(9, 1)
    code, text, qid = h.send_smtplib(t.port, "a@client.example", ["b@partner.example"], msg)
    h.check_eq(code, 250, "message after restart")
    h.check(qid > max(i for i, _ in acked), "new id sorts after the earlier ones")
    h.check_stored(t.queue()[qid], msg, what="message after restart")
    t.stop()

    h.step("restart with a torn status append, a truncated file and a foreign file in msg/")
    ids = t.queue_ids()
    torn_id, cut_id = acked[0][0], acked[1][0]
    with open(os.path.join(t.msg_dir(), torn_id), "ab") as f:
        f.write(b"status 0 deferred 1764066540000000 mx.example[192.0.2.1]:25 451 4.4.1 try again later\n"
                b"status 0 deliv")  # crash in the middle of an append
    cut_path = os.path.join(t.msg_dir(), cut_id)
    with open(cut_path, "r+b") as f:
        f.truncate(os.path.getsize(cut_path) // 2)
    junk = "0000000000Z"
    with open(os.path.join(t.msg_dir(), junk), "wb") as f:
        f.write(b"this is not a queue file\n")
    t.start()
    t.wait_log("queue: recovered", count=3)
    section = t.log().split("==== start #3 ====")[1]
    m = re.search(r"queue: recovered (\d+) message\(s\), removed (\d+) unfinished, "
                  r"set aside (\d+) malformed", section)
    h.check(m is not None, "restart logs its recovery", section[:500])
    h.check_eq(tuple(int(x) for x in m.groups()), (len(ids) - 1, 0, 2),
               "recovered all but the truncated one; 2 set aside")
    h.check_eq(sorted(os.listdir(os.path.join(t.queue_dir, "corrupt"))), sorted([junk, cut_id]),
               "corrupt/ holds the truncated and the foreign file")
    h.check(cut_id not in t.queue_ids() and junk not in t.queue_ids(), "both left msg/")
    h.check("is malformed" in section and cut_id in section, "the set-aside files are logged")
    m = t.queue()[torn_id]
    h.check_eq([(s[0], s[1], s[3]) for s in m.statuses][:1],
               [(0, "deferred", "451 4.4.1 try again later")], "complete status record read")
    # Untouched, or (once a delivery attempt appended a state change) replaced; either way
    # every complete line is a well-formed record (parse_queue_file checked that).
    h.check(m.torn_tail in (b"status 0 deliv", b""), "torn tail ignored", repr(m.torn_tail))
    h.check(t.running(), "ternd runs with the torn file loaded")
    t.stop()


h.main(scenario)
