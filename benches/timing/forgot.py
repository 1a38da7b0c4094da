#!/usr/bin/env python3
"""Does POST /auth/password/forgot take the same time for a known and an unknown address?

Starts nothing: point it at a running authd with rate limits off (AUTHD_RATE_LIMITS=off), for
example `AUTHD_RATE_LIMITS=off AUTHD_MAIL_DIR=$(mktemp -d) target/release/authd`. It registers
one account, then sends N requests alternating between that account's address and unknown
ones over one kept-alive connection, and prints the median and the 90th percentile of each, in
milliseconds, with the answers' bytes compared.

Usage: python3 benches/timing/forgot.py [URL] [N]   (default http://127.0.0.1:8080, 300)
"""
import http.client
import json
import statistics
import sys
import time
import urllib.parse
import uuid

url = urllib.parse.urlparse(sys.argv[1] if len(sys.argv) > 1 else "http://127.0.0.1:8080")
n = int(sys.argv[2]) if len(sys.argv) > 2 else 300
conn = http.client.HTTPConnection(url.hostname, url.port or 80)


def post(path, body):
    conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
    r = conn.getresponse()
    return r.status, r.read()


known = f"timing-{uuid.uuid4().hex[:12]}@example.com"
status, _ = post("/auth/register", {"email": known, "password": "timing horse battery"})
assert status == 201, status
times = {"known": [], "unknown": []}
answers = {"known": set(), "unknown": set()}
for i in range(n):
    kind = "known" if i % 2 == 0 else "unknown"
    address = known if kind == "known" else f"nobody-{uuid.uuid4().hex[:12]}@example.com"
    start = time.perf_counter()
    status, body = post("/auth/password/forgot", {"email": address})
    times[kind].append((time.perf_counter() - start) * 1000)
    answers[kind].add((status, body))
for kind, ts in times.items():
    q = statistics.quantiles(ts, n=10)
    print(f"{kind:8} n={len(ts)} median={statistics.median(ts):.3f} ms p90={q[8]:.3f} ms")
print("answers identical:", answers["known"] == answers["unknown"], sorted(answers["known"]))
