#!/usr/bin/env python3
"""CPU by process name, sampled from /proc once a second, for splitting a benchmark's CPU between
the server, PostgreSQL, Redis and the load generator.

    python3 loadtest/cpusample.py OUT.log &   # one line a second: "<unix time> name=ticks ..."
    ... run a benchmark, noting when each phase starts ...
    python3 loadtest/cpusample.py --split OUT.log START END   # cores used per process name

Ticks are cumulative user+system CPU time in hundredths of a second, summed over every process
of a name (all PostgreSQL backends count as `postgres`); --split divides the difference between
the samples nearest START and END by the time between them.

For exact figures around one run, read the ticks before and after it instead of sampling:

    before=$(python3 loadtest/cpusample.py --snapshot web=PID ...)   # name=ticks ... machine=ticks
    ... run ...
    python3 loadtest/cpusample.py --per-request "$before" "$(python3 loadtest/cpusample.py --snapshot web=PID ...)" \
        REQUESTS web postgres ...    # JSON: microseconds of CPU per request of each name

A NAME=PID given to --snapshot counts that process under NAME rather than its own name (two
processes of one binary told apart). `machine` is the whole machine's busy time; --per-request
reports it, and as `rest` what it holds beyond the names asked for.
"""
import collections
import json
import os
import sys
import time


def ticks(named=None):
    """CPU time per process name (hundredths of a second); the pids of `named` (name -> pid)
    under their given names."""
    hz = os.sysconf("SC_CLK_TCK")
    renamed = {str(pid): name for name, pid in (named or {}).items()}
    totals = collections.Counter()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # gone since the listing (an autovacuum worker, say)
        name = renamed.get(pid) or stat[stat.index("(") + 1 : stat.rindex(")")].replace(" ", "_")
        if name.startswith("postgres"):
            name = "postgres"
        fields = stat[stat.rindex(")") + 2 :].split()
        totals[name] += (int(fields[11]) + int(fields[12])) * 100 // hz
    return totals


def machine_busy():
    """The machine's busy time (user, nice, system, irq, softirq) in hundredths of a second."""
    hz = os.sysconf("SC_CLK_TCK")
    with open("/proc/stat") as f:
        cpu = [int(v) for v in f.readline().split()[1:]]
    return (cpu[0] + cpu[1] + cpu[2] + cpu[5] + cpu[6]) * 100 // hz


def line(totals):
    return " ".join(f"{k}={v}" for k, v in totals.items() if v > 0)


def parse(text):
    return {k: int(v) for k, v in (p.rsplit("=", 1) for p in text.split())}


def sample(path):
    with open(path, "w") as out:
        while True:
            out.write(f"{time.time():.1f} {line(ticks())}\n")
            out.flush()
            time.sleep(1)


def per_request(before, after, requests, names):
    before, after = parse(before), parse(after)
    us = {k: round((after.get(k, 0) - before.get(k, 0)) / 100 / max(requests, 1) * 1e6)
          for k in [*names, "machine"]}
    us["rest"] = us["machine"] - sum(us[k] for k in names)
    print(json.dumps(us))


def split(path, start, end):
    rows = []
    with open(path) as f:
        for row in f:
            at, _, totals = row.partition(" ")
            rows.append((float(at), parse(totals)))
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
    elif len(sys.argv) >= 2 and sys.argv[1] == "--snapshot":
        named = {k: int(v) for k, v in (a.split("=", 1) for a in sys.argv[2:])}
        totals = ticks(named)
        totals["machine"] = machine_busy()
        print(line(totals))
    elif len(sys.argv) >= 5 and sys.argv[1] == "--per-request":
        per_request(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5:])
    elif len(sys.argv) == 2:
        sample(sys.argv[1])
    else:
        sys.exit(__doc__)
