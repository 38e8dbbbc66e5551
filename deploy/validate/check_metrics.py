#!/usr/bin/env python3
"""Checks that every metric the Grafana dashboards and the Prometheus rules query is one Stampede
exports (deploy/validate.sh).

A name is exported when it appears in a scrape of a running `stampede all` (a sample, or a
`# TYPE` line and the sample names its type implies), or when the Rust sources register it
(`registry.register("name", …, m.field…)` on a registry `with_prefix("stampede")`), since a
family shows up in a scrape only after its first observation. Label names used in matchers and
groupings must be labels of some exported metric (the Rust label sets, plus the ones Prometheus
adds). Names found in neither place are failures.

Usage: check_metrics.py --scrape FILE... --sources DIR... --dashboard FILE... --rules FILE...
       [--write-rules FILE]
"""

import argparse
import json
import re
import sys

import yaml

KEYWORDS = {
    "and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right",
    "bool", "offset", "inf", "nan", "atan2", "start", "end",
}
# Labels Prometheus itself (or a ServiceMonitor) attaches to every series, and `le` of buckets.
TARGET_LABELS = {"le", "instance", "job", "namespace", "pod", "service", "container", "endpoint"}
SUFFIXES = {
    "counter": ["_total", "_created"],
    "gauge": [""],
    "histogram": ["_bucket", "_sum", "_count", "_created"],
    "summary": ["", "_sum", "_count", "_created"],
    "info": ["_info"],
    "stateset": [""],
    "gaugehistogram": ["_bucket", "_gsum", "_gcount"],
    "unknown": [""],
}
GRAFANA_VARS = re.compile(r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}")


def scraped_names(paths):
    """Sample names, and the names `# TYPE` lines imply, from Prometheus/OpenMetrics text."""
    names, labels = set(), set()
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                line = line.strip()
                if line.startswith("# TYPE "):
                    parts = line.split()
                    if len(parts) >= 4:
                        names.update(parts[2] + s for s in SUFFIXES.get(parts[3], [""]))
                elif line and not line.startswith("#"):
                    m = re.match(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?", line)
                    if m:
                        names.add(m.group(1))
                        for lm in re.finditer(r'([a-zA-Z_][a-zA-Z0-9_]*)="', m.group(3) or ""):
                            labels.add(lm.group(1))
    return names, labels


def source_names(paths):
    """Metric names and label names the Rust sources register."""
    import pathlib

    names, labels = set(), set()
    for root in paths:
        for path in pathlib.Path(root).rglob("*.rs"):
            text = path.read_text(encoding="utf-8")
            if "register(" not in text:
                continue
            prefix = ""
            pm = re.search(r'Registry::with_prefix\(\s*"([a-zA-Z0-9_]+)"\s*\)', text)
            if pm:
                prefix = pm.group(1) + "_"
            # Field -> metric type, from the struct that holds the metrics.
            kinds = {}
            for fm in re.finditer(r"^\s*pub\s+([a-z_][a-z0-9_]*)\s*:\s*(.+?),\s*$", text, re.M):
                ty = fm.group(2)
                for word, kind in (("Histogram", "histogram"), ("Counter", "counter"),
                                   ("Gauge", "gauge")):
                    if re.search(r"\b" + word + r"\b", ty):
                        kinds[fm.group(1)] = kind
                        break
            for rm in re.finditer(
                r'register\(\s*"([a-zA-Z_:][a-zA-Z0-9_:]*)"\s*,\s*"(?:[^"\\]|\\.)*"\s*,\s*'
                r"[a-z_]+\.([a-z_][a-z0-9_]*)",
                text,
            ):
                kind = kinds.get(rm.group(2), "unknown")
                base = prefix + rm.group(1)
                names.update(base + s for s in SUFFIXES[kind])
            # Label sets: structs deriving EncodeLabelSet.
            for sm in re.finditer(r"derive\([^)]*EncodeLabelSet[^)]*\)\]\s*pub struct \w+ \{([^}]*)\}",
                                  text):
                for lm in re.finditer(r"pub\s+(?:r#)?([a-z_][a-z0-9_]*)\s*:", sm.group(1)):
                    labels.add(lm.group(1))
    return names, labels


def strip_strings(expr):
    out, i = [], 0
    while i < len(expr):
        c = expr[i]
        if c in "\"'`":
            j = i + 1
            while j < len(expr) and expr[j] != c:
                j += 2 if expr[j] == "\\" and c != "`" else 1
            out.append('""')
            i = j + 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def promql_refs(expr):
    """(metric names, label names) an expression refers to."""
    expr = GRAFANA_VARS.sub("5m", expr)
    labels, created = set(), set()
    # label_replace(v, "dst", "replacement", "src", "regex"): the source label must exist, the
    # destination is made by the query.
    for m in re.finditer(r',\s*"([^"]*)"\s*,\s*"[^"]*"\s*,\s*"([^"]*)"\s*,\s*"[^"]*"\s*\)', expr):
        created.add(m.group(1))
        labels.add(m.group(2))
    text = strip_strings(expr)
    # Label matchers: {name="…", …}.
    for block in re.findall(r"\{([^}]*)\}", text):
        for lm in re.finditer(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)", block):
            labels.add(lm.group(1))
    text = re.sub(r"\{[^}]*\}", " ", text)
    text = re.sub(r"\[[^\]]*\]", " ", text)
    for gm in re.finditer(r"\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)", text):
        labels.update(x.strip() for x in gm.group(2).split(",") if x.strip())
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = set()
    for tm in re.finditer(r"\d+(\.\d+)?([eE][+-]?\d+)?[a-zA-Z]*|([a-zA-Z_:][a-zA-Z0-9_:]*)", text):
        ident = tm.group(3)
        if not ident or ident.lower() in KEYWORDS:
            continue
        rest = text[tm.end():].lstrip()
        if rest.startswith("("):
            continue  # a function
        names.add(ident)
    return names, labels - created


def dashboard_exprs(path):
    with open(path, encoding="utf-8") as f:
        d = json.load(f)
    exprs = []

    def walk(panels):
        for p in panels:
            for t in p.get("targets", []):
                if t.get("expr"):
                    exprs.append((f"{path}: panel {p.get('title')!r} {t.get('refId')}", t["expr"]))
            walk(p.get("panels", []))

    walk(d.get("panels", []))
    for v in d.get("templating", {}).get("list", []):
        query = v.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if v.get("type") == "query" and isinstance(query, str):
            m = re.match(r"\s*label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$", query)
            if m:
                exprs.append((f"{path}: variable {v.get('name')}", m.group(1)))
                exprs.append((f"{path}: variable {v.get('name')}", f"count by ({m.group(2)}) ({m.group(1)})"))
            else:
                exprs.append((f"{path}: variable {v.get('name')}", query))
    return exprs


def rule_exprs(path):
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f)
    if doc.get("kind") == "PrometheusRule":
        doc = doc["spec"]
    exprs = []
    for group in doc.get("groups", []):
        for rule in group.get("rules", []):
            name = rule.get("alert") or rule.get("record")
            exprs.append((f"{path}: {group.get('name')}/{name}", str(rule["expr"])))
    return exprs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--scrape", nargs="+", default=[])
    ap.add_argument("--sources", nargs="+", default=[])
    ap.add_argument("--dashboard", nargs="*", default=[])
    ap.add_argument("--rules", nargs="*", default=[])
    ap.add_argument("--write-rules", metavar="FILE",
                    help="also write every query as a recording rule, for `promtool check rules`")
    args = ap.parse_args()

    scraped, scraped_labels = scraped_names(args.scrape)
    registered, source_labels = source_names(args.sources)
    known_labels = scraped_labels | source_labels | TARGET_LABELS
    if not scraped:
        print("check_metrics: the scrape holds no metric", file=sys.stderr)
        return 1
    exprs = []
    for path in args.dashboard:
        exprs += dashboard_exprs(path)
    for path in args.rules:
        exprs += rule_exprs(path)

    if args.write_rules:
        # Grafana's variables stand in as values promtool can parse.
        rules = [{"record": f"stampede_validate:query_{i}",
                  "expr": GRAFANA_VARS.sub("5m", expr).replace("$", "")}
                 for i, (_, expr) in enumerate(exprs)]
        with open(args.write_rules, "w", encoding="utf-8") as f:
            yaml.safe_dump({"groups": [{"name": "queries", "rules": rules}]}, f)

    failures, only_source, seen, used = [], set(), set(), set()
    for where, expr in exprs:
        names, labels = promql_refs(expr)
        if not names:
            failures.append(f"{where}: no metric name found in {expr!r}")
        for name in sorted(names):
            used.add(name)
            if name in scraped:
                seen.add(name)
                continue
            if name in registered:
                only_source.add(name)
                continue
            failures.append(f"{where}: {name} is not exported (neither in the scrape nor "
                            f"registered in the Rust sources)")
        for label in sorted(labels - known_labels):
            failures.append(f"{where}: label {label!r} is on no exported metric")

    print(f"check_metrics: {len(exprs)} queries name {len(used)} metrics; "
          f"{len(seen)} seen in the scrape, {len(only_source)} only registered in "
          f"the sources (no observation yet): {', '.join(sorted(only_source)) or '-'}")
    for f in failures:
        print(f"FAIL: {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
