"""Inserts N rows straight into authd's SQLite revoked_sessions table, as
examples/feedbench.rs `insert-revoked` does (random UUIDs, revoked_at now, expires_at now +
HORIZON seconds, reason logout), so that a running authd reads them through its sync loop and
serves them on the feed. Run as a child process, so that no database code runs in the measured
process.

    python3 benches/kits/insert_revoked.py DB_FILE N [HORIZON_SECS=600]
"""

import json
import sqlite3
import sys
import time
import uuid

path, count = sys.argv[1], int(sys.argv[2])
horizon = int(sys.argv[3]) if len(sys.argv) > 3 else 600
t0 = time.monotonic()
db = sqlite3.connect(path, timeout=30, isolation_level=None)
now = int(time.time())
done = 0
while done < count:
    db.execute("BEGIN IMMEDIATE")
    for _ in range(20):
        n = min(1000, count - done)
        if n <= 0:
            break
        db.executemany(
            "INSERT INTO revoked_sessions (session_id, user_id, revoked_at, expires_at, reason)"
            " VALUES (?, ?, ?, ?, 'logout')",
            [(str(uuid.uuid4()), str(uuid.uuid4()), now, now + horizon) for _ in range(n)],
        )
        done += n
    db.execute("COMMIT")
db.close()
print(json.dumps({"mode": "insert_revoked", "rows": count, "seconds": round(time.monotonic() - t0, 2)}),
      file=sys.stderr)
