#!/usr/bin/env python3
"""The disk's floor under tern's per-message commit, without tern.

  commit-floor.py DIR [--count N] [--size B]

Repeats, in one thread and with no event loop, the file-system steps that queue-format.md
prescribes for one message (create tmp/ID with O_EXCL, write header and data, fdatasync,
close, rename into msg/ with RENAME_NOREPLACE semantics, fsync msg/), then removes the file
(as delivery would, without a directory fsync). Prints the median and 90th percentile of each
step in microseconds and the serial commit rate they allow. Everything happens under DIR
(a scratch directory on the queue's file system), which is emptied afterwards.
"""
import argparse
import os
import shutil
import statistics
import time


def main():
    p = argparse.ArgumentParser()
    p.add_argument("dir")
    p.add_argument("--count", type=int, default=1000)
    p.add_argument("--size", type=int, default=1300)
    p.add_argument("--prefix", default="floor_")
    a = p.parse_args()
    root = os.path.join(a.dir, f"commit-floor.{os.getpid()}")
    tmp, msg = os.path.join(root, "tmp"), os.path.join(root, "msg")
    os.makedirs(tmp)
    os.makedirs(msg)
    tfd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY)
    mfd = os.open(msg, os.O_RDONLY | os.O_DIRECTORY)
    header, data = b"H" * 230, b"x" * a.size
    steps = {k: [] for k in ("create_write", "fdatasync", "close", "rename", "fsync_dir", "commit")}
    try:
        for i in range(a.count):
            name = f"{i:011d}"
            t0 = time.perf_counter()
            fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640, dir_fd=tfd)
            os.write(fd, header)
            os.write(fd, data)
            t1 = time.perf_counter()
            os.fdatasync(fd)
            t2 = time.perf_counter()
            os.close(fd)
            t3 = time.perf_counter()
            # tern uses renameat2(RENAME_NOREPLACE); Python has no binding, and the
            # destination never exists here, so a plain rename costs the same.
            os.rename(name, name, src_dir_fd=tfd, dst_dir_fd=mfd)
            t4 = time.perf_counter()
            os.fsync(mfd)
            t5 = time.perf_counter()
            for k, v in zip(steps, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t5 - t0)):
                steps[k].append(v * 1e6)
            if i >= 50:  # delivery removes messages without a directory fsync
                os.unlink(f"{i - 50:011d}", dir_fd=mfd)
    finally:
        os.close(tfd)
        os.close(mfd)
        shutil.rmtree(root)
    for k, v in steps.items():
        v.sort()
        print(f"{a.prefix}{k}_us_median {statistics.median(v):.0f}")
        print(f"{a.prefix}{k}_us_p90 {v[int(len(v) * 0.9)]:.0f}")
    print(f"{a.prefix}serial_commits_per_s {1e6 / statistics.median(steps['commit']):.0f}")


if __name__ == "__main__":
    main()
