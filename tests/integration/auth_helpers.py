"""Helpers for the SMTP AUTH scenarios (70 and up): a users file made with the real
`ternctl passwd`, and a ternd with AUTH configured. Stdlib only."""
import os
import subprocess

import harness as h


def hash_line(user, password):
    """`ternctl passwd USER` with the password on stdin (not a terminal): one users-file line."""
    p = subprocess.run([h.TERNCTL, "passwd", user], input=password + "\n", capture_output=True,
                       text=True, timeout=60)
    h.check(p.returncode == 0, f"ternctl passwd {user} exits 0", p.stderr)
    line = p.stdout.strip()
    h.check(line.startswith(f"{user}:$y$"), f"ternctl passwd prints a yescrypt line for {user}", line)
    return line


def write_users(path, users, mode=0o600, extra=""):
    """Writes `users` ({name: password}) as a users file with `mode`; `extra` lines appended."""
    lines = ["# tern users (written by auth_helpers.py)"] + [hash_line(u, p) for u, p in users.items()]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n" + extra)
    os.chmod(path, mode)
    return path


def auth_tern(ctx, users, required_listener=False, name="ternd", **overrides):
    """A ternd (not started) with auth.users_file; with `required_listener`, a second
    listener (port in .submission_port) that has auth: required."""
    t = ctx.tern(name=name, **overrides)
    users_path = write_users(os.path.join(t.dir, "users"), users)
    t.config.setdefault("auth", {})["users_file"] = users_path
    if required_listener:
        t.submission_port = h.free_port()
        t.config["listen"] = list(t.config["listen"]) + [
            {"address": f"127.0.0.1:{t.submission_port}", "auth": "required"}]
    t.write_config()
    return t
