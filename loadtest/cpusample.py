#!/usr/bin/env python3
"""CPU by process name, sampled from /proc once a second, for splitting a benchmark's CPU between
the server, PostgreSQL, Redis and the load generator.

    python3 loadtest/cpusample.py OUT.log &   # one line a second: "<unix time> name=ticks ..."
    ... run a benchmark, noting when each phase starts ...
    python3 loadtest/cpusample.py --split OUT.log START END   # cores used per process name

Ticks are cumulative user+system clock ticks summed over every process of a name (all
PostgreSQL backends count as `postgres`); --split divides the difference between the samples
nearest START and END by the time between them.
"""
import collections
import os
import sys
import time


def sample(path):
    hz = os.sysconf("SC_CLK_TCK")
    with open(path, "w") as out:
        while True:
            totals = collections.Counter()
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        stat = f.read()
                except OSError:
                    continue
                name = stat[stat.index("(") + 1 : stat.rindex(")")].replace(" ", "_")
                if name.startswith("postgres"):
                    name = "postgres"
                fields = stat[stat.rindex(")") + 2 :].split()
                totals[name] += (int(fields[11]) + int(fields[12])) * 100 // hz
            line = " ".join(f"{k}={v}" for k, v in totals.items() if v > 0)
            out.write(f"{time.time():.1f} {line}\n")
            out.flush()
            time.sleep(1)


def split(path, start, end):
    rows = []
    with open(path) as f:
        for line in f:
            parts = line.split()
            rows.append((float(parts[0]), {k: int(v) for k, v in (p.rsplit("=", 1) for p in parts[1:])}))
    first = min(rows, key=lambda r: abs(r[0] - start))
    last = min(rows, key=lambda r: abs(r[0] - end))
    seconds = last[0] - first[0]
    if seconds <= 0:
        sys.exit(f"no samples between {start} and {end} in {path}")
    cores = {k: (v - first[1].get(k, 0)) / 100 / seconds for k, v in last[1].items()}
    for name, used in sorted(cores.items(), key=lambda c: -c[1]):
        if used >= 0.03:
            print(f"{name} {used:.2f}")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--split":
        split(sys.argv[2], float(sys.argv[3]), float(sys.argv[4]))
    elif len(sys.argv) == 2:
        sample(sys.argv[1])
    else:
        sys.exit(__doc__)
