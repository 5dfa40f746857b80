#!/usr/bin/python3
"""The queue directory is not trusted blindly (issue 8 item 18): ternd refuses to start, with a
message naming the directory, when queue_dir or one of its subdirectories is writable by group
or others or owned by another user, and it does not chmod anything itself. Once the operator
fixes the directory, ternd starts."""
import os
import subprocess

import harness as h

NOBODY = 65534


def refused(t, what, path, reason):
    """Runs ternd in the foreground and asserts it exits non-zero naming `path` and `reason`."""
    p = subprocess.run([h.TERND, "--config", t.config_path] + h.root_flag(), stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=20)
    out = p.stdout.decode(errors="replace")
    h.check(p.returncode != 0, f"{what}: ternd exits non-zero", f"exit {p.returncode}: {out[-400:]}")
    h.check(path in out and reason in out, f"{what}: the message names {path} and says '{reason}'",
            out[-400:])


def scenario(ctx):
    t = ctx.tern()
    t.start()
    t.stop()
    q = t.queue_dir
    subdirs = [q] + [os.path.join(q, d) for d in ("tmp", "msg", "corrupt")]
    for d in subdirs:
        h.check_eq(os.stat(d).st_mode & 0o777, 0o750, f"{d} was created 0750")

    for d in (q, os.path.join(q, "msg")):
        h.step(f"{d} writable by others")
        os.chmod(d, 0o757)
        refused(t, f"o+w on {os.path.basename(d)}", d, "writable by group or others")
        h.check_eq(os.stat(d).st_mode & 0o777, 0o757, "ternd did not chmod it behind our back")
        os.chmod(d, 0o770)
        refused(t, f"g+w on {os.path.basename(d)}", d, "writable by group or others")
        os.chmod(d, 0o750)

    if os.geteuid() != 0:
        print("  skip owner checks: not running as root (chown needs it)")
    else:
        for d in (q, os.path.join(q, "tmp")):
            h.step(f"{d} owned by uid {NOBODY}")
            os.chown(d, NOBODY, -1)
            refused(t, f"{os.path.basename(d)} owned by another user", d,
                    f"owned by uid {NOBODY}")
            os.chown(d, os.geteuid(), -1)

    h.step("fixed by the operator: ternd starts")
    t.start()
    code, _, qid = h.send_smtplib(t.port, "a@client.example", ["b@partner.example"],
                                  b"Subject: ok\r\n\r\nok\r\n")
    h.check_eq(code, 250, "mail is accepted")
    t.stop()


h.main(scenario)
