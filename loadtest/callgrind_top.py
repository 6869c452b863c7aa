#!/usr/bin/env python3
"""Self cost per function from a callgrind dump (uncompressed names and positions).

  callgrind_top.py DUMP [N] [REQUESTS]

callgrind_annotate 3.19 folds a dump taken with `callgrind_control -d` after `-z` into its
thread's entry function; this reads the file format directly: a cost line after `fn=` is that
function's own cost, the cost line right after `calls=` is a callee's inclusive cost and is
skipped. Prints the top N functions, with instructions per request when REQUESTS is given.
"""
import collections
import re
import sys

REGISTRY = re.compile(r"/root/\.cargo/registry/src/index\.crates\.io-[0-9a-f]+/")


def main(path, top=30, requests=0):
    self_cost = collections.Counter()
    total = 0
    fn = None
    skip_next = False
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("fn="):
                fn = line[3:].strip()
                fn = re.sub(r"^\(\d+\)\s*", "", fn)
            elif line.startswith("calls="):
                skip_next = True
            elif line[:1].isdigit() or line[:1] in "+-*":
                if skip_next:
                    skip_next = False
                    continue
                parts = line.split()
                if len(parts) >= 2 and fn is not None:
                    cost = int(parts[1])
                    self_cost[fn] += cost
                    total += cost
    print(f"{'Ir':>14} {'%':>6} {'per req':>8}  function (self cost)")
    for name, cost in self_cost.most_common(top):
        per = f"{cost / requests:8.0f}" if requests else ""
        print(f"{cost:>14,} {100 * cost / total:6.2f} {per}  {REGISTRY.sub('', name)[:160]}")
    print(f"{total:>14,} 100.00 {total / requests if requests else 0:8.0f}  total")


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 30,
         int(sys.argv[3]) if len(sys.argv) > 3 else 0)
