#!/usr/bin/env python3
"""Where a process's RSS is: the largest mappings of a `/proc/PID/smaps` file.

    scripts/smaps-summary.py /proc/PID/smaps            # a live process
    scripts/smaps-summary.py DIR/idle.smaps [--top N]   # what `cargo bench --bench daemon -- --keep` saved

One line per mapping, largest resident first: resident KiB, of which anonymous (the process's
own memory: heap, relocated data, stacks) and file-backed (pages of the binary and libraries,
shared with the page cache and reclaimable), the mapping's size, permissions and name. Then the
totals, which match `VmRSS` and `RssAnon` of `/proc/PID/status`.
"""

import argparse
import re
import sys

MAPPING = re.compile(r"^[0-9a-f]+-[0-9a-f]+ ")


def mappings(lines):
    current = None
    for line in lines:
        if MAPPING.match(line):
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            current = {
                "size": (end - start) // 1024,
                "perms": fields[1],
                "name": fields[5] if len(fields) > 5 else "[anonymous]",
            }
            yield current
        elif current is not None:
            key, _, value = line.partition(":")
            value = value.strip()
            if value.endswith(" kB"):
                current[key] = int(value[:-3])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("smaps", help="a /proc/PID/smaps file")
    parser.add_argument("--top", type=int, default=12, help="mappings shown (default 12)")
    args = parser.parse_args()
    with open(args.smaps, encoding="utf-8") as f:
        rows = list(mappings(f))
    if not rows:
        sys.exit(f"{args.smaps}: no mappings found (is it a /proc/PID/smaps file?)")
    rows.sort(key=lambda r: -r.get("Rss", 0))
    print(f"{'RSS KiB':>9} {'anon KiB':>9} {'file KiB':>9} {'size KiB':>9}  perms  mapping")
    for r in rows[: args.top]:
        rss, anon = r.get("Rss", 0), r.get("Anonymous", 0)
        print(f"{rss:9} {anon:9} {rss - anon:9} {r['size']:9}  {r['perms']}   {r['name']}")
    rss = sum(r.get("Rss", 0) for r in rows)
    anon = sum(r.get("Anonymous", 0) for r in rows)
    print(f"{rss:9} {anon:9} {rss - anon:9} {'':9}  total ({rss / 1024:.1f} MiB resident, "
          f"{anon / 1024:.1f} MiB anonymous)")


if __name__ == "__main__":
    main()
