#!/usr/bin/python3
"""The Debian packages (debian/, packaging/build-deb.sh):
  both build from a scratch copy of the tree and lintian finds no error in either;
  tern-mta (only inspected, never installed: the machine may have another MTA) links
      sendmail, mailq and newaliases to tern-sendmail and provides mail-transport-agent;
  tern installs with dpkg -i (no service started: a policy-rc.d that refuses) with its
      binaries, conffile, man pages, unit, user, and the queue, maildrop and state
      directories with their owner and modes; `ternd --check` accepts the installed config
      and `systemd-analyze verify` the installed unit; tern-sendmail called as mailq and as
      newaliases acts as those;
  purge removes /etc/tern, but keeps a queue that still holds a message (and says so);
      a second install and purge with an empty queue removes the queue too.
Needs root, dpkg-buildpackage, lintian and systemd-analyze; skipped otherwise, and when a
tern package is installed already (it would be replaced and purged). Nothing stays installed,
whatever happens."""
import grp
import os
import pwd
import shutil
import stat
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

POLICY = "/usr/sbin/policy-rc.d"
QUEUE = "/var/spool/tern"
MAILDROP = "/var/spool/tern-maildrop"
STATE = "/var/lib/tern"
UNIT = "/lib/systemd/system/ternd.service"


def run(cmd, timeout=120, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)


def installed(pkg):
    """True when dpkg has any trace of `pkg` beyond not-installed (also half-installed, config-files)."""
    p = run(["dpkg-query", "-W", "-f=${db:Status-Status}", pkg])
    return p.returncode == 0 and p.stdout.strip() not in ("", "not-installed")


def check_dir(path, mode, what):
    st = os.lstat(path)
    h.check(stat.S_ISDIR(st.st_mode), f"{what}: {path} is a directory")
    h.check_eq(oct(stat.S_IMODE(st.st_mode)), oct(mode), f"{what}: mode of {path}")
    h.check_eq(pwd.getpwuid(st.st_uid).pw_name, "tern", f"{what}: owner of {path}")
    h.check_eq(grp.getgrgid(st.st_gid).gr_name, "tern", f"{what}: group of {path}")


def dpkg_install(deb):
    p = run(["dpkg", "-i", deb], timeout=300, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    h.check(p.returncode == 0, "dpkg -i tern", p.stdout[-3000:] + p.stderr[-3000:])
    h.check(run(["dpkg-query", "-W", "-f=${db:Status-Status}", "tern"]).stdout == "installed", "tern is installed")


def dpkg_purge():
    p = run(["dpkg", "--purge", "tern"], timeout=300)
    h.check(p.returncode == 0, "dpkg --purge tern", p.stdout[-3000:] + p.stderr[-3000:])
    h.check(not installed("tern"), "tern is gone from dpkg's database after the purge")
    return p.stdout + p.stderr


def scenario(ctx):
    missing = [t for t in ("dpkg-buildpackage", "lintian", "dpkg", "systemd-analyze", "fakeroot")
               if shutil.which(t) is None]
    if missing:
        print(f"SKIP: {', '.join(missing)} not available", flush=True)
        return "SKIP"
    if os.geteuid() != 0:
        print("SKIP: not running as root (dpkg -i needs it)", flush=True)
        return "SKIP"
    if installed("tern") or installed("tern-mta"):
        print("SKIP: a tern package is installed on this machine; this test would replace and purge it",
              flush=True)
        return "SKIP"
    for path in ("/etc/tern", QUEUE, MAILDROP):
        if os.path.exists(path):
            print(f"SKIP: {path} exists (a tern installed by hand?); this test would remove it", flush=True)
            return "SKIP"

    arch = run(["dpkg", "--print-architecture"]).stdout.strip()
    version = run(["dpkg-parsechangelog", "-l", os.path.join(h.SOURCE_DIR, "debian", "changelog"),
                   "-S", "Version"]).stdout.strip()
    # TERN_DEB_DIR: packages built already by packaging/build-deb.sh (while working on
    # debian/); otherwise they are built here, in a scratch copy of the tree.
    out = os.environ.get("TERN_DEB_DIR")
    if out:
        h.step(f"the packages in {out}")
    else:
        h.step("build both packages from a scratch copy and lint them (packaging/build-deb.sh)")
        out = ctx.path("deb")
        # What is tested here is the packaging, not the optimiser: an unoptimised build without
        # debug information compiles in a fraction of the time (the suite has a time budget).
        env = dict(os.environ, DEB_BUILD_OPTIONS="nocheck noopt noautodbgsym parallel=2",
                   DEB_CXXFLAGS_APPEND="-g0", DEB_CFLAGS_APPEND="-g0")
        p = run([os.path.join(h.SOURCE_DIR, "packaging", "build-deb.sh"), out], timeout=3000, env=env)
        with open(ctx.path("build-deb.log"), "w") as f:
            f.write(p.stdout + p.stderr)
        h.check(p.returncode == 0, "build-deb.sh succeeds (build and lintian)", (p.stdout + p.stderr)[-4000:])
    tern_deb = os.path.join(out, f"tern_{version}_{arch}.deb")
    mta_deb = os.path.join(out, f"tern-mta_{version}_{arch}.deb")
    h.check(os.path.isfile(tern_deb) and os.path.isfile(mta_deb), "both .deb files are in the output",
            repr(os.listdir(out)))

    h.step("lintian: no error in either package")
    p = run(["lintian", "--display-info", tern_deb, mta_deb], timeout=600)
    tags = [line for line in p.stdout.splitlines() if line[:2] in ("E:", "W:", "I:", "N:", "X:", "P:")]
    h.check(not any(t.startswith("E:") for t in tags), "lintian reports no error", "\n".join(tags))
    h.check(p.returncode == 0, "lintian exits 0", p.stdout[-2000:] + p.stderr[-2000:])
    for t in tags:
        print(f"  ..   {t}", flush=True)

    h.step("tern-mta (inspected only): the sendmail names, mail-transport-agent, tied to tern's version")
    fields = {f: run(["dpkg-deb", "-f", mta_deb, f]).stdout.strip()
              for f in ("Provides", "Conflicts", "Replaces", "Depends")}
    for f in ("Provides", "Conflicts", "Replaces"):
        h.check_eq(fields[f], "mail-transport-agent", f"tern-mta {f}")
    h.check(f"tern (= {version})" in fields["Depends"], "tern-mta depends on tern of its own version",
            fields["Depends"])
    listing = run(["dpkg-deb", "-c", mta_deb]).stdout
    links = {}
    for line in listing.splitlines():
        parts = line.split()
        if line.startswith("l") and " -> " in line:
            links[parts[-3].lstrip(".")] = parts[-1]
    for name in ("/usr/sbin/sendmail", "/usr/lib/sendmail", "/usr/bin/mailq", "/usr/sbin/newaliases"):
        h.check(name in links and links[name].endswith("tern-sendmail"),
                f"tern-mta links {name} to tern-sendmail", listing)
    for page in ("man8/sendmail.8.gz", "man1/mailq.1.gz", "man8/newaliases.8.gz"):
        h.check(any(k.endswith(page) for k in links), f"tern-mta has the {page} page", listing)
    tern_listing = run(["dpkg-deb", "-c", tern_deb]).stdout
    h.check("./usr/sbin/sendmail" not in tern_listing, "tern itself ships no /usr/sbin/sendmail")
    h.check(run(["dpkg-deb", "-f", tern_deb, "Conflicts"]).stdout.strip() == "", "tern conflicts with nothing")

    user_existed = True
    try:
        pwd.getpwnam("tern")
    except KeyError:
        user_existed = False
    own_policy = False
    saved_policy = None
    try:
        # Nothing starts during the test: invoke-rc.d and deb-systemd-invoke ask policy-rc.d.
        if os.path.lexists(POLICY):
            saved_policy = ctx.path("policy-rc.d.saved")
            shutil.move(POLICY, saved_policy)
        with open(POLICY, "w") as f:
            f.write("#!/bin/sh\n# written by tern's 90_debian_package test: start nothing\nexit 101\n")
        os.chmod(POLICY, 0o755)
        own_policy = True

        h.step("dpkg -i tern: files, conffile, user, directories with owner and mode")
        dpkg_install(tern_deb)
        for b in ("ternd", "ternctl", "tern-sendmail"):
            st = os.stat(f"/usr/sbin/{b}")
            h.check_eq(oct(stat.S_IMODE(st.st_mode)), "0o755", f"mode of /usr/sbin/{b}")
            h.check_eq(st.st_uid, 0, f"owner of /usr/sbin/{b}")
        conffiles = run(["dpkg-query", "-W", "-f=${Conffiles}", "tern"]).stdout
        h.check("/etc/tern/tern.yaml " in conffiles, "/etc/tern/tern.yaml is a conffile", conffiles)
        st = os.stat("/etc/tern/tern.yaml")
        h.check_eq((st.st_uid, oct(stat.S_IMODE(st.st_mode))), (0, "0o644"), "owner and mode of tern.yaml")
        h.check(os.path.isfile(UNIT), f"the unit is installed as {UNIT}")
        for page in ("man8/ternd.8.gz", "man8/ternctl.8.gz", "man8/tern-sendmail.8.gz", "man5/tern.yaml.5.gz"):
            h.check(os.path.isfile(f"/usr/share/man/{page}"), f"man page {page} is installed")
        h.check(os.path.isfile("/usr/share/doc/tern/examples/tern.yaml"), "the documented example config is installed")
        h.check(not os.path.lexists("/usr/sbin/sendmail") or "tern" not in os.path.realpath("/usr/sbin/sendmail"),
                "tern alone does not take over /usr/sbin/sendmail")
        user = pwd.getpwnam("tern")
        h.check_eq(grp.getgrgid(user.pw_gid).gr_name, "tern", "the tern user's primary group")
        h.check(user.pw_uid < 1000, "tern is a system user", str(user.pw_uid))
        h.check(user.pw_shell.endswith("nologin"), "tern has no login shell", user.pw_shell)
        check_dir(QUEUE, 0o750, "queue")
        check_dir(MAILDROP, 0o3733, "maildrop")
        check_dir(STATE, 0o750, "state directory")
        depends = run(["dpkg-query", "-W", "-f=${Depends}", "tern"]).stdout
        h.check("dns-root-data" in depends, "tern depends on dns-root-data", depends)

        h.step("ternd --check on the installed config; systemd-analyze verify on the installed unit")
        p = run(["/usr/sbin/ternd", "--config", "/etc/tern/tern.yaml", "--check"])
        h.check(p.returncode == 0 and "configuration is valid" in p.stdout, "ternd --check accepts /etc/tern/tern.yaml",
                p.stdout + p.stderr)
        p = run(["systemd-analyze", "verify", UNIT])
        h.check(p.returncode == 0, "systemd-analyze verify accepts the unit", p.stdout + p.stderr)
        h.check("ternd.service" not in p.stderr, "systemd-analyze has nothing to say about ternd.service", p.stderr)

        h.step("tern-sendmail by name: newaliases is a no-op, mailq lists (ternd is not running: 75)")
        os.makedirs(ctx.path("names"))
        for name in ("mailq", "newaliases"):
            os.symlink("/usr/sbin/tern-sendmail", ctx.path("names", name))
        p = run([ctx.path("names", "newaliases")], input="")
        h.check_eq(p.returncode, 0, "newaliases exits 0")
        p = run([ctx.path("names", "mailq")], input="")
        h.check(p.returncode == 75 and "cannot reach ternd" in p.stderr, "mailq tries to list the queue",
                f"{p.returncode} {p.stderr}")

        h.step("purge with a message in the queue: config gone, the queue kept and said so")
        os.makedirs(os.path.join(QUEUE, "msg"), mode=0o750, exist_ok=True)
        with open(os.path.join(QUEUE, "msg", "1K12XZ50KYJ"), "w") as f:
            f.write("a message the operator still wants\n")
        with open(os.path.join(QUEUE, "lock"), "w"):
            pass
        said = dpkg_purge()
        h.check(not os.path.exists("/etc/tern"), "/etc/tern is removed by the purge")
        h.check(not os.path.exists(STATE), f"{STATE} is removed by the purge")
        h.check(not os.path.exists(MAILDROP), "the empty maildrop is removed by the purge")
        h.check(os.path.isfile(os.path.join(QUEUE, "msg", "1K12XZ50KYJ")), "the queue holding mail is kept")
        h.check(f"kept {QUEUE}" in said, "the purge says it kept the queue", said)
        h.check(not os.path.exists(UNIT), "the unit is removed")
        shutil.rmtree(QUEUE)

        h.step("install again and purge with an empty queue: the queue goes too")
        dpkg_install(tern_deb)
        os.makedirs(os.path.join(QUEUE, "msg"), mode=0o750, exist_ok=True)
        os.makedirs(os.path.join(QUEUE, "corrupt"), mode=0o750, exist_ok=True)
        with open(os.path.join(QUEUE, "lock"), "w"):
            pass
        said = dpkg_purge()
        h.check(not os.path.exists(QUEUE), "the empty queue is removed by the purge", said)
        h.check(not os.path.exists("/etc/tern"), "/etc/tern is removed by the purge")
    finally:
        if installed("tern-mta"):  # never installed by this test; would only be a previous run's leftover
            run(["dpkg", "--purge", "tern-mta"], timeout=300)
        if installed("tern"):
            p = run(["dpkg", "--purge", "tern"], timeout=300)
            print(f"cleanup: dpkg --purge tern: exit {p.returncode}", flush=True)
        # None of these existed before (else the test skipped): what is left is the test's.
        for path in ("/etc/tern", QUEUE, MAILDROP, STATE):
            if os.path.lexists(path):
                shutil.rmtree(path, ignore_errors=True)
        if own_policy:
            os.unlink(POLICY)
        if saved_policy:
            shutil.move(saved_policy, POLICY)
        # The package leaves its system user behind (Debian practice); the test does not.
        if not user_existed:
            try:
                pwd.getpwnam("tern")
                run(["userdel", "tern"])
                try:
                    grp.getgrnam("tern")
                    run(["groupdel", "tern"])
                except KeyError:
                    pass
            except KeyError:
                pass


if __name__ == "__main__":
    h.main(scenario)
