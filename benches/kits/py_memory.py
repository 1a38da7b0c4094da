"""The Python kit's revoked set: memory before and after it holds 100,000 more entries that
arrived through authd's feed (rows inserted straight into revoked_sessions by a child process,
benches/kits/insert_revoked.py; authd's sync loop reads them and serves them on the feed).

    AUTHD_URL=... AUTHD_SERVICE_KEY=... /work/bench-venv/bin/python benches/kits/py_memory.py \\
        DB_FILE snapshot|follow [--tracemalloc]

snapshot: 100,000 rows, then the verifier is started (it loads them as its snapshot), then
100,000 more arrive through the long-poll; follow: the verifier starts on an empty feed, then
100,000 and 100,000 more arrive. At each point: gc.collect(), 300 ms, VmRSS and RssAnon, and
with --tracemalloc the traced Python allocations (tracemalloc started before the verifier; its
own bookkeeping is in RSS then, so the RSS figures of those runs are not comparable).
Prints one JSON line.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import httpx

from authd_verify import Verifier

db_file, sequence = sys.argv[1], sys.argv[2]
traced = "--tracemalloc" in sys.argv
base_url = os.environ["AUTHD_URL"]
key = os.environ["AUTHD_SERVICE_KEY"]
STEP = 100_000
insert_script = str(Path(__file__).with_name("insert_revoked.py"))


def status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def authd_entries() -> int:
    for line in httpx.get(f"{base_url}/metrics").text.splitlines():
        if line.startswith("authd_revoked_sessions "):
            return int(float(line.split()[1]))
    return 0


def until(what: str, test, secs: float = 120) -> None:
    t = time.monotonic()
    while not test():
        if time.monotonic() - t > secs:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.05)


def insert(n: int) -> None:
    subprocess.run([sys.executable, insert_script, db_file, str(n)], check=True,
                   stdout=subprocess.DEVNULL)


points: list[dict] = []


def point(at: str, entries: int) -> None:
    gc.collect()
    time.sleep(0.3)
    gc.collect()
    p = {"at": at, "kit_entries": entries, "rss_kb": status_kb("VmRSS"), "rss_anon_kb": status_kb("RssAnon")}
    if traced:
        p["traced_bytes"] = tracemalloc.get_traced_memory()[0]
    points.append(p)


authd_entries()  # warms this process's httpx before the first reading
if traced:
    tracemalloc.start()
build_s = None
if sequence == "snapshot":
    insert(STEP)
    until("authd's sync", lambda: authd_entries() >= STEP)
    point("before the verifier", 0)
    t = time.monotonic()
    verifier = Verifier(base_url, key).start()
    build_s = round(time.monotonic() - t, 3)
    point("snapshot loaded", verifier.status().revoked_entries)
else:
    verifier = Verifier(base_url, key).start()
    point("verifier started, empty", verifier.status().revoked_entries)
for _ in range(1 if sequence == "snapshot" else 2):
    want = verifier.status().revoked_entries + STEP
    t = time.monotonic()
    insert(STEP)
    until("the kit", lambda: verifier.status().revoked_entries >= want)
    point(f"+{STEP} through the feed ({round((time.monotonic() - t) * 1000)} ms)",
          verifier.status().revoked_entries)
verifier.close()

deltas = []
for a, b in zip(points, points[1:]):
    n = b["kit_entries"] - a["kit_entries"]
    d = {"entries": n, "rss_bytes_per_entry": round((b["rss_kb"] - a["rss_kb"]) * 1024 / n),
         "rss_anon_bytes_per_entry": round((b["rss_anon_kb"] - a["rss_anon_kb"]) * 1024 / n)}
    if traced:
        d["traced_bytes_per_entry"] = round((b["traced_bytes"] - a["traced_bytes"]) / n)
    deltas.append(d)
print(json.dumps({"mode": "memory", "kit": "python", "sequence": sequence, "tracemalloc": traced,
                  "python": sys.version.split()[0], "build_s": build_s, "points": points,
                  "deltas": deltas}))
