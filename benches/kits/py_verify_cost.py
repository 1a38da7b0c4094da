"""The cost of one verify without HTTP: the kit's Verifier.verify vs a bare PyJWT jwt.decode
(py_server.py's /bare), in interleaved blocks of 500 calls over the tokens of a file, one
thread, until each has had SECS seconds; also the kit's own steps alone (its compact-form regex
and header parse). Prints one JSON line.

    AUTHD_URL=... AUTHD_SERVICE_KEY=... /work/bench-venv/bin/python \\
        benches/kits/py_verify_cost.py TOKENS_FILE [SECS]
"""

import json
import os
import sys
import time

import httpx
import jwt

from authd_verify import Verifier
from authd_verify import verifier as kit_module

file = sys.argv[1]
secs = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
base_url = os.environ["AUTHD_URL"]
tokens = [t for t in open(file).read().split("\n") if t]
verifier = Verifier(base_url, os.environ["AUTHD_SERVICE_KEY"]).start()
jwk = next(k for k in httpx.get(f"{base_url}/.well-known/jwks.json").json()["keys"] if k.get("crv") == "Ed25519")
key = jwt.PyJWK({"kty": "OKP", "crv": "Ed25519", "x": jwk["x"]}, algorithm="EdDSA").key
required = ["iss", "aud", "sub", "sid", "jti", "iat", "exp"]


def bare(t):
    return jwt.decode(t, key, algorithms=["EdDSA"], audience="authd", issuer=base_url, leeway=30,
                      options={"require": required})


def pre_checks(t):  # what the kit does before jwt.decode, as verifier.py does it
    kit_module._COMPACT.fullmatch(t)
    return kit_module._header(t)


variants = {"bare": bare, "kit": verifier.verify, "kit_pre_checks": pre_checks}
acc = {v: [0, 0, 0] for v in variants}  # calls, wall ns, cpu ns
for f in variants.values():
    for k in range(200):
        f(tokens[k % len(tokens)])
i = 0
while any(acc[v][1] < secs * 1e9 for v in ("bare", "kit")):
    for name, f in variants.items():
        c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
        for _ in range(500):
            f(tokens[i % len(tokens)])
            i += 1
        acc[name][0] += 500
        acc[name][1] += time.perf_counter_ns() - t0
        acc[name][2] += time.thread_time_ns() - c0
verifier.close()
r = {"mode": "verify_cost", "kit": "python", "python": sys.version.split()[0], "distinct_tokens": len(tokens)}
for name, (n, wall, cpu) in acc.items():
    r[f"{name}_wall_us"] = round(wall / n / 1e3, 2)
    r[f"{name}_cpu_us"] = round(cpu / n / 1e3, 2)
r["kit_over_bare_wall"] = round(r["kit_wall_us"] / r["bare_wall_us"], 3)
r["kit_over_bare_cpu"] = round(r["kit_cpu_us"] / r["bare_cpu_us"], 3)
print(json.dumps(r))
