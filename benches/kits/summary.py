"""Medians of benches/kits/run.sh's lines: python3 benches/kits/summary.py OUT_DIR.

throughput: per server and token set, the undisturbed runs (the last attempt when every attempt
of a run was disturbed) of /bare and /kit: req/s, p99 and server CPU per request; the ratio of
the medians and the median of the paired ratios (kit / the bare run of the same round).
memory: per kit and sequence, bytes per entry of each 100,000 step.
"""

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path

out = Path(sys.argv[1])
TARGET = {"hapi": 0.95, "express": 0.95, "fastify": 0.95, "fastapi": 0.90, "starlette": 0.90}
med = statistics.median


def lines(name):
    p = out / name
    return [json.loads(l) for l in p.read_text().splitlines() if l.strip()] if p.exists() else []


runs = {}
for r in lines("kits-throughput.jsonl"):
    if r.get("mode") != "wrk":
        continue
    k = (r["server"], r["tokens"], r["route"], r["run"])
    if k not in runs or runs[k].get("disturbed") or not r.get("disturbed"):
        runs[k] = r
by = defaultdict(dict)
for (s, t, route, run), r in runs.items():
    by[(s, t)].setdefault(route, {})[run] = r
if by:
    print("throughput: wrk -t2 -c32, req/s medians (undisturbed runs)")
    print(f"{'server':10} {'tokens':6} {'bare req/s':>10} {'kit req/s':>10} {'ratio':>6} "
          f"{'paired':>20} {'p99 bare/kit ms':>16} {'CPU us/req bare/kit':>20} {'n':>2} target")
for (s, t) in sorted(by, key=lambda k: (list(TARGET).index(k[0]), k[1] != "many")):
    bare, kit = by[(s, t)].get("bare", {}), by[(s, t)].get("kit", {})
    both = sorted(set(bare) & set(kit))
    if not both:
        continue
    b = med(bare[i]["rps"] for i in both)
    k = med(kit[i]["rps"] for i in both)
    paired = [kit[i]["rps"] / bare[i]["rps"] for i in both]
    ratio = k / b
    goal = TARGET[s]
    print(f"{s:10} {t:6} {b:10,.0f} {k:10,.0f} {ratio:6.3f} "
          f"{','.join(f'{p:.3f}' for p in paired):>20} "
          f"{med(bare[i]['p99_ms'] for i in both):7.1f}/{med(kit[i]['p99_ms'] for i in both):<7.1f} "
          f"{med(bare[i]['server_cpu_us_per_req'] for i in both):9.1f}/"
          f"{med(kit[i]['server_cpu_us_per_req'] for i in both):<9.1f} {len(both):2} "
          f">= {goal:.2f}: {'met' if ratio >= goal else 'MISSED'}"
          + ("" if all(bare[i].get("non_2xx", 0) == 0 and kit[i].get("non_2xx", 0) == 0 for i in both)
             else "  (non-2xx answers!)"))
disturbed = sum(1 for r in lines("kits-throughput.jsonl") if r.get("disturbed"))
if by:
    print(f"disturbed lines (re-run): {disturbed}")

mem = defaultdict(list)
for r in lines("kits-memory.jsonl"):
    if r.get("mode") == "memory":
        mem[(r["kit"], r["sequence"], r.get("tracemalloc", False))].append(r)
if mem:
    print("\nmemory: bytes per revoked entry, medians (first 100,000; next 100,000)")
for (kit, seq, traced), rs in sorted(mem.items()):
    fields = ["heap_bytes_per_entry", "rss_bytes_per_entry"] if kit == "node" else (
        ["traced_bytes_per_entry"] if traced else ["rss_bytes_per_entry", "rss_anon_bytes_per_entry"])
    parts = []
    for f in fields:
        steps = [med(r["deltas"][i][f] for r in rs) for i in range(len(rs[0]["deltas"]))]
        parts.append(f"{f.replace('_bytes_per_entry', '')} {'; '.join(f'{x:.0f}' for x in steps)}")
    build = [r.get("build_ms") or (r.get("build_s") or 0) * 1000 for r in rs]
    extra = f", snapshot of 100,000 loaded in {med(build):.0f} ms" if seq == "snapshot" else ""
    print(f"{kit:6} {seq:8}{' tracemalloc' if traced else ''}: {', '.join(parts)} (n={len(rs)}){extra}")

cost = defaultdict(list)
for r in lines("kits-verify-cost.jsonl"):
    if r.get("mode") == "verify_cost":
        cost[r["kit"]].append(r)
if cost:
    print("\nverify cost, one call at a time, no HTTP: medians (us per call)")
for kit, rs in sorted(cost.items()):
    f = lambda k: med(r[k] for r in rs)
    pre = f" kit pre-checks alone {f('kit_pre_checks_cpu_us'):.2f}," if "kit_pre_checks_cpu_us" in rs[0] else ""
    print(f"{kit:6} bare {f('bare_wall_us'):.2f} wall / {f('bare_cpu_us'):.2f} CPU, kit {f('kit_wall_us'):.2f} wall / "
          f"{f('kit_cpu_us'):.2f} CPU,{pre} kit/bare wall {f('kit_over_bare_wall'):.3f} "
          f"({', '.join(str(r['kit_over_bare_wall']) for r in rs)}), CPU {f('kit_over_bare_cpu'):.3f} "
          f"({', '.join(str(r['kit_over_bare_cpu']) for r in rs)}) (n={len(rs)})")

dep = defaultdict(list)
for r in lines("kits-fastapi-dep.jsonl"):
    if r.get("mode") == "wrk" and not r.get("disturbed"):
        dep[r["route"]].append(r)
if dep:
    print("\nFastAPI alone: /bare, /dep (the bare check as a plain dependency), /kit, /mw (the Starlette"
          " middleware, where measured); medians")
    b = med(r["rps"] for r in dep["bare"])
    for route in ("bare", "dep", "kit", "mw"):
        rs = dep[route]
        if not rs:
            continue
        print(f"{route:5} {med(r['rps'] for r in rs):8,.0f} req/s ({med(r['rps'] for r in rs) / b:.3f} of bare), "
              f"CPU {med(r['server_cpu_us_per_req'] for r in rs):.1f} us/req, p99 {med(r['p99_ms'] for r in rs):.1f} ms"
              f" (n={len(rs)})")
