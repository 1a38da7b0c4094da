#!/usr/bin/env bash
# Reproduces the figures of benches/PERFORMANCE.md. Every server it starts listens on
# 127.0.0.1 only, runs with AUTHD_RATE_LIMITS=off, and is killed before the next one starts.
#
#   benches/perf.sh build                   # release server + loadgen, copied to /tmp
#   benches/perf.sh modes sqlite|postgres   # every mode, 3 runs each, fresh server + database per run
#   benches/perf.sh mixed sqlite|postgres   # login storm (c=64) while verify and refresh-chain run
#   benches/perf.sh scale sqlite|postgres   # 1,000,000 seeded sessions: start-up time, refresh-chain
#   benches/perf.sh soak  sqlite|postgres   # 10 min refresh-chain with short lifetimes, sampled every 30 s
#   benches/perf.sh micro                   # cargo bench --bench hot_paths
#   benches/perf.sh rotation sqlite         # raw SQLite transaction, then refresh-chain c=32, 3 rounds
#   benches/perf.sh profile sqlite MODE C   # perf stat + perf record -g of the server under a mode
#   benches/perf.sh summary FILE...         # medians of the JSON lines
#   benches/perf.sh feed [all|propagation|throughput|verify-cost|held|held-rss|memory|memory-diag|summary]
#                                           # revocation feed + verifier kit (examples/feedbench.rs),
#                                           # 3 runs each, into benches/results/2026-12-02/
#   benches/kits/run.sh all|throughput|memory|verify-cost|fastapi-dep|summary
#                                           # the Node and Python kits (a script of its own)
#
# Results are JSON lines appended to $OUT (default benches/results/<backend>-<what>.jsonl).
# Environment: PORT (18080), PG (postgres://postgres@127.0.0.1:5432), DURATION (15), RUNS (3),
# SOAK_SECS (600), SEED_SESSIONS (1000000), AUTHD_BIN / LOADGEN_BIN / FEEDBENCH_BIN (the /tmp
# copies), CARGO_TARGET_DIR (where `build` builds; default target). feed: FEED_OUT, LOGOUTS (1000),
# LOGOUT_RATE (100), WRK_SECS (10), HELD (500), FEED_BACKENDS ("sqlite postgres"), FEED_CASES
# ("same cross"), RUN_BASE (0: run numbers start at RUN_BASE + 1), QUIET_PCT, QUIET_WAIT,
# DISTURBED_CORES (see the feed section below).
set -euo pipefail
cd "$(dirname "$0")/.."

PORT=${PORT:-18080}
URL="http://127.0.0.1:$PORT"
PG=${PG:-postgres://postgres@127.0.0.1:5432}
DURATION=${DURATION:-15}
RUNS=${RUNS:-3}
BIN=${AUTHD_BIN:-/tmp/authd-perf/authd}
LG=${LOADGEN_BIN:-/tmp/authd-perf/loadgen}
FB=${FEEDBENCH_BIN:-/tmp/authd-perf/feedbench}
HP=${HOT_PATHS_BIN:-/tmp/authd-perf/hot_paths}
WORK=${WORK:-/tmp/authd-perf/work}
mkdir -p "$WORK" benches/results
SERVER_PID=
DB_URL=
DB_FILE=
PG_DB=

log() { printf '[perf %s] %s\n' "$(date +%T)" "$*" >&2; }

# What else is running (the machine is shared): load average, CPU busy % and the busiest
# processes over one second.
context() {
    local what=$1
    top -b -n 2 -d 1 -o %CPU -w 200 | python3 -c '
import json, sys
frames = sys.stdin.read().split("top - ")
last = frames[-1].splitlines()
load = last[0].split("load average:")[1].strip().split(", ")
cpu = next(l for l in last if l.startswith("%Cpu"))
idle = float(cpu.split(",")[3].split()[0])
i = next(k for k, l in enumerate(last) if l.strip().startswith("PID"))
procs = [l.split() for l in last[i + 1:] if l.strip()]
top = [f"{p[8]}% {p[11]}" for p in procs[:6] if float(p[8]) > 0]
print(json.dumps({"mode": "context", "what": sys.argv[1], "loadavg": load,
                  "cpu_busy_pct": round(100 - idle, 1), "top": top}))
' "$what"
}

fresh_db() {
    local backend=$1 tag=$2
    case $backend in
    sqlite)
        DB_FILE="$WORK/$tag.db"
        rm -f "$DB_FILE" "$DB_FILE-wal" "$DB_FILE-shm"
        DB_URL="sqlite://$DB_FILE?mode=rwc"
        ;;
    postgres)
        PG_DB="authd_perf_${tag//-/_}"
        psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $PG_DB" -c "CREATE DATABASE $PG_DB"
        DB_URL="$PG/$PG_DB"
        ;;
    *)
        echo "backend must be sqlite or postgres" >&2
        exit 2
        ;;
    esac
}

drop_db() {
    if [[ -n $PG_DB ]]; then
        psql -q "$PG/postgres" -c "DROP DATABASE IF EXISTS $PG_DB" || true
        PG_DB=
    fi
    if [[ -n $DB_FILE ]]; then
        rm -f "$DB_FILE" "$DB_FILE-wal" "$DB_FILE-shm"
        DB_FILE=
    fi
}

# start_server [VAR=value...]: starts $BIN on $DB_URL, waits for /readyz.
start_server() {
    env DATABASE_URL="$DB_URL" AUTHD_LISTEN="127.0.0.1:$PORT" AUTHD_RATE_LIMITS=off \
        RUST_LOG=warn "$@" "$BIN" serve >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 1 300); do
        if curl -fsS -o /dev/null "$URL/readyz" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$SERVER_PID" 2>/dev/null; then
            cat "$WORK/server.log" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "server did not become ready" >&2
    return 1
}

stop_server() {
    if [[ -n $SERVER_PID ]]; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=
    fi
}
# Servers started by the feed subcommand (two instances, the kit's axum server, the holder).
FEED_PIDS=()
stop_feed() {
    local p
    for p in "${FEED_PIDS[@]}"; do
        kill "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    FEED_PIDS=()
}
trap 'stop_feed; stop_server; drop_db' EXIT

rss_mb() { awk '/VmRSS/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }

lg() { "$LG" --url "$URL" "$@"; }

cmd_build() {
    local target=${CARGO_TARGET_DIR:-target}
    cargo build --release --bin authd --example loadgen --example feedbench
    mkdir -p "$(dirname "$BIN")"
    cp "$target/release/authd" "$BIN"
    cp "$target/release/examples/loadgen" "$LG"
    cp "$target/release/examples/feedbench" "$FB"
    # The micro-benchmarks, for `rotation` (the raw transaction beside refresh-chain).
    local hp
    hp=$(cargo bench --bench hot_paths --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for l in sys.stdin:
    m = json.loads(l)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "hot_paths" and m.get("executable"):
        print(m["executable"])')
    cp "$hp" "$HP"
    git log --oneline -1 >"$(dirname "$BIN")/commit"
    log "built $(cat "$(dirname "$BIN")/commit")"
}

# Every mode, RUNS runs each, interleaved (run 1 of every mode, then run 2, ...), each on a fresh
# server and database: idle RSS 3 s after readiness, then the mode with --pid.
cmd_modes() {
    local backend=$1 out=${OUT:-benches/results/$1-modes.jsonl}
    local -A conc=([baseline]=64 [verify]=64 [refresh-chain]=32 [login]=64 [logout]=32)
    for run in $(seq 1 "$RUNS"); do
        for mode in baseline verify refresh-chain login logout; do
            fresh_db "$backend" "modes-$mode"
            start_server
            sleep 3
            printf '{"mode":"idle","label":"%s","run":%d,"before":"%s","rss_mb":%s}\n' \
                "$backend" "$run" "$mode" "$(rss_mb "$SERVER_PID")" >>"$out"
            context "$backend $mode run $run" >>"$out"
            log "$backend $mode c=${conc[$mode]} run $run"
            lg --mode "$mode" --concurrency "${conc[$mode]}" --duration "$DURATION" \
                --pid "$SERVER_PID" --label "$backend" | tee -a "$out"
            stop_server
            drop_db
        done
    done
}

# A login storm at c=64 while verify (c=$MIX_C) and refresh-chain (c=$MIX_C) run; first the same
# verify/refresh-chain load without the storm, for comparison.
cmd_mixed() {
    local backend=$1 out=${OUT:-benches/results/$1-mixed.jsonl} c=${MIX_C:-8}
    for run in $(seq 1 "$RUNS"); do
        fresh_db "$backend" mixed
        start_server
        # Register the storm's users first (not timed).
        lg --mode login --concurrency 64 --duration 1 --warmup 0 --user-prefix storm >/dev/null
        context "$backend mixed run $run" >>"$out"
        log "$backend mixed run $run: quiet"
        lg --mode verify --concurrency "$c" --duration "$DURATION" --user-prefix mixv \
            --label "$backend quiet" --pid "$SERVER_PID" | tee -a "$out" &
        local v=$!
        lg --mode refresh-chain --concurrency "$c" --duration "$DURATION" --user-prefix mixr \
            --label "$backend quiet" | tee -a "$out" &
        local r=$!
        wait $v $r
        log "$backend mixed run $run: storm"
        lg --mode login --concurrency 64 --duration $((DURATION + 15)) --user-prefix storm \
            --label "$backend storm" --pid "$SERVER_PID" | tee -a "$out" &
        local s=$!
        sleep 4
        lg --mode verify --concurrency "$c" --duration "$DURATION" --user-prefix mixv \
            --label "$backend during storm" | tee -a "$out" &
        v=$!
        lg --mode refresh-chain --concurrency "$c" --duration "$DURATION" --user-prefix mixr \
            --label "$backend during storm" | tee -a "$out" &
        r=$!
        wait $v $r $s
        stop_server
        drop_db
    done
}

# 1,000,000 sessions seeded, then start-up time (exec to /healthz 200) and refresh-chain c=32,
# each against the same on an empty database, run alternately so that both see the same machine.
cmd_scale() {
    local backend=$1 out=${OUT:-benches/results/$1-scale.jsonl}
    local n=${SEED_SESSIONS:-1000000}
    fresh_db "$backend" scale
    local seeded_url=$DB_URL seeded_file=$DB_FILE seeded_pg=$PG_DB
    context "$backend seed" >>"$out"
    log "$backend seeding $n sessions"
    "$LG" --mode seed --database-url "$DB_URL" --sessions "$n" | tee -a "$out"
    if [[ -n $DB_FILE ]]; then
        printf '{"mode":"db_size","label":"%s seeded","bytes":%d}\n' "$backend" \
            "$(($(stat -c %s "$DB_FILE") + $(stat -c %s "$DB_FILE-wal" 2>/dev/null || echo 0)))" | tee -a "$out"
    fi
    fresh_db "$backend" scale-empty
    local empty_url=$DB_URL empty_file=$DB_FILE empty_pg=$PG_DB
    start_server
    stop_server
    for run in $(seq 1 "$RUNS"); do
        for which in empty seeded; do
            if [[ $which == empty ]]; then
                DB_URL=$empty_url
                label="$backend empty"
            else
                DB_URL=$seeded_url
                label="$backend 1M sessions"
            fi
            DATABASE_URL="$DB_URL" AUTHD_LISTEN="127.0.0.1:$PORT" AUTHD_RATE_LIMITS=off \
                "$LG" --url "$URL" --mode startup --exec "$BIN" --label "$label" | tee -a "$out"
            start_server
            sleep 3
            printf '{"mode":"idle","label":"%s","run":%d,"rss_mb":%s}\n' \
                "$label" "$run" "$(rss_mb "$SERVER_PID")" >>"$out"
            context "$label refresh run $run" >>"$out"
            lg --mode refresh-chain --concurrency 32 --duration "$DURATION" --pid "$SERVER_PID" \
                --label "$label" | tee -a "$out"
            stop_server
        done
    done
    DB_FILE=$empty_file PG_DB=$empty_pg drop_db
    DB_FILE=$seeded_file PG_DB=$seeded_pg drop_db
}

# SOAK_SECS of refresh-chain (c=32) with short lifetimes; every 30 s: RSS, database size and
# row counts. Chains are abandoned (a new login) after 100 s so that no session hits its 120 s
# absolute limit mid-chain; abandoned sessions idle out after 60 s and are pruned.
cmd_soak() {
    local backend=$1 out=${OUT:-benches/results/$1-soak.jsonl} secs=${SOAK_SECS:-600}
    fresh_db "$backend" soak
    start_server AUTHD_REFRESH_IDLE_SECS=60 AUTHD_SESSION_MAX_SECS=120 AUTHD_ACCESS_TTL_SECS=30 \
        AUTHD_PRUNE_INTERVAL_SECS=10
    context "$backend soak" >>"$out"
    log "$backend soak for $secs s"
    lg --mode refresh-chain --concurrency 32 --duration "$secs" --warmup 0 --chain-max-secs 100 \
        --pid "$SERVER_PID" --label "$backend soak${SOAK_VACUUM_SECS:+ vacuum ${SOAK_VACUUM_SECS}s}" \
        >"$WORK/soak.json" &
    local l=$! vac=
    # This machine's Postgres runs with autovacuum=off: SOAK_VACUUM_SECS=60 stands in for it
    # (a plain VACUUM of the database every 60 s, what autovacuum's default naptime would do).
    if [[ $backend == postgres && -n ${SOAK_VACUUM_SECS:-} ]]; then
        (while kill -0 "$l" 2>/dev/null; do
            sleep "$SOAK_VACUUM_SECS"
            psql -q "$DB_URL" -c VACUUM 2>/dev/null || true
        done) &
        vac=$!
    fi
    local t0=$SECONDS
    while kill -0 "$l" 2>/dev/null; do
        sample_db "$backend" $((SECONDS - t0)) | tee -a "$out"
        for _ in $(seq 1 30); do
            kill -0 "$l" 2>/dev/null || break
            sleep 1
        done
    done
    wait "$l"
    if [[ -n $vac ]]; then
        kill "$vac" 2>/dev/null || true
        wait "$vac" 2>/dev/null || true
    fi
    sample_db "$backend" $((SECONDS - t0)) | tee -a "$out"
    tee -a "$out" <"$WORK/soak.json"
    stop_server
    drop_db
}

sample_db() {
    local backend=$1 t=$2
    local rss
    rss=$(rss_mb "$SERVER_PID")
    if [[ $backend == sqlite ]]; then
        python3 - "$DB_FILE" "$t" "$rss" <<'EOF'
import json, os, sqlite3, sys
path, t, rss = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
size = lambda p: os.path.getsize(p) if os.path.exists(p) else 0
db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
count = lambda table: db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
print(json.dumps({"mode": "soak_sample", "t_s": t, "rss_mb": rss,
                  "db_bytes": size(path), "wal_bytes": size(path + "-wal"),
                  "sessions": count("sessions"), "refresh_tokens": count("refresh_tokens"),
                  "revoked_sessions": count("revoked_sessions"),
                  "security_events": count("security_events")}))
EOF
    else
        psql -Atq "$DB_URL" -v t="$t" -v rss="$rss" <<'EOF'
SELECT json_build_object('mode', 'soak_sample', 't_s', :t, 'rss_mb', :rss,
    'db_bytes', pg_database_size(current_database()),
    'sessions', (SELECT count(*) FROM sessions),
    'refresh_tokens', (SELECT count(*) FROM refresh_tokens),
    'revoked_sessions', (SELECT count(*) FROM revoked_sessions),
    'security_events', (SELECT count(*) FROM security_events),
    'tables', (SELECT json_object_agg(relname, json_build_object(
        'bytes', pg_total_relation_size(relid), 'live', n_live_tup, 'dead', n_dead_tup,
        'autovacuums', autovacuum_count, 'hot_updates', n_tup_hot_upd, 'updates', n_tup_upd))
        FROM pg_stat_user_tables
        WHERE relname IN ('sessions', 'refresh_tokens', 'security_events', 'revoked_sessions')));
EOF
    fi
}

# A CPU profile of the server under one mode: perf stat (CPU, context switches, page faults per
# request) and perf record -g (where the server's samples go), over 8 s in the middle of a run.
cmd_profile() {
    local backend=$1 mode=$2 c=$3 out=${OUT:-benches/results/profile-$1-$2.txt}
    fresh_db "$backend" "profile-$mode"
    start_server
    context "$backend $mode profile" >>"$out"
    lg --mode "$mode" --concurrency "$c" --duration 20 --pid "$SERVER_PID" \
        --label "$backend profiled" >"$WORK/profile.json" &
    local l=$!
    # Setup (registrations, first logins, at most ~5 s) and the 1 s warm-up come first.
    sleep 6
    {
        echo "## perf stat -p authd, 8 s, $backend $mode c=$c"
        perf stat -e task-clock,context-switches,cpu-migrations,page-faults -p "$SERVER_PID" -- sleep 8 2>&1
        echo "## perf record -g -p authd, 8 s: by thread, then by symbol (no children)"
        perf record -q -F 499 -g -p "$SERVER_PID" -o "$WORK/perf.data" -- sleep 8 >/dev/null 2>&1
        perf report -i "$WORK/perf.data" --no-children --sort comm --stdio -g none 2>/dev/null |
            grep -E '^ +[0-9]' | head -8
        perf report -i "$WORK/perf.data" --no-children --sort dso,sym --stdio -g none 2>/dev/null |
            grep -E '^ +[0-9]' | head -40
    } >>"$out"
    wait "$l"
    tee -a "$out" <"$WORK/profile.json"
    stop_server
    drop_db
}

# Rotation against the raw transaction, in one run: RUNS interleaved rounds of (the raw SQLite
# update+insert transaction, one writer and 32 tasks, BENCH_SECS each; then refresh-chain at
# c=$ROT_C for $DURATION on a fresh server and database). SQLite only: the raw bench is SQLite's.
cmd_rotation() {
    local backend=${1:-sqlite} out=${OUT:-benches/results/$1-rotation.jsonl} c=${ROT_C:-32}
    for run in $(seq 1 "$RUNS"); do
        context "rotation run $run" >>"$out"
        log "raw transaction run $run"
        BENCH_SECS=${BENCH_SECS:-3} "$HP" --bench "raw sqlite" | python3 -c '
import json, re, sys
for line in sys.stdin:
    if line.startswith("raw sqlite"):
        parts = re.split(r"\s{2,}", line.strip())
        print(json.dumps({"mode": "raw-txn", "label": parts[0], "run": int(sys.argv[1]),
                          "ops_per_sec": float(parts[1].split()[0]), "line": line.strip()}))
' "$run" | tee -a "$out"
        fresh_db "$backend" rotation
        start_server
        log "$backend refresh-chain c=$c run $run"
        lg --mode refresh-chain --concurrency "$c" --duration "$DURATION" \
            --pid "$SERVER_PID" --label "$backend c=$c" | tee -a "$out"
        stop_server
        drop_db
    done
}

cmd_micro() {
    local out=${OUT:-benches/results/micro.txt}
    context "micro" >>"$out"
    cargo bench --bench hot_paths 2>/dev/null | tee -a "$out"
}

cmd_summary() {
    python3 - "$@" <<'EOF'
import json, statistics, sys
from collections import defaultdict
rows = defaultdict(list)
for path in sys.argv[1:]:
    for line in open(path):
        line = line.strip()
        if not line.startswith('{'):
            continue
        r = json.loads(line)
        if r.get("mode") in ("context", "soak_sample"):
            continue
        key = (r.get("label", ""), r["mode"], r.get("concurrency", ""))
        rows[key].append(r)
fields = ["rps", "p50_ms", "p99_ms", "errors", "rss_start_mb", "rss_end_mb", "rss_mb",
          "healthz_ms", "readyz_ms", "seconds"]
for key, rs in rows.items():
    med = {}
    for f in fields:
        vals = [r[f] for r in rs if r.get(f) is not None]
        if vals:
            med[f] = statistics.median(vals)
    print(f"{key[0]:<28} {key[1]:<14} c={key[2]!s:<4} n={len(rs)} "
          + " ".join(f"{k}={v:g}" for k, v in med.items()))
EOF
}

# ---------------------------------------------------------------------------------------------
# feed: the revocation feed and the Rust verifier kit (examples/feedbench.rs). Every authd gets
# AUTHD_ISSUER=$FEED_ISSUER, so that two instances on one database issue the same `iss`.
#
# The machine is shared: before each run the script waits for it to be quiet (wait_quiet), and
# each JSON line carries `others_cores`, the CPU that processes other than the run's own used
# during the measured window. A run where that exceeds DISTURBED_CORES (0.3) is kept in the file
# with "disturbed": true and done again (at most twice more); summaries use the other lines.
FEED_OUT=${FEED_OUT:-benches/results/2026-12-02}
FEED_ISSUER="http://127.0.0.1:$PORT"
PORT_B=$((PORT + 1))
KIT_PORT=$((PORT + 10))
NCPU=$(nproc)
LAST_PID=

# migrate_db: the schema, before any service key is made.
migrate_db() { DATABASE_URL="$DB_URL" RUST_LOG=warn "$BIN" migrate >/dev/null 2>&1; }

# new_key NAME: a revocations:read service key on $DB_URL (printed once by authd).
new_key() {
    DATABASE_URL="$DB_URL" RUST_LOG=warn "$BIN" service-keys create --name "$1" \
        --scope revocations:read 2>/dev/null
}

# start_at PORT NAME [VAR=value...]: an authd instance on $DB_URL; its pid in LAST_PID.
start_at() {
    local port=$1 name=$2
    shift 2
    env DATABASE_URL="$DB_URL" AUTHD_LISTEN="127.0.0.1:$port" AUTHD_ISSUER="$FEED_ISSUER" \
        AUTHD_RATE_LIMITS=off RUST_LOG=warn "$@" "$BIN" serve >"$WORK/$name.log" 2>&1 &
    LAST_PID=$!
    FEED_PIDS+=("$LAST_PID")
    wait_ready "http://127.0.0.1:$port/readyz" "$LAST_PID" "$WORK/$name.log"
}

wait_ready() {
    local url=$1 pid=$2 logf=$3
    for _ in $(seq 1 300); do
        if curl -fsS -o /dev/null "$url" 2>/dev/null; then
            return 0
        fi
        if ! kill -0 "$pid" 2>/dev/null; then
            cat "$logf" >&2
            return 1
        fi
        sleep 0.1
    done
    echo "$url did not become ready" >&2
    return 1
}

# gauge URL NAME: one value of authd's /metrics.
gauge() { curl -fsS "$1/metrics" | awk -v n="$2" '$1 == n {print $2}'; }

# with_fields JSON: adds the fields of the object JSON to the JSON line read on stdin.
with_fields() {
    python3 -c 'import json, sys
r = json.loads(sys.stdin.readline()); r.update(json.loads(sys.argv[1])); print(json.dumps(r))' "$1"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
machine_line() { head -n 1 /proc/stat; }

# busy_cores LINE0 LINE1: the cores the whole machine used between two /proc/stat cpu lines.
busy_cores() {
    python3 -c 'import sys
a = [int(x) for x in sys.argv[1].split()[1:9]]
b = [int(x) for x in sys.argv[2].split()[1:9]]
d = [y - x for x, y in zip(a, b)]
print(round(int(sys.argv[3]) * (sum(d) - d[3] - d[4]) / max(sum(d), 1), 2))' "$1" "$2" "$NCPU"
}

# The machine's busy % over $1 seconds.
machine_busy() {
    local a b
    a=$(machine_line)
    sleep "$1"
    b=$(machine_line)
    python3 -c "print(round(100 * $(busy_cores "$a" "$b") / $NCPU))"
}

# Before a run, wait (at most QUIET_WAIT s, default 300) until the machine is under QUIET_PCT %
# busy (default 25) over 2 s; then go on anyway, saying so.
wait_quiet() {
    local waited=0 busy
    while :; do
        busy=$(machine_busy 2)
        if ((busy < ${QUIET_PCT:-25})); then
            return 0
        fi
        if ((waited >= ${QUIET_WAIT:-300})); then
            log "machine still ${busy}% busy after ${waited} s: going on"
            return 0
        fi
        log "machine ${busy}% busy: waiting"
        sleep 8
        waited=$((waited + 10))
    done
}

# mark_others LINE: adds others_cores (machine cores minus the run's own, from the line's fields) and
# disturbed to a JSON line; the mode says which fields are the run's own.
mark_others() {
    python3 -c 'import json, sys
r = json.loads(sys.argv[1]); ncpu = int(sys.argv[2]); limit = float(sys.argv[3])
m = r["mode"]
if m == "propagation":
    machine = r["machine_busy_pct"] * ncpu / 100
    own = (r["feedbench_cpu_cores"] + sum(c or 0 for c in r["authd_cpu_cores"])
           + (r.get("postgres_cpu_cores") or 0))
elif m == "refresh-chain":
    machine = r["machine_busy_pct"] * ncpu / 100
    own = r["server_cpu_cores"] + r["loadgen_cpu_cores"] + r.get("holder_cpu_cores", 0)
else:
    machine = r["machine_cores"]
    own = r["server_cpu_cores"] + r["wrk_cpu_cores"] + r["authd_cpu_cores"]
r["others_cores"] = round(machine - own, 2)
r["disturbed"] = r["others_cores"] > limit
print(json.dumps(r))' "$1" "$NCPU" "${DISTURBED_CORES:-0.3}"
}

is_disturbed() { [[ $1 == *'"disturbed": true'* ]]; }

# 1. Logout -> refusal at a verifier: "same" polls the instance that logs out, "cross" polls a
# second instance on the same database. RUNS rounds of every case, interleaved.
feed_propagation() {
    local out=$FEED_OUT/propagation.jsonl
    local i run
    for i in $(seq 1 "$RUNS"); do
        run=$((${RUN_BASE:-0} + i))
        for backend in ${FEED_BACKENDS:-sqlite postgres}; do
            for case in ${FEED_CASES:-same cross}; do
                for attempt in 1 2 3; do
                    wait_quiet
                    fresh_db "$backend" "feed-prop-$case"
                    migrate_db
                    local key verify_url=$URL pids line
                    key=$(new_key propagation)
                    start_at "$PORT" a
                    pids=$LAST_PID
                    if [[ $case == cross ]]; then
                        start_at "$PORT_B" b
                        pids+=",$LAST_PID"
                        verify_url="http://127.0.0.1:$PORT_B"
                    fi
                    context "$backend $case propagation run $run" >>"$out"
                    log "propagation $backend $case run $run (attempt $attempt)"
                    line=$(FEEDBENCH_KEY=$key "$FB" propagation --logout-url "$URL" \
                        --verify-url "$verify_url" --issuer "$FEED_ISSUER" \
                        --logouts "${LOGOUTS:-1000}" --rate "${LOGOUT_RATE:-100}" --pids "$pids" \
                        --label "$backend $case" | with_fields "{\"run\": $run, \"attempt\": $attempt}")
                    line=$(mark_others "$line")
                    echo "$line" | tee -a "$out"
                    stop_feed
                    drop_db
                    is_disturbed "$line" || break
                done
            done
        done
    done
}

# 2. Verify throughput: /bare (jsonwebtoken::decode) vs /kit (AuthdLayer) in one axum server
# (feedbench serve), wrk -t2 -c32, 1,000 distinct tokens round-robin, and one token.
feed_throughput() {
    local out=$FEED_OUT/throughput.jsonl secs=${WRK_SECS:-10}
    command -v wrk >/dev/null || {
        echo "wrk is needed (apt-get install -y wrk)" >&2
        return 1
    }
    wait_quiet
    fresh_db sqlite feed-tput
    migrate_db
    local key
    key=$(new_key throughput)
    # The tokens outlive the whole sequence (1,000 logins, then 12 runs of 10 s and retries).
    start_at "$PORT" a AUTHD_ACCESS_TTL_SECS=1800
    local authd=$LAST_PID
    log "throughput: logging in 1000 sessions"
    "$FB" tokens --url "$URL" --n 1000 --out "$WORK/tokens-many.txt"
    head -n 1 "$WORK/tokens-many.txt" >"$WORK/tokens-one.txt"
    FEEDBENCH_KEY=$key "$FB" serve --url "$URL" --issuer "$FEED_ISSUER" \
        --listen "127.0.0.1:$KIT_PORT" >"$WORK/kit.log" 2>&1 &
    local kit=$!
    FEED_PIDS+=("$kit")
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null -H "Authorization: Bearer $(cat "$WORK/tokens-one.txt")" \
            "http://127.0.0.1:$KIT_PORT/kit" 2>/dev/null && break
        sleep 0.1
    done
    cat >"$WORK/rotate.lua" <<'LUA'
local tokens, n, i = {}, 0, 0
function init(args)
  for line in io.lines(args[1]) do n = n + 1; tokens[n] = line end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16))
  i = math.random(n) - 1
end
function request()
  i = i % n + 1
  return wrk.format("GET", wrk.path, {["Authorization"] = "Bearer " .. tokens[i]})
end
function done(s, latency, requests)
  local e = s.errors
  io.write(string.format('{"mode":"wrk","requests":%d,"duration_s":%.3f,"rps":%.1f,' ..
    '"p50_ms":%.3f,"p90_ms":%.3f,"p99_ms":%.3f,"max_ms":%.3f,"non_2xx":%d,' ..
    '"socket_errors":%d}\n', s.requests, s.duration / 1e6, s.requests / (s.duration / 1e6),
    latency:percentile(50) / 1e3, latency:percentile(90) / 1e3, latency:percentile(99) / 1e3,
    latency.max / 1e3, e.status, e.connect + e.read + e.write + e.timeout))
end
LUA
    local routes
    for run in $(seq 1 "$RUNS"); do
        for tokens in many one; do
            # bare, kit in odd runs; kit, bare in even ones: a drift of the machine's speed
            # during the sequence touches both alike.
            routes="bare kit"
            if ((run % 2 == 0)); then routes="kit bare"; fi
            for route in $routes; do
                for attempt in 1 2 3; do
                    wait_quiet
                    context "throughput $route $tokens run $run" >>"$out"
                    log "throughput /$route, $tokens token(s), run $run (attempt $attempt)"
                    local k0 k1 a0 a1 m0 m1 t0 t1 line fields
                    k0=$(cpu_ticks "$kit")
                    a0=$(cpu_ticks "$authd")
                    m0=$(machine_line)
                    t0=$(date +%s.%N)
                    TIMEFORMAT='%3U %3S'
                    { time wrk -t2 -c32 -d"${secs}s" -s "$WORK/rotate.lua" \
                        "http://127.0.0.1:$KIT_PORT/$route" -- "$WORK/tokens-$tokens.txt" \
                        >"$WORK/wrk.txt"; } 2>"$WORK/wrk.time"
                    t1=$(date +%s.%N)
                    m1=$(machine_line)
                    k1=$(cpu_ticks "$kit")
                    a1=$(cpu_ticks "$authd")
                    fields=$(python3 -c 'import json, sys
k0, k1, a0, a1, t0, t1 = (float(x) for x in sys.argv[1:7])
u, s = (float(x) for x in open(sys.argv[7]).read().split())
secs = t1 - t0
print(json.dumps({"route": sys.argv[8], "tokens": sys.argv[9], "distinct_tokens": int(sys.argv[10]),
    "concurrency": 32, "run": int(sys.argv[11]), "attempt": int(sys.argv[12]),
    "server_cpu_cores": round((k1 - k0) / 100 / secs, 2),
    "authd_cpu_cores": round((a1 - a0) / 100 / secs, 2),
    "wrk_cpu_cores": round((u + s) / secs, 2), "machine_cores": float(sys.argv[13])}))' \
                        "$k0" "$k1" "$a0" "$a1" "$t0" "$t1" "$WORK/wrk.time" "$route" "$tokens" \
                        "$(wc -l <"$WORK/tokens-$tokens.txt")" "$run" "$attempt" \
                        "$(busy_cores "$m0" "$m1")")
                    line=$(grep '^{' "$WORK/wrk.txt" | with_fields "$fields")
                    line=$(mark_others "$line")
                    echo "$line" | tee -a "$out"
                    is_disturbed "$line" || break
                done
            done
        done
    done
    printf '{"mode":"idle","label":"after throughput","authd_rss_mb":%s,"kit_server_rss_mb":%s}\n' \
        "$(rss_mb "$authd")" "$(rss_mb "$kit")" | tee -a "$out"

    stop_feed
    drop_db
}

# 2b. The CPU cost of one verify without HTTP: one thread, the kit's verify and a bare
# jsonwebtoken::decode in interleaved blocks over 200 distinct tokens.
feed_verify_cost() {
    local out=$FEED_OUT/throughput.jsonl
    wait_quiet
    fresh_db sqlite feed-vcost
    migrate_db
    local key
    key=$(new_key verify-cost)
    start_at "$PORT" a
    "$FB" tokens --url "$URL" --n 200 --out "$WORK/tokens-cost.txt"
    for run in $(seq 1 "$RUNS"); do
        wait_quiet
        context "verify cost run $run" >>"$out"
        log "verify cost run $run"
        FEEDBENCH_KEY=$key "$FB" verify-cost --url "$URL" --issuer "$FEED_ISSUER" \
            --tokens "$WORK/tokens-cost.txt" --secs 3 | with_fields "{\"run\": $run}" | tee -a "$out"
    done
    stop_feed
    drop_db
}

# 3. refresh-chain c=32 on SQLite with no long-poll held, and with HELD held (5 keys, 100 each:
# the default per-key cap), interleaved. The per-address connection cap (512) is off in both,
# as HELD + 32 connections come from 127.0.0.1.
feed_held() {
    local out=$FEED_OUT/held.jsonl held=${HELD:-500}
    for run in $(seq 1 "$RUNS"); do
        for which in none held; do
            for attempt in 1 2 3; do
                wait_quiet
                fresh_db sqlite "feed-held-$which"
                migrate_db
                local keys="" k line
                for k in 1 2 3 4 5; do
                    keys+="$(new_key "holder-$k"),"
                done
                start_at "$PORT" a AUTHD_MAX_CONNECTIONS_PER_IP=0
                local authd=$LAST_PID hpid="" label="sqlite feed none held" h0=0 h1=0
                if [[ $which == held ]]; then
                    label="sqlite feed $held held"
                    FEEDBENCH_KEYS=$keys "$FB" hold --url "$URL" --n "$held" --label "$label" \
                        >"$WORK/hold.json" 2>"$WORK/hold.log" &
                    hpid=$!
                    FEED_PIDS+=("$hpid")
                    for _ in $(seq 1 100); do
                        [[ $(gauge "$URL" authd_feed_held_requests) == "$held" ]] && break
                        sleep 0.1
                    done
                fi
                sleep 2
                printf '{"mode":"held_gauge","label":"%s","run":%d,"at":"start","held":%s,"rss_mb":%s}\n' \
                    "$label" "$run" "$(gauge "$URL" authd_feed_held_requests)" "$(rss_mb "$authd")" |
                    tee -a "$out"
                context "$label run $run" >>"$out"
                log "$label: refresh-chain c=32 run $run (attempt $attempt)"
                if [[ -n $hpid ]]; then h0=$(cpu_ticks "$hpid"); fi
                line=$(lg --mode refresh-chain --concurrency 32 --duration "$DURATION" \
                    --pid "$authd" --label "$label")
                if [[ -n $hpid ]]; then h1=$(cpu_ticks "$hpid"); fi
                # The holder's CPU over the loadgen run (setup and warm-up included: an upper
                # bound on its share of the window).
                line=$(echo "$line" | with_fields "{\"run\": $run, \"attempt\": $attempt, \
\"holder_cpu_cores\": $(python3 -c "print(round(($h1 - $h0) / 100 / ($DURATION + 2), 2))")}")
                line=$(mark_others "$line")
                echo "$line" | tee -a "$out"
                printf '{"mode":"held_gauge","label":"%s","run":%d,"at":"end","held":%s}\n' \
                    "$label" "$run" "$(gauge "$URL" authd_feed_held_requests)" | tee -a "$out"
                if [[ -n $hpid ]]; then
                    kill -TERM "$hpid"
                    wait "$hpid" || true
                    with_fields "{\"run\": $run, \"attempt\": $attempt}" <"$WORK/hold.json" |
                        tee -a "$out"
                fi
                stop_feed
                drop_db
                is_disturbed "$line" || break
            done
        done
    done
}

# 4. The kit's revoked map: rows inserted straight into revoked_sessions (expires_at now+600);
# a snapshot of 100k then +100k through the feed, and 0 -> 100k -> 200k through the feed.
feed_memory() {
    local out=$FEED_OUT/memory.jsonl
    for run in $(seq 1 "$RUNS"); do
        for seq in snapshot follow; do
            wait_quiet
            fresh_db sqlite "feed-mem-$seq"
            migrate_db
            local key
            key=$(new_key memory)
            start_at "$PORT" a
            context "memory $seq run $run" >>"$out"
            log "memory $seq run $run"
            local args=(--prefill 100000 --steps 100000)
            if [[ $seq == follow ]]; then args=(--prefill 0 --steps 100000,100000); fi
            FEEDBENCH_KEY=$key "$FB" memory --url "$URL" --issuer "$FEED_ISSUER" \
                --database-url "$DB_URL" --authd-pid "$LAST_PID" "${args[@]}" --label "$seq" |
                with_fields "{\"run\": $run}" | tee -a "$out"
            stop_feed
            drop_db
        done
    done
}

# feed summary: medians of the undisturbed runs of every file in $FEED_OUT.
feed_summary() {
    python3 - "$FEED_OUT" <<'PY'
import json, os, statistics, sys
from collections import defaultdict
d = sys.argv[1]
def rows(name):
    p = os.path.join(d, name)
    if not os.path.exists(p):
        return []
    return [json.loads(l) for l in open(p) if l.startswith("{")]
med = statistics.median
prop = defaultdict(list)
for r in rows("propagation.jsonl"):
    if r.get("mode") == "propagation" and not r.get("disturbed"):
        prop[r["label"]].append(r)
for label, rs in prop.items():
    f = lambda k, q: med(r[k][q] for r in rs)
    print(f"propagation {label:<16} n={len(rs)} from_204 p50={f('from_204', 'p50_ms')} "
          f"p99={f('from_204', 'p99_ms')} max={f('from_204', 'max_ms')} | from_send "
          f"p50={f('from_send', 'p50_ms')} p99={f('from_send', 'p99_ms')} "
          f"max={f('from_send', 'max_ms')} | refused={[r['refused'] for r in rs]} "
          f"others={[r['others_cores'] for r in rs]}")
tp = defaultdict(list)
for r in rows("throughput.jsonl"):
    if r.get("mode") == "wrk" and not r.get("disturbed"):
        tp[(r["tokens"], r["route"])].append(r)
for tokens in ("many", "one"):
    got = {}
    for route in ("bare", "kit"):
        rs = tp.get((tokens, route), [])
        if rs:
            got[route] = med(r["rps"] for r in rs)
            print(f"throughput {route:<4} tokens={tokens:<4} n={len(rs)} rps={got[route]} "
                  f"p99={med(r['p99_ms'] for r in rs)} runs={[r['rps'] for r in rs]} "
                  f"server_cores={med(r['server_cpu_cores'] for r in rs)}")
    if len(got) == 2:
        print(f"throughput kit/bare tokens={tokens}: {got['kit'] / got['bare']:.3f}")
vc = [r for r in rows("throughput.jsonl") if r.get("mode") == "verify_cost"]
if vc:
    keys = [k for k in vc[0] if k.endswith("_us") or k.startswith("kit_over")]
    print(f"verify cost (one thread) n={len(vc)} " + " ".join(
        f"{k}={med(r[k] for r in vc)}" for k in keys))
hd = defaultdict(list)
for r in rows("held.jsonl"):
    if r.get("mode") == "refresh-chain" and not r.get("disturbed"):
        hd[r["label"]].append(r)
got = {}
for label, rs in hd.items():
    got[label] = med(r["rps"] for r in rs)
    print(f"held {label:<24} n={len(rs)} rps={got[label]} p99={med(r['p99_ms'] for r in rs)} "
          f"runs={[r['rps'] for r in rs]} errors={[r['errors'] for r in rs]}")
if len(got) == 2:
    a, b = sorted(got, key=lambda k: "none" not in k)
    print(f"held ratio {b} / {a}: {got[b] / got[a]:.3f}")
for r in rows("memory.jsonl"):
    if r.get("mode") == "memory":
        print(f"memory {r['label']:<8} run={r['run']} " + " ".join(
            f"[{x['from']} -> {x['to']}: kit {x['kit_bytes_per_entry']} B/entry, authd "
            f"{x['authd_bytes_per_entry']} B/entry ({x.get('authd_anon_bytes_per_entry')} anon)]"
            for x in r["deltas"] if x["kit_entries_added"] or x["authd_entries_added"]))
PY
}

# 3b. authd's idle RSS with 0, 100, 250, 500 and 1,000 feed requests held (10 keys; 1,000 is the
# default AUTHD_FEED_MAX_WAITERS), a fresh server each.
feed_held_rss() {
    local out=$FEED_OUT/held-rss.jsonl
    for n in 0 100 250 500 1000; do
        wait_quiet
        fresh_db sqlite feed-held-rss
        migrate_db
        local keys="" k hpid=""
        for k in $(seq 1 10); do
            keys+="$(new_key "holder-$k"),"
        done
        start_at "$PORT" a AUTHD_MAX_CONNECTIONS_PER_IP=0
        local authd=$LAST_PID
        context "held rss $n" >>"$out"
        sleep 2
        local before
        before=$(rss_mb "$authd")
        if ((n > 0)); then
            FEEDBENCH_KEYS=$keys "$FB" hold --url "$URL" --n "$n" --label "rss $n" \
                >"$WORK/hold.json" 2>"$WORK/hold.log" &
            hpid=$!
            FEED_PIDS+=("$hpid")
            for _ in $(seq 1 100); do
                [[ $(gauge "$URL" authd_feed_held_requests) == "$n" ]] && break
                sleep 0.1
            done
        fi
        sleep 3
        printf '{"mode":"held_rss","n":%d,"held":%s,"rss_before_mb":%s,"rss_mb":%s,"rss_anon_mb":%s}\n' \
            "$n" "$(gauge "$URL" authd_feed_held_requests)" "$before" "$(rss_mb "$authd")" \
            "$(awk '/RssAnon/ {printf "%.1f", $2/1024}' "/proc/$authd/status")" | tee -a "$out"
        stop_feed
        drop_db
    done
}

# 4b. Where authd's memory for 100k entries goes: (i) the snapshot sequence with authd under
# MALLOC_ARENA_MAX=1 (one glibc arena: does the first sync's jump shrink?); (ii) authd started on
# a database that already holds 100k entries (the start-up load) against an empty one.
feed_memory_diag() {
    local out=$FEED_OUT/memory-diag.jsonl
    wait_quiet
    fresh_db sqlite feed-mem-diag
    migrate_db
    local key
    key=$(new_key memory)
    start_at "$PORT" a MALLOC_ARENA_MAX=1
    context "memory diag arena" >>"$out"
    log "memory snapshot, authd with MALLOC_ARENA_MAX=1"
    FEEDBENCH_KEY=$key "$FB" memory --url "$URL" --issuer "$FEED_ISSUER" --database-url "$DB_URL" \
        --authd-pid "$LAST_PID" --prefill 100000 --steps 100000 --label "snapshot, authd MALLOC_ARENA_MAX=1" |
        tee -a "$out"
    stop_feed
    drop_db
    for run in $(seq 1 "$RUNS"); do
        for rows in 0 100000; do
            wait_quiet
            fresh_db sqlite feed-mem-start
            migrate_db
            if ((rows > 0)); then
                DATABASE_URL="$DB_URL" "$FB" insert-revoked --count "$rows" >/dev/null
            fi
            start_at "$PORT" a
            context "startup rss $rows run $run" >>"$out"
            printf '{"mode":"startup_rss","rows":%d,"run":%d,"authd_entries":%s,"rss_mb":%s,"rss_anon_mb":%s}\n' \
                "$rows" "$run" "$(gauge "$URL" authd_revoked_sessions)" "$(rss_mb "$LAST_PID")" \
                "$(awk '/RssAnon/ {printf "%.1f", $2/1024}' "/proc/$LAST_PID/status")" | tee -a "$out"
            stop_feed
            drop_db
        done
    done
}

cmd_feed() {
    local what=${1:-all}
    mkdir -p "$FEED_OUT"
    [[ -x $FB ]] || {
        echo "no $FB: run benches/perf.sh build first" >&2
        exit 2
    }
    case $what in
    all)
        feed_propagation
        feed_throughput
        feed_verify_cost
        feed_held
        feed_held_rss
        feed_memory
        feed_memory_diag
        feed_summary
        ;;
    propagation) feed_propagation ;;
    throughput) feed_throughput ;;
    verify-cost) feed_verify_cost ;;
    held) feed_held ;;
    held-rss) feed_held_rss ;;
    memory) feed_memory ;;
    memory-diag) feed_memory_diag ;;
    summary) feed_summary ;;
    *)
        echo "feed: all | propagation | throughput | verify-cost | held | held-rss | memory | memory-diag | summary" >&2
        exit 2
        ;;
    esac
}

what=${1:-}
shift || true
case $what in
build) cmd_build ;;
modes) cmd_modes "$@" ;;
mixed) cmd_mixed "$@" ;;
scale) cmd_scale "$@" ;;
soak) cmd_soak "$@" ;;
micro) cmd_micro ;;
rotation) cmd_rotation "$@" ;;
feed) cmd_feed "$@" ;;
profile) cmd_profile "$@" ;;
summary) cmd_summary "$@" ;;
*)
    sed -n '2,23p' "$0"
    exit 2
    ;;
esac
